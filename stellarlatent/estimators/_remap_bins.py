"""How DeepREMAP bins its labels and sizes its contrast channel for the training data.

The bin edges of each label from ``n_bins`` (``"auto"``: a fixed width per
known label), ``bin_width`` and ``margin``; the labels read from ``y`` or a
`~stellarlatent.datasets.SpectralStore`; Teff in log space; and the contrast
window of ``contrast_window="auto"`` on the training grid.
"""

import math

import astropy.units as u
import numpy as np

from ._binning import make_edges, read_labels
from ._data import _is_store
from ._presets import CONTRAST_KMS, odd_window
from ._remap_params import is_auto, is_real

__all__ = ["bin_edges", "binning_space", "contrast_window", "read_y"]

# What "auto" gives a label without a known resolution: bins over its range.
_FALLBACK_N_BINS = 50
# The bin widths of "auto" (in the binning space: Teff in dex with log_teff):
# about the precision of good spectroscopic labels, so that the bins stay as
# fine on 2800-36000 K as on 4000-7000 K.
_AUTO_WIDTH = {"teff": 65.0, "log_teff": 0.005, "logg": 0.09, "feh": 0.065, "mh": 0.065,
               "m_h": 0.065, "alpha": 0.03, "afe": 0.03, "alpha_fe": 0.03}
# "auto" keeps every label between these numbers of bins.
_AUTO_BINS = (20, 500)


def read_y(X, y, n, labels, units=None, name="y"):
    """The labels of ``n`` spectra from ``y``, or from the store ``X`` when ``y`` is None."""
    if y is None:
        if _is_store(X):
            missing = [label for label in labels if label not in X.label_names]
            if missing:
                raise ValueError(
                    f"y is None and the SpectralStore has no label columns {missing} "
                    f"(it has {X.label_names}); pass y"
                )
            y = X.labels
        else:
            raise ValueError(
                "y is required: a Table, dict or 2-D array of labels "
                f"{list(labels)} (only a SpectralStore carries its own labels)"
            )
    return read_labels(y, labels, n, units=units, name=name)


def binning_space(values, labels, log_teff):
    """``values`` (n, n_labels) with Teff as log10(Teff) when ``log_teff`` (NaN where <= 0)."""
    values = np.array(values, dtype=float)
    if log_teff and "teff" in labels:
        j = labels.index("teff")
        with np.errstate(invalid="ignore", divide="ignore"):
            values[:, j] = np.where(values[:, j] > 0, np.log10(values[:, j]), np.nan)
    return values


def _width(bin_width, label, unit, log_teff):
    """The bin width of ``label`` as a float in the binning space, or None."""
    if bin_width is None or label not in bin_width:
        return None
    width = bin_width[label]
    name = f"bin_width['{label}']"
    if isinstance(width, str):
        try:
            width = u.Quantity(width)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a number or a Quantity, got {width!r}") from exc
    log_space = label == "teff" and log_teff
    if isinstance(width, u.Quantity):
        if log_space:
            if width.unit not in (u.dex, u.dimensionless_unscaled):
                raise u.UnitsError(
                    f"{name} is in '{width.unit}', but with log_teff=True the width is in "
                    "dex of Teff (e.g. 0.005)"
                )
            width = width.value
        else:
            try:
                width = width.to_value(unit)
            except u.UnitConversionError as exc:
                raise u.UnitsError(
                    f"{name} is in '{width.unit}', which cannot be converted to '{unit}'"
                ) from exc
    if not (is_real(width) and 0 < width < math.inf):
        raise ValueError(f"{name} must be a positive number, got {width!r}")
    return float(width)


def _auto_width(label, values, log_teff):
    """The bin width of ``n_bins="auto"``, in the binning space (None: 50 bins)."""
    space = values
    key = label
    if label == "teff" and log_teff:
        space = np.log10(values[values > 0])
        key = "log_teff"
    space = space[np.isfinite(space)]
    if key not in _AUTO_WIDTH or space.size < 2:
        return None
    span = float(space.max() - space.min())
    if span <= 0:
        return None
    low, high = _AUTO_BINS
    return float(np.clip(_AUTO_WIDTH[key], span / high, span / low))


def bin_edges(values, labels, units, n_bins, bin_width, margins, log_teff):
    """``{label: edges}`` of the training ``values`` (n, n_labels), in the labels' units.

    ``n_bins`` and ``margins`` hold one value per label; ``bin_width`` is the
    estimator's parameter (a width overrides ``n_bins``).
    """
    edges = {}
    for j, label in enumerate(labels):
        width, count = _width(bin_width, label, units[label], log_teff), n_bins[label]
        if width is None and count == "auto":
            width = _auto_width(label, values[:, j], log_teff)
        edges[label] = make_edges(
            values[:, j], n_bins=_FALLBACK_N_BINS if count == "auto" else int(count),
            width=width, margin=float(margins[label]),
            log=(label == "teff" and log_teff), name=label,
        )
    return edges


def contrast_window(window, source):
    """The contrast window in pixels on the grid of ``source`` (``"auto"`` resolved)."""
    if not is_auto(window):
        return window
    n = source.n_pixels
    axis = source.spectral_axis
    step = None
    if axis is not None and n >= 2:
        wave = np.asarray(getattr(axis, "value", axis), dtype=float)
        middle = max(1, n // 2)
        if wave[middle] > 0 and wave[middle - 1] > 0:
            step = 299792.458 * abs(math.log(wave[middle] / wave[middle - 1]))
    return odd_window(round(CONTRAST_KMS / step) if step else round(33 * n / 2048), n)
