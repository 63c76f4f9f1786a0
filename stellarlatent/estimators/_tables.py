"""The tables of `DeepREMAP.predict` and `DeepREMAPEnsemble.predict`, from bin probabilities.

Each label's binned distribution gives its mean, half the width of its
central 68% interval and its 16th and 84th percentiles, and an edge flag
(too much probability outside the range of the training labels); the table
adds the novelty flag of the embedding to every label's ``L_out_of_range``
and ends with ``embedding_distance``.
"""

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ._binning import binned_summaries

__all__ = ["concatenated", "edges_with_unit", "label_summaries", "prediction_table",
           "probability_outside", "training_range"]

_SUFFIXES = ("", "_err", "_p16", "_p84")


def edges_with_unit(edges, unit):
    """Bin edges as a Quantity in ``unit`` (a plain ndarray for a dimensionless label)."""
    edges = np.asarray(edges, dtype=float)
    return edges if unit == u.dimensionless_unscaled else edges * unit


def label_summaries(proba, edges, edge_probability, label_range=None):
    """Mean, half the 68% interval, 16th and 84th percentiles and edge flag of one label.

    The calibrated distributions have a wide tail (the calibration's tail
    weight, for the stars whose errors are larger than the networks think):
    it sets the 95% intervals, but it swells the standard deviation to
    several times the 68% interval (six times in Teff for the bundled
    ``"miles-normalized"``), so the error quoted is half that interval. The
    mean stays the label (on held-out MILES stars the median of the binned
    distribution scattered more: 89 K against 72 K in Teff for the FGK stars
    of the bundled ``"miles"``). The tail can pull the mean of a star at the
    edge of the training labels outside its 68% interval (the bundled
    models put a 2819 K giant at 3206 K, above an interval of 2790-2868 K);
    moving such a mean to the nearer end of the interval was judged once
    on the held-out fifth of the bundled models and made those labels
    worse (mean absolute Teff error of the 10 and 13 stars it moved: 199
    and 124 K against 193 and 116 K), so it is not done: for such a star,
    quote the interval.

    Parameters
    ----------
    proba : ndarray (n, n_bins)
        Bin probabilities (rows summing to one).
    edges : ndarray (n_bins + 1,)
    edge_probability : float
        The flag is set when more than this lies outside ``label_range``
        (`probability_outside`).
    label_range : tuple of two float, default=None
        The lowest and highest training label. None takes the inner edges
        of the first and last bins (the margin of the binning, where no
        training label lies, when it is one bin wide). The first and last
        bins count as outside whatever the range (labels beyond the bins
        are trained into them).

    Returns
    -------
    list of five ndarray (n,)

    Examples
    --------
    >>> proba = np.array([[0.0, 0.2, 0.6, 0.2], [0.0, 0.0, 0.3, 0.7]])
    >>> mean, err, p16, p84, edge = label_summaries(proba, [0.0, 1.0, 2.0, 3.0, 4.0], 0.25)
    >>> np.round([mean[0], p16[0], p84[0], err[0]], 6).tolist(), edge.tolist()
    ([2.5, 1.8, 3.2, 0.7], [False, True])
    """
    edges = np.asarray(edges, dtype=float)
    low, high = (edges[1], edges[-2]) if label_range is None else label_range
    # the edge bins are outside whatever the range: labels beyond the bins are trained into them
    low, high = max(low, edges[1]), min(high, edges[-2])
    edge = probability_outside(proba, edges, low, high) > edge_probability
    mean, _, p16, p84 = binned_summaries(proba, edges)
    return [mean, 0.5 * (p84 - p16), p16, p84, edge]


def probability_outside(proba, edges, low, high):
    """The probability of each binned distribution below ``low`` and above ``high``.

    The density is uniform inside a bin, as for the percentiles of
    `~stellarlatent.estimators._binning.binned_summaries`.

    Examples
    --------
    >>> proba = np.array([[0.1, 0.4, 0.4, 0.1]])
    >>> probability_outside(proba, [0.0, 1.0, 2.0, 3.0, 4.0], 0.5, 3.0).round(6).tolist()
    [0.15]
    """
    proba = np.asarray(proba, dtype=float)
    edges = np.asarray(edges, dtype=float)
    cumulative = np.concatenate([np.zeros((len(proba), 1)), np.cumsum(proba, axis=1)], axis=1)

    def below(value):
        k = int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, len(edges) - 2))
        fraction = np.clip((value - edges[k]) / (edges[k + 1] - edges[k]), 0.0, 1.0)
        return cumulative[:, k] + fraction * proba[:, k]

    return below(low) + (cumulative[:, -1] - below(high))


def training_range(reference_labels, label, unit=None):
    """``(lowest, highest)`` known value of ``label`` among the training spectra, or None.

    ``reference_labels`` is the ``reference_labels_`` table of a fitted
    DeepREMAP (the labels of the spectra it was fitted, or last fine-tuned,
    on); ``unit`` that of the label's bins. None (the bins' margin is used
    instead) when the label has fewer than two distinct known values: a
    fine-tuning on one cluster's [Fe/H] says nothing of the range the
    network knows.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> table = QTable({"teff": [5.0, 4.2, np.nan] * u.kK, "feh": [0.1, 0.1, np.nan] * u.dex})
    >>> training_range(table, "teff", u.K), training_range(table, "feh", u.dex)
    ((4200.0, 5000.0), None)
    """
    if reference_labels is None or label not in reference_labels.colnames:
        return None
    column = reference_labels[label]
    if unit is not None and getattr(column, "unit", None) is not None:
        column = column.to(unit)
    mask = np.asarray(getattr(column, "mask", np.zeros(len(column), bool)), dtype=bool)
    data = getattr(column, "unmasked", column)
    values = np.asarray(getattr(data, "value", data), dtype=float)
    values = values[~mask & np.isfinite(values)]
    if np.unique(values).size < 2:
        return None
    return float(values.min()), float(values.max())


def concatenated(parts):
    """``{label: summaries}`` of all spectra from a list of those of batches."""
    return {label: [np.concatenate(column) for column in zip(*(part[label] for part in parts))]
            for label in parts[0]}


def prediction_table(summaries, units, novel, distance):
    """The table of predict.

    Parameters
    ----------
    summaries : dict
        ``{label: label_summaries(...)}`` of every spectrum.
    units : dict
        ``{label: unit}``.
    novel : ndarray of bool (n,)
        Spectra flagged out of range in every label (far in the embedding).
    distance : ndarray (n,)
        The ``embedding_distance`` column.

    Returns
    -------
    `~astropy.table.QTable`
    """
    table = QTable()
    for label, (*values, edge) in summaries.items():
        unit = units[label]
        for suffix, value in zip(_SUFFIXES, values):
            table[label + suffix] = value if unit == u.dimensionless_unscaled else value * unit
        table[label + "_out_of_range"] = edge | novel
    table["embedding_distance"] = distance
    return table
