"""Binned probability distributions, shared by the estimators and the diagnostics."""

import numpy as np

__all__ = ["binned_cdf"]


def binned_cdf(proba, edges, values):
    """Cumulative probability of each binned distribution at a value (its PIT).

    The density is uniform inside each bin; values below the first edge get 0
    and values above the last edge 1. The estimators' coverage calibration
    and the diagnostics' interval coverage both use it, so that
    ``calibrate(method="coverage")`` fits exactly what is measured.

    Parameters
    ----------
    proba : ndarray, shape (n, n_bins)
        Bin probabilities of each row (normalised here).
    edges : array-like, shape (n_bins + 1,)
        Increasing bin edges.
    values : array-like, shape (n,)
        One finite value per row.

    Returns
    -------
    ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> binned_cdf([[0.5, 0.5], [0.5, 0.5]], [0.0, 1.0, 2.0], [0.5, 2.5]).tolist()
    [0.25, 1.0]
    """
    proba = np.asarray(proba, dtype=float)
    edges, values = np.asarray(edges, dtype=float), np.asarray(values, dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    cdf = np.concatenate([np.zeros((proba.shape[0], 1)), np.cumsum(proba, axis=1)], axis=1)
    k = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, proba.shape[1] - 1)
    rows = np.arange(proba.shape[0])
    fraction = np.clip((values - edges[k]) / (edges[k + 1] - edges[k]), 0.0, 1.0)
    return cdf[rows, k] + fraction * proba[rows, k]
