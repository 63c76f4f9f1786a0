"""Temperature scaling of binned label distributions, shared by DeepREMAP and its ensemble.

One temperature per label divides the log-probabilities (or logits) so
that, on held-out spectra, either the negative log-likelihood of the true
bins is smallest (``method="nll"``, Guo et al. 2017) or a fraction
``level`` of the true values lies in the central ``level`` credible
intervals (``method="coverage"``; with several levels, as near each as one
temperature allows).
"""

import numbers

import numpy as np
import torch

from .._logging import log
from ..nn import TemperatureScaler
from ._binning import coverage_temperature, digitize

__all__ = ["COVERAGE_LEVELS", "check_method", "fit_temperature", "fit_temperatures", "product",
           "softmax"]


#: Credible levels the coverage fit matches by default: the 68% and the 95% intervals.
COVERAGE_LEVELS = (0.6827, 0.9545)


def check_method(method, level):
    """The levels as a tuple of floats; refuse a ``method`` other than "nll" and "coverage",
    and a ``level`` that is not a probability in (0, 1) or a non-empty sequence of them."""
    if method not in ("nll", "coverage"):
        raise ValueError(f"method must be 'nll' or 'coverage', got {method!r}")
    levels = (level,) if isinstance(level, numbers.Real) else level
    try:
        levels = tuple(levels)
    except TypeError:
        levels = ()
    if not levels or any(isinstance(q, (bool, np.bool_)) or not isinstance(q, numbers.Real)
                         or not 0 < q < 1 for q in levels):
        raise ValueError("level must be a probability in (0, 1) or a sequence of them, "
                         f"got {level!r}")
    return tuple(float(q) for q in levels)


def fit_temperature(logp, edges, values, method, levels, label):
    """The temperature of one label fitted to held-out values (coverage or likelihood).

    Values outside the bins count in the edge bins; without any known value
    the temperature is 1 (with a warning).
    """
    bins, _ = digitize(values, edges, clip=True)
    if not np.any(bins >= 0):
        log.warning("calibrate: no known value of '%s'; its temperature stays 1", label)
        return 1.0
    if method == "coverage":
        return coverage_temperature(logp, edges, values, level=levels)
    scaler = TemperatureScaler().fit(torch.from_numpy(logp), torch.from_numpy(bins))
    return float(scaler.temperature[0])


def fit_temperatures(log_proba, labels, bin_edges, values, method, levels):
    """``{label: temperature}`` fitted to held-out ``values`` (n, n_labels)."""
    return {label: fit_temperature(log_proba[label], bin_edges[label], values[:, j], method,
                                   levels, label)
            for j, label in enumerate(labels)}


def product(networks, ridge, share):
    """log-probabilities of the product with the ridge expert's ``share`` (0.5: plain)."""
    return 2.0 * (1.0 - share) * networks + 2.0 * share * ridge


def softmax(logp):
    """Probabilities from log-probabilities (up to a constant), along the bins."""
    proba = np.exp(logp - logp.max(axis=1, keepdims=True))
    return proba / proba.sum(axis=1, keepdims=True)
