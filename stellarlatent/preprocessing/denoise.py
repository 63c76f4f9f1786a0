"""Noise removed with a principal-component prior learned from training spectra."""

from numbers import Integral, Real
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from sklearn.utils.validation import check_is_fitted

from .._batch import _same_axis, to_batch
from .._fits import axis_hdu, read_axis
from .._params import Interval
from ._base import SpectrumTransformer
from ._docs import fill_doc

__all__ = ["PCADenoiser"]

_FORMAT = "stellarlatent-pca-denoiser"
#: Residuals beyond this many robust standard deviations do not count in the noise estimate
#: (a cosmic ray or a telluric residue would otherwise pass for noise everywhere).
_CLIP = 5.0
#: Principal components of a prior fitted with n_components=None
_DEFAULT_COMPONENTS = 64

#: Spectra denoised together (the batched solves hold n_components**2 numbers for each)
_CHUNK = 1024
#: Spectra denoised together when their noise varies along them (each then needs its own
#: weighted products of the components: n_components * n_pixels numbers)
_WEIGHTED_CHUNK = 32


def _principal(flux, n_components):
    """Mean, the first ``n_components`` unit-length components and their variances."""
    mean = flux.mean(axis=0)
    _, s, vt = np.linalg.svd(flux - mean, full_matrices=False)
    k = min(n_components, vt.shape[0])
    return mean, vt[:k], s[:k] ** 2 / max(flux.shape[0] - 1, 1)


def _filled(batch):
    """Flux with bad pixels replaced by the mean of the good values of their pixel."""
    good = ~batch.mask & np.isfinite(batch.flux)
    counts = good.sum(axis=0)
    column_mean = np.where(good, batch.flux, 0.0).sum(axis=0) / np.maximum(counts, 1)
    return np.where(good, batch.flux, column_mean), counts


@fill_doc
class PCADenoiser(SpectrumTransformer):
    """Remove the noise that noisier spectra carry beyond that of the training spectra.

    `fit` learns a Gaussian prior for spectra on one grid from a set of
    (high S/N) training spectra: their mean, their first ``n_components``
    principal components with their variances, and the variance per pixel of
    what those components leave (measured on spectra left out of the fit, so
    that it is the residual of a new star, not of a fitted one).

    `transform` estimates, for each spectrum, the noise it carries beyond
    that of the training spectra (its *excess noise*, one standard deviation
    per spectrum) from the residual of its least-squares fit by the
    components, and returns the posterior mean of the spectrum under the
    prior: the component amplitudes shrunk where the noise exceeds their
    variance, and the residual scaled by ``s2 / (s2 + sigma**2)`` (a Wiener
    filter). A spectrum no noisier than the training spectra has no excess
    noise, or a small one that changes it little, so a model trained on the
    training spectra sees its usual input; at low S/N the model sees a spectrum
    pulled towards the family of its training spectra, with less noise.

    Parameters
    ----------
    n_components : int, default=None
        Principal components of the prior (at most the number of spectra
        given to `fit`); None means 64, or with ``prior_file`` the number
        the file holds (another number is refused: the file's residual
        variance belongs to its own number of components).
    prior_file : str or path-like, default=None
        A prior that `write` saved: `fit` reads it and learns nothing from
        the spectra it is given, so that the fitted denoiser of a model
        survives `sklearn.base.clone` and a pipeline that is fitted again.
    noise_exponent : float in [0, 2], default=0.0
        How the excess noise varies along a spectrum: its variance in each
        pixel is proportional to ``(median(c) / c) ** noise_exponent``, with
        ``c`` the continuum by which the spectrum was divided. 0: the same
        level in every pixel (white noise); 1: photon noise (in the
        spectrum's own flux units a variance proportional to the flux, so
        after division by the continuum proportional to ``1 / c``); 2: noise
        of one level in the spectrum's own flux units (read-out, sky). With
        anything but 0 the spectra must carry their continuum: normalise
        them with ``ContinuumNormalizer(store_continuum=True)``.
    use_uncertainty : bool, default=True
        For a spectrum with an uncertainty, take the excess noise as at most
        the noise it reports (the median variance, at the median continuum):
        whatever more its residual shows belongs to the star or to the
        instrument (a star or a line-spread function unlike the training
        spectra's), not to the noise, and is left in place.

    Attributes
    ----------
    mean_ : ndarray, shape (n_pixels,)
    components_ : ndarray, shape (n_components, n_pixels)
        Unit-length principal components.
    explained_variance_ : ndarray, shape (n_components,)
        The variance of the training spectra along each component.
    residual_variance_ : ndarray, shape (n_pixels,)
        Variance per pixel of what the components leave of a spectrum not
        used to find them (two-fold cross-fitting on the training spectra).
    spectral_axis_ : `~astropy.units.Quantity`
        The grid of the training spectra; `transform` takes spectra on it.

    Notes
    -----
    Masked and non-finite pixels are left as they are and take no part in
    the estimate; in `fit` they are replaced by the mean of their pixel.
    The excess noise has one level per spectrum, shaped along it by the
    continuum (``noise_exponent``) but not by the lines, so at low S/N the
    deepest lines (where photon noise is smaller) are smoothed a little
    more than they need be. Where the continuum falls steeply (a cool or
    reddened star in the blue), the white model smooths the faint end too
    little and the bright end too much. The prior is that of the training
    spectra: a star unlike any of them is pulled towards them, which is why
    the output records the excess noise (``meta["excess_noise"]``, in flux
    units at the median continuum, zero where nothing was changed), and why
    a spectrum that reports its uncertainty is denoised by no more than it
    reports (``use_uncertainty``).

    Examples
    --------
    %(example_imports)s
    >>> from stellarlatent.datasets import make_synthetic_spectra
    >>> from stellarlatent.preprocessing import PCADenoiser
    >>> kw = dict(teff=(5000.0, 6500.0), logg=4.3, feh=(-0.5, 0.3), random_state=0)
    >>> train, _ = make_synthetic_spectra(200, snr=None, **kw)
    >>> denoiser = PCADenoiser(n_components=20).fit(train)
    >>> clean, _ = make_synthetic_spectra(20, snr=None, **dict(kw, random_state=1))
    >>> noise = np.random.default_rng(2).normal(0.0, 0.05, clean.flux.shape)
    >>> noisy = Spectrum(flux=clean.flux + noise * clean.flux.unit,
    ...                  spectral_axis=clean.spectral_axis, spectral_axis_index=1)
    >>> out = denoiser.transform(noisy)
    >>> rms = lambda a: float(np.sqrt(np.mean((a - clean.flux.value) ** 2)))
    >>> bool(rms(out.flux.value) < rms(noisy.flux.value) / 3)
    True
    >>> round(float(np.median(out.meta["excess_noise"])), 3)  # the noise added
    0.05
    >>> float(np.median(denoiser.transform(clean).meta["excess_noise"]))
    0.0

    Photon noise on a star faint in the blue follows its continuum; with
    ``noise_exponent=1`` the spectra carry that continuum (here set by hand;
    ``ContinuumNormalizer(store_continuum=True)`` records it), and the
    excess noise is the level at the median continuum, S/N 30 at a
    continuum of 1, so ``1 / (30 sqrt(0.6))`` = 0.043 there:

    >>> wave = clean.spectral_axis.to_value(u.AA)
    >>> continuum = 0.2 + 0.8 * (wave - wave[0]) / (wave[-1] - wave[0])
    >>> photons = np.random.default_rng(3).poisson(clean.flux.value * continuum * 900) / 900
    >>> noisy = Spectrum(flux=photons / continuum * u.one, spectral_axis=clean.spectral_axis,
    ...                  meta={"continuum": np.tile(continuum, (20, 1)) * u.one},
    ...                  spectral_axis_index=1)
    >>> shaped = PCADenoiser(n_components=20, noise_exponent=1).fit(train)
    >>> round(float(np.median(shaped.transform(noisy).meta["excess_noise"])), 3)
    0.041

    A spectrum that reports its uncertainty is denoised by no more than it
    reports (``use_uncertainty``): these say 0.02 where their residuals show
    0.05, and the rest is left in place:

    >>> from astropy.nddata import InverseVariance
    >>> reporting = Spectrum(flux=clean.flux + noise * clean.flux.unit,
    ...                      spectral_axis=clean.spectral_axis, spectral_axis_index=1,
    ...                      uncertainty=InverseVariance(np.full(noise.shape, 0.02 ** -2)))
    >>> round(float(np.median(denoiser.transform(reporting).meta["excess_noise"])), 3)
    0.02
    """

    _parameter_constraints = {
        "n_components": [None, Interval(Integral, 1, None, closed="left")],
        "prior_file": [None, str, Path],
        "noise_exponent": [Interval(Real, 0, 2, closed="both")],
        "use_uncertainty": ["boolean"],
    }
    _fitted_attribute = "components_"

    def __init__(self, n_components=None, prior_file=None, noise_exponent=0.0,
                 use_uncertainty=True):
        self.n_components = n_components
        self.prior_file = prior_file
        self.noise_exponent = noise_exponent
        self.use_uncertainty = use_uncertainty

    def fit(self, spectra=None, y=None):
        """Learn the prior from spectra on one grid, or read it from ``prior_file``.

        Parameters
        ----------
        spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
            Spectra on one grid; not used (and may be None) with ``prior_file``.
        y : None
            Ignored; present for scikit-learn compatibility.

        Returns
        -------
        self
        """
        self._check_params()
        if self.prior_file is not None:
            return self._read(self.prior_file)
        if spectra is None:
            raise ValueError("spectra must be given to learn a prior from (or set prior_file)")
        batch = to_batch(spectra, "spectra")
        if batch.n_spectra < 4:
            raise ValueError(f"spectra must hold at least 4 spectra to learn a prior from, "
                             f"got {batch.n_spectra}")
        flux, counts = _filled(batch)
        if not np.any(counts):
            raise ValueError("spectra has no valid pixel")
        n_components = _DEFAULT_COMPONENTS if self.n_components is None else self.n_components
        self.mean_, components, self.explained_variance_ = _principal(flux, n_components)
        # as `write` stores them, so that a model read back denoises as the one fitted
        self.components_ = components.astype(np.float32).astype(float)
        # the residual of a star left out, from two halves that fit each other
        halves = (np.arange(batch.n_spectra) % 2 == 0, np.arange(batch.n_spectra) % 2 == 1)
        squares = []
        for fitted, left in (halves, halves[::-1]):
            k = min(n_components, int(fitted.sum()) - 1)
            mean, comps, _ = _principal(flux[fitted], k)
            centred = flux[left] - mean
            squares.append((centred - (centred @ comps.T) @ comps) ** 2)
        residual = np.concatenate(squares)
        # pixels valid in no training spectrum: no prior, never changed
        self.residual_variance_ = np.where(counts > 0, residual.mean(axis=0), np.inf)
        self.spectral_axis_ = batch.spectral_axis
        return self

    def _transform_batch(self, batch):
        if not _same_axis(batch.spectral_axis, self.spectral_axis_):
            raise ValueError(
                "spectra must be on the grid the denoiser was fitted on "
                f"({self.spectral_axis_.size} pixels from {self.spectral_axis_[0]:.6g} to "
                f"{self.spectral_axis_[-1]:.6g}); resample them first with "
                "stellarlatent.preprocessing.Resampler"
            )
        flux = np.array(batch.flux, dtype=float)
        good = ~batch.mask & np.isfinite(flux) & np.isfinite(self.residual_variance_)
        shape = self._noise_shape(batch)
        if shape is not None:
            good &= np.isfinite(shape)
        reported = self._reported_noise(batch, good, shape)
        excess = np.zeros(batch.n_spectra)
        # spectra with the same good pixels share one least-squares problem
        patterns, which = np.unique(good, axis=0, return_inverse=True)
        chunk_size = _CHUNK if shape is None else _WEIGHTED_CHUNK
        for p, pattern in enumerate(patterns):
            rows = np.flatnonzero(which.ravel() == p)
            for chunk in np.array_split(rows, -(-rows.size // chunk_size)):
                weight = None if shape is None else shape[np.ix_(chunk, pattern)]
                flux[chunk], excess[chunk] = self._denoise(flux[chunk], pattern, weight,
                                                           reported[chunk])
        return batch.replace(flux=flux, meta=dict(batch.meta, excess_noise=excess))

    def _reported_noise(self, batch, good, shape):
        """Per spectrum, the noise variance its uncertainty reports at the median continuum
        (inf where it reports none, or with ``use_uncertainty=False``)."""
        reported = np.full(batch.n_spectra, np.inf)
        if not self.use_uncertainty or batch.ivar is None:
            return reported
        ivar = np.asarray(batch.ivar, dtype=float)
        valid = good & np.isfinite(ivar) & (ivar > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = np.where(valid, 1.0 / ivar, np.nan)
            if shape is not None:
                variance = variance / shape
        some = valid.any(axis=1)
        reported[some] = np.nanmedian(variance[some], axis=1)
        return reported

    def _noise_shape(self, batch):
        """Relative variance of the excess noise in each pixel (None: white noise)."""
        if not self.noise_exponent:
            return None
        continuum = batch.meta.get("continuum")
        if continuum is None:
            raise ValueError(
                f"PCADenoiser(noise_exponent={self.noise_exponent}) needs the continuum of each "
                "spectrum in meta['continuum']: normalise the spectra with "
                "ContinuumNormalizer(store_continuum=True) before it")
        continuum = np.array(u.Quantity(continuum).value, dtype=float)
        if continuum.shape != batch.flux.shape:
            raise ValueError(f"meta['continuum'] must have the shape of the flux, "
                             f"{batch.flux.shape}, got {continuum.shape}")
        continuum[~(continuum > 0)] = np.nan
        with np.errstate(all="ignore"):
            level = np.nanmedian(np.where(batch.mask, np.nan, continuum), axis=1, keepdims=True)
            return (level / continuum) ** self.noise_exponent

    def _denoise(self, flux, good, weight=None, reported=None):
        """Posterior means of spectra with the same good pixels, and their excess noise.

        ``flux`` has shape (n_spectra, n_pixels); ``weight`` (n_spectra, good
        pixels) is the relative variance of the excess noise in each good
        pixel (None: one level everywhere); ``reported`` (n_spectra,) caps
        the excess variance (inf: no cap). Spectra without excess noise (0)
        are returned unchanged.
        """
        k = self.components_.shape[0]
        n = int(good.sum())
        excess = np.zeros(flux.shape[0])
        if n <= 2 * k:
            return flux, excess
        comps = self.components_[:, good]
        centred = flux[:, good] - self.mean_[good]
        s2 = self.residual_variance_[good]
        amplitudes = np.linalg.lstsq(comps.T, centred.T, rcond=None)[0].T
        residual = centred - amplitudes @ comps
        standard = residual if weight is None else residual / np.sqrt(weight)
        spread = 1.4826 * np.median(np.abs(standard), axis=1, keepdims=True)
        kept = np.where(spread > 0, np.abs(standard) <= _CLIP * spread, True)
        # E[residual**2] = s2 + sigma**2 weight (1 - k / n) for noise of variance sigma**2 weight
        counted = kept.sum(axis=1) if weight is None else np.sum(weight * kept, axis=1)
        variance = (np.sum(residual ** 2 * kept, axis=1) - kept @ s2) / counted * n / (n - k)
        if reported is not None:
            variance = np.minimum(variance, reported)
        active = variance > 0
        if not active.any():
            return flux, excess
        v = variance[active]
        # (comps W^-1 comps^T / v + diag(1 / explained)) a = comps W^-1 centred / v, times v
        if weight is None:
            w = np.ones((1, n))
            products = (comps @ comps.T)[np.newaxis]
        else:
            w = weight[active]
            products = (comps[np.newaxis] / w[:, np.newaxis, :]) @ comps.T
        systems = products + v[:, None, None] * np.diag(1.0 / self.explained_variance_)
        amplitudes = np.linalg.solve(systems, ((centred[active] / w) @ comps.T)[..., np.newaxis])
        model = self.mean_[good] + amplitudes[..., 0] @ comps
        out = flux.copy()
        rows = np.ix_(active, good)
        noise = v[:, None] * w
        out[rows] = model + (flux[rows] - model) * s2 / (s2 + noise)
        excess[active] = np.sqrt(v)
        return out, excess

    def write(self, path, overwrite=False):
        """Save the fitted prior to a FITS file (read it back with `read`).

        Parameters
        ----------
        path : str or path-like
        overwrite : bool, default=False

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> from stellarlatent.datasets import make_synthetic_spectra
        >>> train, _ = make_synthetic_spectra(30, snr=None, random_state=0)
        >>> denoiser = PCADenoiser(n_components=5).fit(train)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     denoiser.write(Path(folder) / "prior.fits")
        ...     again = PCADenoiser.read(Path(folder) / "prior.fits")
        >>> again.components_.shape == denoiser.components_.shape
        True
        """
        check_is_fitted(self)
        header = fits.Header({"FORMAT": _FORMAT, "NCOMP": self.components_.shape[0]})
        hdus = fits.HDUList([
            fits.PrimaryHDU(self.components_.astype(np.float32), header=header),
            fits.ImageHDU(self.mean_, name="MEAN"),
            fits.ImageHDU(self.explained_variance_, name="VARIANCE"),
            fits.ImageHDU(self.residual_variance_, name="RESIDUAL"),
            axis_hdu(self.spectral_axis_),
        ])
        hdus.writeto(Path(path), overwrite=overwrite)

    @classmethod
    def read(cls, path):
        """A fitted `PCADenoiser` from a file that `write` wrote.

        The same as ``PCADenoiser(prior_file=path).fit()``.

        Raises
        ------
        ValueError
            If ``path`` is not such a file.
        """
        return cls(prior_file=path).fit()

    def _read(self, path):
        with fits.open(Path(path), memmap=False) as hdus:
            if hdus[0].header.get("FORMAT") != _FORMAT:
                raise ValueError(f"prior_file {str(path)!r} is not a PCADenoiser file "
                                 f"(FORMAT {hdus[0].header.get('FORMAT')!r})")
            held = hdus[0].data.shape[0]
            if self.n_components is not None and self.n_components != held:
                raise ValueError(
                    f"n_components={self.n_components}, but prior_file {str(path)!r} holds "
                    f"{held} components (and the residual variance of that number); leave "
                    "n_components None with a prior_file, or fit a new prior"
                )
            self.components_ = hdus[0].data.astype(float)
            self.mean_ = hdus["MEAN"].data.astype(float)
            self.explained_variance_ = hdus["VARIANCE"].data.astype(float)
            self.residual_variance_ = hdus["RESIDUAL"].data.astype(float)
            self.spectral_axis_ = read_axis(hdus)
        return self


def store_continuum_for_denoiser(steps):
    """Make the normalisers of ``steps`` keep the continuum where a denoiser after them needs it.

    ``steps`` is a list of transformers applied in turn; a
    `~stellarlatent.preprocessing.ContinuumNormalizer` followed by a
    `PCADenoiser` whose ``noise_exponent`` is not 0 gets
    ``store_continuum=True``. Returns ``steps``.
    """
    from .normalize import ContinuumNormalizer

    needed = False
    for step in reversed(steps):
        if isinstance(step, PCADenoiser) and step.noise_exponent:
            needed = True
        elif needed and isinstance(step, ContinuumNormalizer):
            step.set_params(store_continuum=True)
            needed = False
    return steps
