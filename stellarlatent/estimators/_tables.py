"""The tables of `DeepREMAP.predict` and `DeepREMAPEnsemble.predict`, from bin probabilities.

Each label's binned distribution gives its mean, half the width of its
central 68% interval and its 16th and 84th percentiles, and an edge flag
(too much probability in the first or last bin, where no training star
lies); the table adds the novelty flag of the embedding to every label's
``L_out_of_range`` and ends with ``embedding_distance``.
"""

import astropy.units as u
import numpy as np
from astropy.table import QTable

from ._binning import binned_summaries

__all__ = ["concatenated", "edges_with_unit", "label_summaries", "prediction_table"]

_SUFFIXES = ("", "_err", "_p16", "_p84")


def edges_with_unit(edges, unit):
    """Bin edges as a Quantity in ``unit`` (a plain ndarray for a dimensionless label)."""
    edges = np.asarray(edges, dtype=float)
    return edges if unit == u.dimensionless_unscaled else edges * unit


def label_summaries(proba, edges, edge_probability):
    """Mean, half the 68% interval, 16th and 84th percentiles and edge flag of one label.

    The calibrated distributions have a wide tail (the calibration's tail
    weight, for the stars whose errors are larger than the networks think):
    it sets the 95% intervals, but it swells the standard deviation to
    several times the 68% interval (six times in Teff for the bundled
    ``"miles-normalized"``), so the error quoted is half that interval. The
    mean stays the label (on held-out MILES stars the median of the binned
    distribution scattered more: 89 K against 72 K in Teff for the FGK stars
    of the bundled ``"miles"``).

    Parameters
    ----------
    proba : ndarray (n, n_bins)
        Bin probabilities (rows summing to one).
    edges : ndarray (n_bins + 1,)
    edge_probability : float
        The flag is set when the first or last bin holds more than this.

    Returns
    -------
    list of five ndarray (n,)

    Examples
    --------
    >>> proba = np.array([[0.0, 0.2, 0.6, 0.2]])
    >>> mean, err, p16, p84, edge = label_summaries(proba, [0.0, 1.0, 2.0, 3.0, 4.0], 0.5)
    >>> np.round([mean[0], p16[0], p84[0], err[0]], 6).tolist(), bool(edge[0])
    ([2.5, 1.8, 3.2, 0.7], False)
    """
    edge = np.maximum(proba[:, 0], proba[:, -1]) > edge_probability
    mean, _, p16, p84 = binned_summaries(proba, edges)
    return [mean, 0.5 * (p84 - p16), p16, p84, edge]


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
