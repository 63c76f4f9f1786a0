"""Conversion between `specutils.Spectrum` objects and plain arrays.

Every public class of stellarlatent takes spectra through the functions of this
module, so the rules live in one place:

* A *batch* is one `~specutils.Spectrum` whose flux is 2-D with the spectral
  axis last: ``flux.shape == (n_spectra, n_pixels)``.
* Masks follow astropy: ``True`` marks a bad pixel. Non-finite flux and pixels
  whose inverse variance is not positive and finite are masked on the way in.
* Uncertainties travel as inverse variance. Spectra with and without an
  uncertainty can share a batch: a row of inverse variance with no finite
  positive value (NaN when stacked; zero or NaN after a transformation) means
  "no uncertainty", not "every pixel bad" (`unknown_ivar_rows`), so that
  stacking spectra never drops the uncertainties of the ones that have them,
  and the transformations that weight by the inverse variance treat such a
  spectrum as one without an uncertainty. A pixel whose uncertainty is
  negative (a negative standard deviation, variance or inverse variance) is
  masked, as are zero and non-finite uncertainties: ``1 / sigma**2`` of a
  negative sigma would be a valid-looking positive weight, so the sign is
  checked before converting. An uncertainty class that astropy cannot
  convert to an inverse variance is refused with a TypeError naming the
  spectrum.
* Spectral axes are strictly monotonic; a decreasing axis (for example a
  frequency axis converted to wavelength) is flipped so that it increases.
"""

import functools
import numbers
from dataclasses import dataclass, field, replace

import astropy.units as u
import numpy as np
from astropy.nddata import InverseVariance, NDUncertainty
from specutils import Spectrum

from ._logging import log

__all__ = [
    "SpectraBatch",
    "stack_ivar",
    "unknown_ivar_rows",
    "iter_batches",
    "check_spectra",
    "to_batch",
    "from_batch",
    "check_spectral_axis",
    "as_flux_array",
]


@dataclass
class SpectraBatch:
    """Arrays of spectra that share one spectral axis.

    Attributes
    ----------
    flux : ndarray, shape (n_spectra, n_pixels)
        Flux values (float64); values at masked pixels are meaningless.
    spectral_axis : `~astropy.units.Quantity`, shape (n_pixels,)
        Strictly increasing pixel centres.
    ivar : ndarray or None
        Inverse variance, same shape as ``flux``; ``None`` when no spectrum
        has an uncertainty, and a row without a finite positive value for
        each spectrum that has none (see `unknown_ivar_rows`).
    mask : ndarray of bool
        ``True`` marks a bad pixel; same shape as ``flux``.
    flux_unit : `~astropy.units.UnitBase`
    meta : dict
    """

    flux: np.ndarray
    spectral_axis: u.Quantity
    ivar: np.ndarray | None = None
    mask: np.ndarray | None = None
    flux_unit: u.UnitBase = u.dimensionless_unscaled
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.mask is None:
            self.mask = np.zeros(self.flux.shape, dtype=bool)

    @property
    def n_spectra(self):
        return self.flux.shape[0]

    @property
    def n_pixels(self):
        return self.flux.shape[1]

    def replace(self, **changes):
        """Return a copy with some fields replaced."""
        return replace(self, **changes)


@functools.lru_cache(maxsize=64)
def _is_spectral_unit(unit):
    return unit.is_equivalent(u.AA, equivalencies=u.spectral())


def check_spectral_axis(axis, name="spectral_axis"):
    """Validate a spectral axis and return it as a strictly increasing Quantity.

    Parameters
    ----------
    axis : `~astropy.units.Quantity`
        One-dimensional spectral coordinates (wavelength, frequency, energy or
        wavenumber).
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    axis : `~astropy.units.Quantity`
        The same values; a new array only when the input decreased.
    flipped : bool
        Whether the axis was reversed to make it increase.
    """
    if not isinstance(axis, u.Quantity):
        raise TypeError(
            f"{name} must be an astropy Quantity with spectral units, got {type(axis).__name__}"
        )
    if not _is_spectral_unit(axis.unit):
        raise u.UnitsError(
            f"{name} must have spectral units (wavelength, frequency, energy or "
            f"wavenumber), got '{axis.unit}'"
        )
    values = np.asarray(axis.value)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if values.size < 2:
        raise ValueError(f"{name} must have at least two pixels, got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains non-finite values")
    step = np.diff(values)
    if np.all(step > 0):
        return axis, False
    if np.all(step < 0):
        return axis[::-1], True
    if np.any(step == 0):
        first = int(np.flatnonzero(step == 0)[0])
        raise ValueError(
            f"{name} has duplicated values (pixels {first} and {first + 1} are both "
            f"{values[first]} {axis.unit}); expected strictly monotonic coordinates"
        )
    first = int(np.flatnonzero(np.sign(step) != np.sign(step[0]))[0])
    raise ValueError(
        f"{name} is not monotonic (it changes direction at pixel {first + 1}); "
        "expected strictly increasing or decreasing coordinates"
    )


def _ivar_from(uncertainty, shape, name, flux_unit=None):
    if uncertainty is None:
        return None
    if not isinstance(uncertainty, NDUncertainty):
        raise TypeError(
            f"{name}.uncertainty must be an astropy NDUncertainty, "
            f"got {type(uncertainty).__name__}"
        )
    if isinstance(uncertainty, InverseVariance):
        ivar = np.asarray(uncertainty.array, dtype=float)
        unit = uncertainty.unit
    else:
        # zero uncertainties give infinite inverse variance; such pixels are masked below
        try:
            with np.errstate(divide="ignore"):
                inverse = uncertainty.represent_as(InverseVariance)
            ivar, unit = np.asarray(inverse.array, dtype=float), inverse.unit
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name}.uncertainty is a {type(uncertainty).__name__}, which cannot be "
                "converted to an inverse variance; expected a StdDevUncertainty, "
                f"VarianceUncertainty or InverseVariance ({exc})"
            ) from None
        # a negative sigma squares to a positive inverse variance: flag it as invalid
        with np.errstate(invalid="ignore"):
            negative = np.asarray(uncertainty.array, dtype=float) < 0
        if negative.shape == ivar.shape and negative.any():
            ivar = np.where(negative, -1.0, ivar)
    ivar = _in_flux_unit(ivar, unit, flux_unit, name)
    if ivar.shape != shape:
        raise ValueError(
            f"{name}: uncertainty has shape {ivar.shape} but flux has shape {shape}; "
            "expected the same shape"
        )
    return ivar


def _in_flux_unit(ivar, unit, flux_unit, name):
    """Inverse variance ``ivar`` in ``unit`` expressed in ``1 / flux_unit**2``.

    An uncertainty without a unit is taken to be in the flux unit.
    """
    if unit is None or flux_unit is None:
        return ivar
    try:
        factor = u.Unit(unit).to(u.Unit(flux_unit) ** -2)
    except (u.UnitsError, TypeError, ValueError):
        # an unrecognised unit allows no arithmetic at all
        raise ValueError(
            f"{name}.uncertainty is in {u.Unit(unit).to_string()} (as an inverse variance), "
            f"which cannot be converted to the flux unit {u.Unit(flux_unit).to_string()} "
            "(as 1 / flux**2); expected an uncertainty in the flux unit"
        ) from None
    if factor == 1:
        return ivar
    negative = ivar < 0
    return np.where(negative, ivar, ivar * factor)


def _spectrum_to_batch(spectrum, name):
    if not isinstance(spectrum, Spectrum):
        raise TypeError(
            f"{name} must be a specutils.Spectrum or a list of them, got {type(spectrum).__name__}"
        )
    # a copy: a transformer that changes only the mask must not hand back the caller's array
    flux = np.array(spectrum.flux.value, dtype=float)
    if flux.ndim == 1:
        flux = flux[np.newaxis, :]
    elif flux.ndim != 2:
        raise ValueError(
            f"{name} must have 1-D or 2-D flux (spectra, pixels), got shape {flux.shape}"
        )
    elif spectrum.spectral_axis_index not in (1, -1):
        raise ValueError(
            f"{name} must have its spectral axis last (spectral_axis_index=1), "
            f"got spectral_axis_index={spectrum.spectral_axis_index}"
        )
    if flux.shape[1] == 0 or flux.shape[0] == 0:
        raise ValueError(f"{name} is empty (flux shape {flux.shape})")
    axis = u.Quantity(spectrum.spectral_axis)
    if axis.shape[0] != flux.shape[1]:
        raise ValueError(
            f"{name}: spectral axis has {axis.shape[0]} values but flux has "
            f"{flux.shape[1]} pixels"
        )
    axis, flipped = check_spectral_axis(axis, name=f"{name}.spectral_axis")
    ivar = _ivar_from(spectrum.uncertainty, spectrum.flux.shape, name, spectrum.flux.unit)
    mask = np.zeros(flux.shape, dtype=bool)
    if spectrum.mask is not None:
        given = np.asarray(spectrum.mask, dtype=bool)
        if given.shape != spectrum.flux.shape:
            raise ValueError(
                f"{name}: mask has shape {given.shape} but flux has shape {spectrum.flux.shape}"
            )
        mask |= given.reshape(flux.shape)
    if ivar is not None:
        ivar = ivar.reshape(flux.shape)
        if unknown_ivar_rows(ivar).all():
            ivar = None
        else:
            ivar, bad = checked_ivar(ivar)
            mask |= bad
    mask |= ~np.isfinite(flux)
    empty = mask.all(axis=1)
    if empty.any():
        first = int(np.flatnonzero(empty)[0])
        negative = ivar is not None and bool(np.all(ivar[first] == 0)) and not np.all(
            mask[first] & ~np.isfinite(flux[first]))
        raise ValueError(
            f"{name} has {int(empty.sum())} spectra with no valid pixel (all NaN or masked; "
            f"first at row {first}"
            + ("; its uncertainties are negative, a sign error upstream?"
               if negative else "") + "); expected at least one valid pixel"
        )
    if flipped:
        flux, mask = flux[:, ::-1], mask[:, ::-1]
        ivar = None if ivar is None else ivar[:, ::-1]
    return SpectraBatch(
        flux=flux,
        spectral_axis=axis,
        ivar=ivar,
        mask=mask,
        flux_unit=spectrum.flux.unit,
        meta=dict(spectrum.meta) if spectrum.meta else {},
    )


def iter_batches(spectra, name="spectra"):
    """Split the input into batches of spectra that each share one axis.

    Parameters
    ----------
    spectra : `~specutils.Spectrum` or iterable of `~specutils.Spectrum`
        One spectrum, one batch, or a list of spectra (each 1-D or a batch) on
        any grids.
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    list of `SpectraBatch`
        One entry per input `~specutils.Spectrum`, in input order.
    """
    if isinstance(spectra, Spectrum):
        return [_spectrum_to_batch(spectra, name)]
    return [_spectrum_to_batch(s, f"{name}[{i}]")
            for i, s in enumerate(check_spectra(spectra, name))]


def check_spectra(spectra, name="spectra"):
    """Check that ``spectra`` is a Spectrum or a non-empty list of them, cheaply.

    Returns
    -------
    list of `~specutils.Spectrum`
    """
    if isinstance(spectra, Spectrum):
        return [spectra]
    if isinstance(spectra, (str, bytes, np.ndarray, u.Quantity)) or not hasattr(
        spectra, "__iter__"
    ):
        raise TypeError(
            f"{name} must be a specutils.Spectrum or a list of them, got {type(spectra).__name__}"
        )
    spectra = list(spectra)
    if not spectra:
        raise ValueError(f"{name} is empty; expected at least one spectrum")
    for i, spectrum in enumerate(spectra):
        if not isinstance(spectrum, Spectrum):
            raise TypeError(
                f"{name}[{i}] must be a specutils.Spectrum, got {type(spectrum).__name__}"
            )
    return spectra


def _same_axis(a, b):
    if a.shape != b.shape:
        return False
    return np.array_equal(a.to_value(b.unit, equivalencies=u.spectral()), b.value)


def to_batch(spectra, name="spectra"):
    """Stack spectra that share one spectral axis into a single `SpectraBatch`.

    Raises
    ------
    ValueError
        If the spectra are on different spectral axes (resample them first
        with `~stellarlatent.preprocessing.Resampler`).
    """
    batches = iter_batches(spectra, name)
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    for i, other in enumerate(batches[1:], start=1):
        if not _same_axis(other.spectral_axis, first.spectral_axis):
            raise ValueError(
                f"{name}[{i}] is on a different spectral axis from {name}[0]; "
                "put them on one grid first with stellarlatent.preprocessing.Resampler"
            )
        if not other.flux_unit.is_equivalent(first.flux_unit):
            raise u.UnitsError(
                f"{name}[{i}] has flux unit '{other.flux_unit}', not convertible to "
                f"'{first.flux_unit}' of {name}[0]"
            )
    scales = [b.flux_unit.to(first.flux_unit) for b in batches]
    return SpectraBatch(
        flux=np.concatenate([b.flux * scale for b, scale in zip(batches, scales)]),
        spectral_axis=first.spectral_axis,
        ivar=stack_ivar(batches, scales),
        mask=np.concatenate([b.mask for b in batches]),
        flux_unit=first.flux_unit,
        meta=merged_meta(batches),
    )


def unknown_ivar_rows(ivar):
    """Which rows of an inverse-variance array mean "no uncertainty": no finite positive value
    and no negative one.

    A spectrum stacked without an uncertainty has a row of NaN; weighted or
    masked by a transformation it may turn to zeros, and still says the same.
    A spectrum whose every pixel is bad cannot reach a batch (it has no
    valid pixel), so such a row is never a spectrum with every pixel masked.
    A negative value is an error upstream (a sign flipped), not a missing
    uncertainty: its pixels are masked, even where the whole row is negative.

    Examples
    --------
    >>> ivar = np.array([[1.0, 0.0], [np.nan, np.nan], [0.0, np.nan], [-1.0, -1.0]])
    >>> unknown_ivar_rows(ivar).tolist()
    [False, True, True, False]
    """
    with np.errstate(invalid="ignore"):
        return ~np.any(np.isfinite(ivar) & (ivar > 0), axis=1) & ~np.any(ivar < 0, axis=1)


def checked_ivar(ivar):
    """``(ivar, bad)``: zero where a value is not finite and positive, NaN rows where none is
    (no uncertainty, `unknown_ivar_rows`), and the pixels to mask (bad values in other rows).

    Examples
    --------
    >>> ivar, bad = checked_ivar(np.array([[4.0, 0.0], [0.0, np.nan]]))
    >>> ivar.tolist(), bad.tolist()
    ([[4.0, 0.0], [nan, nan]], [[False, True], [False, False]])
    """
    unknown = unknown_ivar_rows(ivar)
    good = np.isfinite(ivar) & (ivar > 0)
    ivar = np.where(good, ivar, 0.0)
    ivar[unknown] = np.nan
    return ivar, ~good & ~unknown[:, np.newaxis]


def stack_ivar(batches, scales=None):
    """The inverse variances of ``batches`` stacked, NaN rows for the spectra without.

    ``scales`` are the factors by which each batch's flux is multiplied in
    the stack (its inverse variance is divided by their squares). None when
    no batch has an uncertainty.

    Examples
    --------
    >>> axis = np.arange(2.0) * u.AA
    >>> a = SpectraBatch(np.ones((1, 2)), axis, ivar=np.full((1, 2), 4.0))
    >>> b = SpectraBatch(np.ones((1, 2)), axis)
    >>> stack_ivar([a, b]).tolist()
    [[4.0, 4.0], [nan, nan]]
    """
    if all(b.ivar is None for b in batches):
        return None
    scales = [1.0] * len(batches) if scales is None else scales
    return np.concatenate([np.full(b.flux.shape, np.nan) if b.ivar is None else b.ivar / s**2
                           for b, s in zip(batches, scales)])


def per_spectrum(value, n):
    """Whether a ``meta`` value holds one entry per spectrum of a batch of ``n``."""
    return isinstance(value, np.ndarray) and value.ndim == 1 and len(value) == n


def merged_meta(batches):
    """``meta`` of batches stacked into one, each spectrum keeping its own values.

    Entries every batch has with the same value stay as they are. Entries
    with one row per spectrum (arrays or Quantities whose first axis runs
    over a batch's spectra, as `~stellarlatent.preprocessing.RadialVelocityEstimator`
    records ``rv``) are joined. Numbers, scalar Quantities and strings that
    differ between the batches become one value per spectrum (NaN for a
    number that a batch lacks; whole numbers that every batch has stay
    whole, as counts should). A ``wavelength_medium`` that differs is left
    out with a warning: air and vacuum spectra on one grid have no common
    convention. Anything else that differs is left out.

    Examples
    --------
    >>> axis = np.arange(2.0) * u.AA
    >>> a = SpectraBatch(np.ones((1, 2)), axis, meta={"resolution": 2e4, "library": "x"})
    >>> b = SpectraBatch(np.ones((2, 2)), axis, meta={"resolution": 1e3, "library": "x"})
    >>> meta = merged_meta([a, b])
    >>> meta["library"], meta["resolution"].tolist()
    ('x', [20000.0, 1000.0, 1000.0])
    >>> a.meta["n"], b.meta["n"] = np.array([3]), np.array([0, 1])
    >>> merged_meta([a, b])["n"].tolist()
    [3, 0, 1]
    """
    if len(batches) == 1:
        return dict(batches[0].meta)
    out = {}
    for key in dict.fromkeys(k for b in batches for k in b.meta):
        values = [b.meta.get(key, _MISSING) for b in batches]
        has_rows = any(_has_rows(v, b.n_spectra) for v, b in zip(values, batches))
        if not has_rows and all(v is not _MISSING for v in values) and _all_same(values):
            out[key] = values[0]
            continue
        if key == "wavelength_medium":
            if {"air", "vacuum"} <= set(v for v in values if isinstance(v, str)):
                log.warning("spectra with air and vacuum wavelengths were stacked on one grid; "
                            "the batch records no convention")
            continue
        column = _joined(values, batches)
        if column is not None:
            out[key] = column
    return out


_MISSING = object()


def row_meta(meta, n, k):
    """The ``meta`` of spectrum ``k`` of a batch of ``n``: entries with one row per spectrum
    give that spectrum's row.

    Examples
    --------
    >>> meta = row_meta({"snr": np.array([10.0, 20.0]), "library": "x"}, 2, 1)
    >>> float(meta["snr"]), meta["library"]
    (20.0, 'x')
    """
    return {key: (value[k] if _has_rows(value, n) else value) for key, value in meta.items()}


def _has_rows(value, n):
    return isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n


def _all_same(values):
    """Whether every value equals the first: simple values compared, others only if the same
    object (a FITS header is not compared card by card)."""
    first = values[0]
    simple = (isinstance(first, str) or _is_real(first)
              or (isinstance(first, u.Quantity) and first.isscalar))
    if not simple:
        return all(v is first for v in values[1:])
    try:
        return all(v is first or (type(v) is type(first) and bool(v == first))
                   for v in values[1:])
    except (TypeError, ValueError, u.UnitsError):
        return False


def _joined(values, batches):
    """One value (or row) per spectrum of the stacked batch, or None when they cannot join.

    Each batch gives its rows (an entry with one per spectrum) or its single
    value repeated; a number or Quantity a batch lacks is NaN. Only real
    numbers, Quantities of one kind, strings and rows of them join.
    """
    parts, unit = [], None
    for value, batch in zip(values, batches):
        n = batch.n_spectra
        if value is _MISSING:
            parts.append(None)
            continue
        rows = value if _has_rows(value, n) else None
        if rows is None:
            if isinstance(value, (str, u.Quantity)) or _is_real(value):
                if isinstance(value, u.Quantity) and not value.isscalar:
                    return None
                rows = np.repeat(np.asarray(value.value if isinstance(value, u.Quantity)
                                            else value)[np.newaxis], n, axis=0)
                if isinstance(value, u.Quantity):
                    rows = rows * value.unit
            else:
                return None
        if isinstance(rows, u.Quantity):
            if unit is None:
                unit = rows.unit
            try:
                rows = rows.to_value(unit)
            except u.UnitsError:
                return None
        elif unit is not None and rows.dtype.kind in "iuf":
            return None  # numbers without a unit beside a Quantity
        parts.append(np.asarray(rows))
    present = [p for p in parts if p is not None]
    kinds = {p.dtype.kind for p in present}
    if len({p.shape[1:] for p in present}) != 1:
        return None
    if kinds <= set("iu") and unit is None and len(present) == len(parts):
        return np.concatenate(present)  # counts stay whole numbers
    if kinds <= set("iuf"):
        shape = present[0].shape[1:]
        joined = np.concatenate([np.full((b.n_spectra,) + shape, np.nan) if p is None
                                 else p.astype(float) for p, b in zip(parts, batches)])
        return joined if unit is None else joined * unit
    if len(present) == len(parts) and (kinds <= set("U") or kinds <= set("b")) and unit is None:
        return np.concatenate(present)
    return None


def _is_real(value):
    return (isinstance(value, (numbers.Real, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def from_batch(batch):
    """Build a batch `~specutils.Spectrum` (spectral axis last) from a `SpectraBatch`."""
    uncertainty = None
    if batch.ivar is not None:
        uncertainty = InverseVariance(batch.ivar, unit=batch.flux_unit**-2, copy=False)
    return Spectrum(
        flux=u.Quantity(batch.flux, batch.flux_unit, copy=False),
        spectral_axis=batch.spectral_axis,
        uncertainty=uncertainty,
        mask=batch.mask,
        meta=dict(batch.meta),
        spectral_axis_index=1,
        copy=False,
    )


def as_flux_array(X, name="X", dtype=np.float32):
    """Return flux, mask and (optional) inverse variance arrays for an estimator.

    Parameters
    ----------
    X : array-like of shape (n_spectra, n_pixels) or `~specutils.Spectrum`
        Plain arrays are taken as flux with every finite pixel valid.
    name : str
        Name of the argument, used in error messages.
    dtype : numpy dtype
        Floating type of the returned arrays.

    Returns
    -------
    flux : ndarray, shape (n_spectra, n_pixels)
        Masked pixels are set to zero.
    mask : ndarray of bool
        ``True`` marks a bad pixel.
    ivar : ndarray or None
        Inverse variance (zero at masked pixels), or ``None`` when unknown
        for any of the spectra (an estimator weights all of them alike then).
    spectral_axis : `~astropy.units.Quantity` or None
        The shared spectral axis when ``X`` was a Spectrum.
    """
    if isinstance(X, Spectrum) or (
        isinstance(X, (list, tuple)) and X and all(isinstance(s, Spectrum) for s in X)
    ):
        batch = to_batch(X, name)
        flux, mask, ivar, axis = batch.flux, batch.mask, batch.ivar, batch.spectral_axis
        if ivar is not None and unknown_ivar_rows(ivar).any():
            ivar = None
    else:
        if isinstance(X, u.Quantity):
            X = X.value
        from sklearn.utils.validation import check_array

        if hasattr(X, "ndim") and X.ndim == 1 or (isinstance(X, (list, tuple)) and np.ndim(X) == 1):
            raise ValueError(
                f"{name} must be 2-D (n_spectra, n_pixels), got a 1-D array of length {len(X)}. "
                "Reshape your data with X.reshape(1, -1) if it is a single spectrum"
            )

        # scikit-learn's own validation: its messages for sparse, complex, object,
        # 1-D and empty input are what scikit-learn users expect
        flux = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan", input_name=name)
        mask, ivar, axis = ~np.isfinite(flux), None, None
    mask = mask | ~np.isfinite(flux)
    all_bad = mask.all(axis=1)
    if all_bad.any():
        raise ValueError(
            f"{name} has {int(all_bad.sum())} spectra with no valid pixel "
            f"(first at row {int(np.flatnonzero(all_bad)[0])}); remove them first"
        )
    flux = np.where(mask, 0.0, flux).astype(dtype)
    if ivar is not None:
        ivar = np.where(mask, 0.0, ivar).astype(dtype)
    return flux, mask, ivar, axis
