"""Temperature scaling of binned label distributions, shared by DeepREMAP and its ensemble.

One temperature per label divides the log-probabilities (or logits) so
that, on held-out spectra, either the negative log-likelihood of the true
bins is smallest (``method="nll"``, Guo et al. 2017) or a fraction
```level`` of the true values lies in the central ``level`` credible
intervals (``method="coverage"``; with several levels, as near each as one
temperature allows). With several levels the coverage fit can also give the
distributions heavier tails (`fit_tail`): a share of the probability spread
four times as wide in log-probability (twice as wide for a Gaussian).
"""

import numbers

import numpy as np
import torch

from .._logging import log
from ..nn import TemperatureScaler
from ._binning import coverage_gap, coverage_temperature, digitize, known_values

__all__ = ["COVERAGE_LEVELS", "TAIL_WIDTH", "check_method", "fit_tail", "fit_temperature",
           "fit_temperatures", "mixture", "product", "softmax"]


#: Credible levels the coverage fit matches by default: the 68% and the 95% intervals.
COVERAGE_LEVELS = (0.6827, 0.9545)
#: How much wider (as a temperature) the tail component of `mixture` is than the core.
TAIL_WIDTH = 4.0
#: Tail weights `fit_tail` tries.
TAIL_WEIGHTS = np.linspace(0.0, 0.5, 11)
#: Temperatures `fit_tail` tries (as `coverage_temperature`).
_TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))


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


def mixture(logp, temperature, tail):
    """Probabilities ``(1 - tail) softmax(logp / T) + tail softmax(logp / (TAIL_WIDTH T))``.

    Examples
    --------
    >>> import numpy as np
    >>> logp = np.log([[0.1, 0.8, 0.1]])
    >>> np.round(mixture(logp, 1.0, 0.0), 3).tolist()    # no tail: the distribution itself
    [[0.1, 0.8, 0.1]]
    >>> np.round(mixture(logp, 1.0, 0.5), 3).tolist()    # half of it much flatter
    [[0.186, 0.628, 0.186]]
    """
    core = softmax(logp / temperature)
    if not tail:
        return core
    return (1.0 - tail) * core + tail * softmax(logp / (TAIL_WIDTH * temperature))


def fit_tail(logp, edges, values, levels):
    """``(temperature, tail)`` whose `mixture` brings the coverage of every level nearest it.

    Both are chosen on grids (241 temperatures from 0.05 to 20, tail weights
    0, 0.05, ..., 0.5) to make the largest difference between the fraction
    of ``values`` inside the central intervals and their level smallest. One
    temperature alone cannot widen the 95% intervals without widening the
    68% ones: when the errors have heavier tails than the distributions, the
    tail weight does that. On a tie the smallest tail weight is kept, and the
    middle (in log) of the tied temperatures.

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent._bins import binned_cdf
    >>> from stellarlatent.estimators._binning import coverage_temperature
    >>> rng = np.random.default_rng(1)
    >>> centres, edges = np.arange(60) + 0.5, np.arange(61.0)
    >>> truth = rng.uniform(20, 40, 1500)
    >>> wide = rng.random(1500) < 0.1                # one star in ten is off by three times more
    >>> values = truth + rng.normal(0, 1, 1500) * np.where(wide, 3.0, 1.0)
    >>> logp = -0.5 * (centres - truth[:, None]) ** 2
    >>> levels = (0.6827, 0.9545)
    >>> def coverage(proba):
    ...     pit = binned_cdf(proba, edges, values)
    ...     return [round(float(np.mean(np.abs(2 * pit - 1) <= q)), 3) for q in levels]
    >>> coverage(mixture(logp, coverage_temperature(logp, edges, values, levels), 0.0))
    [0.703, 0.934]
    >>> temperature, tail = fit_tail(logp, edges, values, levels)
    >>> coverage(mixture(logp, temperature, tail)), tail
    ([0.684, 0.952], 0.35)
    """
    logp, values = known_values(logp, values)
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    best = None
    for tail in TAIL_WEIGHTS:
        gaps = np.array([coverage_gap(mixture(logp, temperature, tail), edges, values, levels)
                         for temperature in _TEMPERATURES])
        if best is None or gaps.min() < best[0] - 1e-12:
            tied = np.flatnonzero(gaps <= gaps.min() + 1e-12)
            temperature = float(np.exp(np.median(np.log(_TEMPERATURES[tied]))))
            best = (gaps.min(), temperature, round(float(tail), 6))
    return best[1], best[2]
