"""Gaussian noise augmentation to a target signal-to-noise ratio."""

import numbers

import numpy as np

from .._params import Converted, Options
from ._base import RANDOM_STATE, SpectrumTransformer, legacy_rng
from ._docs import fill_doc
from .normalize import nanmedian_rows

__all__ = ["NoiseAugmenter"]

_MODELS = ("photon", "constant")


def check_values(value, name, positive=True):
    """Check a number, a ``(low, high)`` tuple or a 1-D array of values.

    The checks that need no data: the length of an array (one value per
    spectrum) is checked by `draw_values`.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{name} must be a number, a (low, high) range or one value per spectrum, "
            f"got the boolean {value!r}"
        )
    if isinstance(value, numbers.Real):
        array = np.asarray(float(value))
    else:
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be a number, a (low, high) range or one value per "
                f"spectrum, got {value!r}"
            ) from None
        if isinstance(value, tuple) and array.shape == (2,):
            if not array[0] <= array[1]:
                raise ValueError(f"{name} range must have low <= high, got {value!r}")
        elif array.ndim != 1 or np.asarray(value).dtype.kind == "b":
            raise ValueError(
                f"{name} must be a number, a (low, high) tuple or an array of one value "
                f"per spectrum, got {value!r}"
            )
    if not np.all(np.isfinite(array)) or (positive and np.any(array <= 0)):
        raise ValueError(f"{name} must be finite{' and positive' if positive else ''}")


def draw_values(value, n, rng, name, positive=True):
    """Return ``n`` values: a scalar repeated, or uniform draws from a (low, high) range.

    ``value`` may also be an array of length ``n`` (one value per spectrum).
    """
    check_values(value, name, positive)
    if isinstance(value, numbers.Real):
        return np.full(n, float(value))
    array = np.asarray(value, dtype=float)
    if isinstance(value, tuple) and array.shape == (2,):
        return rng.uniform(array[0], array[1], size=n)
    if array.shape != (n,):
        raise ValueError(
            f"{name} must be a number, a (low, high) tuple or an array of one value "
            f"per spectrum ({n}), got shape {array.shape}"
        )
    return array


@fill_doc
class NoiseAugmenter(SpectrumTransformer):
    """Add Gaussian noise so that spectra reach a target signal-to-noise ratio.

    The added variance is the target variance minus the variance the spectra
    already have (from their inverse variance), so noisy inputs are not
    degraded twice; pixels already noisier than the target get no noise and
    keep their uncertainty. The inverse variance is updated to the total.

    Parameters
    ----------
    snr : float, (low, high) tuple or array of shape (n_spectra,), default=100.0
        Target S/N per pixel at the median flux of each spectrum; a tuple is
        a range from which one S/N per spectrum is drawn uniformly.
    noise_model : {"photon", "constant"}, default="photon"
        ``"photon"``: the noise standard deviation grows as the square root
        of the flux (photon-limited), so S/N per pixel equals ``snr`` where
        the flux equals the median and is lower in absorption lines;
        ``"constant"``: one standard deviation, median flux / ``snr``, for
        every pixel.
    random_state : int, `~numpy.random.RandomState`, `~numpy.random.Generator` or None, default=None
        Seed of the noise and of the drawn S/N. An int gives the same noise
        at every call.

    Raises
    ------
    ValueError
        If a spectrum's median flux over its unmasked pixels is not positive
        (the message names its row, ``spectra[i]``). The target S/N is defined
        at the median flux, and photon noise needs a positive flux: a spectrum
        with a negative or zero median (sky-subtracted, sign-flipped or empty)
        has no meaningful S/N, so it is refused rather than silently masked.
        Mask or remove such spectra first, or continuum-normalise them.

    Notes
    -----
    The S/N each spectrum *reaches* is stored in ``meta["snr"]`` of the
    output, and the target drawn for it in ``meta["snr_target"]``. They are
    equal unless the input is already noisier than the target. Then no noise
    is added where the existing noise is larger, and ``meta["snr"]`` is the
    median over the unmasked pixels of the S/N per pixel at the median flux
    (for ``"photon"``, each pixel's S/N scaled by ``sqrt(median / flux)``;
    pixels with non-positive flux are left out). That is the S/N the
    spectrum already had.

    Masked pixels stay masked. With the ``"photon"`` model, pixels whose flux
    is zero or negative get no noise; when their variance is unknown (no
    input uncertainty) they are masked, since a photon-limited pixel without
    flux has no defined inverse variance.

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.preprocessing import NoiseAugmenter
    >>> flat = Spectrum(flux=np.ones((2, 20000)) * u.one,
    ...                 spectral_axis=np.linspace(5000, 6000, 20000) * u.AA)
    >>> noisy = NoiseAugmenter(snr=50, random_state=0).transform(flat)
    >>> np.round(1 / noisy.flux.value.std(axis=1), -1)
    array([50., 50.])
    >>> noisy.uncertainty.array[0, 0]
    np.float64(2500.0)
    """

    _parameter_constraints = {
        "snr": [Converted(check_values, "a positive number, a (low, high) range or one "
                          "value per spectrum")],
        "noise_model": [Options(*_MODELS)],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, snr=100.0, noise_model="photon", random_state=None):
        self.snr = snr
        self.noise_model = noise_model
        self.random_state = random_state

    def _transform_batch(self, batch):
        rng = legacy_rng(self.random_state)
        snr = draw_values(self.snr, batch.n_spectra, rng, "snr")
        flux = np.where(batch.mask, np.nan, batch.flux)
        level = nanmedian_rows(flux)
        good_level = np.isfinite(level[:, 0]) & (level[:, 0] > 0)
        if not good_level.all():
            bad = np.flatnonzero(~good_level)
            more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
            raise ValueError(
                f"spectra[{bad[0]}]{more} has a median flux of {level[bad[0], 0]:.6g} over its "
                "unmasked pixels; a target S/N needs a positive median flux. Mask or remove "
                "spectra with negative or zero flux (or continuum-normalise them) first"
            )
        sigma = level / snr[:, np.newaxis]
        relative = np.clip(np.nan_to_num(flux) / level, 0.0, None)
        if self.noise_model == "photon":
            sigma = sigma * np.sqrt(relative)
        target_var = sigma**2
        reached = snr.copy()
        if batch.ivar is None:
            added_var = target_var
        else:
            with np.errstate(divide="ignore"):
                present_var = np.where(batch.ivar > 0, 1.0 / batch.ivar, 0.0)
            added_var = np.clip(target_var - present_var, 0.0, None)
            reached = self._reached(snr, level, relative, present_var, target_var, batch.mask)
            target_var = np.maximum(target_var, present_var)
        noise = rng.standard_normal(batch.flux.shape) * np.sqrt(added_var)
        with np.errstate(divide="ignore"):
            ivar = np.where(batch.mask | (target_var <= 0), 0.0, 1.0 / target_var)
        mask = batch.mask | (ivar <= 0)
        meta = dict(batch.meta, snr=reached, snr_target=snr)
        return batch.replace(flux=batch.flux + noise, ivar=ivar, mask=mask, meta=meta)

    def _reached(self, snr, level, relative, present_var, target_var, mask):
        """S/N at the median flux reached by each spectrum (the target unless it was noisier)."""
        usable = ~mask & (present_var > 0)
        if self.noise_model == "photon":
            usable &= relative > 0
        # each pixel's S/N, expressed at the median flux so that the target pixels give ``snr``
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = relative if self.noise_model == "photon" else np.ones_like(relative)
            present_snr = level * np.sqrt(scale / present_var)
        per_pixel = np.where(present_var > target_var, present_snr, snr[:, np.newaxis])
        per_pixel = np.where(usable, per_pixel, np.nan)
        reached = snr.copy()
        noisier = ((present_var > target_var) & usable).any(axis=1)
        if noisier.any():
            reached[noisier] = np.nanmedian(per_pixel[noisier], axis=1)
        return reached
