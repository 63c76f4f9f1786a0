"""How well predicted probabilities and credible intervals match the truth.

deep-REMAP (Gilda 2025) predicts each stellar label as a classification over
label bins, with a probability per bin. Its uncertainties are useful only if
they are calibrated: among predictions made with confidence 0.8, about 80 %
should be right (reliability, expected calibration error), and about 68 % of
the true values should fall inside the 68 % credible intervals (coverage).

The functions take plain arrays: ``proba`` of shape (n_samples, n_bins) whose
rows sum to one, the true values with the ``bin_edges`` (or the indices of
the true bins), and for coverage the table of `DeepREMAP.predict` or the dict
of `DeepREMAP.predict_proba`. Missing (NaN or masked) true values are dropped.
"""

import astropy.units as u
import numpy as np
from astropy.table import Table
from scipy.stats import norm

from .._bins import binned_cdf
from .._logging import log
from ._labels import _column_values, as_2d_floats, label_values

__all__ = [
    "expected_calibration_error",
    "reliability_curve",
    "interval_coverage",
    "negative_log_likelihood",
]

_P68 = 0.6827


def _check_proba(proba, name="proba"):
    proba = as_2d_floats(proba, name, "probabilities", "(n_samples, n_bins)")
    if proba.shape[0] == 0 or proba.shape[1] < 2:
        raise ValueError(f"{name} needs at least one sample and two bins, got shape {proba.shape}")
    if not np.all(np.isfinite(proba)):
        raise ValueError(f"{name} contains non-finite probabilities")
    if proba.min() < -1e-6:
        raise ValueError(f"{name} contains negative probabilities (min {proba.min():.3g})")
    sums = proba.sum(axis=1)
    bad = np.abs(sums - 1.0) > 1e-3
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} rows must sum to 1; row {row} sums to {sums[row]:.6g}"
        )
    return np.clip(proba, 0.0, None)


def _check_edges(bin_edges, n_bins, name="bin_edges"):
    unit = None
    if isinstance(bin_edges, u.Quantity):
        unit, bin_edges = bin_edges.unit, bin_edges.value
    edges = np.asarray(bin_edges, dtype=float)
    if edges.ndim != 1 or edges.size != n_bins + 1:
        raise ValueError(
            f"{name} must be 1-D with n_bins + 1 = {n_bins + 1} values, got shape {edges.shape}"
        )
    if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ValueError(f"{name} must be finite and strictly increasing")
    return edges, unit


def _values_in(y, unit, name):
    """Float values of ``y`` (Quantity converted to ``unit`` when both have one)."""
    values, y_unit = _column_values(y, name)
    if unit is not None and y_unit is not None and y_unit != unit:
        try:
            values = (values * y_unit).to_value(unit)
        except u.UnitConversionError as exc:
            raise u.UnitsError(
                f"{name} has unit '{y_unit}', which cannot be converted to '{unit}'"
            ) from exc
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample), got shape {values.shape}")
    return values


def _true_bins(y_true, n_bins, bin_edges, n_samples, name="y_true"):
    """Return ``(bins, valid)``: the true bin of each sample and where it is known.

    Values outside the edges go to the first or last bin.
    """
    if bin_edges is None:
        values = _values_in(y_true, None, name)
    else:
        edges, unit = _check_edges(bin_edges, n_bins)
        values = _values_in(y_true, unit, name)
    if values.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {values.shape[0]} values but proba has {n_samples} rows"
        )
    valid = np.isfinite(values)
    bins = np.zeros(values.shape, dtype=np.intp)
    if bin_edges is None:
        v = values[valid]
        if np.any(v != np.round(v)) or (v.size and (v.min() < 0 or v.max() >= n_bins)):
            raise ValueError(
                f"{name} must hold bin indices in [0, {n_bins}) when bin_edges is not "
                "given; pass the true values together with bin_edges instead"
            )
        bins[valid] = v.astype(np.intp)
    else:
        outside = valid & ((values < edges[0]) | (values > edges[-1]))
        if outside.any():
            log.debug("%d true values lie outside bin_edges; using the edge bins", outside.sum())
        index = np.searchsorted(edges, values[valid], side="right") - 1
        bins[valid] = np.clip(index, 0, n_bins - 1)
    return bins, valid


def reliability_curve(proba, y_true, bin_edges=None, n_bins=10):
    """Mean confidence and accuracy of the top-label prediction per confidence bin.

    The predicted class of each sample is its most probable bin and its
    confidence that bin's probability. Samples are grouped into ``n_bins``
    equal-width confidence intervals ``(k / n_bins, (k + 1) / n_bins]``.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities; each row sums to 1.
    y_true : array-like of shape (n_samples,)
        The true class indices, or the true values when ``bin_edges`` is
        given (a Quantity is converted to the unit of ``bin_edges``). NaN or
        masked entries are dropped.
    bin_edges : array-like of shape (n_classes + 1,), default=None
        Edges of the label bins; true values outside them count in the first
        or last bin.
    n_bins : int
        Number of confidence intervals.

    Returns
    -------
    mean_confidence, accuracy : ndarray of shape (n_bins,)
        NaN for an empty interval.
    counts : ndarray of int, shape (n_bins,)
        Number of samples per interval.

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import reliability_curve
    >>> proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6]])
    >>> conf, acc, counts = reliability_curve(proba, [0, 1, 1, np.nan], n_bins=5)
    >>> counts.tolist()
    [0, 0, 0, 1, 2]
    >>> float(acc[-1])  # one of the two samples near confidence 0.9 is right
    0.5
    """
    proba = _check_proba(proba)
    n_bins = int(n_bins)
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    bins, valid = _true_bins(y_true, proba.shape[1], bin_edges, proba.shape[0])
    proba, bins = proba[valid], bins[valid]
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == bins).astype(float)
    which = np.clip(np.ceil(confidence * n_bins).astype(np.intp) - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=n_bins) / counts
        accuracy = np.bincount(which, correct, minlength=n_bins) / counts
    return mean_confidence, accuracy, counts


def expected_calibration_error(proba, y_true, bin_edges=None, n_bins=10):
    """Expected calibration error of the top-label prediction (Guo et al. 2017).

    ``ECE = sum_k (n_k / n) |accuracy_k - confidence_k|`` over the confidence
    intervals of `reliability_curve`.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_classes)
        Predicted probabilities; each row sums to 1.
    y_true : array-like of shape (n_samples,)
        True class indices, or true values with ``bin_edges``; NaN dropped.
    bin_edges : array-like of shape (n_classes + 1,), default=None
        Edges of the label bins.
    n_bins : int
        Number of confidence intervals.

    Returns
    -------
    float
        In [0, 1]; NaN when no true value is known.

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import expected_calibration_error
    >>> proba = np.array([[0.9, 0.1]] * 10)
    >>> truth = np.array([0.5] * 9 + [1.5])  # values, binned by the edges
    >>> expected_calibration_error(proba, truth, bin_edges=[0, 1, 2])  # doctest: +FLOAT_CMP
    0.0
    """
    mean_confidence, accuracy, counts = reliability_curve(proba, y_true, bin_edges, n_bins)
    total = counts.sum()
    if total == 0:
        log.warning("expected_calibration_error: y_true has no finite value; returning NaN")
        return float("nan")
    full = counts > 0
    gaps = np.abs(accuracy[full] - mean_confidence[full])
    return float(np.sum(counts[full] * gaps) / total)


def _level_name(level):
    return f"coverage_{100 * level:g}"


def _check_levels(levels):
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    if levels.ndim != 1 or levels.size == 0 or np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"levels must be probabilities in (0, 1), got {levels.tolist()}")
    return levels


def _prediction_labels(predictions, labels):
    if labels is not None:
        labels = [labels] if isinstance(labels, str) else list(labels)
        return labels
    if isinstance(predictions, dict):
        return list(predictions)
    found = [
        c
        for c in predictions.colnames
        if f"{c}_err" in predictions.colnames or f"{c}_p16" in predictions.colnames
    ]
    if not found:
        raise ValueError(
            "predictions has no label columns (a column L with L_err or L_p16/L_p84)"
        )
    return found


def _table_column(predictions, key, unit):
    values, col_unit = _column_values(predictions[key], f"predictions['{key}']")
    if unit is not None and col_unit is not None and col_unit != unit:
        values = (values * col_unit).to_value(unit)
    return values


def _coverage_from_table(predictions, label, truth, levels):
    colnames = predictions.colnames
    if label not in colnames:
        raise ValueError(f"predictions has no column '{label}'")
    unit = _column_values(predictions[label], f"predictions['{label}']")[1]
    y = label_values(truth, label, len(predictions), unit=unit, name="truth")
    mean = _table_column(predictions, label, unit)
    err = _table_column(predictions, f"{label}_err", unit) if f"{label}_err" in colnames else None
    has_percentiles = f"{label}_p16" in colnames and f"{label}_p84" in colnames
    valid = np.isfinite(y) & np.isfinite(mean)
    coverage = np.full(levels.size, np.nan)
    for i, level in enumerate(levels):
        if has_percentiles and abs(level - 0.68) <= 0.005:
            lo = _table_column(predictions, f"{label}_p16", unit)
            hi = _table_column(predictions, f"{label}_p84", unit)
        elif err is not None:
            z = norm.ppf(0.5 + level / 2)
            lo, hi = mean - z * err, mean + z * err
        else:
            raise ValueError(
                f"predictions needs a column '{label}_err' for the {level:g} interval "
                f"of '{label}' (only the 0.68 interval comes from '{label}_p16'/'{label}_p84')"
            )
        ok = valid & np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            coverage[i] = np.mean((y[ok] >= lo[ok]) & (y[ok] <= hi[ok]))
    return coverage, int(valid.sum())


def _coverage_from_proba(entry, label, truth, levels):
    if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
        raise TypeError(
            f"predictions['{label}'] must be a (proba, bin_edges) pair as returned "
            "by predict_proba"
        )
    proba = _check_proba(entry[0], name=f"predictions['{label}'] proba")
    edges, unit = _check_edges(entry[1], proba.shape[1], name=f"predictions['{label}'] bin_edges")
    y = label_values(truth, label, proba.shape[0], unit=unit, name="truth")
    valid = np.isfinite(y)
    coverage = np.full(levels.size, np.nan)
    if valid.any():
        pit = binned_cdf(proba[valid], edges, y[valid])
        for i, level in enumerate(levels):
            coverage[i] = np.mean((pit >= (1 - level) / 2) & (pit <= (1 + level) / 2))
    return coverage, int(valid.sum())


def interval_coverage(predictions, truth, levels=(0.68, 0.95), labels=None):
    """Fraction of true values inside the central credible intervals.

    Parameters
    ----------
    predictions : `~astropy.table.QTable` or dict
        Either the table of ``DeepREMAP.predict`` (for each label ``L`` the
        columns ``L``, ``L_err`` and optionally ``L_p16``, ``L_p84``) or the
        dict of ``DeepREMAP.predict_proba`` (``{label: (proba, bin_edges)}``).

        From the dict (preferred when available) the intervals are exact for
        the binned distribution: its cumulative distribution is interpolated
        linearly inside each bin, and a true value lies inside the central
        interval of level ``p`` when its cumulative probability is within
        ``[(1 - p) / 2, (1 + p) / 2]``.

        From the table, the 0.68 interval (any level within 0.005 of 0.68)
        is ``[L_p16, L_p84]`` when those columns exist; other levels use the
        Gaussian interval ``L +- z L_err`` with ``z`` the normal quantile of
        ``(1 + p) / 2``.
    truth : `~astropy.table.Table`, dict or array-like
        True labels, by name (or a 1-D array for a single label). Quantities
        are converted to the unit of the prediction; values without a unit
        are taken to be in it. NaN and masked values are dropped.
    levels : sequence of float
        Credible levels in (0, 1).
    labels : str or sequence of str, default=None
        Labels to evaluate (default: every label of ``predictions``).

    Returns
    -------
    `~astropy.table.Table`
        One row per label with columns ``label``, ``n`` (true values used)
        and ``coverage_<100 * level>`` (for example ``coverage_68`` and
        ``coverage_95``). A calibrated model has coverage close to the level.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import QTable
    >>> from stellarlatent.diagnostics import interval_coverage
    >>> rng = np.random.default_rng(0)
    >>> mean, err = rng.normal(0, 1, 20000), np.full(20000, 0.2)
    >>> predictions = QTable({"feh": mean, "feh_err": err})
    >>> truth = {"feh": mean + rng.normal(0, 0.2, 20000)}  # the errors are right
    >>> table = interval_coverage(predictions, truth)
    >>> table.colnames
    ['label', 'n', 'coverage_68', 'coverage_95']
    >>> np.round([table["coverage_68"][0], table["coverage_95"][0]], 2)  # doctest: +FLOAT_CMP
    array([0.68, 0.95])
    """
    levels = _check_levels(levels)
    if isinstance(predictions, Table):
        method = "table"
    elif isinstance(predictions, dict):
        method = "binned_cdf"
    else:
        raise TypeError(
            "predictions must be the QTable of predict() or the dict of predict_proba(), "
            f"got {type(predictions).__name__}"
        )
    labels = _prediction_labels(predictions, labels)
    if not isinstance(truth, (Table, dict)) and len(labels) != 1:
        raise ValueError(
            f"truth must be a table or dict with columns {labels} when there is more "
            "than one label"
        )
    rows = []
    for label in labels:
        if method == "table":
            coverage, n = _coverage_from_table(predictions, label, truth, levels)
        else:
            if label not in predictions:
                raise ValueError(f"predictions has no entry '{label}'")
            coverage, n = _coverage_from_proba(predictions[label], label, truth, levels)
        if n == 0:
            log.warning("interval_coverage: no true value of '%s'; its coverage is NaN", label)
        rows.append((label, n, *coverage))
    names = ["label", "n"] + [_level_name(level) for level in levels]
    table = Table(rows=rows, names=names, dtype=[str, int] + [float] * levels.size)
    table.meta.update(levels=levels.tolist(), method=method)
    return table


def negative_log_likelihood(proba, y_true, bin_edges=None, eps=1e-12, labels=None):
    """Mean negative log probability of the true bin.

    Parameters
    ----------
    proba : array-like of shape (n_samples, n_bins) or dict
        Predicted probabilities of one label, or the dict
        ``{label: (proba, bin_edges)}`` of ``DeepREMAP.predict_proba``.
    y_true : array-like, `~astropy.table.Table` or dict
        For one label: the true bin indices, or the true values with
        ``bin_edges``. For a dict ``proba``: a table or dict of true values
        by label. NaN values are dropped.
    bin_edges : array-like of shape (n_bins + 1,), default=None
        Edges of the label bins (one label only).
    eps : float
        Probabilities are clipped to at least ``eps`` so that a true bin of
        zero probability costs ``-log(eps)`` rather than infinity.
    labels : str or sequence of str, default=None
        Labels to evaluate for a dict ``proba`` (default all).

    Returns
    -------
    float or `~astropy.table.Table`
        The mean negative log-likelihood in nats (NaN when no true value is
        known), or for a dict ``proba`` a table with columns ``label``, ``n``
        and ``nll``.

    Examples
    --------
    >>> import numpy as np
    >>> from stellarlatent.diagnostics import negative_log_likelihood
    >>> proba = np.full((3, 4), 0.25)  # uniform over four bins
    >>> negative_log_likelihood(proba, [0, 3, 1])  # doctest: +FLOAT_CMP
    1.3862943611198906
    """
    if not (np.isfinite(eps) and 0 < eps < 1):
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    if isinstance(proba, dict):
        rows = []
        for label in _prediction_labels(proba, labels):
            if label not in proba:
                raise ValueError(f"proba has no entry '{label}'")
            p, edges = proba[label]
            n_rows = np.shape(p)[0]
            unit = edges.unit if isinstance(edges, u.Quantity) else None
            y = label_values(y_true, label, n_rows, unit=unit, name="y_true")
            nll = negative_log_likelihood(p, y, edges, eps=eps)
            rows.append((label, int(np.isfinite(y).sum()), nll))
        return Table(rows=rows, names=["label", "n", "nll"], dtype=[str, int, float])
    proba = _check_proba(proba)
    bins, valid = _true_bins(y_true, proba.shape[1], bin_edges, proba.shape[0])
    if not valid.any():
        log.warning("negative_log_likelihood: y_true has no finite value; returning NaN")
        return float("nan")
    p_true = proba[np.flatnonzero(valid), bins[valid]]
    return float(np.mean(-np.log(np.clip(p_true, eps, None))))
