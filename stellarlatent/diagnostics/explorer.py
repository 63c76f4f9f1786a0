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
from ._explorer_page import PAGE, SCRIPT
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
    # the scatter is first coloured by the first numeric column: a stellar label, not a catalogue id
    numeric.sort(key=lambda c: (_FIRST_COLOURS.index(c["name"].lower())
                                if c["name"].lower() in _FIRST_COLOURS else len(_FIRST_COLOURS)))
    return numeric, text


#: labels that colour the scatter first, in this order, where the table has them
_FIRST_COLOURS = ("teff", "log_teff", "logg", "feh", "rv", "vsini")


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
        labels : `~astropy.table.Table` or `~astropy.table.QTable`, default=None
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
        dims : sequence of int, default=None
            Latents that get a slider (default: the informative ones, MAD
            above ``threshold``; the two of largest MAD if none is).
        threshold : float
            MAD above which a latent is informative (Sedaghat et al. 2021).
        names : sequence of str, default=None
            A name per spectrum for the page (default a ``name``,
            ``filename`` or ``object`` text column of ``labels``, if any).
        max_spectra : int
            Observed spectra stored in the page (drawn at random beyond it,
            quantised to 16 bits, and no more than 8 MB of them: 500 spectra
            of 8,000 pixels, 12 of 327,680); reconstructions of every star
            are decoded in the page.
        random_state : int or None
            Seed of the choice of the stored spectra.
        title : str, default=None
            Heading of the page.

        Returns
        -------
        `LatentExplorer`
        """  # noqa: E501 - a numpydoc type is one line
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
        return (PAGE.replace("@TITLE@", html.escape(self._payload["title"]))
                .replace("@DATA@", data).replace("@SCRIPT@", SCRIPT))

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
