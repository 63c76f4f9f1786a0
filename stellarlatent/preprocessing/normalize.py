"""Continuum normalisation: median, running quantile, clipped polynomial or spline."""

from numbers import Integral, Real

import astropy.units as u
import numpy as np
from astropy.constants import c
from scipy.interpolate import BSpline

from .._logging import log
from .._params import Converted, Interval, Options
from ._base import SpectrumTransformer
from ._docs import fill_doc
from .mask import REGIONS, region_bounds, region_mask

__all__ = ["ContinuumNormalizer"]

_C_KMS = c.to_value(u.km / u.s)
_METHODS = ("median", "running_quantile", "polynomial", "spline")
_DEFAULT_WINDOW = 5000.0 * u.km / u.s
_DEFAULT_KNOT_SPACING = 10000.0 * u.km / u.s
#: Relative weight of the second-difference penalty that keeps spline
#: coefficients defined across masked gaps; far too small to bias the fit.
_SPLINE_PENALTY = 1e-4


#: Smallest rejection scale, relative to the median flux: without it, noise-free
#: spectra shrink the robust scatter towards zero and every pixel gets rejected.
_SIGMA_FLOOR = 1e-3


def _check_scale(scale, name):
    """Check a width: a scalar wavelength or velocity Quantity, or a pixel count of at least 2."""
    if isinstance(scale, Integral) and not isinstance(scale, (bool, np.bool_)):
        if scale < 2:
            raise ValueError(f"{name} as a pixel count must be at least 2, got {scale}")
        return
    if not isinstance(scale, u.Quantity) or scale.ndim != 0:
        raise TypeError(
            f"{name} must be a scalar Quantity (wavelength or velocity) or a number of "
            f"pixels, got {scale!r}"
        )
    if not (scale.unit.is_equivalent(u.km / u.s) or scale.unit.is_equivalent(u.AA)):
        raise u.UnitsError(f"{name} must have length or velocity units, got '{scale.unit}'")
    if not (np.isfinite(scale.value) and scale.value > 0):
        raise ValueError(f"{name} must be positive, got {scale!r}")


def _coordinate(axis, scale, name):
    """Increasing pixel coordinate in which ``scale`` is a constant width.

    ``scale`` is a velocity Quantity (coordinate ``c ln lambda`` in km/s), a
    length Quantity (wavelength in Angstrom) or an int (pixel index), checked
    by `_check_scale`. Returns the coordinate and the width in its units.
    """
    _check_scale(scale, name)
    if not isinstance(scale, u.Quantity):
        return np.arange(axis.size, dtype=float), float(scale)
    wave = axis.to_value(u.AA, equivalencies=u.spectral())
    if scale.unit.is_equivalent(u.km / u.s):
        coord, width = _C_KMS * np.log(wave), scale.to_value(u.km / u.s)
    else:
        coord, width = wave, scale.to_value(u.AA)
    if coord[-1] < coord[0]:
        coord = -coord
    return coord, float(width)


_SCALE = "a wavelength or velocity Quantity, or a number of pixels of at least 2"


def nanmedian_rows(data):
    """Median of the finite values of each row (NaN for rows without any), shape (n, 1)."""
    out = np.full((data.shape[0], 1), np.nan)
    has = np.isfinite(data).any(axis=1)
    if has.any():
        out[has, 0] = np.nanmedian(data[has], axis=1)
    return out


def _clipped_fit(flux, use, fit, sigma_lower, sigma_upper, max_iter):
    """Iteratively refit while rejecting pixels below/above the continuum.

    ``fit(flux, weights) -> continuum`` works on all spectra at once; ``flux``
    is in units of its median, so that ``_SIGMA_FLOOR`` is relative.
    """
    continuum = fit(flux, use.astype(float))
    for _ in range(max_iter):
        resid = np.where(use, flux - continuum, np.nan)
        centre = nanmedian_rows(resid)
        sigma = np.fmax(1.4826 * nanmedian_rows(np.abs(resid - centre)), _SIGMA_FLOOR)
        resid = flux - continuum - centre
        keep = use & (resid >= -sigma_lower * sigma) & (resid <= sigma_upper * sigma)
        if np.array_equal(keep, use):
            break
        # stop rejecting in spectra that would keep too few pixels
        enough = keep.sum(axis=1, keepdims=True) >= 0.1 * use.sum(axis=1, keepdims=True)
        use = np.where(enough, keep, use)
        continuum = fit(flux, use.astype(float))
    return continuum


def _polynomial_fitter(x, degree):
    x = (x - x.min()) / max(np.ptp(x), 1e-300) * 2.0 - 1.0
    basis = np.polynomial.legendre.legvander(x, degree)

    def fit(flux, weights):
        gram = np.einsum("np,pi,pj->nij", weights, basis, basis, optimize=True)
        rhs = np.einsum("np,pi->ni", weights * flux, basis, optimize=True)
        gram += 1e-12 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(degree + 1)
        coef = np.linalg.solve(gram, rhs[..., np.newaxis])[..., 0]
        return coef @ basis.T

    return fit


def _spline_intervals(x, spacing, name="knot_spacing"):
    """Number of knot intervals over ``x``; refused when the knots outnumber the pixels.

    A cubic B-spline with ``n`` intervals has ``n + 3`` coefficients; more
    coefficients than pixels cannot be fitted, and their Gram matrices grow as
    the square of their number.
    """
    with np.errstate(over="ignore"):
        n_float = np.ptp(x) / spacing
    n_max = max(1, x.size - 3)
    if not n_float <= n_max + 0.5:
        raise ValueError(
            f"{name}: knots this close give {n_float:.3g} knot intervals over the grid of "
            f"{x.size} pixels; expected at most {n_max} (one spline coefficient per pixel). "
            "Give a larger knot_spacing"
        )
    return max(1, int(round(n_float)))


def _spline_fitter(x, spacing):
    n_intervals = _spline_intervals(x, spacing)
    inner = np.linspace(x.min(), x.max(), n_intervals + 1)
    knots = np.concatenate([[inner[0]] * 3, inner, [inner[-1]] * 3])
    design = BSpline.design_matrix(np.clip(x, inner[0], inner[-1]), knots, 3).tocsr()
    design.sort_indices()
    n_basis = design.shape[1]
    per_row = np.diff(design.indptr)
    if not np.all(per_row == 4):  # pragma: no cover - defensive
        design = design.toarray()
    cols = design.indices.reshape(-1, 4)
    vals = design.data.reshape(-1, 4)
    left = cols[:, 0]
    starts = np.flatnonzero(np.r_[True, np.diff(left) != 0])
    seg_left = left[starts]
    diff2 = np.diff(np.eye(n_basis), n=2, axis=0)
    penalty = diff2.T @ diff2

    def fit(flux, weights):
        n = flux.shape[0]
        gram = np.zeros((n, n_basis, n_basis))
        rhs = np.zeros((n, n_basis))
        wf = weights * flux
        for a in range(4):
            rhs_part = np.add.reduceat(wf * vals[:, a], starts, axis=1)
            rhs[:, seg_left + a] += rhs_part
            for b in range(4):
                part = np.add.reduceat(weights * (vals[:, a] * vals[:, b]), starts, axis=1)
                gram[:, seg_left + a, seg_left + b] += part
        scale = np.trace(gram, axis1=1, axis2=2)[:, None, None] / n_basis
        gram += _SPLINE_PENALTY * scale * penalty + 1e-12 * scale * np.eye(n_basis)
        coef = np.linalg.solve(gram, rhs[..., np.newaxis])[..., 0]
        return (design @ coef.T).T

    return fit


def _running_mean(flux, valid, coord, width):
    """Mean of the valid pixels within ``width`` around each pixel (NaN where none are)."""
    lo = np.searchsorted(coord, coord - 0.5 * width, side="left")
    hi = np.searchsorted(coord, coord + 0.5 * width, side="right")
    weights = valid.astype(float)
    sums = np.concatenate([np.zeros((flux.shape[0], 1)),
                           np.cumsum(np.where(valid, flux, 0.0), axis=1)], axis=1)
    counts = np.concatenate([np.zeros((flux.shape[0], 1)), np.cumsum(weights, axis=1)], axis=1)
    n = counts[:, hi] - counts[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[:, hi] - sums[:, lo]) / n, np.nan)


def _running_quantile(flux, valid, coord, width, quantile):
    """Quantile of valid pixels within ``width`` around anchor pixels, interpolated."""
    n_pix = coord.size
    lo_all = np.searchsorted(coord, coord - 0.5 * width, side="left")
    hi_all = np.searchsorted(coord, coord + 0.5 * width, side="right")
    stride = max(1, int(np.median(hi_all - lo_all)) // 8)
    anchors = np.unique(np.r_[np.arange(0, n_pix, stride), n_pix - 1])
    data = np.where(valid, flux, np.nan)
    values = np.full((flux.shape[0], anchors.size), np.nan)
    with np.errstate(invalid="ignore"):
        for k, a in enumerate(anchors):
            chunk = data[:, lo_all[a] : hi_all[a]]
            has = np.isfinite(chunk).any(axis=1)
            if has.any():
                values[has, k] = np.nanquantile(chunk[has], quantile, axis=1)
    continuum = np.full(flux.shape, np.nan)
    pix = np.arange(n_pix)
    for i in range(flux.shape[0]):
        ok = np.isfinite(values[i])
        if ok.any():
            continuum[i] = np.interp(pix, anchors[ok], values[i, ok])
    return continuum


@fill_doc
class ContinuumNormalizer(SpectrumTransformer):
    """Divide spectra by an estimate of their continuum.

    Parameters
    ----------
    method : {"median", "running_quantile", "polynomial", "spline"}, default="median"
        * ``"median"``: one number per spectrum, the median flux of its
          unmasked pixels outside ``exclude`` (as in Sedaghat et al. 2021,
          who excluded the HARPS CCD gap 5303.6-5338.0 Angstrom);
        * ``"running_quantile"``: the ``quantile`` of the flux in a window
          of ``window`` around each pixel (upper quantiles follow the
          continuum above absorption lines);
        * ``"polynomial"``: a Legendre polynomial of ``degree`` in
          wavelength, refitted while rejecting pixels more than
          ``sigma_lower`` robust standard deviations below or
          ``sigma_upper`` above it (absorption lines fall below);
        * ``"spline"``: the same clipping with a cubic B-spline whose knots
          are ``knot_spacing`` apart.
    exclude : `~specutils.SpectralRegion` or list of (low, high) Quantity pairs, default=None
        Regions ignored when estimating the continuum (they are still
        divided by it, and keep their mask).
    window : `~astropy.units.Quantity` or int, default=None
        Width of the running window: a wavelength, a velocity (a constant
        resolving power) or a number of pixels; None is 5000 km/s.
    quantile : float, default=0.9
        Quantile of the running window.
    smoothing : `~astropy.units.Quantity` or int, default=None
        Width of a running mean (a wavelength, a velocity or a number of
        pixels) applied to the flux from which the continuum is estimated
        (the flux that is divided keeps its resolution); not used by
        ``"median"``. An upper quantile or a clipped fit of noisy flux
        follows the noise peaks, so its continuum rises and wiggles with the
        noise; a width of a few pixels makes the continuum of a noisy
        spectrum close to that of the same star without noise. None
        estimates it from the flux as it is.
    degree : int, default=3
        Degree of the polynomial; smaller than the number of pixels.
    knot_spacing : `~astropy.units.Quantity` or int, default=None
        Distance between spline knots (wavelength, velocity or pixels);
        None is 10000 km/s. Spacings that put more spline coefficients than
        pixels on the grid are refused.
    sigma_lower, sigma_upper : float, default=1.5 and 3.0
        Rejection thresholds of the polynomial and spline fits, in robust
        standard deviations (1.4826 times the median absolute deviation) of
        the residuals about their median (at least 0.1% of the median flux,
        for noise-free spectra); a smaller lower threshold rejects absorption
        lines.
    max_iter : int, default=10
        Maximum number of rejection iterations.
    invalid : {"raise", "mask"}, default="raise"
        What to do with a spectrum whose continuum is nowhere positive (for
        example a median of zero or below): raise a ValueError, or mask the
        whole spectrum. Pixels where a fitted continuum is not positive are
        always masked.
    keep_shape : float, default=0.0
        Fraction, in [0, 1], of the continuum's shape kept in the output (in
        log flux): each spectrum is divided by ``continuum ** (1 - keep_shape)
        * median ** keep_shape``, with ``median`` its median flux. 0 divides
        by the continuum (flat output); 1 is the same as ``method="median"``;
        in between the lines keep their full depth and the slope of the
        continuum, which carries temperature, is kept but compressed (a
        0.2 helps a `~stellarlatent.estimators.SpectralVAE` find both
        velocity and temperature).
    store_continuum : bool, default=False
        Store the continuum in ``meta["continuum"]`` of the output, a
        Quantity in the input flux unit of shape (n_spectra, n_pixels) (the
        estimate itself, whatever ``keep_shape``).

    Notes
    -----
    The normalised flux is dimensionless and its inverse variance is
    ``ivar * continuum**2`` (the continuum is treated as exact); masks are
    kept. The running quantile is evaluated at
    anchor pixels one eighth of a window apart and interpolated linearly in
    between.

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import ContinuumNormalizer
    >>> wave = np.linspace(5000, 6000, 1001) * u.AA
    >>> flux = (2.0 + wave.value / 1000) * (1 - 0.5 * np.exp(-0.5 * ((wave.value - 5500) / 2) ** 2))
    >>> spectrum = Spectrum(flux=flux * u.Jy, spectral_axis=wave)
    >>> normalised = ContinuumNormalizer(method="polynomial", degree=1).transform(spectrum)
    >>> np.round(normalised.flux[0, [0, 500, 1000]], 3)
    <Quantity [1. , 0.5, 1. ]>
    >>> gap = [(5303.6 * u.AA, 5338.0 * u.AA)]  # the HARPS CCD gap
    >>> normalised = ContinuumNormalizer(exclude=gap).transform(spectrum)
    >>> outside = (wave < gap[0][0]) | (wave > gap[0][1])
    >>> float(np.median(normalised.flux.value[0, outside]))  # doctest: +FLOAT_CMP
    1.0
    """

    _parameter_constraints = {
        "method": [Options(*_METHODS)],
        "exclude": [None, Converted(region_bounds, REGIONS)],
        "window": [None, Converted(_check_scale, _SCALE)],
        "quantile": [Interval(Real, 0, 1, closed="both")],
        "smoothing": [None, Converted(_check_scale, _SCALE)],
        "degree": [Interval(Integral, 0, None, closed="left")],
        "knot_spacing": [None, Converted(_check_scale, _SCALE)],
        "sigma_lower": [Interval(Real, 0, None, closed="neither")],
        "sigma_upper": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "invalid": [Options("raise", "mask")],
        "keep_shape": [Interval(Real, 0, 1, closed="both")],
        "store_continuum": ["boolean"],
    }

    def __init__(
        self,
        method="median",
        *,
        exclude=None,
        window=None,
        quantile=0.9,
        smoothing=None,
        degree=3,
        knot_spacing=None,
        sigma_lower=1.5,
        sigma_upper=3.0,
        max_iter=10,
        invalid="raise",
        keep_shape=0.0,
        store_continuum=False,
    ):
        self.method = method
        self.exclude = exclude
        self.window = window
        self.quantile = quantile
        self.smoothing = smoothing
        self.degree = degree
        self.knot_spacing = knot_spacing
        self.sigma_lower = sigma_lower
        self.sigma_upper = sigma_upper
        self.max_iter = max_iter
        self.invalid = invalid
        self.keep_shape = keep_shape
        self.store_continuum = store_continuum

    def _continuum(self, batch, valid):
        if self.method == "median":
            level = nanmedian_rows(np.where(valid, batch.flux, np.nan))
            return np.broadcast_to(level, batch.flux.shape)
        data = batch.flux
        if self.smoothing is not None:
            coord, width = _coordinate(batch.spectral_axis, self.smoothing, "smoothing")
            data = _running_mean(batch.flux, valid, coord, width)
        flux = np.where(valid, data, 0.0)
        if self.method == "running_quantile":
            window = _DEFAULT_WINDOW if self.window is None else self.window
            coord, width = _coordinate(batch.spectral_axis, window, "window")
            return _running_quantile(data, valid, coord, width, self.quantile)
        wave = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        if self.method == "polynomial":
            if self.degree >= batch.n_pixels:
                raise ValueError(
                    f"degree={self.degree} needs at least {self.degree + 1} pixels, the "
                    f"spectra have {batch.n_pixels} pixels; expected a degree below the "
                    "number of pixels"
                )
            fit = _polynomial_fitter(wave, self.degree)
            n_min = self.degree + 1
        else:
            spacing = _DEFAULT_KNOT_SPACING if self.knot_spacing is None else self.knot_spacing
            coord, width = _coordinate(batch.spectral_axis, spacing, "knot_spacing")
            fit = _spline_fitter(coord, width)
            n_min = 4
        scale = nanmedian_rows(np.where(valid, np.abs(batch.flux), np.nan))
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        continuum = _clipped_fit(
            flux / scale, valid, fit, self.sigma_lower, self.sigma_upper, self.max_iter
        )
        continuum = continuum * scale
        too_few = valid.sum(axis=1) < n_min
        continuum[too_few] = np.nan
        return continuum

    def _transform_batch(self, batch):
        excluded = region_mask(batch.spectral_axis, region_bounds(self.exclude, "exclude"))
        valid = ~batch.mask & ~excluded[np.newaxis, :] & np.isfinite(batch.flux)
        with np.errstate(invalid="ignore"):
            continuum = np.asarray(self._continuum(batch, valid), dtype=float)
            positive = np.isfinite(continuum) & (continuum > 0)
        hopeless = ~positive.any(axis=1)
        if hopeless.any():
            first = int(np.flatnonzero(hopeless)[0])
            if self.invalid == "raise":
                raise ValueError(
                    f"spectra[{first}] (and {int(hopeless.sum()) - 1} more) has no positive "
                    f"continuum with method={self.method!r} (no valid pixels, or flux not "
                    "positive); mask or remove such spectra, or use invalid='mask'"
                )
            log.warning("%d spectra have no positive continuum; they are masked", hopeless.sum())
        mask = batch.mask | ~positive
        safe = np.where(positive, continuum, 1.0)
        if self.keep_shape > 0 and self.method != "median":
            with np.errstate(invalid="ignore"):
                level = nanmedian_rows(np.where(valid, batch.flux, np.nan))
            level = np.where(np.isfinite(level) & (level > 0), level, 1.0)
            safe = safe ** (1 - self.keep_shape) * level ** self.keep_shape
        flux = np.where(positive, batch.flux / safe, np.nan)
        ivar = None
        if batch.ivar is not None:
            ivar = np.where(mask, 0.0, batch.ivar * safe**2)
        meta = dict(batch.meta)
        if self.store_continuum:
            meta["continuum"] = np.where(positive, continuum, np.nan) * batch.flux_unit
        return batch.replace(
            flux=flux, ivar=ivar, mask=mask, meta=meta, flux_unit=u.dimensionless_unscaled
        )
