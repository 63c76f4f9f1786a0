"""The pre-training spectra of ``stellarlatent fit-remap --pretrain``.

``synthetic`` (the default) makes spectra with
`~stellarlatent.datasets.make_synthetic_spectra` on the grid of the training
spectra, in their air or vacuum wavelengths, at their resolution, over label
ranges that cover the training labels, and puts them through the training
spectra's recorded preprocessing. A store is used as it is (it must be on the
training grid); a folder of PHOENIX HiRes models or of MILES files is read,
broadened (PHOENIX) and put through the same preprocessing.
"""

from pathlib import Path

import astropy.units as u
import numpy as np

from .._logging import log
from .inputs import UserError, is_store, looks_like_store, open_store

__all__ = ["PretrainingData", "pretraining_data", "synthetic_ranges", "training_resolution"]

#: ``--pretrain`` values that are not paths
SYNTHETIC, NONE = "synthetic", "none"

#: what make_synthetic_spectra draws: label -> (unit, lowest, highest, log-uniform)
SYNTHETIC_LABELS = {
    "teff": (u.K, 2000.0, 50000.0, True),
    "logg": (u.dex, -1.0, 6.0, False),
    "feh": (u.dex, -5.0, 1.0, False),
    "rv": (u.km / u.s, -3000.0, 3000.0, False),
    "vsini": (u.km / u.s, 0.0, 1000.0, False),
}
#: labels not trained on: the synthetic spectra are drawn like MILES stars
UNTRAINED = {"rv": 0.0 * u.km / u.s, "vsini": (0.0, 15.0) * u.km / u.s}
#: S/N of the synthetic spectra, per pixel at the median flux
SNR = (30.0, 300.0)
#: fraction of each label's training range added below and above it
MARGIN = 0.05
#: spread given to a label with a single training value (log10 for Teff)
FLAT_SPREAD = {"teff": 0.02, "logg": 0.25, "feh": 0.25, "rv": 10.0, "vsini": 5.0}
#: line-spread function when the training spectra record none (MILES)
DEFAULT_FWHM = 2.5 * u.AA


class PretrainingData:
    """Spectra and labels to pre-train on, what they are, and how to let go of them."""

    def __init__(self, X, y, description, n, close=None):
        self.X, self.y, self.description, self.n = X, y, description, n
        self._close = close

    def close(self):
        if self._close is not None:
            self._close()
            self._close = None


def synthetic_ranges(values, labels, margin=MARGIN):
    """``{label: (low, high)}`` covering the finite training values with a margin.

    Teff is widened in log10 (the generator draws it log-uniformly). Every
    range is clipped to what `make_synthetic_spectra` draws.

    >>> import numpy as np
    >>> ranges = synthetic_ranges(np.array([[4000.0, 1.0], [6000.0, 4.5]]), ("teff", "logg"))
    >>> [round(v) for v in ranges["teff"]], ranges["logg"]
    ([3920, 6123], (0.825, 4.675))
    """
    ranges = {}
    for j, label in enumerate(labels):
        _, lowest, highest, log = SYNTHETIC_LABELS[label]
        column = np.asarray(values[:, j], dtype=float)
        column = column[np.isfinite(column)]
        if log:
            column = np.log10(column[column > 0])
        if not column.size:
            raise UserError(f"--labels: no training star has a value of {label!r}")
        low, high = float(column.min()), float(column.max())
        spread = high - low
        pad = margin * spread if spread > 0 else FLAT_SPREAD[label]
        low, high = low - pad, high + pad
        if log:
            low, high = 10.0**low, 10.0**high
        ranges[label] = (max(low, lowest), min(high, highest))
    return ranges


def training_resolution(meta):
    """``(keywords of make_synthetic_spectra, words)`` for the recorded resolution.

    ``meta["fwhm"]`` (a Quantity, or a number in Angstrom, or a string such
    as ``"2.5 Angstrom"``) or ``meta["resolution"]`` / ``meta["resolving_power"]``
    (R); without either, MILES' 2.5 Angstrom FWHM.
    """
    meta = meta or {}
    fwhm = meta.get("fwhm")
    if fwhm is not None:
        try:
            fwhm = u.Quantity(fwhm, u.AA) if not isinstance(fwhm, u.Quantity) else fwhm
            if fwhm.isscalar and np.isfinite(fwhm.value) and fwhm.value > 0:
                return {"fwhm": fwhm, "resolution": None}, f"FWHM {fwhm:g} (recorded)"
        except (TypeError, ValueError, u.UnitsError):
            pass
    for key in ("resolution", "resolving_power"):
        value = meta.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value) and value > 0:
            return {"resolution": float(value)}, f"R = {value:g} (recorded)"
    return ({"fwhm": DEFAULT_FWHM, "resolution": None},
            f"FWHM {DEFAULT_FWHM:g} (none recorded: MILES' resolution)")


def _prepare(spectra, spec):
    """The training spectra's recorded preprocessing applied to other spectra."""
    if spec is None:
        return spectra
    from .._preprocessing_spec import build

    return build(spec).fit_transform(spectra)


def _without_medium(batch, medium):
    """Drop the synthetic spectra's medium when the training spectra record none.

    The model then records no medium, as it would trained on the training
    spectra alone, so it does not refuse spectra whose medium is unknown.
    """
    if medium is None and getattr(batch, "meta", None) is not None:
        batch.meta.pop("wavelength_medium", None)
    return batch


def synthetic_pretraining(n, labels, values, spectral_axis, meta, spec, seed):
    """Synthetic spectra like the training spectra; returns `PretrainingData`."""
    from astropy.table import QTable

    from ..datasets import make_synthetic_spectra
    from ..estimators._data import recorded_medium

    unknown = [label for label in labels if label not in SYNTHETIC_LABELS]
    if unknown:
        raise UserError(
            f"--pretrain synthetic: the synthetic spectra have {', '.join(SYNTHETIC_LABELS)}, "
            f"not {', '.join(map(repr, unknown))}; give --pretrain STORE (labelled spectra "
            "with those labels) or --pretrain none")
    if spectral_axis is None:
        raise UserError("--pretrain synthetic needs the wavelength grid of the training "
                        "spectra, which they do not carry; give --pretrain none")
    ranges = synthetic_ranges(values, labels)
    resolution, said = training_resolution(meta)
    medium = recorded_medium(meta)
    draw = {label: ranges.get(label, UNTRAINED.get(label)) for label in SYNTHETIC_LABELS}
    draw = {k: (tuple(x * SYNTHETIC_LABELS[k][0] for x in v) if isinstance(v, tuple) else v)
            for k, v in draw.items() if v is not None}
    log.info("pre-training spectra: %d synthetic ones on the training grid, %s wavelengths, "
             "%s, %s", n, medium or "air (none recorded)", said,
             _said_ranges(ranges))
    spectra, table = make_synthetic_spectra(
        n, grid=spectral_axis, snr=SNR, air=medium != "vacuum", random_state=seed,
        **draw, **resolution)
    spectra = _without_medium(_prepare(spectra, spec), medium)
    y = QTable({label: table[label] for label in labels})
    return PretrainingData(spectra, y, f"{n} synthetic spectra ({_said_ranges(ranges)}; {said})",
                           n)


def _said_ranges(ranges):
    """``"teff 2995-23710, logg -0.26-5.45"``."""
    return ", ".join(f"{k} {said_range(lo, hi)}" for k, (lo, hi) in ranges.items())


def said_range(low, high):
    """``"2995-23710"``, ``"-0.26-5.45"``: whole numbers from 100 on, three digits below."""
    def number(value):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"

    return f"{number(low)}-{number(high)}"


def _store_pretraining(path, labels, spectral_axis, in_memory):
    store = open_store(path, what="--pretrain")
    missing = [label for label in labels if label not in store.label_names]
    if missing:
        store.close()
        raise UserError(f"--pretrain: {path} has no label {missing[0]!r} (its labels are "
                        f"{store.label_names}); pre-train on spectra with every trained label")
    axis = store.spectral_axis
    if spectral_axis is not None and (
            axis.shape != spectral_axis.shape
            or not np.allclose(axis.to_value(u.AA), spectral_axis.to_value(u.AA),
                               rtol=1e-9, atol=0)):
        store.close()
        raise UserError(
            f"--pretrain: {path} has {axis.size} pixels from {axis[0]:.6g} to {axis[-1]:.6g}, "
            f"but the training spectra have {spectral_axis.size} from {spectral_axis[0]:.6g} "
            f"to {spectral_axis[-1]:.6g}: build it with the training store's --grid")
    n = len(store)
    from .models import select_labels

    y = select_labels(store.labels, labels)
    if in_memory:
        X = store.read()
        store.close()
        return PretrainingData(X, y, f"{n} spectra of {Path(path).name}", n)
    return PretrainingData(store, y, f"{n} spectra of {Path(path).name}", n, close=store.close)


def _phoenix_files(folder):
    return sorted(folder.rglob("lte*PHOENIX-ACES*.fits"))


def _folder_pretraining(folder, labels, spectral_axis, meta, spec):
    from astropy.table import QTable

    from ..datasets import read_miles, read_phoenix_grid
    from ..estimators._data import recorded_medium

    if spectral_axis is None:
        raise UserError("--pretrain DIR needs the wavelength grid of the training spectra")
    medium = recorded_medium(meta)
    if _phoenix_files(folder):
        from ..preprocessing import Broadener, Resampler, SpectralGrid, air_to_vacuum

        lo, hi = spectral_axis.min().to(u.AA), spectral_axis.max().to(u.AA)
        if medium != "vacuum":
            lo, hi = air_to_vacuum(lo), air_to_vacuum(hi)
        try:
            spectra, table = read_phoenix_grid(folder, wavelength_range=u.Quantity(
                [lo - 20 * u.AA, hi + 20 * u.AA]))
        except (OSError, ValueError) as exc:
            raise UserError(f"--pretrain: {exc}") from None
        if medium != "vacuum":
            from specutils import Spectrum

            from ..preprocessing import vacuum_to_air

            spectra = Spectrum(flux=spectra.flux,
                               spectral_axis=vacuum_to_air(spectra.spectral_axis),
                               mask=spectra.mask, spectral_axis_index=1)
        resolution, said = training_resolution(meta)
        # broadened on a log grid a sixth of the line-spread function wide, cheap to convolve
        if resolution.get("fwhm") is not None:
            fwhm = resolution["fwhm"]
            fwhm_kms = (fwhm.to_value(u.km / u.s) if fwhm.unit.is_equivalent(u.km / u.s)
                        else float((fwhm / hi).decompose()) * 299792.458)
        else:
            fwhm_kms = 299792.458 / resolution["resolution"]
        axis = spectra.spectral_axis
        fine = SpectralGrid.from_velocity_step(axis.min() + 1 * u.AA, axis.max() - 1 * u.AA,
                                               fwhm_kms / 6 * u.km / u.s)
        spectra = Resampler(fine).fit_transform(spectra)
        broaden = (Broadener(fwhm=resolution["fwhm"]) if resolution.get("fwhm") is not None
                   else Broadener(resolution=resolution["resolution"]))
        spectra = broaden.fit_transform(spectra)
        kind, said = "PHOENIX models", f"broadened to {said}"
    elif any(folder.glob("paramsMILES*.txt")):
        try:
            spectra, table = read_miles(folder, exclude_flagged=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"--pretrain: {exc}") from None
        kind, said = "MILES spectra", "as they are"
    else:
        raise UserError(
            f"--pretrain: {folder} holds neither PHOENIX HiRes models (lte*PHOENIX-ACES*.fits "
            "and their WAVE file) nor MILES spectra (with paramsMILES*.txt); for other "
            "labelled spectra build a store with 'stellarlatent prepare FILES --grid ... "
            "--labels TABLE --out pre.h5' on the training grid and give --pretrain pre.h5")
    missing = [label for label in labels if label not in table.colnames]
    if missing:
        raise UserError(f"--pretrain: the {kind} of {folder} have no label {missing[0]!r} "
                        f"(they have {table.colnames})")
    spectra = _without_medium(_prepare(spectra, spec), medium)
    y = QTable({label: table[label] for label in labels})
    n = spectra.flux.shape[0]
    return PretrainingData(spectra, y, f"{n} {kind} of {folder.name} ({said})", n)


def pretraining_data(source, *, n_synthetic, labels, values, spectral_axis, meta, spec, seed,
                     in_memory=False):
    """The `PretrainingData` of ``--pretrain SOURCE``, or None for ``none``.

    Parameters
    ----------
    source : str
        ``synthetic``, ``none``, a store or a folder.
    values : ndarray (n, n_labels)
        The training labels (for the synthetic ranges).
    spectral_axis, meta, spec
        The training spectra's grid, metadata (medium, resolution) and
        recorded preprocessing.
    in_memory : bool
        Read a store into memory (to train members in other processes).
    """
    if source == NONE:
        return None
    if source == SYNTHETIC:
        return synthetic_pretraining(n_synthetic, labels, values, spectral_axis, meta, spec, seed)
    path = Path(source)
    if looks_like_store(path) or is_store(path):
        return _store_pretraining(path, labels, spectral_axis, in_memory)
    if path.is_dir():
        return _folder_pretraining(path, labels, spectral_axis, meta, spec)
    if path.exists():
        raise UserError(f"--pretrain: {path} is neither a store (HDF5, written by 'stellarlatent "
                        "prepare') nor a folder")
    raise UserError(f"--pretrain: no store or folder at {path}; give synthetic, none, a store "
                    "or a folder")


def shared_stars(pretrain_X, pretrain_values, X, values, rtol=1e-3, chunk=256):
    """Indices of training spectra that are also pre-training spectra.

    A training spectrum counts as shared when a pre-training spectrum has
    exactly its labels (every label known) and the same flux: the median
    absolute difference over the pixels valid in both is below ``rtol``
    times the median absolute flux. Spectra are read ``chunk`` pairs at a time.
    """
    from ..estimators._data import take_rows

    where = {}
    for i in np.flatnonzero(np.isfinite(pretrain_values).all(axis=1)):
        where.setdefault(tuple(pretrain_values[i]), []).append(i)
    pairs = [(j, i) for j, row in enumerate(values) if np.isfinite(row).all()
             for i in where.get(tuple(row), ())]
    shared = set()
    for start in range(0, len(pairs), chunk):
        mine, theirs = (np.array(side) for side in zip(*pairs[start:start + chunk]))
        a, b = _flux_rows(take_rows(X, mine)), _flux_rows(take_rows(pretrain_X, theirs))
        both = np.isfinite(a) & np.isfinite(b)
        for j, x, y, ok in zip(mine, a, b, both):
            if ok.any() and (np.median(np.abs(x[ok] - y[ok]))
                             <= rtol * np.median(np.abs(x[ok]))):
                shared.add(int(j))
    return np.array(sorted(shared), dtype=int)


def _flux_rows(X):
    """The flux of spectra (a store subset, Spectrum or array) as floats, NaN where masked."""
    from .._batch import as_flux_array
    from ..estimators._data import _is_store

    if _is_store(X):  # a Spectrum has a read too: astropy's file reader
        X = X.read()
    elif np.ma.isMaskedArray(X):
        X = np.ma.filled(X.astype(float), np.nan)
    flux, mask, _, _ = as_flux_array(X, "--pretrain", dtype=float)
    flux[mask] = np.nan
    return flux


def check_source(source):
    """Check ``--pretrain`` before anything is read."""
    if source in (SYNTHETIC, NONE):
        return
    path = Path(source)
    if not path.exists():
        raise UserError(f"--pretrain: no store or folder at {path}; give synthetic, none, a "
                        "store (*.h5) or a folder of PHOENIX or MILES spectra")
    if looks_like_store(path):
        raise UserError(f"--pretrain: {path} is not an HDF5 file, so not a store written by "
                        "'stellarlatent prepare' (corrupt, truncated or misnamed?)")
    if path.is_file() and not is_store(path):
        raise UserError(f"--pretrain: {path} is neither a store (HDF5, written by 'stellarlatent "
                        "prepare') nor a folder")
