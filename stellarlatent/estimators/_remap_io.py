"""What a saved DeepREMAP holds besides the base's: its bins, calibration and reference set.

`remap_metadata` and `remap_tensors` give the ``"remap"`` block of the
file's JSON metadata and the reference set's tensors; `restore_remap` sets
the fitted attributes back from them and checks that they agree with the
parameters. The layout is that of every file written so far (files from
before ``contrast_window="auto"`` carry the window in their parameters).
"""

import math

import astropy.units as u
import numpy as np
import torch

from ._reference import ReferenceSet
from ._remap_params import DEFAULT_N_BINS, per_label

__all__ = ["remap_metadata", "remap_tensors", "restore_remap"]


def remap_metadata(estimator):
    """The JSON-serialisable ``"remap"`` block of a fitted DeepREMAP's metadata."""
    threshold = estimator.novelty_threshold_
    return {
        "labels": list(estimator.bin_edges_),
        "bin_edges": {
            k: np.asarray(v, dtype=float).tolist() for k, v in estimator.bin_edges_.items()
        },
        "label_units": {k: v.to_string() for k, v in estimator.label_units_.items()},
        "temperatures": dict(estimator.temperatures_),
        "label_loc": np.asarray(estimator._label_loc, dtype=float).tolist(),
        "label_scale": np.asarray(estimator._label_scale, dtype=float).tolist(),
        "log_teff": estimator._log_teff,
        "contrast_window": estimator._contrast_window(),
        "novelty_threshold": None if not math.isfinite(threshold) else threshold,
        "fine_tune_history": estimator.fine_tune_history_,
    }


def remap_tensors(estimator):
    """The reference set's embeddings and labels, as tensors."""
    reference = estimator._reference
    return {
        "reference_embeddings": torch.from_numpy(reference.embeddings),
        "reference_values": torch.from_numpy(np.ascontiguousarray(reference.values)),
    }


def restore_remap(estimator, metadata, tensors):
    """Set the fitted attributes of ``estimator`` from a file; return ``{label: n_bins}``.

    Raises
    ------
    ValueError
        If the bins do not cover the labels or disagree with ``n_bins``.
    """
    remap = metadata["remap"]
    labels = estimator._labels = tuple(remap["labels"])
    estimator.bin_edges_ = {k: np.asarray(v, dtype=float) for k, v in remap["bin_edges"].items()}
    estimator.label_units_ = {k: u.Unit(v) for k, v in remap["label_units"].items()}
    estimator.temperatures_ = {k: float(v) for k, v in remap["temperatures"].items()}
    estimator._label_loc = np.asarray(remap["label_loc"], dtype=float)
    estimator._label_scale = np.asarray(remap["label_scale"], dtype=float)
    estimator._log_teff = bool(remap["log_teff"])
    # files before contrast_window="auto" had the window in their parameters
    window = remap.get("contrast_window", estimator.contrast_window)
    estimator.contrast_window_ = None if window is None else int(window)
    threshold = remap["novelty_threshold"]
    estimator.novelty_threshold_ = math.inf if threshold is None else float(threshold)
    estimator.fine_tune_history_ = remap["fine_tune_history"]
    estimator._adopt_reference(ReferenceSet(tensors["reference_embeddings"].numpy(),
                                            tensors["reference_values"].numpy(),
                                            labels, estimator.label_units_))
    label_bins = {label: len(edges) - 1 for label, edges in estimator.bin_edges_.items()}
    if tuple(estimator.bin_edges_) != labels or set(estimator.label_units_) != set(labels):
        raise ValueError(f"the bins ({list(estimator.bin_edges_)}) and units "
                         f"({list(estimator.label_units_)}) do not cover the labels {list(labels)}")
    widths = estimator.bin_width or {}
    for label, n in per_label(estimator.n_bins, labels, "n_bins", DEFAULT_N_BINS).items():
        if label not in widths and n != "auto" and int(n) != label_bins[label]:
            raise ValueError(
                f"its parameters say n_bins={n} for '{label}' but its bin edges make "
                f"{label_bins[label]} bins"
            )
    return label_bins
