"""Binned probability distributions, shared by the estimators and the diagnostics."""

import numpy as np

__all__ = ["binned_cdf"]


def binned_cdf(proba, edges, values):
    """Cumulative probability at ``values``, the density being uniform in each bin.

    Parameters
    ----------
    proba : ndarray, shape (n, n_bins)
        Bin probabilities of each row (normalised here).
    edges : ndarray, shape (n_bins + 1,)
        Increasing bin edges.
    values : ndarray, shape (n,)
        One value per row; outside the edges the CDF is 0 or 1.

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> binned_cdf(np.array([[0.5, 0.5]]), np.array([0.0, 1.0, 2.0]), np.array([1.5]))
    array([0.75])
    """
    proba = proba / proba.sum(axis=1, keepdims=True)
    cdf = np.concatenate([np.zeros((proba.shape[0], 1)), np.cumsum(proba, axis=1)], axis=1)
    k = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, proba.shape[1] - 1)
    rows = np.arange(proba.shape[0])
    fraction = np.clip((values - edges[k]) / (edges[k + 1] - edges[k]), 0.0, 1.0)
    return cdf[rows, k] + fraction * proba[rows, k]
