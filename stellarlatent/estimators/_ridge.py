"""A ridge-regression expert whose binned probabilities join an ensemble's.

Ridge regression on the normalised flux is the strongest simple baseline for
stellar labels from MILES-like spectra, and its errors differ from a CNN's.
`RidgeExpert` fits one ridge per label (penalty by leave-one-out
cross-validation, so on the training stars only), takes the spread of its
leave-one-out residuals as its uncertainty and turns a prediction into the
probability of each label bin under a Student-t distribution (the residuals
have heavier tails than a Gaussian). `DeepREMAPEnsemble` multiplies these
probabilities into the networks' (a product of experts), so the ensemble
leans on whichever is sharper and does not do worse than ridge where the
networks are weak.
"""

import warnings

import numpy as np
from scipy import stats

from ._data import SpectraSource

__all__ = ["RidgeExpert", "ridge_flux"]

#: Penalties searched by leave-one-out cross-validation (features standardised).
ALPHAS = np.logspace(-2, 6, 25)
#: Degrees of freedom of the Student-t error distribution.
DOF = 5.0
#: The median |residual| of a centred Student-t of unit scale.
_T_SCALE = stats.t.ppf(0.75, DOF)
#: Flux values read from a store at a time by `ridge_flux` (16 Mi: 64 MiB of float32).
_CHUNK_VALUES = 2**24


def ridge_flux(source):
    """Flux as the ridge expert reads it: NaN at bad pixels, each spectrum over its median.

    Parameters
    ----------
    source : `SpectraSource` or `StoreSource`
        The spectra; a store is read a few thousand rows at a time, so that
        only the float64 result is held whole.

    Returns
    -------
    ndarray (n_spectra, n_pixels)
    """
    if isinstance(source, SpectraSource):
        return _normalised(source.flux.numpy(), source.mask.numpy())
    n, n_pixels = len(source), source.n_pixels
    flux = np.empty((n, n_pixels))
    step = max(1, _CHUNK_VALUES // max(n_pixels, 1))
    for start in range(0, n, step):
        rows = np.arange(start, min(start + step, n))
        batch = source.batch(rows)
        flux[rows] = _normalised(batch["flux"].numpy(), batch["mask"].numpy())
    return flux


def _normalised(flux, mask):
    flux = np.where(mask, np.nan, flux.astype(float))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a spectrum with no good pixel
        median = np.nanmedian(flux, axis=1, keepdims=True)
    # spectra normalised already stay as they are; others are brought to the same level
    scale = np.where(np.isfinite(median) & (median > 0), median, 1.0)
    return flux / scale


class RidgeExpert:
    """Ridge regression of each label with Student-t bin probabilities.

    Parameters
    ----------
    alphas : array-like, default=None
        Penalties searched by leave-one-out cross-validation (default
        `ALPHAS`, on standardised pixels).

    Attributes
    ----------
    center_, scale_ : ndarray (n_pixels,)
        Per-pixel median fill value / mean and standard deviation.
    coef_ : ndarray (n_labels, n_pixels)
    intercept_, alpha_, scale_t_ : ndarray (n_labels,)
        Intercepts, chosen penalties and the scales of the Student-t
        residual distributions (from leave-one-out residuals).
    loo_predictions_ : ndarray (n, n_labels)
        The leave-one-out prediction of each training spectrum at the chosen
        penalty (NaN where its label is unknown): an out-of-sample
        prediction of every spectrum the expert was fitted on. Not saved.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.uniform(0, 1, (200, 1))
    >>> X = y @ rng.normal(size=(1, 30)) + 0.05 * rng.normal(size=(200, 30))
    >>> expert = RidgeExpert().fit(X, y)
    >>> bool(np.abs(expert.predict(X) - y).max() < 0.3)
    True
    >>> mass = expert.log_bin_mass(X[:2], 0, np.linspace(-1, 2, 31))
    >>> mass.shape, bool(np.allclose(np.exp(mass).sum(axis=1), 1, atol=1e-3))
    ((2, 30), True)
    """

    def __init__(self, alphas=None):
        self.alphas = ALPHAS if alphas is None else np.asarray(alphas, dtype=float)

    def _features(self, flux):
        flux = np.array(flux, dtype=float)
        bad = ~np.isfinite(flux)
        if bad.any():
            flux[bad] = np.broadcast_to(self.fill_, flux.shape)[bad]
        return (flux - self.mean_) / self.scale_

    def fit(self, flux, values):
        """Fit one ridge per label.

        Parameters
        ----------
        flux : ndarray (n, n_pixels)
            NaN at bad pixels (filled with the training median of the pixel).
        values : ndarray (n, n_labels)
            Labels in the space they are binned in (NaN where unknown).

        Returns
        -------
        self
        """
        from sklearn.linear_model import RidgeCV

        flux = np.asarray(flux, dtype=float)
        values = np.asarray(values, dtype=float)
        with np.errstate(all="ignore"):
            fill = np.nanmedian(np.where(np.isfinite(flux), flux, np.nan), axis=0)
        self.fill_ = np.where(np.isfinite(fill), fill, 0.0)
        filled = np.where(np.isfinite(flux), flux, self.fill_)
        self.mean_ = filled.mean(axis=0)
        scale = filled.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        X = (filled - self.mean_) / self.scale_
        n_labels = values.shape[1]
        self.coef_ = np.zeros((n_labels, X.shape[1]))
        self.intercept_ = np.zeros(n_labels)
        self.alpha_ = np.zeros(n_labels)
        self.scale_t_ = np.ones(n_labels)
        self.loo_predictions_ = np.full(values.shape, np.nan)
        for j in range(n_labels):
            known = np.isfinite(values[:, j])
            if known.sum() < 3:
                raise ValueError(f"the ridge expert needs at least 3 known values of label {j}")
            # with a scoring, RidgeCV keeps the leave-one-out predictions (and chooses the
            # penalty by their squared error, as without one)
            model = RidgeCV(alphas=self.alphas, store_cv_results=True,
                            scoring="neg_mean_squared_error").fit(X[known], values[known, j])
            self.coef_[j] = model.coef_
            self.intercept_[j] = model.intercept_
            self.alpha_[j] = model.alpha_
            best = int(np.argmin(np.abs(self.alphas - model.alpha_)))
            self.loo_predictions_[known, j] = model.cv_results_[:, best]
            abs_residuals = np.abs(self.loo_predictions_[known, j] - values[known, j])
            self.scale_t_[j] = max(float(np.median(abs_residuals)) / _T_SCALE, 1e-12)
        return self

    def predict(self, flux):
        """Predicted labels, ndarray (n, n_labels), in the binning space."""
        return self._features(flux) @ self.coef_.T + self.intercept_

    def log_bin_mass(self, flux, label_index, edges, predicted=None):
        """log probability of each bin (``edges`` in the binning space) under the t law.

        Returns
        -------
        ndarray (n, n_bins)
            Normalised over the bins (the mass outside the edges is dropped).
        """
        if predicted is None:
            predicted = self.predict(flux)[:, label_index]
        edges = np.asarray(edges, dtype=float)
        z = (edges[None, :] - predicted[:, None]) / self.scale_t_[label_index]
        log_cdf = stats.t.logcdf(z, DOF)
        log_sf = stats.t.logsf(z, DOF)
        # the difference of the CDF on the side of the tail that keeps precision
        upper = np.where(z[:, 1:] <= 0, log_cdf[:, 1:], log_sf[:, :-1])
        lower = np.where(z[:, 1:] <= 0, log_cdf[:, :-1], log_sf[:, 1:])
        with np.errstate(divide="ignore"):
            log_mass = upper + np.log1p(-np.exp(np.minimum(lower - upper, 0.0)))
        log_mass = np.maximum(log_mass, -700.0)
        peak = log_mass.max(axis=1, keepdims=True)
        norm = peak + np.log(np.exp(log_mass - peak).sum(axis=1, keepdims=True))
        return log_mass - norm

    # -- persistence -------------------------------------------------------------------

    _STATE = ("alphas", "fill_", "mean_", "scale_", "coef_", "intercept_", "alpha_", "scale_t_")

    def state_dict(self):
        """The fitted arrays, as float64 tensors (what ``weights_only`` loading accepts)."""
        import torch

        return {name: torch.from_numpy(np.asarray(getattr(self, name), dtype=np.float64).copy())
                for name in self._STATE}

    @classmethod
    def from_state_dict(cls, state):
        """A fitted expert from `state_dict`."""
        missing = [name for name in cls._STATE if name not in state]
        if missing:
            raise ValueError(f"the ridge expert's state lacks {missing}")
        expert = cls(alphas=state["alphas"].numpy())
        for name in cls._STATE[1:]:
            setattr(expert, name, state[name].numpy().astype(float))
        return expert
