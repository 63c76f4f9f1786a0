"""Bring spectra of another instrument to a model's: wavelength medium, resolution, rest frame."""

import astropy.units as u
import numpy as np
from specutils import Spectrum

from .._batch import from_batch, iter_batches, per_spectrum
from .._logging import log
from .._params import Converted, Options
from ._base import SpectrumTransformer
from ._docs import fill_doc
from .airvac import _AIR_LIMIT, air_to_vacuum, vacuum_to_air
from .cosmic import COSMIC_RAY_THRESHOLD, masked_spikes
from .broaden import (_C_KMS, _FWHM_PER_SIGMA, _broaden, _check_fwhm, _check_resolution,
                      _fwhm_kms)
from .doppler import _rv_bounds
from .radial_velocity import RadialVelocityEstimator, _check_systematic, _remove_rv
from .grid import SpectralGrid
from .resample import Resampler

__all__ = ["InstrumentMatcher", "RESOLUTION_STATUS"]

#: what ``meta["resolution_status"]`` says of each spectrum
RESOLUTION_STATUS = {
    "matched": "broadened to the model's line-spread function",
    "coarser": "coarser than the model's line-spread function (cannot be sharpened)",
    "unknown": "resolution not recorded in the file nor given: left as it is",
}
#: a spectrum this much coarser than the model at the centre of its range is "coarser"
_COARSER_BY = 1.05
#: pixels per FWHM of the target below which a finer spectrum is resampled before broadening
_PIXELS_PER_FWHM = 6.0
#: pixels per FWHM below which a spectrum is not searched for cosmic rays: a line of FWHM
#: 1.5 pixels drops 2.5 times as steeply to its neighbours as beyond them, still short of the
#: test's 4 (see `find_cosmic_rays`, which assumes 2 and has this margin)
_LEAST_PIXELS_PER_FWHM = 1.5
#: the templates of the synthetic set: (Teff, log g), solar metallicity, no rotation
_SYNTHETIC_TEMPLATES = ((3600.0, 4.6), (4500.0, 4.5), (5500.0, 4.4), (6500.0, 4.2),
                        (8500.0, 4.0), (15000.0, 4.0))


def _check_templates(templates, name):
    spectra = templates if isinstance(templates, (list, tuple)) else [templates]
    if not spectra or not all(isinstance(s, Spectrum) for s in spectra):
        raise TypeError(f"{name} must be a specutils.Spectrum (one or a batch of templates), "
                        f"a list of them, or None; got {type(templates).__name__}")


#: How far beyond ``wavelength_range`` (relative) pixels are kept: velocities, the
#: line-spread function, the air-vacuum difference and the velocity templates (which
#: may reach past the model's grid) all stay inside it
_RANGE_MARGIN = 0.10


def _wavelength_range(value, name):
    """The (min, max) of a wavelength range in Angstrom, checked."""
    try:
        bounds = u.Quantity(value).to_value(u.AA, equivalencies=u.spectral())
    except (TypeError, ValueError, u.UnitsError):
        raise TypeError(f"{name} must be a (min, max) wavelength Quantity, got {value!r}"
                        ) from None
    bounds = np.sort(np.ravel(bounds))
    if bounds.shape != (2,) or not np.all(np.isfinite(bounds)) or not 0 < bounds[0] < bounds[1]:
        raise ValueError(f"{name} must be a (min, max) wavelength Quantity with 0 < min < max, "
                         f"got {value!r}")
    return bounds


def _input_fwhm_kms(meta, k, n, wave, given_r, given_fwhm):
    """FWHM (km/s, per pixel) of spectrum ``k`` of a batch of ``n``, or None when unknown.

    What the spectrum's ``meta`` records comes first; ``given_r`` or
    ``given_fwhm`` stand in where it records nothing.
    """
    recorded = _recorded_fwhm_kms(meta, k, n, wave)
    if recorded is not None:
        return recorded
    if given_r is not None:
        return _fwhm_kms(float(given_r), wave, "input_resolution")
    if given_fwhm is not None:
        return _fwhm_kms(given_fwhm, wave, "input_fwhm")
    return None


def _recorded_fwhm_kms(meta, k, n, wave):
    for key, kind in (("fwhm", "fwhm"), ("resolution", "r"), ("resolving_power", "r")):
        value = (meta or {}).get(key)
        if per_spectrum(value, n):
            value = value[k]
        if value is None:
            continue
        try:
            if kind == "fwhm":
                value = u.Quantity(value, u.AA) if not isinstance(value, u.Quantity) else value
                if value.isscalar and np.isfinite(value.value) and value.value > 0:
                    return _fwhm_kms(value, wave, key)
            elif np.isscalar(value) and np.isfinite(float(value)) and float(value) > 0:
                return _fwhm_kms(float(value), wave, key)
        except (TypeError, ValueError, u.UnitsError):
            continue
    return None


#: flux density per unit wavelength, the convention of the spectral libraries
_PER_WAVELENGTH = u.erg / u.s / u.cm**2 / u.AA


def _per_wavelength(batch):
    """``batch`` with a flux density per unit frequency (F_nu: Jy, erg/s/cm2/Hz)
    converted to one per unit wavelength (F_lambda), whose slope the models learned.

    Any other flux (F_lambda, counts, a relative flux) is left as it is.
    """
    unit = batch.flux_unit
    if unit is None or isinstance(unit, u.UnrecognizedUnit) \
            or unit.physical_type != "spectral flux density":
        return batch
    wave = batch.spectral_axis.to(u.AA, equivalencies=u.spectral())
    factor = (1 * unit).to_value(_PER_WAVELENGTH, equivalencies=u.spectral_density(wave))
    flux = batch.flux * factor
    ivar = None if batch.ivar is None else batch.ivar / factor**2
    return batch.replace(flux=flux, ivar=ivar, flux_unit=_PER_WAVELENGTH)


def _median_flux(batch):
    """The median valid flux of each spectrum, (n, 1); a ValueError where it is not positive."""
    valid = ~batch.mask & np.isfinite(batch.flux)
    with np.errstate(invalid="ignore"):
        scale = np.nanmedian(np.where(valid, batch.flux, np.nan), axis=1, keepdims=True)
    negative = np.flatnonzero(np.isfinite(scale[:, 0]) & (scale[:, 0] <= 0))
    if negative.size:
        first = int(negative[0])
        more = f" (and {negative.size - 1} more)" if negative.size > 1 else ""
        raise ValueError(
            f"spectra[{first}]{more} has a median flux of {scale[first, 0]:.4g}, not "
            "positive: the light of a star is positive (flux with its sign flipped, or "
            "a sky subtraction that left no star?)")
    return scale


@fill_doc
class InstrumentMatcher(SpectrumTransformer):
    """Bring spectra of another instrument to the instrument a model was trained on.

    For each spectrum, in order:

    0. **Cosmic rays** (``mask_cosmic_rays=True``): upward spikes of one or
       two pixels, narrower than any line-spread function, are found at the
       spectrum's own sampling (`find_cosmic_rays`) and their flux
       interpolated between the pixels about them, before broadening
       spreads them into something a model reads as a line.
    1. **Flux density** (``flux_density="per_wavelength"``): a flux per
       unit frequency (F_nu, such as Jy) is converted to one per unit
       wavelength (F_lambda), the convention of the spectral libraries
       models are trained on: the slope of F_nu against wavelength is
       another star's.
    2. **Wavelength medium**: air wavelengths are converted to vacuum, or
       vacuum to air, when ``meta["wavelength_medium"]`` says the spectrum is
       in the other convention than ``medium``.
    3. **Resolution**: a spectrum finer than the model's line-spread function
       (``fwhm`` or ``resolution``) is broadened to it by a Gaussian of the
       quadrature difference, from its own resolution (``meta["fwhm"]`` or
       ``meta["resolution"]`` as the readers record them, else
       ``input_resolution`` or ``input_fwhm``). A spectrum coarser than the model cannot be
       sharpened: it is left as it is and flagged.
    4. **Radial velocity**: measured by cross-correlation
       (`RadialVelocityEstimator`) against each template, the one with the
       highest correlation peak kept, and removed (the spectrum is shifted to
       its rest frame).

    The output is in Angstrom. A spectrum much finer than ``fwhm`` (a HARPS
    spectrum for a MILES model) is first resampled, flux-conserving, onto a
    log-uniform grid of a sixth of ``fwhm``, so its output has fewer pixels
    than its input; the model's own preprocessing resamples it afterwards.

    Parameters
    ----------
    fwhm : `~astropy.units.Quantity`, default=2.5 Angstrom
        The model's line-spread function (MILES' 2.5 Angstrom); a wavelength
        (constant FWHM) or a velocity (constant R).
    resolution : float, default=None
        The model's resolving power instead of ``fwhm`` (give at most one of
        them; with neither, the resolution is left as it is).
    medium : {"air", "vacuum"} or None, default="air"
        The model's wavelength convention; None leaves the wavelengths as
        they are.
    input_resolution : float, default=None
        Resolving power of the input spectra whose ``meta`` records none
        (a file's own header, read into ``meta``, is taken first).
    input_fwhm : `~astropy.units.Quantity`, default=None
        FWHM of their line-spread function, instead.
    rv_templates : `~specutils.Spectrum` or list of `~specutils.Spectrum`, default=None
        Rest-frame templates on any grid, in ``medium``, at about the model's
        resolution; a batch counts as one template per row. None makes six
        noise-free synthetic spectra (3600-15000 K,
        `~stellarlatent.datasets.make_synthetic_spectra`) over the range of the
        spectra given to `fit`; empirical templates of the model's training
        stars do better (the bundled models carry theirs: see
        `stellarlatent.pretrained.instrument_matcher`).
    remove_rv : bool, default=True
        Whether to measure and remove radial velocities.
    rv_range : (low, high) `~astropy.units.Quantity`, default=(-500, 500) km/s
        Velocities searched.
    rv_systematic : `~astropy.units.Quantity`, default=0 km/s
        Added in quadrature to the uncertainty of every velocity (the
        ``systematic_error`` of `RadialVelocityEstimator`).
    rescale : bool, default=False
        Divide each spectrum by the median of its valid flux, so that the
        output is dimensionless and spectra in different flux units (ADU,
        erg/s/cm2/A, relative) go on as one batch; for a model whose own
        normalisation does not depend on the flux scale. A spectrum whose
        median flux is zero or negative is refused with a ValueError (dividing
        by it would flip the spectrum into a plausible star).
    flux_density : {"per_wavelength", None}, default="per_wavelength"
        The flux the model was trained on: per unit wavelength (F_lambda, as
        the bundled models, trained on MILES), to which a flux per unit
        frequency is converted; None leaves every flux as it is (a model
        trained on spectra in F_nu).
    mask_cosmic_rays : bool, default=True
        Whether to mask cosmic rays (see `CosmicRayMasker`). A spectrum
        whose resolution is known (``meta`` or ``input_resolution``) and
        sampled with fewer than 1.5 pixels per FWHM is not searched: a line
        could pass for a spike there.
    wavelength_range : (min, max) `~astropy.units.Quantity`, default=None
        The wavelengths the model uses. Pixels more than 10% beyond them are
        left out first: they cannot reach the model's grid, and broadening
        a spectrum of a million pixels that spans the infrared (a PHOENIX
        model) takes far longer than the part the model sees. None keeps
        every pixel.

    Attributes
    ----------
    rv_estimators_ : list of `RadialVelocityEstimator`
        One fitted estimator per template (empty with ``remove_rv=False``).

    Notes
    -----
    `transform` refuses spectra that lie wholly outside ``wavelength_range``
    (a ValueError that says where they lie): given in a list with others on
    other grids, they stop the whole list, so read such files one by one (as
    the ``stellarlatent`` commands do, skipping them).

    `transform` records, one value per spectrum, ``meta["cosmic_rays"]``
    (the pixels interpolated over as cosmic rays, NaN for a spectrum not searched;
    with ``mask_cosmic_rays``),
    ``meta["rv"]`` and
    ``meta["rv_err"]`` (km/s; NaN where no velocity was found; not recorded
    with ``remove_rv=False``),
    ``meta["input_medium"]`` (``"air"``, ``"vacuum"``, or ``"unknown"``
    where the spectrum did not say: it is then taken to be in ``medium``,
    and a wrong guess shows as a velocity of about 85 km/s),
    ``meta["input_fwhm"]`` (the spectrum's FWHM in Angstrom at the centre of
    its range; NaN when unknown) and ``meta["resolution_status"]``
    (``"matched"``, ``"coarser"`` or ``"unknown"``; see `RESOLUTION_STATUS`).
    These entries survive resampling and stacking, so that
    ``stellarlatent predict`` reports them next to the labels. Spectra on
    several grids come back as a list of batches, one per grid, for the
    `Resampler` that follows.

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.datasets import make_synthetic_spectra
    >>> from stellarlatent.preprocessing import InstrumentMatcher
    >>> star = dict(teff=5800.0, logg=4.4, feh=0.0, snr=100, air=False)
    >>> spectra, labels = make_synthetic_spectra(  # a vacuum, R = 5000 spectrograph
    ...     3, rv=[-80, 10, 150] * u.km / u.s, resolution=5000, random_state=0, **star)
    >>> matched = InstrumentMatcher(fwhm=2.5 * u.AA, medium="air").fit_transform(spectra)
    >>> matched.meta["wavelength_medium"], matched.meta["resolution_status"].tolist()
    ('air', ['matched', 'matched', 'matched'])
    >>> matched.meta["rv"].round(-1)
    <Quantity [-80.,  10., 150.] km / s>
    """

    _parameter_constraints = {
        "fwhm": [None, Converted(_check_fwhm, "a wavelength or velocity Quantity")],
        "resolution": [None, Converted(_check_resolution, "a positive number (R)")],
        "medium": [None, Options("air", "vacuum")],
        "input_resolution": [None, Converted(_check_resolution, "a positive number (R)")],
        "input_fwhm": [None, Converted(_check_fwhm, "a wavelength or velocity Quantity")],
        "rv_templates": [None, Converted(_check_templates, "a specutils.Spectrum or a list "
                                                           "of them")],
        "remove_rv": ["boolean"],
        "rv_range": [Converted(_rv_bounds, "a (low, high) velocity Quantity")],
        "rv_systematic": [Converted(_check_systematic, "a velocity Quantity of at least 0")],
        "rescale": ["boolean"],
        "flux_density": [None, Options("per_wavelength")],
        "mask_cosmic_rays": ["boolean"],
        "wavelength_range": [None, Converted(_wavelength_range,
                                             "a (min, max) wavelength Quantity")],
    }
    _fitted_attribute = "rv_estimators_"

    def __init__(
        self,
        fwhm=2.5 * u.AA,
        resolution=None,
        medium="air",
        input_resolution=None,
        input_fwhm=None,
        rv_templates=None,
        remove_rv=True,
        rv_range=(-500, 500) * u.km / u.s,
        rv_systematic=0 * u.km / u.s,
        rescale=False,
        wavelength_range=None,
        flux_density="per_wavelength",
        mask_cosmic_rays=True,
    ):
        self.fwhm = fwhm
        self.resolution = resolution
        self.medium = medium
        self.input_resolution = input_resolution
        self.input_fwhm = input_fwhm
        self.rv_templates = rv_templates
        self.remove_rv = remove_rv
        self.rv_range = rv_range
        self.rv_systematic = rv_systematic
        self.rescale = rescale
        self.wavelength_range = wavelength_range
        self.flux_density = flux_density
        self.mask_cosmic_rays = mask_cosmic_rays

    def _check_params(self):
        super()._check_params()
        if self.fwhm is not None and self.resolution is not None:
            raise ValueError("give one of fwhm and resolution (the model's line-spread "
                             "function), not both")
        if self.input_resolution is not None and self.input_fwhm is not None:
            raise ValueError("give input_resolution or input_fwhm, not both")

    def _target(self):
        if self.fwhm is None and self.resolution is None:
            return None
        return self.fwhm if self.resolution is None else float(self.resolution)

    def fit(self, spectra=None, y=None):
        """Set up the velocity templates.

        Parameters
        ----------
        spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`, default=None
            Spectra like those to transform: with ``rv_templates=None`` the
            synthetic templates span their wavelength range (3500-7500
            Angstrom without them).
        %(y)s

        Returns
        -------
        self
        """
        self._check_params()
        self.rv_estimators_ = []
        if not self.remove_rv:
            return self
        templates = self.rv_templates
        if templates is None:
            templates = self._synthetic_templates(spectra)
        rows = []
        for template in (templates if isinstance(templates, (list, tuple)) else [templates]):
            batch = iter_batches(template, "rv_templates")[0]
            rows.extend(from_batch(batch)[k] for k in range(batch.n_spectra))
        self.rv_estimators_ = [
            RadialVelocityEstimator(template=t, rv_range=self.rv_range,
                                    systematic_error=self.rv_systematic).fit(t)
            for t in rows]
        return self

    def _synthetic_templates(self, spectra):
        from ..datasets import make_synthetic_spectra

        lo, hi = 3500.0, 7500.0
        if spectra is not None:
            waves = [b.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
                     for b in iter_batches(spectra, "spectra")]
            lo = max(1000.0, min(float(np.nanmin(w)) for w in waves) - 50.0)
            hi = max(float(np.nanmax(w)) for w in waves) + 50.0
        # without a target, templates at MILES' resolution
        target = self._target() if self._target() is not None else 2.5 * u.AA
        if not isinstance(target, u.Quantity):
            step, kwargs = _C_KMS / target, {"resolution": target}
        elif target.unit.is_equivalent(u.km / u.s):
            step, kwargs = target.to_value(u.km / u.s), {"fwhm": target}
        else:
            step, kwargs = _C_KMS * target.to_value(u.AA) / hi, {"fwhm": target}
        # three pixels per FWHM at its narrowest
        grid = np.exp(np.arange(np.log(lo), np.log(hi), step / 3.0 / _C_KMS)) * u.AA
        out = []
        for teff, logg in _SYNTHETIC_TEMPLATES:
            spectrum, _ = make_synthetic_spectra(
                1, grid=grid, teff=teff, logg=logg, feh=0.0, rv=0 * u.km / u.s,
                vsini=0 * u.km / u.s, snr=None, air=self.medium != "vacuum", **kwargs)
            out.append(spectrum)
        return out

    def transform(self, spectra):
        """Convert, broaden and shift the spectra to the model's instrument.

        See Notes for the ``meta`` entries of the output.

        %(each_grid)s
        """
        return self._transform_each_grid(spectra)

    def _transform_batch(self, batch):
        batch = self._within_range(batch)
        if self.rescale:  # before the costly steps
            _median_flux(batch)
        if self.mask_cosmic_rays:
            # interpolated over: a masked pixel of a spectrum much finer than the model
            # would mask a whole pixel of the model after broadening
            batch = masked_spikes(batch, COSMIC_RAY_THRESHOLD, skip=self._undersampled(batch),
                                  interpolate=True)
        if self.flux_density == "per_wavelength":
            batch = _per_wavelength(batch)
        batch = self._to_medium(batch)
        batch = self._match_resolution(batch)
        batch = self._rest_frame(batch)
        return self._rescale(batch) if self.rescale else batch

    def _undersampled(self, batch):
        """Which spectra are known to sample their line-spread function too coarsely for the
        cosmic-ray test (fewer than `_LEAST_PIXELS_PER_FWHM` pixels per FWHM)."""
        axis = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        wave = np.sort(axis)
        centre = len(wave) // 2
        if len(wave) < 3:
            return np.zeros(batch.n_spectra, bool)
        step = _C_KMS * float(np.median(np.diff(np.log(wave))))
        coarse = np.zeros(batch.n_spectra, bool)
        for k in range(batch.n_spectra):
            fwhm = _input_fwhm_kms(batch.meta, k, batch.n_spectra, wave, self.input_resolution,
                                   self.input_fwhm)
            coarse[k] = fwhm is not None and fwhm[centre] < _LEAST_PIXELS_PER_FWHM * step
        if coarse.any():
            log.warning("%d of %d spectra sample their line-spread function with fewer than "
                        "%g pixels per FWHM: not searched for cosmic rays (cosmic_rays NaN)",
                        int(coarse.sum()), batch.n_spectra, _LEAST_PIXELS_PER_FWHM)
        return coarse

    @staticmethod
    def _rescale(batch):
        scale = _median_flux(batch)
        scale = np.where(np.isfinite(scale), scale, 1.0)
        return batch.replace(flux=batch.flux / scale, flux_unit=u.dimensionless_unscaled,
                             ivar=None if batch.ivar is None else batch.ivar * scale**2)

    def _within_range(self, batch):
        if self.wavelength_range is None:
            return batch
        lo, hi = _wavelength_range(self.wavelength_range, "wavelength_range")
        wave = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        keep = (wave >= lo * (1 - _RANGE_MARGIN)) & (wave <= hi * (1 + _RANGE_MARGIN))
        if not keep.any():
            hint = (" (a logarithm of the wavelength read as the wavelength? IRAF files with "
                    "DC-FLAG = 1 are log-linear)" if np.nanmax(wave) < 10 else "")
            raise ValueError(f"the spectra lie at {np.nanmin(wave):.6g}-{np.nanmax(wave):.6g} "
                             f"Angstrom, none of the model's {lo:.6g}-{hi:.6g} Angstrom{hint}")
        if keep.all():
            return batch
        return _pixels(batch, keep)

    def _to_medium(self, batch):
        given = batch.meta.get("wavelength_medium")
        stated = given if given in ("air", "vacuum") else "unknown"
        batch = batch.replace(meta={**batch.meta,
                                    "input_medium": np.full(batch.n_spectra, stated, dtype="U7")})
        if self.medium is None or given not in ("air", "vacuum") or given == self.medium:
            return batch
        convert = vacuum_to_air if self.medium == "air" else air_to_vacuum
        if self.medium == "air":
            batch = _without_far_ultraviolet(batch)
        axis = batch.spectral_axis
        wave = convert(axis.to(u.AA, equivalencies=u.spectral())).to(axis.unit,
                                                                     equivalencies=u.spectral())
        return batch.replace(spectral_axis=wave,
                             meta={**batch.meta, "wavelength_medium": self.medium})

    def _coarsen(self, batch, target_kms):
        """Resample a much finer batch onto a log grid of a sixth of the target FWHM.

        A HARPS spectrum has some 20 pixels per MILES line-spread function and
        300,000 in all: broadening it directly needs a kernel matrix of
        hundreds of millions of entries. Flux-conserving resampling first is
        exact for what the broadened spectrum can show. Returns the batch and
        the variance (km/s squared) its new pixels add to the line width.
        """
        axis = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        lnw = np.log(np.sort(axis))
        step = _C_KMS * float(np.median(np.diff(lnw)))
        wanted = float(np.min(target_kms)) / _PIXELS_PER_FWHM
        if step >= wanted / 2:
            return batch, 0.0
        n = int(np.ceil((lnw[-1] - lnw[0]) * _C_KMS / wanted))
        grid = SpectralGrid.log_uniform(np.exp(lnw[0]) * u.AA, np.exp(lnw[-1]) * u.AA, n)
        out = iter_batches(Resampler(grid).fit_transform(from_batch(batch)), "spectra")[0]
        return out.replace(meta=batch.meta), (_C_KMS * (lnw[-1] - lnw[0]) / (n - 1)) ** 2 / 12.0

    def _match_resolution(self, batch):
        if self._target() is None:
            return batch
        axis = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        batch, pixel_variance = self._coarsen(
            batch, _fwhm_kms(self._target(), np.array([axis.min(), axis.max()]), "fwhm"))
        axis = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        order = slice(None) if axis[-1] > axis[0] else slice(None, None, -1)
        wave = axis[order]
        target = _fwhm_kms(self._target(), wave, "fwhm")
        centre = len(wave) // 2
        flux, ivar, mask = batch.flux.copy(), None if batch.ivar is None else batch.ivar.copy(), \
            batch.mask.copy()
        status, input_fwhm = [], np.full(batch.n_spectra, np.nan)
        for k in range(batch.n_spectra):
            source = _input_fwhm_kms(batch.meta, k, batch.n_spectra, wave,
                                     self.input_resolution, self.input_fwhm)
            if source is None:
                status.append("unknown")
                continue
            input_fwhm[k] = source[centre] / _C_KMS * wave[centre]
            if source[centre] > _COARSER_BY * target[centre]:
                status.append("coarser")
                continue
            status.append("matched")
            sigma = np.sqrt(np.clip((target**2 - source**2) / _FWHM_PER_SIGMA**2
                                    - pixel_variance, 0.0, None))
            if not np.any(sigma > 0):
                continue
            f, iv, m = _broaden(wave, batch.flux[k:k + 1, order],
                                None if ivar is None else batch.ivar[k:k + 1, order],
                                batch.mask[k:k + 1, order], sigma=sigma)
            flux[k, order], mask[k, order] = f[0], m[0]
            if ivar is not None:
                ivar[k, order] = iv[0]
        meta = {**batch.meta, "input_fwhm": input_fwhm * u.AA,
                "resolution_status": np.array(status, dtype="U7")}
        for key in ("fwhm", "resolution", "resolving_power"):
            meta.pop(key, None)
        if all(s == "matched" for s in status):
            meta["fwhm" if self.resolution is None else "resolution"] = self._target()
        return batch.replace(flux=flux, ivar=ivar, mask=mask, meta=meta)

    def _rest_frame(self, batch):
        n = batch.n_spectra
        if not self.rv_estimators_:
            # nothing measured: a velocity the file's header gave stays as it was
            return batch
        spectrum = from_batch(batch)
        best_peak = np.full(n, -np.inf)
        rv, rv_err = np.full(n, np.nan), np.full(n, np.nan)
        for estimator in self.rv_estimators_:
            table = estimator._estimate(spectrum)  # one warning below, not one per template
            peak = np.nan_to_num(np.asarray(table["ccf_peak"], dtype=float), nan=-np.inf)
            values = table["rv"].to_value(u.km / u.s)
            take = (peak > best_peak) & np.isfinite(values)
            best_peak = np.where(take, peak, best_peak)
            rv = np.where(take, values, rv)
            rv_err = np.where(take, table["rv_err"].to_value(u.km / u.s), rv_err)
        if np.any(~np.isfinite(rv)):
            log.warning("%d of %d spectra: no radial velocity found within %s; left unshifted",
                        int(np.sum(~np.isfinite(rv))), n, self.rv_range)
        shifted = batch
        if np.any(np.isfinite(rv)):
            # the velocity is removed and the spectrum put back on its own grid
            back = iter_batches(_remove_rv(spectrum, batch.spectral_axis, np.nan_to_num(rv)),
                                "spectra")[0]
            shifted = batch.replace(flux=back.flux, ivar=back.ivar, mask=back.mask)
        return shifted.replace(meta={**batch.meta, "rv": rv * u.km / u.s,
                                     "rv_err": rv_err * u.km / u.s})


def _without_far_ultraviolet(batch):
    """The pixels of a vacuum batch from 2000 Angstrom on, where it also has some beyond.

    Below 2000 Angstrom wavelengths stay in vacuum (IAU convention), so the
    0.65 Angstrom just above, converted to air, would fold back over them and
    the axis would no longer increase (a PHOENIX spectrum starts at 500
    Angstrom). No model reaches that far into the ultraviolet.
    """
    wave = batch.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
    keep = wave >= _AIR_LIMIT
    if keep.all() or not keep.any():
        return batch
    log.debug("InstrumentMatcher: %d pixels below %g Angstrom left out before the conversion "
              "to air", int((~keep).sum()), _AIR_LIMIT)
    return _pixels(batch, keep)


def _pixels(batch, keep):
    """The batch on the pixels where ``keep`` is true."""
    return batch.replace(spectral_axis=batch.spectral_axis[keep], flux=batch.flux[:, keep],
                         ivar=None if batch.ivar is None else batch.ivar[:, keep],
                         mask=batch.mask[:, keep])
