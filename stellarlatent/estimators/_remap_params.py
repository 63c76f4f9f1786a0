"""DeepREMAP's declared parameters: the constraint table and the per-label checks.

The table (``DeepREMAP._parameter_constraints``) and its helpers, the
expansion of scalar-or-dict parameters to one value per label, and the checks
of argument values that `DeepREMAP.fine_tune` takes (``freeze``) or that depend
on several parameters at once (the size of the network).
"""

import math
import numbers

import numpy as np

from .._params import Converted, Interval, InvalidParameterError, Predicate

__all__ = ["CONSTRAINTS", "DEFAULT_N_BINS", "PER_LABEL_DEFAULTS", "check_network_size",
           "frozen_blocks", "is_auto", "is_real", "label_names", "per_label"]

DEFAULT_N_BINS = "auto"
# weights, optimiser state and cost matrices of one network; more is a typo, not a model
MAX_NETWORK_BYTES = 16 * 2**30
# a cost matrix of n_bins**2 entries; far beyond any label's resolution
MAX_BINS = 10_000
# What a label left out of a per-label dict gets.
PER_LABEL_DEFAULTS = {"margin": 0.05, "gamma": 2.0, "label_smoothing": 0.0}


def is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_auto(value):
    return isinstance(value, str) and value == "auto"


def _is_odd(value, low):
    return _is_int(value) and value >= low and value % 2 == 1


def per_label(value, labels, name, default):
    """Expand a scalar-or-dict parameter to one value per label."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in labels]
        if unknown:
            raise ValueError(
                f"{name} names labels {unknown} that are not in labels {list(labels)}"
            )
        return {label: value.get(label, default) for label in labels}
    return {label: value for label in labels}


def label_names(labels, name="labels"):
    """The label names as a tuple; raise naming ``name`` if they are not valid names."""
    if isinstance(labels, str) or not hasattr(labels, "__iter__"):
        raise TypeError(
            f"{name} must be a sequence of label names such as ('teff',), got {labels!r}"
        )
    labels = tuple(labels)
    if not labels:
        raise ValueError(f"{name} must name at least one label")
    for label in labels:
        if not isinstance(label, str) or not label or "." in label:
            raise ValueError(f"{name} must be non-empty strings without '.', got {label!r}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"{name} has duplicated names: {list(labels)}")
    return labels


def each_label(value):
    """``(label, value)`` of a per-label dict, or ``(None, value)`` of a scalar."""
    return value.items() if isinstance(value, dict) else [(None, value)]


def _for(label):
    return "" if label is None else f" for '{label}'"


def _check_n_bins(value, name):
    for label, n in each_label(value):
        if not (is_auto(n) or (_is_int(n) and 3 <= n <= MAX_BINS)):
            raise InvalidParameterError(
                f"{name} must be 'auto' or an integer in [3, {MAX_BINS}] (or a dict of them), "
                f"got {n!r}{_for(label)}")


def _check_per_label_number(value, name):
    for label, number in each_label(value):
        if not (is_real(number) and 0 <= number < math.inf):
            raise InvalidParameterError(
                f"{name} must be a non-negative number (or a dict), got {number!r}{_for(label)}")


def _check_bin_width(value, name):
    if not isinstance(value, dict):
        raise InvalidParameterError(f"{name} must be None or a dict {{label: width}}, "
                                    f"got {value!r}")


_NON_NEGATIVE = Interval(numbers.Real, 0, None, closed="left")
_POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")
_PER_LABEL_NUMBER = Converted(_check_per_label_number, "a non-negative number or a dict of them")
_PROBABILITY = Interval(numbers.Real, 0, 1, closed="right")

#: ``DeepREMAP._parameter_constraints`` (the training parameters are the base's).
CONSTRAINTS = {
    "labels": [Converted(lambda value, name: label_names(value, name),
                         "a sequence of label names such as ('teff',)")],
    "n_bins": [Converted(_check_n_bins, f"'auto', an integer in [3, {MAX_BINS}] "
                                        "or a dict {label: n_bins}")],
    "bin_width": [None, Converted(_check_bin_width, "a dict {label: width}")],
    "margin": [_PER_LABEL_NUMBER],
    "log_teff": ["boolean"],
    "gamma": [_PER_LABEL_NUMBER],
    "class_balance": ["boolean"],
    "cost_weight": [_NON_NEGATIVE],
    "label_smoothing": [_PER_LABEL_NUMBER],
    "triplet_weight": [_NON_NEGATIVE],
    "triplet_margin": [_NON_NEGATIVE],
    "positive_threshold": [Interval(numbers.Real, 0, None, closed="neither")],
    "base_channels": [_POSITIVE_INT],
    "n_stages": [_POSITIVE_INT],
    "blocks_per_stage": [_POSITIVE_INT],
    "kernel_size": [Predicate(lambda value: _is_odd(value, 1), "an odd positive integer")],
    "contrast_window": [None, Predicate(is_auto, "'auto'"),
                        Predicate(lambda value: _is_odd(value, 3), "an odd integer >= 3")],
    "embedding_dim": [_POSITIVE_INT],
    "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
    "standardize": ["boolean"],
    "restart_period": [None, _POSITIVE_INT],
    "swa_start": [None, Interval(numbers.Real, 0, 1, closed="left",
                                 description="a fraction in [0, 1) of the epochs"),
                  Interval(numbers.Integral, 0, None, closed="left",
                           description="an epoch number")],
    "swa_lr": [None, Interval(numbers.Real, 0, None, closed="neither")],
    "edge_probability": [_PROBABILITY],
    "novelty_quantile": [_PROBABILITY],
}


def check_network_size(estimator, label_bins):
    """Refuse a network whose weights, optimiser state and cost matrices cannot fit.

    The count is exact for the convolutions and the heads up to biases and
    batch norms; training holds about four copies (weights, gradients and
    Adam's two moments).
    """
    k = estimator.kernel_size
    base, n_stages, blocks = estimator.base_channels, estimator.n_stages, estimator.blocks_per_stage
    in_channels = 2 + (estimator.contrast_window is not None)  # "auto" is a window too
    n_params = k * in_channels * base
    channels = base
    for stage in range(n_stages):
        out = base * 2**stage
        for _ in range(blocks):
            n_params += k * channels * out + k * out * out + channels * out
            channels = out
    n_params += channels * estimator.embedding_dim + channels * sum(label_bins.values())
    n_cost = sum(n * n for n in label_bins.values())
    needed = 4 * (4 * n_params + n_cost)
    if needed > MAX_NETWORK_BYTES:
        raise ValueError(
            f"this network would need about {needed / 2**30:.3g} GiB to train "
            f"({n_params:.3g} weights from base_channels={base}, "
            f"n_stages={n_stages}, blocks_per_stage={blocks}, and "
            f"{n_cost:.3g} cost-matrix entries from n_bins={dict(label_bins)}); expected at "
            f"most {MAX_NETWORK_BYTES / 2**30:.0f} GiB: lower n_stages, base_channels or n_bins"
        )


def frozen_blocks(freeze, n_blocks):
    """The number of backbone units that `DeepREMAP.fine_tune`'s ``freeze`` keeps fixed."""
    if freeze is None:
        return 0
    if isinstance(freeze, str):
        if freeze != "backbone":
            raise ValueError(f"freeze must be None, 'backbone' or an integer, got {freeze!r}")
        return n_blocks
    if (isinstance(freeze, numbers.Integral) and not isinstance(freeze, bool)
            and 0 <= freeze <= n_blocks):
        return int(freeze)
    raise ValueError(
        f"freeze must be None, 'backbone' or an integer in [0, {n_blocks}], got {freeze!r}"
    )
