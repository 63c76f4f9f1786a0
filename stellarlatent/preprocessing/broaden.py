"""Instrumental (Gaussian) and rotational broadening on any spectral grid."""

from numbers import Real

import astropy.units as u
import numpy as np
from astropy.constants import c
from scipy import sparse
from scipy.signal import fftconvolve
from scipy.special import erf

from .._batch import unknown_ivar_rows
from .._params import Converted, Interval, is_number
from ._base import SpectrumTransformer
from ._docs import fill_doc
from .pad import grid_kind

__all__ = ["Broadener", "gaussian_broaden", "rotational_broaden", "rotational_profile"]

_C_KMS = c.to_value(u.km / u.s)
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: A Gaussian kernel is cut where it falls below exp(-18), about 1.5e-8 of its peak.
_GAUSS_HALF_WIDTH = 6.0
#: Output pixels with less than this fraction of their kernel on unmasked pixels are masked.
_MIN_COVERAGE = 0.5


def rotational_profile(velocity, vsini, epsilon=0.6):
    """Rotational broadening kernel of Gray (2005, eq. 18.14), in s/km.

    ``G(v) = [2 (1 - eps) sqrt(1 - x**2) + (pi eps / 2) (1 - x**2)] /
    [pi vsini (1 - eps / 3)]`` with ``x = v / vsini`` for ``|x| < 1`` and
    zero outside; its integral over velocity is one.

    Parameters
    ----------
    velocity : `~astropy.units.Quantity`
        Velocity offsets from the line centre.
    vsini : `~astropy.units.Quantity`
        Projected equatorial rotation velocity, positive scalar.
    epsilon : float, default=0.6
        Linear limb-darkening coefficient, between 0 and 1.

    Returns
    -------
    `~astropy.units.Quantity`
        Kernel values in s / km.

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from stellarlatent.preprocessing import rotational_profile
    >>> v = np.linspace(-30, 30, 60001) * u.km / u.s
    >>> kernel = rotational_profile(v, 20 * u.km / u.s)
    >>> round(float(np.trapezoid(kernel, v)), 6)
    1.0
    """
    v = _velocity_value(velocity, "velocity")
    vsini = float(_velocity_value(vsini, "vsini"))
    if not vsini > 0:
        raise ValueError(f"vsini must be positive, got {vsini} km/s")
    _check_epsilon(epsilon)
    x2 = np.clip(1.0 - (v / vsini) ** 2, 0.0, None)
    norm = np.pi * vsini * (1.0 - epsilon / 3.0)
    return (2.0 * (1.0 - epsilon) * np.sqrt(x2) + 0.5 * np.pi * epsilon * x2) / norm * (u.s / u.km)


def _check_epsilon(epsilon):
    if not (is_number(epsilon) and 0.0 <= epsilon <= 1.0):
        raise ValueError(f"epsilon must be a number between 0 and 1, got {epsilon!r}")


def _velocity_value(value, name):
    if not isinstance(value, u.Quantity) or not value.unit.is_equivalent(u.km / u.s):
        raise u.UnitsError(
            f"{name} must be a Quantity with velocity units, got {value!r}"
        )
    values = np.asarray(value.to_value(u.km / u.s), dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite")
    return values


def _check_resolution(value, name):
    """A resolving power: a positive finite number (a Quantity belongs in the FWHM)."""
    fwhm_name = name.replace("resolution", "fwhm")
    if isinstance(value, u.Quantity):
        raise TypeError(f"{name} must be a number (R); use {fwhm_name} for a Quantity")
    if not is_number(value):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_fwhm(value, name):
    """A FWHM: a non-negative finite scalar wavelength or velocity Quantity."""
    if not isinstance(value, u.Quantity):
        resolution_name = name.replace("fwhm", "resolution")
        raise TypeError(
            f"{name} must be a wavelength or velocity Quantity, got {value!r}; use "
            f"{resolution_name} for a resolving power"
        )
    if not (value.unit.is_equivalent(u.km / u.s) or value.unit.is_equivalent(u.AA)):
        raise u.UnitsError(f"{name} must have length or velocity units, got '{value.unit}'")
    if value.ndim != 0 or not np.isfinite(value.value) or value.value < 0:
        raise ValueError(f"{name} must be a non-negative scalar Quantity, got {value!r}")


def _check_vsini(value, name):
    """Rotation velocities: a velocity Quantity (scalar or 1-D), non-negative, below c."""
    values = _velocity_value(value, name)
    if values.ndim > 1 or np.any(values < 0):
        raise ValueError(
            f"{name} must be a non-negative scalar or one value per spectrum, got {value!r}"
        )
    if values.size and np.max(values) >= _C_KMS:
        raise ValueError(
            f"{name} must be smaller than the speed of light, got {np.max(values):.6g} km/s"
        )


def _gaussian_cdf(x, sigma):
    return 0.5 * (1.0 + erf(x / (np.sqrt(2.0) * sigma)))


def _rotational_cdf(x, vsini, epsilon):
    if vsini == 0:
        return (x >= 0).astype(float)
    t = np.clip(x / vsini, -1.0, 1.0)
    root = np.sqrt(1.0 - t**2)
    linear = (t * root + np.arcsin(t) + 0.5 * np.pi) * (1.0 - epsilon)
    quadratic = 0.5 * np.pi * epsilon * (t - t**3 / 3.0 + 2.0 / 3.0)
    return (linear + quadratic) / (np.pi * (1.0 - epsilon / 3.0))


def _edges(wave):
    mid = 0.5 * (wave[1:] + wave[:-1])
    return np.concatenate([[2 * wave[0] - mid[0]], mid, [2 * wave[-1] - mid[-1]]])


#: weights of a kernel matrix held at once; a larger one (a broad kernel on a fine grid: R 2000
#: on a HARPS s1d spectrum has 4e8) is built and applied a block of rows at a time
_MAX_KERNEL_ENTRIES = 4_000_000


class _KernelMatrix:
    """Sparse matrix of pixel-integrated kernel weights on an arbitrary grid.

    Row ``i`` holds, for every pixel ``j``, the integral of the kernel over
    pixel ``j`` in velocity offsets ``c ln(lambda / lambda_i)``; ``cdf(x, i)``
    is the kernel's cumulative integral for row ``i``. A matrix of more than
    `_MAX_KERNEL_ENTRIES` weights is never held whole: `apply` builds it a
    block of rows at a time (memory bounded, the weights computed again on
    each call).
    """

    def __init__(self, wave, half_width, cdf):
        self.log_edges = np.log(_edges(wave))
        self.log_wave = np.log(wave)
        self.cdf = cdf
        lo = np.searchsorted(self.log_edges, self.log_wave - half_width / _C_KMS,
                             side="right") - 1
        hi = np.searchsorted(self.log_edges, self.log_wave + half_width / _C_KMS, side="left")
        self.lo = np.clip(lo, 0, wave.size - 1)
        self.counts = np.clip(hi, self.lo + 1, wave.size) - self.lo
        total = np.cumsum(self.counts)
        cuts = np.searchsorted(total, np.arange(_MAX_KERNEL_ENTRIES, total[-1],
                                                _MAX_KERNEL_ENTRIES), side="right")
        bounds = np.unique(np.concatenate([[0], cuts, [wave.size]]))
        self.blocks = list(zip(bounds[:-1], bounds[1:]))
        self._held = [self._block(*b) for b in self.blocks] if len(self.blocks) == 1 else None

    def _block(self, start, stop):
        counts = self.counts[start:stop]
        rows = np.repeat(np.arange(start, stop), counts)
        cols = self.lo[rows] + np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts,
                                                                counts)
        upper = _C_KMS * (self.log_edges[cols + 1] - self.log_wave[rows])
        lower = _C_KMS * (self.log_edges[cols] - self.log_wave[rows])
        weights = self.cdf(upper, rows) - self.cdf(lower, rows)
        return sparse.csr_array((weights, (rows - start, cols)),
                                shape=(stop - start, self.log_wave.size))

    def apply_many(self, requests):
        """``[(K @ x.T).T for x, squared in requests]`` (``K`` squared element-wise where
        ``squared``), in one pass over the blocks of rows."""
        outs = [np.empty((x.shape[0], self.log_wave.size)) for x, _ in requests]
        blocks = self._held or (self._block(*b) for b in self.blocks)
        for (start, stop), block in zip(self.blocks, blocks):
            squared_block = block.power(2) if any(sq for _, sq in requests) else None
            for out, (x, squared) in zip(outs, requests):
                out[:, start:stop] = ((squared_block if squared else block) @ x.T).T
        return outs


def _pixel_kernel(step_kms, half_width, cdf):
    """Pixel-integrated kernel on a grid of constant velocity step (odd length)."""
    m = int(np.ceil(half_width / step_kms)) + 1
    offsets = np.arange(-m, m + 1) * step_kms
    return cdf(offsets + 0.5 * step_kms) - cdf(offsets - 0.5 * step_kms)


def convolve_rows(x, kernels):
    """Convolve each row of ``x`` with a symmetric odd-length kernel, same size.

    ``kernels`` has shape ``(1, L)`` (one kernel for all rows) or
    ``(n_rows, L)``; the signal is zero outside ``x``.
    """
    half = kernels.shape[1] // 2
    if kernels.shape[1] > 48:
        return fftconvolve(x, kernels, mode="same", axes=1)
    padded = np.pad(x, ((0, 0), (half, half)))
    out = np.zeros_like(x)
    n = x.shape[1]
    for m in range(kernels.shape[1]):
        out += kernels[:, m : m + 1] * padded[:, m : m + n]
    return out


def _normalised_apply(apply_many, flux, ivar, mask, shared):
    """Convolve masked data: ``K(w f) / K(w)``, propagating variance with ``K**2``.

    ``apply_many`` takes ``[(x, squared), ...]`` and returns the convolution of
    each (with the squared kernel where ``squared``). ``shared`` tells that
    every row has the same kernel, so that the normalisation of an unmasked
    row is computed once.
    """
    weight = (~mask).astype(float)
    requests = [(np.ones((1, flux.shape[1])) if shared else np.ones_like(weight), False),
                (np.where(mask, 0.0, flux), False)]
    if mask.any():
        requests.append((weight, False))
    var = None
    if ivar is not None:
        var = np.where(mask | ~(ivar > 0), 0.0, 1.0 / np.where(ivar > 0, ivar, 1.0))
        requests.append((var, True))
    done = apply_many(requests)
    full, num = done[0], done[1]
    den = done[2] if mask.any() else full
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
        new_mask = mask | ~(den >= _MIN_COVERAGE * full) | ~np.isfinite(out)
        new_ivar = None
        if ivar is not None:
            unknown = unknown_ivar_rows(ivar)[:, np.newaxis]  # spectra without an uncertainty
            out_var = done[-1] / den**2
            new_mask |= ~(out_var > 0) & ~unknown
            new_ivar = np.where(unknown, np.nan, np.where(new_mask, 0.0, 1.0 / out_var))
    out = np.where(np.isfinite(out), out, flux)
    return out, new_ivar, new_mask


def _apply(flux, ivar, mask, pixel_kernels, matrix):
    """Normalised convolution with pixel kernels (uniform grid) or a sparse matrix."""
    if pixel_kernels is not None:
        squared_kernels = pixel_kernels**2

        def apply_many(requests):
            return [convolve_rows(x, squared_kernels if squared else pixel_kernels)
                    for x, squared in requests]

        shared = pixel_kernels.shape[0] == 1
    else:
        apply_many = matrix.apply_many
        shared = True
    return _normalised_apply(apply_many, flux, ivar, mask, shared)


def _log_step(wave):
    """Velocity step (km/s) of a log-uniform grid, or None for other grids."""
    if grid_kind(wave) != "log":
        return None
    return _C_KMS * (np.log(wave[-1]) - np.log(wave[0])) / (wave.size - 1)


def _check_kernel_width(wave, sigma=None, vsini=None):
    """Refuse kernels wider than the whole spectrum (and rotation at or above c).

    Such a kernel flattens the spectrum to one value, and its arrays would
    grow with its width (a resolution of 1e-6 would need hundreds of GB).
    """
    span = _C_KMS * np.log(wave[-1] / wave[0])
    where = f"{wave[0]:.6g} to {wave[-1]:.6g} Angstrom, {span:.6g} km/s"
    if vsini is not None and vsini.size and np.max(vsini) > 0:
        widest = float(np.max(vsini))
        if widest >= _C_KMS:
            raise ValueError(
                f"vsini must be smaller than the speed of light, got {widest:.6g} km/s"
            )
        if 2 * widest > span:
            raise ValueError(
                f"vsini: the rotational kernel (full width 2 vsini = {2 * widest:.6g} km/s) "
                f"is wider than the spectra ({where}); expected a vsini of at most half "
                "the spectral range"
            )
    if sigma is not None and np.any(np.asarray(sigma) > 0):
        fwhm = float(np.max(sigma)) * _FWHM_PER_SIGMA
        if fwhm > span:
            raise ValueError(
                f"resolution/fwhm: the Gaussian kernel (FWHM up to {fwhm:.6g} km/s) is wider "
                f"than the spectra ({where}); expected a line-spread function narrower than "
                "the spectral range (check the resolution or fwhm and its unit)"
            )


def _broaden(wave, flux, ivar, mask, sigma=None, vsini=None, epsilon=0.6):
    """Gaussian and rotational broadening of 2-D arrays on increasing wavelengths.

    Parameters
    ----------
    wave : ndarray, shape (n_pixels,)
        Strictly increasing wavelengths (any length unit).
    flux, ivar, mask : ndarray, shape (n_spectra, n_pixels)
        ``ivar`` may be None.
    sigma : float or ndarray of shape (n_pixels,), default=None
        Gaussian standard deviation in km/s (per pixel when it varies).
    vsini : ndarray of shape (n_spectra,), default=None
        Projected rotation velocity of each spectrum in km/s.
    """
    _check_kernel_width(wave, sigma, vsini)
    step = _log_step(wave)
    if vsini is not None and np.any(vsini > 0):
        spin = np.flatnonzero(vsini > 0)
        if step is not None:
            widest = float(vsini[spin].max())
            kernels = np.stack(
                [
                    _pixel_kernel(step, widest, lambda x, v=v: _rotational_cdf(x, v, epsilon))
                    for v in vsini[spin]
                ]
            )
            groups = [(spin, kernels, None)]
        else:
            groups = []
            for v in np.unique(vsini[spin]):
                rows = spin[vsini[spin] == v]
                matrix = _KernelMatrix(
                    wave, v, lambda x, pix, v=v: _rotational_cdf(x, v, epsilon)
                )
                groups.append((rows, None, matrix))
        flux, ivar, mask = flux.copy(), None if ivar is None else ivar.copy(), mask.copy()
        for rows, kernels, matrix in groups:
            f, iv, m = _apply(
                flux[rows], None if ivar is None else ivar[rows], mask[rows], kernels, matrix
            )
            flux[rows], mask[rows] = f, m
            if ivar is not None:
                ivar[rows] = iv
    if sigma is not None and np.any(np.asarray(sigma) > 0):
        sigma = np.broadcast_to(np.asarray(sigma, dtype=float), wave.shape)
        sigma_aa = sigma * wave / _C_KMS
        if step is not None and np.ptp(sigma) <= 1e-9 * sigma[0]:
            s = float(sigma[0])
            kernels = _pixel_kernel(step, _GAUSS_HALF_WIDTH * s, lambda x: _gaussian_cdf(x, s))
            flux, ivar, mask = _apply(flux, ivar, mask, kernels[np.newaxis, :], None)
        elif grid_kind(wave) == "linear" and np.ptp(sigma_aa) <= 1e-9 * sigma_aa[0]:
            s = float(sigma_aa[0])
            step_aa = (wave[-1] - wave[0]) / (wave.size - 1)
            kernels = _pixel_kernel(
                step_aa, _GAUSS_HALF_WIDTH * s, lambda x: _gaussian_cdf(x, s)
            )
            flux, ivar, mask = _apply(flux, ivar, mask, kernels[np.newaxis, :], None)
        else:
            safe = np.maximum(sigma, 1e-12)
            matrix = _KernelMatrix(
                wave, _GAUSS_HALF_WIDTH * safe, lambda x, pix: _gaussian_cdf(x, safe[pix])
            )
            flux, ivar, mask = _apply(flux, ivar, mask, None, matrix)
    return flux, ivar, mask


def _fwhm_kms(value, wave, name):
    """FWHM in km/s at each wavelength, from a resolving power or a FWHM Quantity."""
    if value is None:
        return np.zeros(wave.shape)
    if isinstance(value, u.Quantity):
        if value.unit.is_equivalent(u.km / u.s):
            fwhm = np.broadcast_to(value.to_value(u.km / u.s), wave.shape)
        elif value.unit.is_equivalent(u.AA):
            fwhm = _C_KMS * value.to_value(u.AA) / wave
        else:
            raise u.UnitsError(
                f"{name} must have length or velocity units, got '{value.unit}'"
            )
        if value.ndim != 0 or not np.isfinite(value.value) or value.value < 0:
            raise ValueError(f"{name} must be a non-negative scalar Quantity, got {value!r}")
        return np.asarray(fwhm, dtype=float)
    if isinstance(value, (bool, np.bool_)) or not np.isscalar(value):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return np.full(wave.shape, _C_KMS / float(value))


def _sigma_kms(wave, resolution=None, fwhm=None, input_resolution=None, input_fwhm=None):
    """Per-pixel Gaussian sigma (km/s) taking a spectrum from the input to the target LSF."""
    if resolution is not None and fwhm is not None:
        raise ValueError("give resolution or fwhm, not both")
    if input_resolution is not None and input_fwhm is not None:
        raise ValueError("give input_resolution or input_fwhm, not both")
    if resolution is not None:
        target = _fwhm_kms(resolution, wave, "resolution")
    else:
        target = _fwhm_kms(fwhm, wave, "fwhm")
    if isinstance(input_resolution, u.Quantity):
        raise TypeError("input_resolution must be a number (R); use input_fwhm for a Quantity")
    if isinstance(resolution, u.Quantity):
        raise TypeError("resolution must be a number (R); use fwhm for a Quantity")
    source = (
        _fwhm_kms(input_resolution, wave, "input_resolution")
        if input_resolution is not None
        else _fwhm_kms(input_fwhm, wave, "input_fwhm")
    )
    excess = target**2 - source**2
    if np.any(excess < -1e-9 * target**2):
        raise ValueError(
            "the target line-spread function (resolution or fwhm) is narrower than the "
            "input one (input_resolution or input_fwhm); broadening cannot sharpen spectra"
        )
    return np.sqrt(np.clip(excess, 0.0, None)) / _FWHM_PER_SIGMA


def _wave_and_flux(wavelength, flux, mask):
    if not isinstance(wavelength, u.Quantity) or not wavelength.unit.is_equivalent(u.AA):
        raise u.UnitsError(f"wavelength must be a Quantity with length units, got {wavelength!r}")
    wave = np.asarray(wavelength.to_value(u.AA), dtype=float)
    if wave.ndim != 1 or wave.size < 2 or not np.all(np.diff(wave) > 0):
        raise ValueError("wavelength must be 1-D, strictly increasing, with at least two pixels")
    values = np.asarray(flux.value if isinstance(flux, u.Quantity) else flux, dtype=float)
    if values.shape[-1:] != wave.shape or values.ndim not in (1, 2):
        raise ValueError(
            f"flux must have shape (n_pixels,) or (n_spectra, n_pixels) with "
            f"n_pixels={wave.size}, got {values.shape}"
        )
    flux2 = np.atleast_2d(values)
    if mask is None:
        mask2 = ~np.isfinite(flux2)
    else:
        mask2 = np.broadcast_to(np.asarray(mask, dtype=bool), values.shape).reshape(
            flux2.shape
        ) | ~np.isfinite(flux2)
    return wave, flux2, mask2


@fill_doc
def gaussian_broaden(wavelength, flux, *, resolution=None, fwhm=None, mask=None):
    """Convolve spectra with a Gaussian line-spread function.

    Parameters
    ----------
    %(broaden_data)s
    resolution : float, default=None
        Resolving power ``R = lambda / FWHM`` of the kernel.
    fwhm : `~astropy.units.Quantity`, default=None
        FWHM of the kernel, as a wavelength (constant in Angstrom) or a
        velocity (constant resolving power). Give exactly one of
        ``resolution`` and ``fwhm``.
    %(broaden_mask)s

    Returns
    -------
    ndarray
        Broadened flux, the shape of ``flux`` (no unit). Masked pixels are
        filled from their neighbours.

    See Also
    --------
    Broadener : the transformer, with quadrature subtraction of an input
        resolution and propagation of uncertainties.

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from stellarlatent.preprocessing import gaussian_broaden
    >>> wave = np.linspace(4990, 5010, 2001) * u.AA
    >>> line = 1 - 0.5 * np.exp(-0.5 * ((wave.value - 5000) / 0.1) ** 2)
    >>> broad = gaussian_broaden(wave, line, fwhm=1.0 * u.AA)
    >>> round(float(broad.min()), 3)  # depth 0.5 * 0.1 / sqrt(0.1**2 + (1 / 2.3548)**2)
    0.885
    """
    wave, flux2, mask2 = _wave_and_flux(wavelength, flux, mask)
    if (resolution is None) == (fwhm is None):
        raise ValueError("give exactly one of resolution and fwhm")
    sigma = _sigma_kms(wave, resolution=resolution, fwhm=fwhm)
    out, _, _ = _broaden(wave, flux2, None, mask2, sigma=sigma)
    return out.reshape(np.shape(flux))


@fill_doc
def rotational_broaden(wavelength, flux, vsini, *, epsilon=0.6, mask=None):
    """Convolve spectra with the rotational profile (`rotational_profile`).

    Parameters
    ----------
    %(broaden_data)s
    vsini : `~astropy.units.Quantity`
        Projected rotation velocity: a scalar or one value per spectrum,
        non-negative.
    epsilon : float, default=0.6
        Linear limb-darkening coefficient.
    %(broaden_mask)s

    Returns
    -------
    ndarray
        Broadened flux, the shape of ``flux`` (no unit).

    Examples
    --------
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from stellarlatent.preprocessing import rotational_broaden
    >>> wave = np.geomspace(4990, 5010, 4001) * u.AA
    >>> line = 1 - 0.5 * np.exp(-0.5 * ((wave.value - 5000) / 0.02) ** 2)
    >>> spun = rotational_broaden(wave, line, 50 * u.km / u.s)
    >>> bool(spun.min() > 0.9)
    True
    """
    wave, flux2, mask2 = _wave_and_flux(wavelength, flux, mask)
    _check_epsilon(epsilon)
    v = _velocity_value(vsini, "vsini")
    v = np.broadcast_to(v, (flux2.shape[0],)) if v.ndim == 0 else v
    if v.shape != (flux2.shape[0],) or np.any(v < 0):
        raise ValueError(
            f"vsini must be a non-negative scalar or one value per spectrum "
            f"({flux2.shape[0]}), got {vsini!r}"
        )
    out, _, _ = _broaden(wave, flux2, None, mask2, vsini=v, epsilon=epsilon)
    return out.reshape(np.shape(flux))


@fill_doc
class Broadener(SpectrumTransformer):
    """Broaden spectra with a Gaussian line-spread function and/or rotation.

    Parameters
    ----------
    resolution : float, default=None
        Target resolving power ``R = lambda / FWHM``.
    fwhm : `~astropy.units.Quantity`, default=None
        Target FWHM of the line-spread function, as a wavelength (constant in
        Angstrom, like MILES' 2.5 Angstrom) or a velocity (constant R).
    vsini : `~astropy.units.Quantity`, default=None
        Projected rotation velocity, a scalar or one value per spectrum:
        convolution with the rotational profile of Gray (2005) with linear
        limb darkening ``epsilon``. Give at least one of ``resolution``,
        ``fwhm`` and ``vsini``, and at most one of ``resolution`` and ``fwhm``.
    input_resolution : float, default=None
        Resolving power of the input spectra; the Gaussian kernel is then the
        quadrature difference, ``FWHM_kernel**2 = FWHM_target**2 -
        FWHM_input**2``. Without it (and without ``input_fwhm``) the input is
        taken as infinitely resolved.
    input_fwhm : `~astropy.units.Quantity`, default=None
        FWHM of the input line-spread function (wavelength or velocity).
    epsilon : float, default=0.6
        Linear limb-darkening coefficient of the rotational profile.

    Notes
    -----
    Kernels are integrated over each pixel (exact for any kernel width,
    including kernels narrower than a pixel) and work in velocity offsets,
    ``c ln(lambda / lambda_i)``, so any strictly monotonic grid works in any
    spectral unit. On a log-uniform grid a kernel of constant velocity width,
    and on a linear grid a Gaussian of constant width in wavelength, is one
    array of pixel weights (direct or FFT convolution); on other grids, or when
    the kernel width varies along the grid, a sparse matrix holds one kernel
    per output pixel (a variable kernel; no internal resampling). A matrix of
    more than four million weights is built and applied a block of rows at a
    time, so memory stays bounded: R = 2000 on a HARPS s1d spectrum (313,000
    pixels, 4e8 weights) takes about 20 s and 0.7 GB, where the whole matrix
    needed over 10 GB. On such grids, resampling to a coarser log-uniform grid
    first (`Resampler`) is much faster.
    Integrating over pixels adds the pixel's own variance, ``step**2 / 12``,
    to the line width.

    Kernels wider than the spectra (a Gaussian FWHM, or twice ``vsini``,
    larger than their whole range in velocity) are refused: they would
    flatten each spectrum to one value, and their arrays grow with their
    width.

    Masked pixels do not spread: the convolution is normalised,
    ``K(w f) / K(w)`` with ``w`` zero at masked pixels, which also keeps a
    flat continuum flat up to the ends of the grid. Pixels with less than
    half of their kernel on unmasked pixels are masked; masked input pixels
    stay masked. The variance is propagated as ``K**2`` applied to the
    variance (neighbouring pixels become correlated; this is not tracked).

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import Broadener
    >>> wave = np.geomspace(6540, 6590, 5000) * u.AA
    >>> flux = 1 - 0.6 * np.exp(-0.5 * ((wave.value - 6562.8) / 0.05) ** 2)
    >>> spectrum = Spectrum(flux=flux * u.one, spectral_axis=wave)
    >>> broad = Broadener(resolution=5000, vsini=20 * u.km / u.s).transform(spectrum)
    >>> round(float(broad.flux.value.min()), 2)
    0.95
    >>> def ew(s):  # equivalent width in Angstrom, conserved by broadening
    ...     return np.trapezoid(1 - s.flux.value.ravel(), s.spectral_axis.value)
    >>> round(float(ew(spectrum)), 4), round(float(ew(broad)), 4)
    (0.0752, 0.0752)
    """

    def __init__(
        self,
        resolution=None,
        fwhm=None,
        vsini=None,
        input_resolution=None,
        input_fwhm=None,
        epsilon=0.6,
    ):
        self.resolution = resolution
        self.fwhm = fwhm
        self.vsini = vsini
        self.input_resolution = input_resolution
        self.input_fwhm = input_fwhm
        self.epsilon = epsilon

    _parameter_constraints = {
        "resolution": [None, Converted(_check_resolution, "a positive number (R)")],
        "fwhm": [None, Converted(_check_fwhm, "a wavelength or velocity Quantity")],
        "vsini": [None, Converted(_check_vsini, "a non-negative velocity Quantity, a scalar "
                                                "or one value per spectrum")],
        "input_resolution": [None, Converted(_check_resolution, "a positive number (R)")],
        "input_fwhm": [None, Converted(_check_fwhm, "a wavelength or velocity Quantity")],
        "epsilon": [Interval(Real, 0, 1, closed="both")],
    }

    def _check_params(self):
        super()._check_params()
        if self.resolution is None and self.fwhm is None and self.vsini is None:
            raise ValueError("give at least one of resolution, fwhm and vsini")
        if self.resolution is not None and self.fwhm is not None:
            raise ValueError("give resolution or fwhm, not both")
        if self.input_resolution is not None and self.input_fwhm is not None:
            raise ValueError("give input_resolution or input_fwhm, not both")
        if (self.input_resolution is not None or self.input_fwhm is not None) and (
            self.resolution is None and self.fwhm is None
        ):
            raise ValueError("input_resolution and input_fwhm need resolution or fwhm")

    def _transform_batch(self, batch):
        wave = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        order = slice(None) if wave[-1] > wave[0] else slice(None, None, -1)
        wave = wave[order]
        sigma = None
        if self.resolution is not None or self.fwhm is not None:
            sigma = _sigma_kms(
                wave, self.resolution, self.fwhm, self.input_resolution, self.input_fwhm
            )
        vsini = None
        if self.vsini is not None:
            vsini = _velocity_value(self.vsini, "vsini")
            if vsini.ndim == 0:
                vsini = np.full(batch.n_spectra, float(vsini))
            if vsini.shape != (batch.n_spectra,):
                raise ValueError(
                    f"vsini must be a non-negative scalar or one value per spectrum "
                    f"({batch.n_spectra}), got {self.vsini!r}"
                )
        flux, ivar, mask = _broaden(
            wave,
            batch.flux[:, order],
            None if batch.ivar is None else batch.ivar[:, order],
            batch.mask[:, order],
            sigma=sigma,
            vsini=vsini,
            epsilon=self.epsilon,
        )
        return batch.replace(
            flux=flux[:, order],
            ivar=None if ivar is None else ivar[:, order],
            mask=mask[:, order],
        )
