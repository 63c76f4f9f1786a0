"""Physically motivated synthetic stellar spectra for tests and pre-training.

The spectra come from a one-layer LTE approximation, not a model atmosphere:
an Eddington grey temperature law fixes the temperature of a continuum-forming
and a line-forming layer; hydrostatic equilibrium with H-minus, hydrogen and
electron-scattering opacities gives their gas and electron pressures;
Saha-Boltzmann populations set the strength of real atomic lines and
molecular bands, and a curve of growth their equivalent widths. It reproduces
the trends that data-driven methods learn (Balmer lines peaking near 9000 K,
metal lines growing with [Fe/H] and towards cool stars, TiO bands below
~4000 K, pressure-broadened wings growing with log g) but not detailed
line profiles, line blanketing or abundances: use it to test pipelines and to
pre-train, never to measure stars.
"""

import numbers
import warnings

import astropy.units as u
import numpy as np
from astropy.table import QTable
from sklearn.utils import check_random_state
from specutils import Spectrum

from .._logging import log
from ..preprocessing.broaden import gaussian_broaden, rotational_broaden
from ..preprocessing.doppler import doppler_factor
from ..preprocessing.grid import SpectralGrid
from ..preprocessing.noise import NoiseAugmenter
from ..preprocessing.resample import Resampler
from ._atmosphere import _C_KMS, _Model

__all__ = ["make_synthetic_spectra"]

_DEFAULT_GRID = (3540.5, 0.9, 4300)  # MILES: start [A], step [A], pixels


# --------------------------------------------------------------------------- API
def _draw(value, n, rng, name, unit=None, log_uniform=False, low=None, high=None):
    """Values per star from a scalar, a (low, high) range or an array of n values."""
    if isinstance(value, u.Quantity):
        if unit is None or not value.unit.is_equivalent(unit):
            raise u.UnitsError(f"{name} must be in units of {unit}, got '{value.unit}'")
        value = value.to_value(unit)
        if np.ndim(value) == 1 and np.size(value) == 2:
            if n == 2:
                warnings.warn(f"{name}: a two-element Quantity is read as a range (low, high) "
                              "to draw from; for one value per star of two spectra pass a "
                              f"plain array in {unit}", UserWarning, stacklevel=3)
            value = tuple(value)
        elif np.ndim(value) == 0:
            value = float(value)
    if isinstance(value, numbers.Real):
        out = np.full(n, float(value))
    elif isinstance(value, tuple) and len(value) == 2:
        a, b = (float(v.to_value(unit) if isinstance(v, u.Quantity) else v) for v in value)
        if not a <= b:
            raise ValueError(f"{name} range must be (low, high) with low <= high, got {value}")
        if log_uniform:
            if a <= 0:
                raise ValueError(f"{name} range must be positive, got {value}")
            out = np.exp(rng.uniform(np.log(a), np.log(b), n))
        else:
            out = rng.uniform(a, b, n)
    else:
        try:
            out = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be a number, a (low, high) tuple or an array of {n} values, "
                f"got {value!r}"
            ) from None
        if out.shape != (n,):
            raise ValueError(
                f"{name} must be a number, a (low, high) tuple or an array of {n} values, "
                f"got shape {out.shape}"
            )
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite")
    if (low is not None and np.any(out < low)) or (high is not None and np.any(out > high)):
        raise ValueError(f"{name} must lie within [{low}, {high}]")
    return out


def _output_grid(grid):
    if grid is None:
        start, step, n = _DEFAULT_GRID
        return SpectralGrid.linear(start * u.AA, (start + step * (n - 1)) * u.AA, n)
    grid = SpectralGrid.coerce(grid, "grid")
    if not grid.unit.is_equivalent(u.AA):
        axis = grid.spectral_axis.to(u.AA, equivalencies=u.spectral())
        grid = SpectralGrid(axis[::-1] if axis[0] > axis[-1] else axis)
    return grid


def make_synthetic_spectra(
    n,
    grid=None,
    *,
    teff=(3500.0, 12000.0),
    logg=(0.5, 5.0),
    feh=(-2.5, 0.5),
    alpha_fe=None,
    rv=(-300.0 * u.km / u.s, 300.0 * u.km / u.s),
    vsini=(0.0 * u.km / u.s, 30.0 * u.km / u.s),
    snr=(20.0, 200.0),
    resolution=2000.0,
    fwhm=None,
    air=True,
    epsilon=0.6,
    velocity_step=None,
    random_state=None,
    batch_size=256,
):
    """Synthetic stellar spectra with known Teff, log g, [Fe/H], RV, v sin i and S/N.

    Each spectrum is computed on a fine internal log-uniform grid: a
    continuum from the Planck function at a wavelength-dependent depth
    (Eddington-Barbier with H-minus and hydrogen opacities, which makes the
    Balmer jump), times absorption by real atomic lines at their laboratory
    wavelengths (hydrogen Balmer and Paschen series, Ca II H&K and infrared
    triplet, Na D, Mg b, Fe I/II, Ca I 4227, Ti, Cr, Mn, Sr, Ba, He I/II,
    ...), molecular bands (TiO, CH G band, CN, MgH) and a smooth haze of
    unresolved weak lines. Line strengths follow Saha-Boltzmann populations in
    a line-forming layer whose pressures come from hydrostatic equilibrium, so
    they change with Teff (excitation and ionisation), log g (pressure) and
    abundance; equivalent widths follow a Voigt curve of growth (linear, then
    saturated, then damped), with van der Waals wings growing with the gas
    pressure and Stark-like wings for hydrogen growing with the electron
    density. The spectra are then Doppler shifted (exact relativistic factor),
    rotationally broadened (`~stellarlatent.preprocessing.rotational_broaden`),
    convolved with a Gaussian line-spread function
    (`~stellarlatent.preprocessing.gaussian_broaden`), resampled
    flux-conservingly onto ``grid`` (`~stellarlatent.preprocessing.Resampler`),
    divided by their median and given Gaussian noise
    (`~stellarlatent.preprocessing.NoiseAugmenter`).

    Parameters
    ----------
    n : int
        Number of spectra.
    grid : `~stellarlatent.preprocessing.SpectralGrid` or `~astropy.units.Quantity`, default=None
        Output grid; default MILES-like: 3540.5 + 0.9 i Angstrom,
        i = 0..4299 (linear, air wavelengths unless ``air=False``).
    teff, logg, feh : float, (low, high) tuple or array of shape (n,)
        Effective temperature [K] (a range is drawn log-uniformly), surface
        gravity [dex, cgs] and iron abundance [dex] (ranges uniformly). Every
        label takes a number, a ``(low, high)`` tuple or two-element
        Quantity (a range), or a list or array of ``n`` values (one per
        star); plain numbers are in the units given here.
    alpha_fe : float, tuple or array, default=None
        [alpha/Fe] of O, Mg, Si, Ca and Ti; default the Galactic trend
        ``clip(-0.4 [Fe/H], 0, 0.4)``.
    rv : `~astropy.units.Quantity`, (low, high) or array
        Radial velocity; default uniform in +-300 km/s; ``0 * u.km / u.s``
        for rest-frame spectra.
    vsini : `~astropy.units.Quantity`, (low, high) or array
        Projected rotation velocity, default uniform in 0-30 km/s.
    snr : float, (low, high) tuple, array or None
        Signal-to-noise ratio per output pixel at the median flux (photon
        noise); ``None`` for noise-free spectra (then no uncertainty).
    resolution : float or None, default 2000
        Resolving power of the Gaussian line-spread function.
    fwhm : `~astropy.units.Quantity`, default=None
        FWHM of the line-spread function instead of ``resolution``, as a
        wavelength (constant in Angstrom, like MILES' 2.5 Angstrom) or a
        velocity.
    air : bool, default True
        Whether ``grid`` holds air wavelengths (line wavelengths are then in
        air, as in MILES) or vacuum ones.
    epsilon : float, default 0.6
        Limb-darkening coefficient of the rotational profile.
    velocity_step : `~astropy.units.Quantity`, default=None
        Step of the internal grid; default the smaller of 15 km/s and a sixth
        of the line-spread function's FWHM.
    random_state : int, `~numpy.random.RandomState` or None
        Seed of the drawn labels and of the noise.
    batch_size : int, default 256
        Spectra computed at once; memory grows with it (about 300 MB above
        the output at the default, on the default grid).

    Returns
    -------
    spectra : `~specutils.Spectrum`
        A batch, flux ``(n, n_pixels)`` (dimensionless, median one) on
        ``grid`` with the spectral axis last, uncertainty as
        `~astropy.nddata.InverseVariance`, no masked pixels; ``meta`` records
        the medium and line-spread function.
    labels : `~astropy.table.QTable`
        ``teff`` [K], ``logg`` [dex], ``feh`` [dex], ``rv`` [km/s],
        ``vsini`` [km/s] and ``snr``, one row per spectrum.

    Notes
    -----
    This is an approximation for testing and pre-training, not a model
    atmosphere: one line-forming layer instead of a depth-dependent
    atmosphere, a few hundred lines instead of millions, rounded atomic data,
    no non-LTE effects, chromospheres, emission lines, convective shifts or
    interstellar extinction. Relative line strengths and their trends with
    the labels are realistic; absolute depths and line shapes are not. For
    physical inference use model grids such as PHOENIX
    (`~stellarlatent.datasets.read_phoenix`).

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.datasets import make_synthetic_spectra
    >>> spectra, labels = make_synthetic_spectra(3, random_state=0)
    >>> spectra.flux.shape
    (3, 4300)
    >>> labels.colnames
    ['teff', 'logg', 'feh', 'rv', 'vsini', 'snr']
    >>> labels["teff"].unit, labels["rv"].unit
    (Unit("K"), Unit("km / s"))
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or (
        batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    rng = check_random_state(random_state)
    grid = _output_grid(grid)
    teff = _draw(teff, n, rng, "teff", u.K, log_uniform=True, low=2000.0, high=50000.0)
    logg = _draw(logg, n, rng, "logg", u.dex, low=-1.0, high=6.0)
    feh = _draw(feh, n, rng, "feh", u.dex, low=-5.0, high=1.0)
    alpha = (np.clip(-0.4 * feh, 0.0, 0.4) if alpha_fe is None
             else _draw(alpha_fe, n, rng, "alpha_fe", u.dex, low=-1.0, high=1.0))
    rv = _draw(rv, n, rng, "rv", u.km / u.s, low=-0.1 * _C_KMS, high=0.1 * _C_KMS)
    vsini = _draw(vsini, n, rng, "vsini", u.km / u.s, low=0.0, high=1000.0)
    snr_values = None if snr is None else _draw(snr, n, rng, "snr", low=1e-3)
    if snr_values is not None and np.any(snr_values <= 0):
        raise ValueError("snr must be positive")
    if not (np.isscalar(epsilon) and 0.0 <= epsilon <= 1.0):
        raise ValueError(f"epsilon must be a number between 0 and 1, got {epsilon!r}")

    wave_out = grid.spectral_axis.to_value(u.AA)
    lsf_kms = _lsf_fwhm_kms(resolution, fwhm, wave_out)
    if velocity_step is None:
        dv = min(15.0, lsf_kms / 6.0) if lsf_kms > 0 else 15.0
    else:
        if not (isinstance(velocity_step, u.Quantity)
                and velocity_step.unit.is_equivalent(u.km / u.s)):
            raise u.UnitsError(f"velocity_step must be a velocity Quantity, got {velocity_step!r}")
        dv = float(velocity_step.to_value(u.km / u.s))
        if not dv > 0:
            raise ValueError(f"velocity_step must be positive, got {velocity_step!r}")
    margin = (np.max(np.abs(rv)) + np.max(vsini) + 4.0 * lsf_kms + 300.0) / _C_KMS
    internal = SpectralGrid.from_velocity_step(
        wave_out[0] * (1 - margin) * u.AA, wave_out[-1] * (1 + margin) * u.AA, dv * u.km / u.s
    )
    wave = internal.spectral_axis.to_value(u.AA)
    model = _Model(wave, air)
    factor = doppler_factor(rv * u.km / u.s)
    to_output = Resampler(grid).fit(_spectrum(np.ones((1, wave.size)), wave))
    linear = None
    if fwhm is not None and fwhm.unit.is_equivalent(u.AA):
        step = wave[0] * (np.exp(internal.velocity_step.to_value(u.km / u.s) / _C_KMS) - 1)
        n_lin = int(np.ceil((wave[-1] - wave[0]) / step)) + 1
        linear = Resampler(SpectralGrid.linear(wave[0] * u.AA, wave[-1] * u.AA, n_lin))
        linear.fit(_spectrum(np.ones((1, wave.size)), wave))
    log.info("synthesising %d spectra on %d internal pixels", n, wave.size)

    flux = np.empty((n, wave_out.size))
    # stars of similar radial velocity share a chunk: their lines then fall on
    # nearly the same internal pixels, which keeps the line windows short
    order = np.argsort(rv, kind="stable")
    for start in range(0, n, batch_size):
        part = order[start : start + batch_size]
        raw = model.spectra(teff[part], logg[part], feh[part], alpha[part], factor[part])
        raw = rotational_broaden(wave * u.AA, raw, vsini[part] * u.km / u.s, epsilon=epsilon)
        lsf_wave = wave
        if linear is not None:
            resampled = linear.transform(_spectrum(raw, wave))
            raw = resampled.flux.value
            lsf_wave = resampled.spectral_axis.to_value(u.AA)
        if resolution is not None or fwhm is not None:
            kwargs = {"fwhm": fwhm} if fwhm is not None else {"resolution": resolution}
            raw = gaussian_broaden(lsf_wave * u.AA, raw, **kwargs)
        out = to_output.transform(_spectrum(raw, lsf_wave))
        flux[part] = out.flux.value
    flux /= np.median(flux, axis=1, keepdims=True)

    meta = {"wavelength_medium": "air" if air else "vacuum", "synthetic": True}
    if fwhm is not None:
        meta["fwhm"] = fwhm
    elif resolution is not None:
        meta["resolution"] = float(resolution)
    spectra = Spectrum(flux=flux * u.one, spectral_axis=grid.spectral_axis, meta=meta,
                       spectral_axis_index=1)
    if snr_values is not None:
        spectra = NoiseAugmenter(snr=snr_values, random_state=rng).transform(spectra)
    labels = QTable(
        {
            "teff": teff * u.K,
            "logg": logg * u.dex,
            "feh": feh * u.dex,
            "rv": rv * u.km / u.s,
            "vsini": vsini * u.km / u.s,
            "snr": np.full(n, np.inf) if snr_values is None else snr_values,
        }
    )
    return spectra, labels


def _spectrum(flux, wave):
    return Spectrum(flux=flux * u.one, spectral_axis=wave * u.AA, spectral_axis_index=1)


def _lsf_fwhm_kms(resolution, fwhm, wave):
    """Largest FWHM of the line-spread function in km/s over ``wave`` (0 without one)."""
    if fwhm is not None:
        if not isinstance(fwhm, u.Quantity) or fwhm.ndim != 0:
            raise TypeError(f"fwhm must be a scalar Quantity, got {fwhm!r}")
        if fwhm.unit.is_equivalent(u.km / u.s):
            value = fwhm.to_value(u.km / u.s)
        elif fwhm.unit.is_equivalent(u.AA):
            value = _C_KMS * fwhm.to_value(u.AA) / wave.min()
        else:
            raise u.UnitsError(f"fwhm must be a wavelength or a velocity, got '{fwhm.unit}'")
        if not value > 0:
            raise ValueError(f"fwhm must be positive, got {fwhm!r}")
        return float(value)
    if resolution is None:
        return 0.0
    if isinstance(resolution, bool) or not isinstance(resolution, numbers.Real) or not (
        resolution > 0
    ):
        raise ValueError(f"resolution must be a positive number or None, got {resolution!r}")
    return _C_KMS / float(resolution)
