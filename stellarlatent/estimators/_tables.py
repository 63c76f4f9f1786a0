"""The tables of `DeepREMAP.predict` and `DeepREMAPEnsemble.predict`, from bin probabilities.

Each label's binned distribution gives its posterior mean, standard
deviation and 16th and 84th percentiles (`binned_summaries`) and an edge
flag (too much probability in the first or last bin, where no training star
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
    """Mean, standard deviation, 16th and 84th percentiles and edge flag of one label.

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
    """
    edge = np.maximum(proba[:, 0], proba[:, -1]) > edge_probability
    return [*binned_summaries(proba, edges), edge]


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
