"""An interactive page to explore the latent space of a SpectralVAE.

Sedaghat et al. (2021) read their latents by moving one at a time and
watching the decoded spectrum change, and by looking at which spectra lie
close to each other. `LatentExplorer` puts both in one HTML page that opens
offline (every byte of it inline, no library, no network): a slider per
informative latent redraws the decoded spectrum as it moves; a scatter of any
two latents, coloured by any label, selects a star on click and shows its
spectrum against its reconstruction, its labels and its most similar spectra;
every spectrum plot zooms on a wavelength range.

The decoder runs in the page: its weights are exported (float32) and a
forward pass written in JavaScript (a linear layer, activations and
transposed convolutions) gives, for any slider position, the spectrum
`SpectralVAE.inverse_transform` gives. `LatentExplorer.decode` is the same
forward pass in numpy; `LatentExplorer.from_estimator` checks it against the
estimator before writing anything.
"""

import base64
import html
import json
import numbers
from pathlib import Path

import numpy as np

from .._logging import log
from .disentanglement import _check_dims, informative_dimensions, latent_mad

__all__ = ["LatentExplorer"]

#: spectra decoded in python to check the exported decoder against the estimator
_N_CHECK = 4
#: rows of the distance matrix computed at once when finding neighbours
_NEIGHBOR_CHUNK = 512
_NAN_CODE = 65535
#: bytes of observed flux (16 bits a pixel) the page holds at most
_MAX_SPECTRA_BYTES = 8_000_000


def _b64(array, dtype):
    """Little-endian bytes of ``array`` as ``dtype``, base64-encoded."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _unb64(text, dtype):
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


# -- the decoder, exported and re-run in numpy ------------------------------------------


def export_decoder(module):
    """The decoder of a `~stellarlatent.nn.ConvVAE` as a JSON-ready dict.

    Returns ``{"linear": {...}, "shape": [channels, length], "layers": [...]}``:
    the linear layer from the latents, the shape the decoder reshapes its
    output to, then each layer (``leaky_relu``, ``relu``, ``tanh``,
    ``sigmoid``, ``identity`` or ``conv_transpose``) with float32 weights in
    base64 (``weight`` of a transposed convolution has torch's layout
    ``(in, out, kernel)``).
    """
    from torch import nn

    linear = module.fc_decode
    spec = {
        "linear": {
            "in": int(linear.in_features),
            "out": int(linear.out_features),
            "weight": _b64(linear.weight.detach().cpu().numpy(), "<f4"),
            "bias": _b64(_bias(linear, linear.out_features), "<f4"),
        },
        "shape": [int(n) for n in module.bottleneck_shape],
        "layers": [],
    }
    for layer in module.decoder:
        if isinstance(layer, nn.LeakyReLU):
            spec["layers"].append({"type": "leaky_relu", "slope": float(layer.negative_slope)})
        elif isinstance(layer, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity)):
            spec["layers"].append({"type": type(layer).__name__.lower()})
        elif isinstance(layer, nn.ConvTranspose1d):
            if (layer.groups != 1 or tuple(layer.dilation) != (1,)
                    or layer.padding_mode != "zeros"):
                raise ValueError(
                    "vae: the explorer decodes transposed convolutions without groups, "
                    f"dilation or non-zero padding only, got {layer}")
            spec["layers"].append({
                "type": "conv_transpose",
                "in": int(layer.in_channels),
                "out": int(layer.out_channels),
                "k": int(layer.kernel_size[0]),
                "stride": int(layer.stride[0]),
                "padding": int(layer.padding[0]),
                "output_padding": int(layer.output_padding[0]),
                "weight": _b64(layer.weight.detach().cpu().numpy(), "<f4"),
                "bias": _b64(_bias(layer, layer.out_channels), "<f4"),
            })
        else:
            raise ValueError(
                f"vae: the explorer cannot decode a {type(layer).__name__} layer in the page "
                "(it knows Linear, ConvTranspose1d, LeakyReLU, ReLU, Tanh, Sigmoid)")
    return spec


def _bias(layer, n):
    bias = layer.bias
    return np.zeros(n, dtype=np.float32) if bias is None else bias.detach().cpu().numpy()


def decode_exported(spec, Z, n_pixels=None):
    """Run an exported decoder (see `export_decoder`) on latents, in float64 numpy.

    This is the forward pass the page runs in JavaScript, line for line.
    """
    Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
    lin = spec["linear"]
    W = _unb64(lin["weight"], "<f4").astype(np.float64).reshape(lin["out"], lin["in"])
    x = Z @ W.T + _unb64(lin["bias"], "<f4")
    x = x.reshape(Z.shape[0], *spec["shape"])
    for layer in spec["layers"]:
        kind = layer["type"]
        if kind == "leaky_relu":
            x = np.where(x < 0, x * layer["slope"], x)
        elif kind == "relu":
            x = np.maximum(x, 0.0)
        elif kind == "tanh":
            x = np.tanh(x)
        elif kind == "sigmoid":
            x = 1.0 / (1.0 + np.exp(-x))
        elif kind == "conv_transpose":
            k, s, p = layer["k"], layer["stride"], layer["padding"]
            w = _unb64(layer["weight"], "<f4").astype(np.float64).reshape(
                layer["in"], layer["out"], k)
            n_in = x.shape[-1]
            n_out = (n_in - 1) * s - 2 * p + k + layer["output_padding"]
            span = (n_in - 1) * s + 1
            full = np.zeros((x.shape[0], layer["out"], span - 1 + k + layer["output_padding"]))
            for j in range(k):
                full[:, :, j : j + span : s] += np.einsum("bcl,co->bol", x, w[:, :, j])
            x = full[:, :, p : p + n_out] + _unb64(layer["bias"], "<f4")[None, :, None]
    x = x.reshape(Z.shape[0], -1)
    return x if n_pixels is None else x[:, :n_pixels]


# -- neighbours -------------------------------------------------------------------------


def nearest_neighbors(E, k):
    """Indices and Euclidean distances of the ``k`` rows of ``E`` nearest each row (not itself).

    Exact (brute force in float64, by blocks of rows), sorted by increasing
    distance.
    """
    E = np.asarray(E, dtype=np.float64)
    n = E.shape[0]
    sq = np.einsum("ij,ij->i", E, E)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k))
    for start in range(0, n, _NEIGHBOR_CHUNK):
        stop = min(n, start + _NEIGHBOR_CHUNK)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (E[start:stop] @ E.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < n else np.argsort(d2, axis=1)
        rows = np.arange(stop - start)[:, None]
        order = np.argsort(d2[rows, part], axis=1, kind="stable")
        indices[start:stop] = part[rows, order]
        distances[start:stop] = np.sqrt(d2[rows, indices[start:stop]])
    return indices, distances


# -- labels -----------------------------------------------------------------------------


def _label_payload(labels, n):
    """Numeric columns (float32, NaN where missing) and text columns of a table."""
    from astropy.table import Table

    from ._labels import _column_values

    if labels is None:
        return [], []
    if not isinstance(labels, Table):
        raise TypeError(f"labels must be an astropy Table or QTable, got {type(labels).__name__}")
    if len(labels) != n:
        raise ValueError(f"labels has {len(labels)} rows but X has {n} spectra "
                         "(one row per spectrum)")
    numeric, text = [], []
    for name in labels.colnames:
        column = labels[name]
        if getattr(column, "ndim", 1) != 1:
            continue
        data = getattr(column, "unmasked", column)
        kind = np.asarray(getattr(data, "value", data)).dtype.kind
        if kind in "biuf":
            values, unit = _column_values(column, f"labels['{name}']")
            unit = "" if unit is None or str(unit) == "" else unit.to_string()
            numeric.append({"name": str(name), "unit": unit, "values": _b64(values, "<f4")})
        elif kind in "USO":
            text.append({"name": str(name), "values": [str(v)[:120] for v in column]})
    return numeric, text


# -- the explorer -----------------------------------------------------------------------


class LatentExplorer:
    """One self-contained HTML page to explore what a SpectralVAE's latents do.

    Build it with `from_estimator`; `save` writes the page, and in Jupyter the
    object displays itself (`_repr_html_`). The page shows:

    * a scatter of any two latents (two menus), coloured by any label or
      latent (a third menu); a click on a point selects that star;
    * the selected star's spectrum against its reconstruction, its labels and
      its ``n_neighbors`` most similar spectra (Euclidean in the slider
      latents, or in a DeepREMAP embedding when one was given); a click on a
      neighbour selects it;
    * a slider per informative latent, starting at the selected star's
      latents, that redraws the decoded spectrum as it moves;
    * a wavelength range (two inputs, or drag on a spectrum; double-click for
      the whole range) shared by every spectrum plot.

    In the page, ``window.explorer`` offers ``currentSpectrum()`` and
    ``currentLatent()`` (the decoded spectrum and the latent vector of the
    sliders), ``select(i)``, ``selected()``, ``neighbors()``,
    ``setLatent(dim, value)``, ``setZoom(lo, hi)`` and ``firstDrawMs``.

    Parameters
    ----------
    payload : dict
        The page's data (built by `from_estimator`).

    Attributes
    ----------
    latents : ndarray, shape (n_spectra, latent_dim)
        Latent means of the spectra (float32, as stored in the page).
    dims : ndarray of int
        The latents that get a slider (the informative ones by default).
    neighbors : ndarray of int, shape (n_spectra, n_neighbors)
        The most similar spectra of each spectrum, nearest first.
    neighbor_distances : ndarray, shape (n_spectra, n_neighbors)
    neighbor_space : str
        ``"latent"`` or ``"DeepREMAP embedding"``.
    stored : ndarray of int
        Spectra whose observed flux the page holds (the others show their
        reconstruction only).

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.datasets import make_synthetic_spectra
    >>> from stellarlatent.estimators import SpectralVAE
    >>> from stellarlatent.preprocessing import SpectralGrid
    >>> from stellarlatent.diagnostics import LatentExplorer
    >>> grid = SpectralGrid.linear(5000 * u.AA, 5500 * u.AA, 128)
    >>> X, labels = make_synthetic_spectra(60, grid=grid, random_state=0)
    >>> vae = SpectralVAE(latent_dim=3, beta=0.01, max_epochs=2, verbose=0, random_state=0).fit(X)
    >>> explorer = LatentExplorer.from_estimator(vae, X, labels, n_neighbors=3, dims=[0, 1])
    >>> explorer
    <LatentExplorer: 60 spectra, sliders for latents [0, 1], 3 neighbours in the latent space>
    >>> page = explorer.to_html()
    >>> "https://" in page or "http://" in page
    False
    """

    def __init__(self, payload):
        self._payload = payload
        n, d = payload["n"], payload["latent_dim"]
        self.latents = _unb64(payload["z"], "<f4").reshape(n, d)
        self.dims = np.asarray(payload["dims"], dtype=int)
        nb = payload["neighbors"]
        self.neighbors = _unb64(nb["index"], "<i4").reshape(n, nb["k"]).astype(np.int64)
        self.neighbor_distances = _unb64(nb["distance"], "<f4").reshape(n, nb["k"]).astype(float)
        self.neighbor_space = nb["space"]
        self.stored = _unb64(payload["spectra"]["rows"], "<i4").astype(np.int64)

    @classmethod
    def from_estimator(cls, vae, X, labels=None, remap=None, *, remap_X=None, n_neighbors=5,
                       dims=None, threshold=0.02, names=None, max_spectra=500,
                       random_state=0, title=None):
        """Encode spectra with a fitted SpectralVAE and build the page's data.

        Parameters
        ----------
        vae : `~stellarlatent.estimators.SpectralVAE`
            A fitted estimator.
        X : array-like (n_spectra, n_pixels), `~specutils.Spectrum` batch or `~stellarlatent.datasets.SpectralStore`
            Spectra on the training grid of ``vae``.
        labels : `~astropy.table.Table` or `~astropy.table.QTable`, optional
            One row per spectrum: numeric columns colour the scatter and are
            listed for the selected star; text columns are listed.
        remap : `~stellarlatent.estimators.DeepREMAP` or `~stellarlatent.estimators.DeepREMAPEnsemble`, optional
            A fitted model whose `embed` defines the similar spectra;
            without it, they are the nearest in the slider latents.
        remap_X : optional
            The spectra as ``remap`` takes them, when its grid differs from
            the VAE's (default ``X``); same order as ``X``.
        n_neighbors : int
            Similar spectra shown per star.
        dims : sequence of int, optional
            Latents that get a slider (default: the informative ones, MAD
            above ``threshold``; the two of largest MAD if none is).
        threshold : float
            MAD above which a latent is informative (Sedaghat et al. 2021).
        names : sequence of str, optional
            A name per spectrum for the page (default a ``name``,
            ``filename`` or ``object`` text column of ``labels``, if any).
        max_spectra : int
            Observed spectra stored in the page (drawn at random beyond it,
            quantised to 16 bits, and no more than 8 MB of them: 500 spectra
            of 8,000 pixels, 12 of 327,680); reconstructions of every star
            are decoded in the page.
        random_state : int or None
            Seed of the choice of the stored spectra.
        title : str, optional
            Heading of the page.

        Returns
        -------
        `LatentExplorer`
        """
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        module = getattr(vae, "module_", None)
        if not (hasattr(vae, "transform") and hasattr(vae, "inverse_transform")):
            raise TypeError(f"vae must be a fitted SpectralVAE, got {type(vae).__name__}")
        try:
            check_is_fitted(vae)
        except NotFittedError:
            raise ValueError("vae is not fitted: call vae.fit(X) first") from None
        if module is None or not hasattr(module, "fc_decode"):
            raise TypeError(f"vae must be a fitted SpectralVAE, got {type(vae).__name__}")
        if remap is not None and not callable(getattr(remap, "embed", None)):
            raise TypeError("remap must be a fitted DeepREMAP or DeepREMAPEnsemble (with an "
                            f"embed method), got {type(remap).__name__}")
        if (isinstance(n_neighbors, bool) or not isinstance(n_neighbors, numbers.Integral)
                or n_neighbors < 1):
            raise ValueError(f"n_neighbors must be a positive integer, got {n_neighbors!r}")
        if (isinstance(max_spectra, bool) or not isinstance(max_spectra, numbers.Integral)
                or max_spectra < 0):
            raise ValueError(f"max_spectra must be a non-negative integer, got {max_spectra!r}")
        if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                or not threshold >= 0):
            raise ValueError(f"threshold must be a non-negative number, got {threshold!r}")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a string, got {type(title).__name__}")

        Z = np.asarray(vae.transform(X), dtype=np.float64)
        n, latent_dim = Z.shape
        if n < 2:
            raise ValueError(f"X must hold at least 2 spectra, got {n}")
        if n_neighbors >= n:
            raise ValueError(f"n_neighbors must be smaller than the number of spectra ({n}), "
                             f"got {n_neighbors}")
        mad = latent_mad(Z)
        informative = informative_dimensions(Z, threshold)
        if dims is None:
            dims = informative if informative.size else np.sort(
                np.argsort(-mad, kind="stable")[: min(2, latent_dim)])
        else:
            dims = _check_dims(dims, latent_dim)
        dims = np.asarray(dims, dtype=int)
        numeric, text = _label_payload(labels, n)
        if names is None:
            named = [c for c in text if c["name"].lower() in ("name", "filename", "object", "star")]
            names = named[0]["values"] if named else None
        else:
            names = [str(v) for v in names]
            if len(names) != n:
                raise ValueError(f"names has {len(names)} entries but X has {n} spectra")

        if remap is not None:
            E = np.asarray(remap.embed(X if remap_X is None else remap_X), dtype=np.float64)
            if E.shape[0] != n:
                raise ValueError(f"remap_X has {E.shape[0]} spectra but X has {n}")
            space = "DeepREMAP embedding"
        else:
            E, space = Z[:, dims], "latent"
        neighbors, distances = nearest_neighbors(E, int(n_neighbors))

        decoder = export_decoder(module)
        n_pixels = int(vae.n_features_in_)
        check = Z[: min(n, _N_CHECK)].astype(np.float32)
        expected = np.asarray(vae.inverse_transform(check).flux.value, dtype=np.float64)
        got = decode_exported(decoder, check, n_pixels)
        scale = max(1.0, float(np.max(np.abs(expected))))
        if not np.max(np.abs(got - expected)) <= 1e-4 * scale:
            raise RuntimeError(
                "vae: the exported decoder does not reproduce vae.inverse_transform "
                f"(max difference {np.max(np.abs(got - expected)):.3g}); its network is not "
                "the ConvVAE the explorer knows")

        axis = getattr(vae, "spectral_axis_", None)
        if axis is None:
            wave, unit = np.arange(n_pixels, dtype=float), "pixel"
        else:
            wave, unit = np.asarray(axis.value, dtype=float), axis.unit.to_string()
        rng = np.random.default_rng(random_state)
        # long spectra: no more than _MAX_SPECTRA_BYTES of observed flux in the page
        n_stored = min(int(max_spectra), max(1, _MAX_SPECTRA_BYTES // (2 * n_pixels)))
        if n_stored < min(n, max_spectra):
            log.info("LatentExplorer: %d observed spectra of %d pixels stored (not %d), to "
                     "keep the page small", n_stored, n_pixels, min(n, max_spectra))
        rows = (np.arange(n) if n <= n_stored
                else np.sort(rng.choice(n, size=n_stored, replace=False)))
        codes, offsets, scales = _quantised_spectra(vae, X, rows)
        zrange = []
        for d in range(latent_dim):
            lo, hi = float(np.min(Z[:, d])), float(np.max(Z[:, d]))
            pad = 0.1 * (hi - lo) if hi > lo else 1.0
            zrange.append([lo - pad, hi + pad])
        payload = {
            "title": title or "Latent explorer",
            "n": n,
            "latent_dim": latent_dim,
            "n_pixels": n_pixels,
            "dims": dims.tolist(),
            "informative": informative.tolist(),
            "threshold": float(threshold),
            "mad": [float(v) for v in mad],
            "zrange": zrange,
            "z": _b64(Z, "<f4"),
            "axis": {"values": _b64(wave, "<f8"), "unit": unit},
            "labels": numeric,
            "text": text,
            "names": names,
            "neighbors": {"k": int(n_neighbors), "space": space,
                          "index": _b64(neighbors, "<i4"), "distance": _b64(distances, "<f4")},
            "spectra": {"rows": _b64(rows, "<i4"), "codes": codes, "offset": _b64(offsets, "<f4"),
                        "scale": _b64(scales, "<f4"), "max_spectra": int(max_spectra)},
            "decoder": decoder,
        }
        return cls(payload)

    def __repr__(self):
        space = ("the latent space" if self.neighbor_space == "latent"
                 else f"the {self.neighbor_space}")
        return (f"<{type(self).__name__}: {self._payload['n']} spectra, sliders for latents "
                f"{self.dims.tolist()}, {self.neighbors.shape[1]} neighbours in {space}>")

    # -- the decoder in numpy -------------------------------------------------------

    def decode(self, Z):
        """Decode latents with the weights exported to the page (numpy, float64).

        The page's JavaScript runs the same forward pass; both reproduce
        ``vae.inverse_transform(Z)`` to float32 rounding.

        Parameters
        ----------
        Z : array-like, shape (n, latent_dim) or (latent_dim,)

        Returns
        -------
        flux : ndarray, shape (n, n_pixels)
        """
        Z = np.atleast_2d(np.asarray(Z, dtype=float))
        if Z.ndim != 2 or Z.shape[1] != self._payload["latent_dim"]:
            raise ValueError(f"Z must have shape (n, {self._payload['latent_dim']}), got {Z.shape}")
        return decode_exported(self._payload["decoder"], Z, self._payload["n_pixels"])

    def stored_flux(self):
        """The observed spectra stored in the page (rows `stored`), as the page decodes them."""
        spectra = self._payload["spectra"]
        codes = _unb64(spectra["codes"], "<u2").reshape(-1, self._payload["n_pixels"])
        flux = (_unb64(spectra["offset"], "<f4")[:, None].astype(float)
                + codes * _unb64(spectra["scale"], "<f4")[:, None].astype(float))
        flux[codes == _NAN_CODE] = np.nan
        return flux

    # -- the page -------------------------------------------------------------------

    def to_html(self):
        """The page as a string: one HTML document, every script and style inline."""
        data = json.dumps(self._payload, separators=(",", ":"), allow_nan=False)
        data = data.replace("</", "<\\/")
        return (_PAGE.replace("@TITLE@", html.escape(self._payload["title"]))
                .replace("@DATA@", data).replace("@SCRIPT@", _SCRIPT))

    def save(self, path):
        """Write the page to ``path`` (one HTML file that opens offline).

        Returns
        -------
        `pathlib.Path`
            The path written.
        """
        if not isinstance(path, (str, Path)):
            raise TypeError(f"path must be a str or pathlib.Path, got {type(path).__name__}")
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"path {path} is a folder; give a file name such as "
                             f"{path / 'explorer.html'}")
        if not path.parent.is_dir():
            raise ValueError(f"path: the folder {path.parent} does not exist")
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def _repr_html_(self):
        page = html.escape(self.to_html(), quote=True)
        return (f'<iframe srcdoc="{page}" sandbox="allow-scripts" '
                'style="width:100%;height:1050px;border:0"></iframe>')


def _quantised_spectra(vae, X, rows):
    """16-bit codes (per-spectrum offset and scale, 65535 for masked) of some spectra."""
    n_pixels = int(vae.n_features_in_)
    codes = np.empty((rows.size, n_pixels), dtype=np.uint16)
    offsets = np.zeros(rows.size, dtype=np.float32)
    scales = np.ones(rows.size, dtype=np.float32)
    if rows.size:
        source = vae._check_X(X)
        try:
            for start in range(0, rows.size, 256):
                batch = source.batch(rows[start : start + 256])
                flux = batch["flux"].numpy().astype(np.float64)
                flux[batch["mask"].numpy()] = np.nan
                flux[~np.isfinite(flux)] = np.nan
                for i, f in enumerate(flux, start):
                    good = np.isfinite(f)
                    lo = float(np.min(f[good])) if good.any() else 0.0
                    hi = float(np.max(f[good])) if good.any() else 0.0
                    step = (hi - lo) / (_NAN_CODE - 1) if hi > lo else 1.0
                    offsets[i], scales[i] = lo, step
                    c = np.full(n_pixels, _NAN_CODE, dtype=np.uint16)
                    c[good] = np.clip(np.rint((f[good] - lo) / step), 0, _NAN_CODE - 1)
                    codes[i] = c
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
    return _b64(codes, "<u2"), offsets, scales


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'">
<title>@TITLE@</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:12px;color:#222;background:#fff}
h1{font-size:1.3em;margin:0 0 4px}h2{font-size:1.05em;margin:4px 0}h3{font-size:.95em;margin:8px 0 4px}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}section{flex:0 0 auto;border:1px solid #ddd;border-radius:6px;padding:8px}
canvas{display:block;cursor:crosshair}.controls{font-size:.9em;margin-bottom:4px}
.controls select,.controls input{margin-right:8px}#sliders{display:grid;
grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:2px 16px;font-size:.9em}
#sliders label{display:flex;align-items:center;gap:6px}#sliders input{flex:1}
#sliders output{width:5.5em;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;font-size:.85em}td{padding:1px 8px 1px 0}
#neighbours{padding-left:0;list-style:none;margin:0}#neighbours li{display:flex;gap:8px;
align-items:center;cursor:pointer;font-size:.85em;padding:2px}#neighbours li:hover{background:#eef}
.note{color:#666;font-size:.85em}#zoom{position:sticky;top:0;background:#fff;padding:4px 0;
font-size:.9em;z-index:1}#zoom input{width:7em}
</style>
</head>
<body>
<h1>@TITLE@</h1>
<p id="summary" class="note"></p>
<div id="zoom">Wavelength range: <input id="wmin" type="number" step="any"> to
<input id="wmax" type="number" step="any"> <span id="wunit"></span>
<button id="zoom-reset" type="button">whole range</button>
<span class="note">(or drag across a spectrum; double-click for the whole range)</span></div>
<div class="row">
<section id="scatter-panel" style="width:500px"><h2>Latent space</h2>
<div class="controls">x <select id="xdim"></select> y <select id="ydim"></select>
colour <select id="colour"></select></div>
<canvas id="scatter" width="500" height="440"></canvas>
<div id="colourbar" class="note"></div>
<p class="note">Click a point to select that star.</p></section>
<section id="star-panel" style="width:680px"><h2 id="star-title"></h2>
<canvas id="star" width="680" height="250"></canvas>
<p id="star-note" class="note"></p>
<table id="star-labels"></table>
<h3 id="neighbours-title"></h3><ol id="neighbours"></ol></section>
</div>
<section id="slider-panel" style="margin-top:16px"><h2>Decoded spectrum
<button id="reset" type="button">reset to the selected star</button></h2>
<div id="sliders"></div>
<canvas id="decoded" width="1220" height="280"></canvas>
<p class="note">Each slider moves one latent of the selected star; the other latents keep
the star's values. Grey: the star's reconstruction.</p></section>
<script type="application/json" id="explorer-data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""

_SCRIPT = r"""
(function () {
"use strict";
var D = JSON.parse(document.getElementById("explorer-data").textContent);
function bytes(s) { var b = atob(s), n = b.length, u = new Uint8Array(n);
  for (var i = 0; i < n; i++) u[i] = b.charCodeAt(i); return u.buffer; }
function f32(s) { return new Float32Array(bytes(s)); }
function f64(s) { return new Float64Array(bytes(s)); }
function i32(s) { return new Int32Array(bytes(s)); }
function u16(s) { return new Uint16Array(bytes(s)); }
function $(id) { return document.getElementById(id); }
function fmt(v) { if (!isFinite(v)) return "\u2013"; var a = Math.abs(v);
  return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(3) : +v.toPrecision(5) + ""; }
var N = D.n, DIM = D.latent_dim, P = D.n_pixels;
var Z = f32(D.z), WAVE = f64(D.axis.values), UNIT = D.axis.unit;
var K = D.neighbors.k, NB = i32(D.neighbors.index), NBD = f32(D.neighbors.distance);
var LABELS = D.labels.map(function (c) { return {name: c.name, unit: c.unit, v: f32(c.values)}; });
var ROWS = i32(D.spectra.rows), CODES = u16(D.spectra.codes);
var OFF = f32(D.spectra.offset), SC = f32(D.spectra.scale), SLOT = {};
for (var r = 0; r < ROWS.length; r++) SLOT[ROWS[r]] = r;
function nameOf(i) { return D.names ? D.names[i] : "spectrum " + i; }
function zOf(i) { return Array.prototype.slice.call(Z.subarray(i * DIM, (i + 1) * DIM)); }
function observed(i) {
  if (!(i in SLOT)) return null;
  var s = SLOT[i], out = new Float64Array(P), o = OFF[s], k = SC[s];
  for (var p = 0; p < P; p++) { var c = CODES[s * P + p]; out[p] = c === 65535 ? NaN : o + c * k; }
  return out; }

// ---- the decoder: the forward pass of the exported network -------------------
var DEC = D.decoder, LW = f32(DEC.linear.weight), LB = f32(DEC.linear.bias);
DEC.layers.forEach(function (l) { if (l.type === "conv_transpose") { l.w = f32(l.weight); l.b = f32(l.bias); } });
function decode(z) {
  var nin = DEC.linear["in"], nout = DEC.linear.out, x = new Float64Array(nout), o, i;
  for (o = 0; o < nout; o++) { var s = LB[o], row = o * nin;
    for (i = 0; i < nin; i++) s += LW[row + i] * z[i]; x[o] = s; }
  var L = DEC.shape[1];
  DEC.layers.forEach(function (l) {
    var n = x.length, j;
    if (l.type === "leaky_relu") { for (j = 0; j < n; j++) if (x[j] < 0) x[j] *= l.slope; }
    else if (l.type === "relu") { for (j = 0; j < n; j++) if (x[j] < 0) x[j] = 0; }
    else if (l.type === "tanh") { for (j = 0; j < n; j++) x[j] = Math.tanh(x[j]); }
    else if (l.type === "sigmoid") { for (j = 0; j < n; j++) x[j] = 1 / (1 + Math.exp(-x[j])); }
    else if (l.type === "conv_transpose") {
      // y[co, i * st - pad + j] += x[ci, i] * w[ci, co, j], innermost loop over i
      var ci, co, t, k = l.k, st = l.stride, pad = l.padding, Ci = l["in"], Co = l.out;
      var Lo = (L - 1) * st - 2 * pad + k + l.output_padding, y = new Float64Array(Co * Lo), w = l.w;
      for (co = 0; co < Co; co++) { var b = l.b[co]; for (t = 0; t < Lo; t++) y[co * Lo + t] = b; }
      for (j = 0; j < k; j++) {
        var off = j - pad, ilo = Math.max(0, Math.ceil(-off / st)), ihi = Math.min(L, Math.floor((Lo - 1 - off) / st) + 1);
        for (ci = 0; ci < Ci; ci++) { var xb = ci * L;
          for (co = 0; co < Co; co++) { var wv = w[(ci * Co + co) * k + j]; if (wv === 0) continue;
            var yb = co * Lo + off;
            for (i = ilo; i < ihi; i++) y[yb + i * st] += wv * x[xb + i]; } } }
      x = y; L = Lo; }
  });
  return x.slice(0, P);
}

// ---- plotting helpers ----------------------------------------------------------
function ticks(lo, hi, n) {
  var span = hi - lo; if (!(span > 0)) return [lo];
  var step = Math.pow(10, Math.floor(Math.log10(span / n))), e = span / n / step;
  step *= e > 5 ? 10 : e > 2 ? 5 : e > 1 ? 2 : 1;
  var out = []; for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(v);
  return out; }
var M = {l: 58, r: 12, t: 10, b: 34};
function frame(ctx, W, H, xr, yr, xlabel, ylabel) {
  ctx.clearRect(0, 0, W, H); ctx.strokeStyle = "#888"; ctx.fillStyle = "#333";
  ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  ctx.strokeRect(M.l, M.t, W - M.l - M.r, H - M.t - M.b);
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  ticks(xr[0], xr[1], 8).forEach(function (v) { var px = sx(v, xr, W);
    ctx.beginPath(); ctx.moveTo(px, H - M.b); ctx.lineTo(px, H - M.b + 4); ctx.stroke();
    ctx.fillText(fmt(v), px, H - M.b + 5); });
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  ticks(yr[0], yr[1], 5).forEach(function (v) { var py = sy(v, yr, H);
    ctx.beginPath(); ctx.moveTo(M.l - 4, py); ctx.lineTo(M.l, py); ctx.stroke();
    ctx.fillText(fmt(v), M.l - 6, py); });
  ctx.textAlign = "center"; ctx.textBaseline = "bottom"; ctx.fillText(xlabel, (M.l + W - M.r) / 2, H);
  ctx.save(); ctx.translate(12, (M.t + H - M.b) / 2); ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle"; ctx.fillText(ylabel, 0, 0); ctx.restore(); }
function sx(v, xr, W) { return M.l + (v - xr[0]) / (xr[1] - xr[0]) * (W - M.l - M.r); }
function sy(v, yr, H) { return H - M.b - (v - yr[0]) / (yr[1] - yr[0]) * (H - M.t - M.b); }
function range(vals) { var lo = Infinity, hi = -Infinity;
  for (var i = 0; i < vals.length; i++) { var v = vals[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; } var p = 0.04 * (hi - lo); return [lo - p, hi + p]; }
var VIRIDIS = [[68,1,84],[72,40,120],[62,74,137],[49,104,142],[38,130,142],[31,158,137],
  [53,183,121],[109,205,89],[180,222,44],[253,231,37]];
function cmap(t) { if (!isFinite(t)) return "rgb(190,190,190)"; t = Math.min(1, Math.max(0, t)) * 9;
  var i = Math.min(8, Math.floor(t)), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
  return "rgb(" + [0, 1, 2].map(function (c) { return Math.round(a[c] + f * (b[c] - a[c])); }).join(",") + ")"; }

// ---- wavelength zoom -----------------------------------------------------------
var WFULL = [Math.min(WAVE[0], WAVE[P - 1]), Math.max(WAVE[0], WAVE[P - 1])];
if (!(WFULL[1] > WFULL[0])) WFULL = [WFULL[0] - 0.5, WFULL[1] + 0.5];
var zoom = WFULL.slice();
function setZoom(lo, hi) { lo = +lo; hi = +hi; if (!(isFinite(lo) && isFinite(hi))) return;
  if (hi < lo) { var t = lo; lo = hi; hi = t; } if (!(hi > lo)) return;
  zoom = [Math.max(WFULL[0], lo), Math.min(WFULL[1], hi)];
  if (!(zoom[1] > zoom[0])) zoom = WFULL.slice();
  $("wmin").value = +zoom[0].toPrecision(8); $("wmax").value = +zoom[1].toPrecision(8); drawSpectra(); }
function drawSeries(canvas, series, xlabel) {
  var ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, lo = Infinity, hi = -Infinity;
  series.forEach(function (s) { for (var p = 0; p < P; p++) { var w = WAVE[p], v = s.y[p];
    if (w >= zoom[0] && w <= zoom[1] && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } } });
  var yr = isFinite(lo) ? range([lo, hi]) : [0, 1];
  frame(ctx, W, H, zoom, yr, xlabel, "flux");
  ctx.save(); ctx.beginPath(); ctx.rect(M.l, M.t, W - M.l - M.r, H - M.t - M.b); ctx.clip();
  series.forEach(function (s) { ctx.strokeStyle = s.colour; ctx.lineWidth = s.width || 1;
    ctx.beginPath(); var pen = false;
    for (var p = 0; p < P; p++) { var v = s.y[p]; if (!isFinite(v)) { pen = false; continue; }
      var px = sx(WAVE[p], zoom, W), py = sy(v, yr, H);
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py); pen = true; }
    ctx.stroke(); });
  ctx.restore();
  var x = W - M.r - 6; ctx.textAlign = "right"; ctx.textBaseline = "top"; ctx.font = "12px sans-serif";
  series.slice().reverse().forEach(function (s, i) { if (!s.label) return;
    var tw = ctx.measureText(s.label).width; ctx.fillStyle = "rgba(255,255,255,0.85)";
    ctx.fillRect(x - tw - 3, M.t + 2 + 15 * i, tw + 6, 15);
    ctx.fillStyle = s.colour; ctx.fillText(s.label, x, M.t + 4 + 15 * i); });
  if (canvas.drag) { ctx.fillStyle = "rgba(60,110,220,0.15)";
    ctx.fillRect(Math.min(canvas.drag[0], canvas.drag[1]), M.t, Math.abs(canvas.drag[1] - canvas.drag[0]), H - M.t - M.b); }
}
function pixelToWave(canvas, px) { var W = canvas.width;
  return zoom[0] + (px - M.l) / (W - M.l - M.r) * (zoom[1] - zoom[0]); }
function canvasX(canvas, ev) { var r = canvas.getBoundingClientRect(); return (ev.clientX - r.left) * canvas.width / r.width; }
function canvasY(canvas, ev) { var r = canvas.getBoundingClientRect(); return (ev.clientY - r.top) * canvas.height / r.height; }
function zoomable(canvas) {
  canvas.addEventListener("mousedown", function (ev) { var x = canvasX(canvas, ev); canvas.drag = [x, x]; });
  canvas.addEventListener("mousemove", function (ev) { if (!canvas.drag) return;
    canvas.drag[1] = canvasX(canvas, ev); drawSpectra(); });
  window.addEventListener("mouseup", function () { var d = canvas.drag; if (!d) return; canvas.drag = null;
    if (Math.abs(d[1] - d[0]) > 4) setZoom(pixelToWave(canvas, d[0]), pixelToWave(canvas, d[1])); else drawSpectra(); });
  canvas.addEventListener("dblclick", function () { setZoom(WFULL[0], WFULL[1]); }); }

// ---- state ---------------------------------------------------------------------
var sel = 0, base = zOf(0), current = zOf(0), decoded = null, baseRecon = null, pending = false;
var XLABEL = UNIT === "pixel" ? "pixel" : "wavelength [" + UNIT + "]";
function drawDecoded(again) { pending = false; if (again !== false || !decoded) decoded = decode(current);
  drawSeries($("decoded"), [{y: baseRecon, colour: "#aaa", label: "reconstruction of " + nameOf(sel)},
    {y: decoded, colour: "#c0392b", width: 1.3, label: "decoded from the sliders"}], XLABEL); }
function schedule() { if (!pending) { pending = true; requestAnimationFrame(function () { if (pending) drawDecoded(); }); } }
var starSeries = [];
function drawSpectra() { drawSeries($("star"), starSeries, XLABEL); if (decoded) drawDecoded(false);
  thumbs.forEach(function (t) { drawThumb(t[0], t[1]); }); }

// ---- sliders -------------------------------------------------------------------
var sliders = {};
D.dims.forEach(function (d) {
  var lab = document.createElement("label"), span = document.createElement("span");
  span.textContent = "z" + d; span.style.width = "3em";
  var inp = document.createElement("input"); inp.type = "range"; inp.id = "slider-" + d;
  var zr = D.zrange[d]; inp.min = zr[0]; inp.max = zr[1]; inp.step = (zr[1] - zr[0]) / 1000;
  var out = document.createElement("output");
  inp.addEventListener("input", function () { current[d] = parseFloat(inp.value); out.textContent = fmt(current[d]); schedule(); });
  lab.appendChild(span); lab.appendChild(inp); lab.appendChild(out); $("sliders").appendChild(lab);
  sliders[d] = [inp, out]; });
function syncSliders() { D.dims.forEach(function (d) { sliders[d][0].value = current[d]; sliders[d][1].textContent = fmt(current[d]); }); }
$("reset").addEventListener("click", function () { current = base.slice(); syncSliders(); schedule(); });

// ---- scatter -------------------------------------------------------------------
function option(sel_, value, text) { var o = document.createElement("option"); o.value = value; o.textContent = text; sel_.appendChild(o); }
["xdim", "ydim"].forEach(function (id) { for (var d = 0; d < DIM; d++)
  option($(id), d, "z" + d + " (MAD " + (+D.mad[d].toPrecision(2)) + (D.informative.indexOf(d) >= 0 ? ", informative)" : ")")); });
option($("colour"), "none", "none");
LABELS.forEach(function (c, i) { option($("colour"), "label:" + i, c.name + (c.unit ? " [" + c.unit + "]" : "")); });
for (var d0 = 0; d0 < DIM; d0++) option($("colour"), "latent:" + d0, "z" + d0);
var order = D.dims.slice(); for (var dd = 0; dd < DIM; dd++) if (order.indexOf(dd) < 0) order.push(dd);
$("xdim").value = order[0]; $("ydim").value = order[Math.min(1, order.length - 1)];
$("colour").value = LABELS.length ? "label:0" : "none";
var SX = new Float64Array(N), SY = new Float64Array(N), SXR, SYR;
function column(key) { var out = new Float64Array(N), i;
  if (key.indexOf("label:") === 0) { var v = LABELS[+key.slice(6)].v; for (i = 0; i < N; i++) out[i] = v[i]; }
  else { var d = +key.slice(7); for (i = 0; i < N; i++) out[i] = Z[i * DIM + d]; } return out; }
var POINTS = document.createElement("canvas"), CAPTION = "";
function drawScatter(again) {
  var canvas = $("scatter"), ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, i;
  if (again !== false || !SXR) {
    var xd = +$("xdim").value, yd = +$("ydim").value, ck = $("colour").value;
    for (i = 0; i < N; i++) { SX[i] = Z[i * DIM + xd]; SY[i] = Z[i * DIM + yd]; }
    SXR = range(SX); SYR = range(SY);
    POINTS.width = W; POINTS.height = H; var pc = POINTS.getContext("2d");
    frame(pc, W, H, SXR, SYR, "z" + xd, "z" + yd);
    var C = null, clo = 0, chi = 1, NC = 64;
    if (ck !== "none") { C = column(ck); var fin = Array.prototype.filter.call(C, isFinite).sort(function (a, b) { return a - b; });
      if (fin.length) { clo = fin[Math.floor(0.01 * (fin.length - 1))]; chi = fin[Math.ceil(0.99 * (fin.length - 1))]; }
      if (!(chi > clo)) chi = clo + 1; }
    var rad = N > 3000 ? 1.5 : 2.5, bucket = new Int32Array(N);
    for (i = 0; i < N; i++) bucket[i] = !C ? 0 : isFinite(C[i]) ? 1 + Math.round(Math.min(1, Math.max(0, (C[i] - clo) / (chi - clo))) * (NC - 1)) : -1;
    for (var c = -1; c <= NC; c++) { pc.fillStyle = !C ? "#3465a4" : c < 0 ? cmap(NaN) : cmap((c - 1) / (NC - 1));
      for (i = 0; i < N; i++) if (bucket[i] === c) pc.fillRect(sx(SX[i], SXR, W) - rad, sy(SY[i], SYR, H) - rad, 2 * rad, 2 * rad); }
    CAPTION = (C ? "colour: " + $("colour").selectedOptions[0].textContent + " from " + fmt(clo) +
      " (purple) to " + fmt(chi) + " (yellow); grey: missing. " : "") + "Ringed: the selected star (red), its neighbours (orange).";
  }
  ctx.clearRect(0, 0, W, H); ctx.drawImage(POINTS, 0, 0);
  ctx.lineWidth = 2;
  for (var k = 0; k < K; k++) { var j = NB[sel * K + k]; ctx.strokeStyle = "#ff8c00"; ctx.beginPath();
    ctx.arc(sx(SX[j], SXR, W), sy(SY[j], SYR, H), 5, 0, 2 * Math.PI); ctx.stroke(); }
  ctx.strokeStyle = "#d62728"; ctx.lineWidth = 2.5; ctx.beginPath();
  ctx.arc(sx(SX[sel], SXR, W), sy(SY[sel], SYR, H), 7, 0, 2 * Math.PI); ctx.stroke();
  $("colourbar").textContent = CAPTION;
}
["xdim", "ydim", "colour"].forEach(function (id) { $(id).addEventListener("change", function () { drawScatter(); }); });
function pointPixel(i) { var c = $("scatter"); return [sx(SX[i], SXR, c.width), sy(SY[i], SYR, c.height)]; }
$("scatter").addEventListener("click", function (ev) {
  var c = $("scatter"), x = canvasX(c, ev), y = canvasY(c, ev), best = -1, bd = 100;
  for (var i = 0; i < N; i++) { var dx = sx(SX[i], SXR, c.width) - x, dy = sy(SY[i], SYR, c.height) - y, d2 = dx * dx + dy * dy;
    if (d2 < bd) { bd = d2; best = i; } }
  if (best >= 0) select(best); });

// ---- the selected star ---------------------------------------------------------
var thumbs = [];
function drawThumb(canvas, y) { var ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, lo = Infinity, hi = -Infinity, p;
  ctx.clearRect(0, 0, W, H); for (p = 0; p < P; p++) { var w = WAVE[p]; if (w >= zoom[0] && w <= zoom[1] && isFinite(y[p])) { lo = Math.min(lo, y[p]); hi = Math.max(hi, y[p]); } }
  if (!(hi > lo)) { lo -= 0.5; hi += 0.5; } ctx.strokeStyle = "#3465a4"; ctx.beginPath(); var pen = false;
  for (p = 0; p < P; p++) { if (!isFinite(y[p]) || WAVE[p] < zoom[0] || WAVE[p] > zoom[1]) { pen = false; continue; }
    var px = (WAVE[p] - zoom[0]) / (zoom[1] - zoom[0]) * W, py = H - 2 - (y[p] - lo) / (hi - lo) * (H - 4);
    if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py); pen = true; } ctx.stroke(); }
function labelRows(i) { var rows = [];
  LABELS.forEach(function (c) { rows.push([c.name, fmt(c.v[i]) + (c.unit ? " " + c.unit : "")]); });
  D.text.forEach(function (c) { rows.push([c.name, c.values[i]]); }); return rows; }
function select(i) {
  i = +i; if (!(i >= 0 && i < N)) return; sel = i; base = zOf(i); current = base.slice(); syncSliders();
  baseRecon = decode(base); var obs = observed(i);
  starSeries = obs ? [{y: obs, colour: "#222", label: "observed"}, {y: baseRecon, colour: "#c0392b", width: 1.3, label: "reconstruction"}]
    : [{y: baseRecon, colour: "#c0392b", width: 1.3, label: "reconstruction"}];
  $("star-title").textContent = nameOf(i) + " (row " + i + ")";
  $("star-note").textContent = obs ? "" : "The observed spectrum of this star is not stored in the page (max_spectra=" + D.spectra.max_spectra + "); its reconstruction is decoded.";
  var tb = $("star-labels"); tb.textContent = "";
  labelRows(i).forEach(function (r) { var tr = document.createElement("tr");
    r.forEach(function (v) { var td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }); tb.appendChild(tr); });
  $("neighbours-title").textContent = "The " + K + " most similar spectra (" + D.neighbors.space + ")";
  var ol = $("neighbours"); ol.textContent = ""; thumbs = [];
  for (var k = 0; k < K; k++) { var j = NB[i * K + k], li = document.createElement("li");
    li.dataset.index = j; var cv = document.createElement("canvas"); cv.width = 170; cv.height = 36;
    var txt = document.createElement("span"); var lr = labelRows(j).slice(0, 4).map(function (r) { return r[0] + " " + r[1]; });
    txt.textContent = nameOf(j) + " \u2014 distance " + fmt(NBD[i * K + k]) + (lr.length ? "; " + lr.join(", ") : "");
    li.appendChild(cv); li.appendChild(txt); li.addEventListener("click", (function (jj) { return function () { select(jj); }; })(j));
    ol.appendChild(li); thumbs.push([cv, observed(j) || decode(zOf(j))]); }
  decoded = null; drawScatter(false); drawSpectra(); drawDecoded(); }

// ---- start ---------------------------------------------------------------------
$("wunit").textContent = UNIT;
$("wmin").addEventListener("change", function () { if ($("wmin").value !== "") setZoom($("wmin").value, zoom[1]); });
$("wmax").addEventListener("change", function () { if ($("wmax").value !== "") setZoom(zoom[0], $("wmax").value); });
$("zoom-reset").addEventListener("click", function () { setZoom(WFULL[0], WFULL[1]); });
zoomable($("star")); zoomable($("decoded"));
$("summary").textContent = N + " spectra, " + DIM + " latents, " + D.informative.length + " informative (MAD > " +
  D.threshold + "); sliders for z" + D.dims.join(", z") + "; similar spectra in the " + D.neighbors.space +
  (D.neighbors.space === "latent" ? " space" : "") + "; " + ROWS.length + " observed spectra stored.";
var start = 0, bestd = Infinity, med = D.dims.map(function (d) { var v = []; for (var i = 0; i < N; i++) v.push(Z[i * DIM + d]);
  v.sort(function (a, b) { return a - b; }); return v[Math.floor(N / 2)]; });
for (var s = 0; s < N; s++) { var dist = 0; D.dims.forEach(function (d, m) { var e = Z[s * DIM + d] - med[m]; dist += e * e; });
  if (dist < bestd) { bestd = dist; start = s; } }
setZoom(WFULL[0], WFULL[1]);
select(start);
window.explorer = {
  decode: function (z) { return Array.from(decode(z)); },
  currentSpectrum: function () { if (pending) drawDecoded(); return Array.from(decoded); },
  currentLatent: function () { return current.slice(); },
  setLatent: function (d, v) { var s = sliders[d]; if (!s) throw new Error("no slider for latent " + d);
    s[0].value = v; s[0].dispatchEvent(new Event("input")); },
  select: select, selected: function () { return sel; },
  neighbors: function () { return Array.prototype.map.call($("neighbours").children, function (li) { return +li.dataset.index; }); },
  pointPixel: pointPixel, setZoom: setZoom, zoom: function () { return zoom.slice(); },
  firstDrawMs: performance.now()
};
})();
"""
