"""Degrade spectra as another instrument and another sky would record them."""

import numbers

import astropy.units as u
import numpy as np

from .._batch import SpectraBatch, from_batch, to_batch, unknown_ivar_rows
from .._logging import log
from .._params import Converted, Interval
from ._base import GENERATOR_RANDOM_STATE, SpectrumTransformer, generator_rng
from ._docs import fill_doc
from .broaden import Broadener
from .doppler import DopplerShift
from .grid import SpectralGrid
from .normalize import nanmedian_rows
from .resample import Resampler

__all__ = ["InstrumentAugmenter", "ccm89_extinction"]


def ccm89_extinction(wavelength, r_v=3.1):
    """Extinction A_lambda / A_V of Cardelli, Clayton & Mathis (1989).

    The infrared and optical/near-ultraviolet branches (0.3-3.3 inverse
    micron, about 3030 Angstrom to 3.3 micron); outside them it is 0.

    Parameters
    ----------
    wavelength : `~astropy.units.Quantity`
        Wavelengths (any spectral unit convertible to a wavelength).
    r_v : float, default=3.1
        Ratio of total to selective extinction, A_V / E(B-V).

    Returns
    -------
    ndarray
        A_lambda / A_V at each wavelength.

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.preprocessing import ccm89_extinction
    >>> ccm89_extinction([4400, 5500] * u.AA).round(2)   # B and V
    array([1.32, 1.  ])
    """
    wave = u.Quantity(wavelength).to_value(u.micron, equivalencies=u.spectral())
    x = 1.0 / np.atleast_1d(np.asarray(wave, dtype=float))
    a, b = np.zeros_like(x), np.zeros_like(x)
    ir = (x >= 0.3) & (x < 1.1)
    a[ir], b[ir] = 0.574 * x[ir] ** 1.61, -0.527 * x[ir] ** 1.61
    opt = (x >= 1.1) & (x <= 3.3)
    y = x[opt] - 1.82
    a[opt] = (1 + 0.17699 * y - 0.50447 * y**2 - 0.02427 * y**3 + 0.72085 * y**4
              + 0.01979 * y**5 - 0.77530 * y**6 + 0.32999 * y**7)
    b[opt] = (1.41338 * y + 2.28305 * y**2 + 1.07233 * y**3 - 5.38434 * y**4
              - 0.62251 * y**5 + 5.30260 * y**6 - 2.09002 * y**7)
    return a + b / r_v


def _as_range(value, name, unit=None, positive=False):
    """``(low, high)`` floats (in ``unit`` for a Quantity) from a number or a pair."""
    if unit is not None:
        if not isinstance(value, u.Quantity) or not value.unit.is_equivalent(unit):
            raise TypeError(f"{name} must be a Quantity in {unit.physical_type} units, "
                            f"got {value!r}")
        value = value.to_value(unit)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a (low, high) pair, got {value!r}") from None
    if array.ndim == 0:
        array = np.array([float(array)] * 2)
    if array.shape != (2,) or not np.all(np.isfinite(array)) or array[0] > array[1]:
        raise ValueError(f"{name} must be a finite number or a (low, high) pair with "
                         f"low <= high, got {value!r}")
    if positive and array[0] <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return float(array[0]), float(array[1])


def _fwhm_unit(value):
    return u.km / u.s if value.unit.is_equivalent(u.km / u.s) else u.AA


def _check_fwhm(value, name):
    if not isinstance(value, u.Quantity) or not (
            value.unit.is_equivalent(u.AA) or value.unit.is_equivalent(u.km / u.s)):
        raise TypeError(f"{name} must be a wavelength or velocity Quantity, got {value!r}")
    _as_range(value, name, _fwhm_unit(value), positive=True)


def _check_input_fwhm(value, name):
    _check_fwhm(value, name)
    if value.ndim != 0:
        raise TypeError(f"{name} must be a scalar Quantity, got {value!r}")


def _check_velocity(value, name):
    low, high = _as_range(value, name, u.km / u.s)
    if value.ndim != 0 or low < 0:
        raise ValueError(f"{name} must be a non-negative scalar velocity, got {value!r}")


def _check_nonnegative(value, name):
    low, high = _as_range(value, name)
    if low < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")


def _check_coverage(value, name):
    if not isinstance(value, u.Quantity) or value.shape != (2, 2) or not (
            value.unit.is_equivalent(u.AA, equivalencies=u.spectral())):
        raise TypeError(f"{name} must be a (2, 2) wavelength Quantity: the ranges of the "
                        f"blue and of the red edge, got {value!r}")
    edges = value.to_value(u.AA, equivalencies=u.spectral())
    for edge, side in zip(edges, ("blue", "red")):
        _as_range(tuple(edge), f"{name}'s {side} edge", positive=True)
    if edges[0, 1] >= edges[1, 0]:
        raise ValueError(f"{name}'s blue edge range must lie below its red edge range, "
                         f"got {value!r}")


@fill_doc
class InstrumentAugmenter(SpectrumTransformer):
    """Degrade each spectrum as another spectrograph and another sky would record it.

    Training on such copies teaches a model what it will meet in spectra of
    other instruments: the degradations that
    `~stellarlatent.preprocessing.InstrumentMatcher` cannot undo, or undoes
    only in part. Each spectrum draws its own, in this order:

    1. a Gaussian line-spread function of FWHM drawn in ``fwhm``, reached by
       broadening from ``input_fwhm`` (a target within 2% of it, or below it,
       leaves the spectrum as it is);
    2. a residual radial velocity from a normal distribution of standard
       deviation ``rv_scatter`` (what a velocity measurement leaves), after
       which the spectrum is resampled back onto its grid;
    3. a linear continuum tilt, ``1 + t x`` with ``x`` from -0.5 at the
       first pixel to 0.5 at the last and ``t`` drawn in ``tilt`` (flux
       calibration errors);
    4. reddening by E(B-V) drawn in ``ebv``
       (`~stellarlatent.preprocessing.ccm89_extinction`, R_V = 3.1);
    5. photon noise at an S/N per pixel drawn in ``snr`` at the median flux
       (the noise standard deviation is ``sqrt(flux * median) / snr``);
    6. with probability ``coverage_probability``, a shorter wavelength
       coverage: blue and red edges drawn in the two ranges of ``coverage``,
       the pixels outside them masked.

    ``None`` leaves a step out. The draws are made whichever steps are left
    out, so that with the same ``random_state`` the steps that remain are the
    same: one step at a time can be switched off to see what it costs. A
    number instead of a range fixes a value. The output stays on the input
    grid, with the input's inverse variance (propagated by the broadening and
    the resampling, scaled by the tilt and the reddening) plus the added
    noise. To add several degraded copies of each training spectrum, stack
    the spectra several times first (see the example).

    Parameters
    ----------
    fwhm : `~astropy.units.Quantity`, default=None
        Target FWHM of the line-spread function: a wavelength or velocity,
        one value or a (low, high) range.
    input_fwhm : `~astropy.units.Quantity`, default=None
        FWHM of the input spectra's line-spread function (scalar). None
        treats the input as unresolved, so ``fwhm`` is added in full.
    rv_scatter : `~astropy.units.Quantity`, default=5 km/s
        Standard deviation of the residual radial velocity.
    tilt : float or (low, high), default=(-0.1, 0.1)
        Relative continuum change from the first to the last pixel.
    ebv : float or (low, high), default=(0.0, 0.4)
        Colour excess E(B-V) in magnitudes, not negative.
    snr : float or (low, high), default=(20.0, 150.0)
        S/N per pixel at the median flux, positive.
    coverage : `~astropy.units.Quantity` of shape (2, 2), default=None
        The ranges of the blue edge and of the red edge, for example
        ``[[3700, 4000], [6700, 7300]] * u.AA``.
    coverage_probability : float, default=0.5
        Share of the spectra whose coverage is cut (with ``coverage``).
    random_state : int, `~numpy.random.RandomState`, `~numpy.random.Generator` or None, default=None
        Seed of the draws (`numpy.random.default_rng`); an int draws the same
        degradations at every call.

    Notes
    -----
    Per spectrum, the output's ``meta`` records what was drawn:
    ``augment_fwhm`` (a Quantity in the unit of ``fwhm``), ``augment_rv``
    (km/s), ``augment_tilt``, ``augment_ebv``, ``augment_snr`` and
    ``augment_coverage`` (True where the coverage was cut), NaN where a step
    was left out. The velocity scatter is applied exactly (a relativistic
    Doppler factor) but is meant to be small: the resampled spectrum loses
    the pixels shifted off its grid.

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import InstrumentAugmenter
    >>> wave = np.linspace(4000, 6000, 4000) * u.AA
    >>> line = 1 - 0.5 * np.exp(-0.5 * ((wave.value - 5000) / 0.8) ** 2)
    >>> three = Spectrum(flux=np.tile(line, (3, 1)) * u.one, spectral_axis=wave)
    >>> augmenter = InstrumentAugmenter(fwhm=(3, 4) * u.AA, input_fwhm=2 * u.AA,
    ...                                 random_state=0)
    >>> copies = augmenter.transform(three)   # three degraded copies of one star
    >>> copies.flux.shape
    (3, 4000)
    >>> copies.meta["augment_fwhm"].round(2)
    <Quantity [3.64, 3.16, 3.25] Angstrom>
    >>> copies.meta["augment_snr"].round()
    array([126., 136.,  37.])
    """

    _parameter_constraints = {
        "fwhm": [None, Converted(_check_fwhm, "a wavelength or velocity Quantity or range")],
        "input_fwhm": [None, Converted(_check_input_fwhm, "a scalar wavelength or velocity "
                                                          "Quantity")],
        "rv_scatter": [None, Converted(_check_velocity, "a non-negative velocity Quantity")],
        "tilt": [None, Converted(_as_range, "a number or range")],
        "ebv": [None, Converted(_check_nonnegative, "a non-negative number or range")],
        "snr": [None, Converted(lambda v, name: _as_range(v, name, positive=True),
                                "a positive number or range")],
        "coverage": [None, Converted(_check_coverage, "a (2, 2) wavelength Quantity")],
        "coverage_probability": [Interval(numbers.Real, 0, 1, closed="both")],
        "random_state": GENERATOR_RANDOM_STATE,
    }

    def __init__(self, fwhm=None, input_fwhm=None, rv_scatter=5 * u.km / u.s,
                 tilt=(-0.1, 0.1), ebv=(0.0, 0.4), snr=(20.0, 150.0), coverage=None,
                 coverage_probability=0.5, random_state=None):
        self.fwhm = fwhm
        self.input_fwhm = input_fwhm
        self.rv_scatter = rv_scatter
        self.tilt = tilt
        self.ebv = ebv
        self.snr = snr
        self.coverage = coverage
        self.coverage_probability = coverage_probability
        self.random_state = random_state

    def _check_params(self):
        super()._check_params()
        if self.fwhm is not None and self.input_fwhm is not None and (
                _fwhm_unit(self.fwhm) != _fwhm_unit(self.input_fwhm)):
            raise u.UnitsError("fwhm and input_fwhm must both be wavelengths or both "
                               f"velocities, got '{self.fwhm.unit}' and "
                               f"'{self.input_fwhm.unit}'")

    def transform(self, spectra):
        """Degrade each spectrum with its own draws (see the class description).

        Parameters
        ----------
        spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
            One spectrum, a batch, or a list of spectra on one grid.

        Returns
        -------
        `~specutils.Spectrum`
            A batch of the degraded copies.
        """
        out = super().transform(spectra)
        if self.fwhm is not None and self.input_fwhm is not None:
            unit = _fwhm_unit(self.fwhm)
            highest = _as_range(self.fwhm, "fwhm", unit)[1]
            given = self.input_fwhm.to_value(unit)
            if highest <= 1.02 * given:
                log.warning("InstrumentAugmenter: fwhm (up to %g %s) is not above input_fwhm "
                            "(%g %s): a spectrum cannot be sharpened, so no copy is broadened",
                            highest, unit, given, unit)
        return out

    def _ranges(self):
        def pair(value, name, unit=None):
            return (0.0, 0.0) if value is None else _as_range(value, name, unit)

        unit = None if self.fwhm is None else _fwhm_unit(self.fwhm)
        coverage = (np.zeros((2, 2)) if self.coverage is None
                    else self.coverage.to_value(u.AA, equivalencies=u.spectral()))
        return {"fwhm": pair(self.fwhm, "fwhm", unit),
                "rv": pair(self.rv_scatter, "rv_scatter", u.km / u.s)[0],
                "tilt": pair(self.tilt, "tilt"), "ebv": pair(self.ebv, "ebv"),
                "snr": (1.0, 1.0) if self.snr is None else _as_range(self.snr, "snr"),
                "blue": tuple(coverage[0]), "red": tuple(coverage[1])}

    def _draw(self, rng, ranges, n_pixels):
        """One spectrum's draws, in a fixed order whichever steps are on."""
        draw = {"fwhm": rng.uniform(*ranges["fwhm"]), "rv": -rng.normal(0.0, ranges["rv"]),
                "tilt": rng.uniform(*ranges["tilt"]), "ebv": rng.uniform(*ranges["ebv"]),
                "snr": rng.uniform(*ranges["snr"]), "noise": rng.standard_normal(n_pixels),
                "cut": bool(rng.uniform() < self.coverage_probability)}
        if draw["cut"]:
            (blue_lo, blue_hi), (red_lo, red_hi) = ranges["blue"], ranges["red"]
            draw["blue"] = blue_lo + rng.uniform(0, blue_hi - blue_lo)
            draw["red"] = red_hi - rng.uniform(0, red_hi - red_lo)
        return draw

    def _transform_batch(self, batch):
        rng = generator_rng(self.random_state)
        ranges = self._ranges()
        wave = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        x = (wave - wave[0]) / (wave[-1] - wave[0]) - 0.5
        extinction = ccm89_extinction(wave * u.AA) * 3.1  # A_lambda / E(B-V)
        grid = SpectralGrid(batch.spectral_axis)
        n = batch.n_spectra
        recorded = {key: np.full(n, np.nan) for key in ("fwhm", "rv", "tilt", "ebv", "snr")}
        cut = np.zeros(n, dtype=bool)
        flux_out = np.empty_like(batch.flux, dtype=float)
        var_out = np.empty_like(flux_out)
        mask_out = np.empty_like(batch.mask)
        for i in range(n):
            draw = self._draw(rng, ranges, batch.n_pixels)
            one = batch.replace(flux=batch.flux[i:i + 1], mask=batch.mask[i:i + 1],
                                ivar=None if batch.ivar is None else batch.ivar[i:i + 1],
                                meta={})
            one, recorded["fwhm"][i] = self._broaden(one, draw["fwhm"])
            if self.rv_scatter is not None:
                recorded["rv"][i] = draw["rv"]
                shifted = DopplerShift(rv=[draw["rv"]] * u.km / u.s, inject=True).transform(
                    from_batch(one))
                one = to_batch(Resampler(grid).fit_transform(shifted))
            flux, mask = np.array(one.flux[0], dtype=float), np.array(one.mask[0], dtype=bool)
            var = np.zeros_like(flux)
            if one.ivar is not None and not unknown_ivar_rows(one.ivar)[0]:
                with np.errstate(divide="ignore", invalid="ignore"):
                    var = np.where(one.ivar[0] > 0, 1.0 / one.ivar[0], np.inf)
            factor = np.ones_like(flux)
            if self.tilt is not None:
                factor *= 1 + draw["tilt"] * x
                recorded["tilt"][i] = draw["tilt"]
            if self.ebv is not None:
                factor *= 10 ** (-0.4 * draw["ebv"] * extinction)
                recorded["ebv"][i] = draw["ebv"]
            flux, var = flux * factor, var * factor**2
            if self.snr is not None:
                level = nanmedian_rows(np.where(mask, np.nan, flux)[np.newaxis])[0, 0]
                if not np.isfinite(level) or level <= 0:
                    raise ValueError(f"spectra[{i}] has a median flux of {level:.6g} over its "
                                     "unmasked pixels; photon noise at a given S/N needs a "
                                     "positive one")
                sigma = np.sqrt(np.clip(np.nan_to_num(flux), 0, None) * level) / draw["snr"]
                flux, var = flux + sigma * draw["noise"], var + sigma**2
                recorded["snr"][i] = draw["snr"]
            if draw["cut"] and self.coverage is not None:
                mask = mask | (wave < draw["blue"]) | (wave > draw["red"])
                cut[i] = True
            flux_out[i], var_out[i], mask_out[i] = flux, var, mask
        ivar = None
        if batch.ivar is not None or self.snr is not None:
            with np.errstate(divide="ignore"):
                ivar = np.where(mask_out | ~(var_out > 0) | ~np.isfinite(var_out), 0.0,
                                1.0 / var_out)
        meta = dict(batch.meta)
        fwhm_unit = u.AA if self.fwhm is None else _fwhm_unit(self.fwhm)
        meta.update(
            augment_fwhm=recorded["fwhm"] * fwhm_unit, augment_rv=recorded["rv"],
            augment_tilt=recorded["tilt"], augment_ebv=recorded["ebv"],
            augment_snr=recorded["snr"], augment_coverage=cut)
        return SpectraBatch(flux=flux_out, spectral_axis=batch.spectral_axis, ivar=ivar,
                            mask=mask_out | ~np.isfinite(flux_out), flux_unit=batch.flux_unit,
                            meta=meta)

    def _broaden(self, one, fwhm):
        """``one`` broadened to ``fwhm`` (in the unit of ``self.fwhm``), and the FWHM reached."""
        if self.fwhm is None:
            return one, np.nan
        unit = _fwhm_unit(self.fwhm)
        given = None if self.input_fwhm is None else self.input_fwhm.to_value(unit)
        if given is not None and fwhm <= 1.02 * given:
            return one, max(fwhm, given)
        broadener = Broadener(fwhm=fwhm * unit,
                              input_fwhm=None if given is None else given * unit)
        return to_batch(broadener.transform(from_batch(one))), fwhm
