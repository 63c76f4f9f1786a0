"""Radial velocities measured by cross-correlation with a template, and removed."""

from numbers import Integral

import astropy.units as u
import numpy as np
from astropy.table import QTable
from scipy.signal import fftconvolve
from sklearn.utils.validation import check_is_fitted
from specutils import Spectrum

from .._batch import check_spectra, from_batch, iter_batches, to_batch
from .._logging import log
from .._params import Converted, Interval
from .airvac import air_to_vacuum, recorded_medium, vacuum_to_air
from ._base import SpectrumTransformer
from ._docs import fill_doc
from .doppler import _C_KMS, DopplerShift, _rv_bounds, _velocity
from .grid import check_n_pixels
from .normalize import _check_scale
from .resample import Resampler

__all__ = ["RadialVelocityEstimator"]

_DEFAULT_WINDOW = 2500.0 * u.km / u.s
#: Largest correlation coefficient used in the uncertainty (a noise-free match
#: would give an uncertainty of zero).
_C_MAX = 1.0 - 1e-9


def _check_template(template, name):
    if not isinstance(template, Spectrum):
        raise TypeError(
            f"{name} must be a specutils.Spectrum (one spectrum) or None, "
            f"got {type(template).__name__}"
        )
    batch = iter_batches(template, name)[0]
    if batch.n_spectra != 1:
        raise ValueError(
            f"{name} must hold one spectrum, got a batch of {batch.n_spectra}; "
            f"pass one row, for example {name}[0]"
        )


def _check_step(step, name):
    """A velocity above zero (``step``)."""
    _check_speed(step, name, zero=False)


def _check_systematic(value, name):
    """A velocity of zero or more (``systematic_error``)."""
    _check_speed(value, name, zero=True)


def _check_speed(value, name, *, zero):
    speed = _velocity(value, name, below_c=True)
    if speed.ndim != 0 or not (speed >= 0 if zero else speed > 0):
        least = "zero or more" if zero else "above zero"
        raise ValueError(f"{name} must be a scalar velocity Quantity {least}, got {value!r}")


def _log_wave(axis):
    """``ln`` of the wavelengths (Angstrom) of a spectral axis, increasing."""
    wave = axis.to_value(u.AA, equivalencies=u.spectral())
    order = 1 if wave[-1] > wave[0] else -1
    return np.log(wave)[::order], order


def _rows(batches, medium=None):
    """(ln wave, flux, valid, finest velocity step) for every spectrum, in order.

    Spectra that record the other wavelength medium than ``medium`` (air or
    vacuum) have their wavelengths converted to it: a template in vacuum
    against spectra in air would put about 80 km/s into every velocity.
    """
    for batch in batches:
        lnw, order = _log_wave(batch.spectral_axis)
        if medium is not None and recorded_medium(batch.meta) not in (None, medium):
            convert = air_to_vacuum if medium == "vacuum" else vacuum_to_air
            lnw = np.log(convert(np.exp(lnw) * u.AA).to_value(u.AA))
        dv = _C_KMS * np.diff(lnw)
        for k in range(batch.n_spectra):
            valid = ~batch.mask[k][::order] & np.isfinite(batch.flux[k][::order])
            yield lnw, batch.flux[k][::order], valid, dv


def _interp(x_new, x, y, valid):
    """Linear interpolation of the valid pixels; invalid where a neighbour is invalid."""
    flux = np.interp(x_new, x, np.where(valid, y, 0.0), left=np.nan, right=np.nan)
    good = np.interp(x_new, x, valid.astype(float), left=0.0, right=0.0) > 1 - 1e-9
    return np.where(good, flux, 0.0), good


def _window_pixels(window, lnw):
    """Half width, in pixels of the uniform ln(wavelength) grid ``lnw``, of a window."""
    _check_scale(window, "continuum_window")
    if not isinstance(window, u.Quantity):
        pixels = float(window)
    elif window.unit.is_equivalent(u.km / u.s):
        pixels = window.to_value(u.km / u.s) / (_C_KMS * (lnw[1] - lnw[0]))
    else:
        centre = np.exp(0.5 * (lnw[0] + lnw[-1]))
        pixels = window.to_value(u.AA) / (centre * (lnw[1] - lnw[0]))
    return max(1, int(round(0.5 * pixels)))


def _high_pass(flux, good, lnw, window):
    """Divide by a smoothed copy and subtract one: lines stay, the continuum goes.

    The smoothing is a Gaussian of FWHM ``window`` normalised over the valid
    pixels; a linear filter commutes with shifts, so the continuum of a
    shifted spectrum is the shifted continuum (a running median is not, and
    biases the velocities).
    """
    sigma = _window_pixels(window, lnw) / np.sqrt(2.0 * np.log(2.0))
    half = int(np.ceil(3.0 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)[np.newaxis, :]
    kernel /= kernel.sum()
    norm = fftconvolve(good.astype(float), kernel, mode="same", axes=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        continuum = fftconvolve(np.where(good, flux, 0.0), kernel, mode="same", axes=-1) / norm
    ok = good & (norm > 1e-3) & np.isfinite(continuum) & (continuum > 0)
    out = np.where(ok, flux / np.where(ok, continuum, 1.0) - 1.0, 0.0)
    return out, ok


def _correlate(a, b, n_fft):
    """``sum_i a[..., i] b[i - k]`` for every lag ``k`` (negative lags at the end)."""
    return np.fft.irfft(np.fft.rfft(a, n_fft) * np.conj(np.fft.rfft(b, n_fft)), n_fft)


def _ccf(x, w, t, wt, lags):
    """Normalised (Pearson) cross-correlation of the rows of ``x`` with ``t`` at ``lags``.

    ``w`` and ``wt`` are 0/1 weights; the means and norms are those of the
    pixels that overlap at each lag. Returns the CCF (n, n_lags) and the
    number of overlapping pixels.
    """
    n_fft = int(2 ** np.ceil(np.log2(x.shape[1] + t.size)))
    xw, tw = x * w, t * wt
    idx = np.asarray(lags) % n_fft
    n = _correlate(w, wt, n_fft)[..., idx]
    sx = _correlate(xw, wt, n_fft)[..., idx]
    st = _correlate(w, tw, n_fft)[..., idx]
    sxx = _correlate(xw * x, wt, n_fft)[..., idx]
    stt = _correlate(w, tw * t, n_fft)[..., idx]
    sxt = _correlate(xw, tw, n_fft)[..., idx]
    n = np.round(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(n > 0, n, 1.0)
        var = (sxx - sx**2 / safe) * (stt - st**2 / safe)
        ccf = (sxt - sx * st / safe) / np.sqrt(np.where(var > 0, var, np.nan))
    ccf = np.where((n > 2) & np.isfinite(ccf), ccf, np.nan)
    return ccf, n


def _velocity_of_lag(lag, du):
    """Radial velocity (km/s) of a shift of ``lag`` pixels of ``du`` in ln(wavelength)."""
    factor2 = np.exp(2.0 * lag * du)
    return _C_KMS * (factor2 - 1.0) / (factor2 + 1.0)


def _lag_of_velocity(rv, du):
    beta = np.asarray(rv, dtype=float) / _C_KMS
    return 0.5 * np.log((1.0 + beta) / (1.0 - beta)) / du


def _remove_rv(spectra, axis, rv):
    """Shift ``spectra`` by minus ``rv`` (km/s, one per spectrum) and resample them onto ``axis``.

    ``axis`` is their own grid: the flux-conserving `Resampler` puts them back
    on it, masking the pixels shifted in from outside the grid.
    """
    shifted = DopplerShift(rv=rv * (u.km / u.s)).transform(spectra)
    return Resampler(axis).fit_transform(shifted)


@fill_doc
class RadialVelocityEstimator(SpectrumTransformer):
    """Measure radial velocities by cross-correlation with a template, and remove them.

    Every spectrum and the template are put on a common grid uniform in
    ln(wavelength) (a constant velocity step), divided by a running median
    and made zero-mean (a high-pass filter that keeps the lines and drops the
    continuum), and cross-correlated over ``rv_range``. The peak of the
    normalised cross-correlation function (CCF) is located to a fraction of
    a pixel with a parabola through its three highest points.

    Parameters
    ----------
    template : `~specutils.Spectrum`, default=None
        The rest-frame template: one spectrum on any grid (for example a
        noise-free spectrum from `~stellarlatent.datasets.make_synthetic_spectra`
        with ``rv=0 * u.km / u.s``, or a PHOENIX model broadened to the
        resolution of the data). None builds it in `fit` from the spectra
        themselves (see Notes); the velocities are then relative, with a
        median of zero over the spectra given to `fit`.
    rv_range : (low, high) `~astropy.units.Quantity`, default=(-500, 500) km/s
        Velocities searched; a peak at either end is not a measurement (its
        ``rv`` is NaN, with a logged warning).
    step : `~astropy.units.Quantity`, default=None
        Velocity step of the common ln(wavelength) grid; None is the finest
        pixel step of the template (or of the spectra given to `fit`).
    continuum_window : `~astropy.units.Quantity` or int, default=None
        Width of the running median that removes the continuum: a velocity,
        a wavelength or a number of pixels of the common grid (at least 2);
        None is 2500 km/s. It is the FWHM of the Gaussian by which the
        spectra are smoothed (a linear filter, so that the continuum of a
        shifted spectrum is the shifted continuum); it must be much wider
        than the lines.
    remove : bool, default=True
        Whether `transform` shifts the spectra to their rest frame; with
        False it only records the velocities in ``meta``.
    n_iter : int, default=3
        With ``template=None``: rounds of alignment in `fit` (measure the
        velocities against the current template, shift the spectra to its
        frame, take their median as the next template).
    systematic_error : `~astropy.units.Quantity`, default=0 km/s
        Added in quadrature to the statistical uncertainty of every
        velocity: what a template that does not match the star, or a zero
        point of its own, adds and the cross-correlation cannot see (for
        the bundled models' MILES templates, 5.8 km/s, measured on their
        training stars). At very high S/N the interpolated peak has an
        error of its own, about a 160th of a pixel (0.3 km/s on a MILES-like
        grid of 0.9 Angstrom), that the statistical uncertainty leaves out:
        add it here where such precision matters.

    Attributes
    ----------
    template_ : `~specutils.Spectrum`
        The high-passed template on the common grid (dimensionless, about
        zero mean; masked where it is undefined).
    velocity_step_ : `~astropy.units.Quantity`
        Step of the common grid.
    wavelength_medium_ : {"air", "vacuum"} or None
        The medium velocities are measured in: the template's
        ``meta["wavelength_medium"]`` (without a template, that of the first
        spectrum that records one). Spectra that record the other medium are
        converted to it for the cross-correlation (vacuum and air
        wavelengths differ by about 80 km/s in the optical); those that
        record none are taken to be in it.
    rv_ : `~astropy.table.QTable`
        What the last `estimate` or `transform` measured.

    Notes
    -----
    The uncertainty is the maximum-likelihood one of Zucker (2003, MNRAS
    342, 1291): ``sigma**2 = -[N C''(s) / C(s) * C(s)**2 / (1 - C(s)**2)]**-1``
    for a CCF ``C`` with peak ``s`` computed over ``N`` independent pixels;
    ``N`` counts the original pixels of the spectrum in the overlap with the
    template (the common grid may oversample them), times the fraction of
    the noise variance that linear interpolation onto the grid leaves. It
    assumes a template that matches the spectrum and whose own noise is
    negligible. On synthetic spectra at S/N 50 it matches the scatter of the
    velocities at R=50000 (1 km/s pixels) and is about 1.2 times too small at
    R=2000 on the MILES grid, where a noise-free floor of about 0.15 km/s
    (0.4% of a pixel) remains.

    Masked and non-finite pixels (and those next to them, after the
    interpolation onto the common grid) get zero weight: the CCF at each lag
    is the correlation coefficient of the pixels valid in both.

    With ``template=None``, `fit` starts from the spectrum with the most
    valid pixels (the first of them), then for ``n_iter`` rounds measures
    every spectrum against the current template, shifts them to its frame
    and takes their median. The zero point is then set so that the
    velocities of the fitted spectra have a median of zero.

    `transform` shifts each spectrum by minus its velocity with
    `~stellarlatent.preprocessing.DopplerShift` and resamples it back onto
    its own grid (flux-conserving, `~stellarlatent.preprocessing.Resampler`),
    so spectra on one grid stay one batch; pixels shifted in from outside
    the grid are masked. Spectra whose velocity could not be measured are
    left as they are. The output's ``meta["rv"]`` and ``meta["rv_err"]``
    hold the measured velocities and uncertainties (one per spectrum; the
    velocities removed, not minus them as `DopplerShift` records).

    Examples
    --------
    >>> import astropy.units as u
    >>> from stellarlatent.datasets import make_synthetic_spectra
    >>> from stellarlatent.preprocessing import RadialVelocityEstimator
    >>> star = dict(teff=5800.0, logg=4.4, feh=0.0, vsini=5 * u.km / u.s)
    >>> template, _ = make_synthetic_spectra(1, rv=0 * u.km / u.s, snr=None, **star)
    >>> spectra, labels = make_synthetic_spectra(3, rv=[-120, 10, 250] * u.km / u.s,
    ...                                          snr=100, random_state=0, **star)
    >>> rv = RadialVelocityEstimator(template=template[0]).fit(spectra)
    >>> table = rv.estimate(spectra)
    >>> table.colnames
    ['rv', 'rv_err', 'ccf_peak']
    >>> table["rv"].round(-1)
    <Quantity [-120.,   10.,  250.] km / s>
    >>> bool((abs(table["rv"] - labels["rv"]) < 3 * table["rv_err"]).all())
    True
    >>> rest = rv.transform(spectra)
    >>> rest.meta["rv"].round(-1)
    <Quantity [-120.,   10.,  250.] km / s>
    """

    _parameter_constraints = {
        "template": [None, Converted(_check_template, "a specutils.Spectrum (one spectrum)")],
        "rv_range": [Converted(_rv_bounds, "a (low, high) velocity Quantity with "
                                           "low <= high, slower than light")],
        "step": [None, Converted(_check_step, "a positive velocity Quantity")],
        "continuum_window": [None, Converted(_check_scale, "a velocity or wavelength "
                                                           "Quantity, or a number of pixels "
                                                           "of at least 2")],
        "remove": ["boolean"],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "systematic_error": [Converted(_check_systematic, "a velocity Quantity of at least 0")],
    }
    _fitted_attribute = "template_"

    def __init__(
        self,
        template=None,
        rv_range=(-500, 500) * u.km / u.s,
        step=None,
        continuum_window=None,
        remove=True,
        n_iter=3,
        systematic_error=0 * u.km / u.s,
    ):
        self.template = template
        self.rv_range = rv_range
        self.step = step
        self.continuum_window = continuum_window
        self.remove = remove
        self.n_iter = n_iter
        self.systematic_error = systematic_error

    def _check_params(self):
        super()._check_params()
        bounds = _rv_bounds(self.rv_range, "rv_range")
        if not bounds[0] < bounds[1]:
            raise ValueError(
                f"rv_range must have low < high (a range to search), got {self.rv_range!r}"
            )

    # ------------------------------------------------------------------ grid
    def _window(self):
        return _DEFAULT_WINDOW if self.continuum_window is None else self.continuum_window

    def _grid(self, rows, lnw_min, lnw_max):
        """Indices (j0, j1) of the common grid ``ln(w) = u0 + j du`` covering a range."""
        j0 = int(np.floor((lnw_min - self._u0) / self._du + 1e-9))
        j1 = int(np.ceil((lnw_max - self._u0) / self._du - 1e-9))
        check_n_pixels(j1 - j0 + 1, "step", "the common ln(wavelength) grid")
        return j0, j1

    def _prepare(self, rows, shifts=None):
        """High-passed spectra on the common grid covering them (and the template).

        Returns x, w (n, m), the index of the grid's first pixel, and the
        ratio of the grid step to the original pixel step (at most one) of
        each spectrum, averaged over its valid pixels.
        """
        lo = min(r[0][0] for r in rows)
        hi = max(r[0][-1] for r in rows)
        if hasattr(self, "_t_j0"):
            lo = min(lo, self._u0 + self._t_j0 * self._du)
            hi = max(hi, self._u0 + (self._t_j0 + self._t.size - 1) * self._du)
        j0, j1 = self._grid(rows, lo, hi)
        lnw = self._u0 + self._du * np.arange(j0, j1 + 1)
        n, m = len(rows), lnw.size
        flux, good = np.zeros((n, m)), np.zeros((n, m), dtype=bool)
        ratio = np.ones(n)
        dv_grid = _C_KMS * self._du
        for i, (x, y, valid, dv) in enumerate(rows):
            at = lnw if shifts is None else lnw + shifts[i] * self._du
            flux[i], good[i] = _interp(at, x, y, valid)
            native = np.interp(at, 0.5 * (x[1:] + x[:-1]), dv)
            if good[i].any():
                # independent pixels per grid pixel, times the noise variance that
                # linear interpolation leaves, (1 - f)**2 + f**2 at a fraction f
                phase = np.interp(at[good[i]], x, np.arange(x.size)) % 1.0
                kept = np.mean((1.0 - phase) ** 2 + phase**2)
                ratio[i] = np.mean(np.minimum(1.0, dv_grid / native[good[i]])) * kept
        x, w = _high_pass(flux, good, lnw, self._window())
        x = np.where(w, x, 0.0)
        return x, w.astype(float), j0, ratio

    # ------------------------------------------------------------------ fit
    def fit(self, spectra, y=None):
        """Set up the common grid and the template (built from ``spectra`` without one).

        %(fit_sections)s
        """
        self._check_params()
        for name in ("template_", "_t_j0"):
            self.__dict__.pop(name, None)
        self._zero_lag = 0.0
        batches = iter_batches(spectra, "spectra")
        templates = None if self.template is None else iter_batches(self.template, "template")
        # velocities are measured in the medium of the template (of the first spectrum that
        # records one, without a template); spectra in the other are converted to it
        known = [recorded_medium(b.meta) for b in (templates or batches)]
        self.wavelength_medium_ = next((m for m in known if m is not None), None)
        rows = list(_rows(batches, self.wavelength_medium_))
        if templates is not None:
            source = list(_rows(templates, self.wavelength_medium_))
        else:
            source = rows
        if self.step is None:
            du = min(float(np.min(r[3])) for r in source) / _C_KMS
        else:
            du = _velocity(self.step, "step") / _C_KMS
        self._du = float(du)
        self._u0 = float(source[0][0][0])
        self.velocity_step_ = (_C_KMS * self._du) * (u.km / u.s)
        if self.template is not None:
            t, wt, j0, _ = self._prepare(source)
            self._set_template(t[0], wt[0], j0)
        else:
            self._build_template(rows)
        return self

    def _set_template(self, t, wt, j0):
        good = np.flatnonzero(wt > 0)
        if good.size < 3:
            raise ValueError(
                "template has fewer than 3 valid pixels after removing its continuum; "
                "expected a spectrum with lines on the grid"
            )
        t, wt = t[good[0] : good[-1] + 1], wt[good[0] : good[-1] + 1]
        self._t, self._wt, self._t_j0 = t, wt, j0 + good[0]
        lnw = self._u0 + self._du * np.arange(self._t_j0, self._t_j0 + t.size)
        self.template_ = Spectrum(
            flux=np.where(wt > 0, t, np.nan) * u.one,
            spectral_axis=np.exp(lnw) * u.AA,
            mask=wt == 0,
        )

    def _build_template(self, rows):
        n_valid = [int(r[2].sum()) for r in rows]
        first = int(np.argmax(n_valid))
        x, w, j0, _ = self._prepare([rows[first]])
        self._set_template(x[0], w[0], j0)
        shifts = np.zeros(len(rows))
        for _ in range(self.n_iter):
            lags, _, _, _ = self._measure(rows)
            lags = np.where(np.isfinite(lags), lags, 0.0)
            shifts = lags - np.median(lags)
            x, w, j0, _ = self._prepare(rows, shifts=shifts)
            data = np.where(w > 0, x, np.nan)
            count = (w > 0).sum(axis=0)
            median = np.zeros(x.shape[1])
            enough = count >= max(1, 0.5 * len(rows))
            median[enough] = np.nanmedian(data[:, enough], axis=0)
            self._set_template(median - np.mean(median[enough]) * enough, enough.astype(float), j0)
        if self.n_iter:
            # zero point: the fitted spectra have a median velocity of zero
            lags, _, _, _ = self._measure(rows)
            offset = np.nanmedian(lags)
            self._zero_lag = float(offset) if np.isfinite(offset) else 0.0

    # ------------------------------------------------------------------ measure
    def _measure(self, rows):
        """Peak lag (pixels), its uncertainty, the CCF peak and the pixels used."""
        x, w, j0, ratio = self._prepare(rows)
        t = np.zeros(x.shape[1])
        wt = np.zeros(x.shape[1])
        start = self._t_j0 - j0
        t[start : start + self._t.size] = self._t
        wt[start : start + self._t.size] = self._wt
        bounds = _rv_bounds(self.rv_range, "rv_range")
        k_lo, k_hi = _lag_of_velocity(bounds, self._du)
        lags = np.arange(int(np.floor(k_lo)), int(np.ceil(k_hi)) + 1)
        ccf, n_pix = _ccf(x, w, t, wt, lags)
        n = len(rows)
        lag = np.full(n, np.nan)
        lag_err = np.full(n, np.nan)
        peak = np.full(n, np.nan)
        n_used = np.zeros(n)
        for i in range(n):
            if not np.isfinite(ccf[i]).any():
                continue
            k = int(np.nanargmax(ccf[i]))
            if k == 0 or k == lags.size - 1 or not np.isfinite(ccf[i, [k - 1, k + 1]]).all():
                continue
            cm, c0, cp = ccf[i, k - 1 : k + 2]
            curvature = cm - 2.0 * c0 + cp
            if not curvature < 0:
                continue
            delta = 0.5 * (cm - cp) / curvature
            c_peak = min(c0 - 0.125 * (cm - cp) ** 2 / curvature, _C_MAX)
            lag[i] = lags[k] + delta - self._zero_lag
            peak[i] = c_peak
            n_used[i] = n_pix[i, k] * ratio[i]
            if c_peak > 0:
                # Zucker (2003), with the lag in grid pixels
                lag_err[i] = np.sqrt(
                    -1.0 / (n_used[i] * curvature / c_peak * c_peak**2 / (1.0 - c_peak**2))
                )
        return lag, lag_err, peak, n_used

    def estimate(self, spectra):
        """Measure the radial velocity of each spectrum.

        Parameters
        ----------
        %(spectra)s

        Returns
        -------
        `~astropy.table.QTable`
            One row per spectrum, in order: ``rv`` and ``rv_err`` [km/s]
            (with ``systematic_error``; NaN where the CCF has no peak
            inside ``rv_range``) and
            ``ccf_peak``, the correlation coefficient at the peak.
        """
        table = self._estimate(spectra)
        missing = ~np.isfinite(table["rv"])
        if missing.any():
            log.warning(
                "%d spectra have no CCF peak inside rv_range (first: spectra[%d]); "
                "their rv is NaN", missing.sum(), int(np.flatnonzero(missing)[0])
            )
        return table

    def _estimate(self, spectra):
        """`estimate` without its warning (for callers that try several templates)."""
        check_is_fitted(self)
        self._check_params()
        rows = list(_rows(iter_batches(spectra, "spectra"),
                          getattr(self, "wavelength_medium_", None)))
        lag, lag_err, peak, _ = self._measure(rows)
        rv = _velocity_of_lag(lag, self._du)
        slope = np.abs(_velocity_of_lag(lag + 0.5, self._du)
                       - _velocity_of_lag(lag - 0.5, self._du))
        rv_err = np.hypot(lag_err * slope, self.systematic_error.to_value(u.km / u.s))
        self.rv_ = QTable(
            {"rv": rv * (u.km / u.s), "rv_err": rv_err * (u.km / u.s), "ccf_peak": peak}
        )
        return self.rv_

    def predict(self, spectra):
        """Same as `estimate`."""
        return self.estimate(spectra)

    def transform(self, spectra):
        """Measure the radial velocities and shift the spectra to the rest frame.

        Parameters
        ----------
        %(spectra)s

        Returns
        -------
        `~specutils.Spectrum` or list of `~specutils.Spectrum`
            One batch on the input grid when the input shares one grid, else
            one output per input `~specutils.Spectrum`, each on its own grid;
            ``meta["rv"]`` and ``meta["rv_err"]`` hold the measurements.
        """
        table = self.estimate(spectra)
        rv = np.nan_to_num(table["rv"].to_value(u.km / u.s))
        items = check_spectra(spectra, "spectra")
        batches = iter_batches(spectra, "spectra")
        outputs, row = [], 0
        for item, batch in zip(items, batches):
            part = slice(row, row + batch.n_spectra)
            row += batch.n_spectra
            if self.remove:
                out = _remove_rv(item, batch.spectral_axis, rv[part])
                out.meta.pop("rv", None)
                out.meta.update({k: v for k, v in batch.meta.items() if k != "rv"})
            else:
                out = from_batch(batch)
            out.meta.update(rv=table["rv"][part], rv_err=table["rv_err"][part])
            outputs.append(out)
        if len(outputs) == 1:
            return outputs[0]
        first = outputs[0].spectral_axis
        if all(o.spectral_axis.shape == first.shape
               and np.array_equal(o.spectral_axis.value, first.value)
               and o.spectral_axis.unit == first.unit for o in outputs[1:]):
            merged = to_batch(outputs, "spectra")
            merged.meta = dict(merged.meta, rv=table["rv"], rv_err=table["rv_err"])
            return from_batch(merged)
        return outputs
