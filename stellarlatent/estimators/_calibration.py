"""Temperature scaling of binned label distributions, shared by DeepREMAP and its ensemble.

One temperature per label divides the log-probabilities (or logits) so
that, on held-out spectra, either the negative log-likelihood of the true
bins is smallest (``method="nll"``, Guo et al. 2017) or a fraction
```level`` of the true values lies in the central ``level`` credible
intervals (``method="coverage"``; with several levels, as near each as one
temperature allows). With several levels the coverage fit can also give the
distributions heavier tails (`fit_tail`): a share of the probability spread
four times as wide in log-probability (twice as wide for a Gaussian).
A temperature also moves the mean of a skewed or truncated distribution;
`widen` changes the width of calibrated distributions about their means
(`fit_scale`), for calibrating a subset of them after the rest.
"""

import numbers

import numpy as np
import torch

from .._logging import log
from ..nn import TemperatureScaler
from ._binning import binned_summaries, coverage_gap, coverage_temperature, digitize, known_values

__all__ = ["COVERAGE_LEVELS", "TAIL_WIDTH", "check_method", "fit_scale", "fit_tail",
           "fit_temperature", "fit_temperatures", "mixture", "product", "softmax", "widen"]


#: Credible levels the coverage fit matches by default: the 68% and the 95% intervals.
COVERAGE_LEVELS = (0.6827, 0.9545)
#: How much wider (as a temperature) the tail component of `mixture` is than the core.
TAIL_WIDTH = 4.0
#: Tail weights `fit_tail` tries.
TAIL_WEIGHTS = np.linspace(0.0, 0.5, 11)
#: Temperatures `fit_tail` tries (as `coverage_temperature`).
_TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
#: Width factors `fit_scale` tries: 97 from 1/4 to 4, log-uniform.
SCALES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 97))


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


def widen(proba, edges, scale):
    """Each binned distribution stretched about its mean by ``scale`` (narrowed below 1).

    The density, uniform inside each bin, becomes ``p(m + (x - m) / scale) /
    scale`` with ``m`` the distribution's mean, binned again on the same
    ``edges``; what a stretch carries beyond the first or last edge stays in
    that bin. The mean stays where it was, to a small fraction of a bin
    (binning again) but for that mass at the edges, which a temperature
    does not leave: the mean of a skewed distribution, or of one cut by the
    edges, moves with its temperature.

    Parameters
    ----------
    proba : ndarray, shape (n, n_bins)
    edges : ndarray, shape (n_bins + 1,)
    scale : float
        Positive; the standard deviations and the widths of every central
        interval are multiplied by it.

    Returns
    -------
    ndarray, shape (n, n_bins)

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.estimators._binning import binned_summaries
    >>> edges = np.arange(21.0)
    >>> proba = np.exp(-0.5 * ((edges[:-1] + 0.5 - 8.0) / 1.5) ** 2)[None] * [[1.0]]
    >>> proba[0, 9:] *= 3                            # skewed towards higher values
    >>> proba /= proba.sum()
    >>> mean, std, _, _ = binned_summaries(proba, edges)
    >>> wide_mean, wide_std, _, _ = binned_summaries(widen(proba, edges, 2.0), edges)
    >>> round(float(wide_mean[0] - mean[0]), 2), round(float(wide_std[0] / std[0]), 2)
    (0.01, 2.01)
    """
    proba = np.asarray(proba, dtype=float)
    edges = np.asarray(edges, dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    mean = binned_summaries(proba, edges)[0]
    # the cumulative distribution of the stretched density at every edge
    points = mean[:, None] + (edges[None, :] - mean[:, None]) / float(scale)
    n_bins = proba.shape[1]
    k = np.clip(np.searchsorted(edges, points, side="right") - 1, 0, n_bins - 1)
    fraction = np.clip((points - edges[k]) / (edges[k + 1] - edges[k]), 0.0, 1.0)
    rows = np.arange(len(proba))[:, None]
    cdf = np.concatenate([np.zeros((len(proba), 1)), np.cumsum(proba, axis=1)], axis=1)
    at_edges = cdf[rows, k] + fraction * proba[rows, k]
    widened = np.diff(at_edges, axis=1)
    widened[:, 0] += at_edges[:, 0]
    widened[:, -1] += 1.0 - at_edges[:, -1]
    return np.clip(widened, 0.0, None)


def fit_scale(proba, edges, values, method="coverage", levels=COVERAGE_LEVELS):
    """The factor of `widen` that calibrates distributions to held-out ``values``.

    With ``method="coverage"`` it makes the largest difference between the
    fraction of ``values`` inside the central intervals of ``levels`` and
    those levels smallest (on a tie, the middle in log of the tied factors);
    with ``"nll"``, the negative log-likelihood of the bins of the values
    (values outside the bins count in the edge bins). The factors tried are
    `SCALES`, 1/4 to 4; NaN values are left out.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> edges = np.arange(61.0)
    >>> truth = rng.uniform(20, 40, 2000)
    >>> values = truth + rng.normal(0, 3.0, 2000)       # errors of 3 where 1.5 is said
    >>> proba = np.exp(-0.5 * ((edges[:-1] + 0.5 - truth[:, None]) / 1.5) ** 2)
    >>> round(fit_scale(proba, edges, values), 1)
    2.0
    """
    proba, values = known_values(proba, values)
    if method == "coverage":
        levels = np.atleast_1d(np.asarray(levels, dtype=float))
        losses = np.array([coverage_gap(widen(proba, edges, scale), edges, values, levels)
                           for scale in SCALES])
    else:
        bins, _ = digitize(values, edges, clip=True)
        rows = np.arange(len(values))
        losses = np.array([-np.mean(np.log(widen(proba, edges, scale)[rows, bins] + 1e-12))
                           for scale in SCALES])
    tied = np.flatnonzero(losses <= losses.min() + 1e-12)
    return float(np.exp(np.median(np.log(SCALES[tied]))))
