"""Label tables and label bins of DeepREMAP.

deep-REMAP (Gilda 2025) treats each stellar label as a classification over
bins. This module reads labels from the forms users hold them in (tables with
units, dicts, arrays), chooses bin edges, turns values into bin indices and
binned probabilities back into summaries (mean, standard deviation,
percentiles). The binned distribution is taken to be uniform inside each bin,
as in `stellarlatent.diagnostics`, so the summaries and the diagnostics agree.
"""

import math

import astropy.units as u
import numpy as np
from astropy.table import Table

from .._bins import binned_cdf

__all__ = [
    "DEFAULT_UNITS",
    "label_unit",
    "read_labels",
    "make_edges",
    "digitize",
    "binned_summaries",
    "binned_cdf",
    "coverage_gap",
    "known_values",
    "coverage_temperature",
]

#: Units of the labels deep-REMAP knows; plain numbers are taken to be in them.
DEFAULT_UNITS = {
    "teff": u.K,
    "logg": u.dex,
    "feh": u.dex,
    "mh": u.dex,
    "m_h": u.dex,
    "alpha": u.dex,
    "afe": u.dex,
    "alpha_fe": u.dex,
    "rv": u.km / u.s,
    "vsini": u.km / u.s,
    "vmic": u.km / u.s,
    "vmac": u.km / u.s,
}


def label_unit(label, given=None):
    """Unit of ``label``: its default, else the unit the data came with, else dimensionless."""
    if label in DEFAULT_UNITS:
        return DEFAULT_UNITS[label]
    if given is not None:
        return given
    return u.dimensionless_unscaled


def _column(column, name):
    """Float values (NaN where masked or missing) and unit (or None) of one column."""
    unit = getattr(column, "unit", None)
    mask = None
    if hasattr(column, "unmasked"):  # astropy Masked quantities
        mask = np.asarray(column.mask, dtype=bool)
        column = column.unmasked
    elif np.ma.isMaskedArray(column):  # MaskedColumn, numpy masked arrays
        mask = np.ma.getmaskarray(column)
        column = np.ma.getdata(column)
    if isinstance(column, u.Quantity):
        unit = column.unit
        if isinstance(unit, u.FunctionUnitBase):
            if unit.function_unit != u.dex:
                raise u.UnitsError(
                    f"{name} has the logarithmic unit '{unit}'; expected dex or a plain unit"
                )
            unit = u.dex
        column = column.value
    data = np.asarray(column)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got values of dtype '{data.dtype}'")
    values = data.astype(float)
    if mask is not None:
        values[np.broadcast_to(mask, values.shape)] = np.nan
    if unit is not None:
        unit = u.Unit(unit)
    return values, unit


def _convert(values, unit, target, name):
    if unit is None or target is None or unit == target:
        return values
    if target == u.dex and unit == u.dimensionless_unscaled:
        return values
    try:
        return (values * unit).to_value(target, equivalencies=u.temperature())
    except u.UnitConversionError as exc:
        raise u.UnitsError(
            f"{name} is in '{unit}', which cannot be converted to '{target}'"
        ) from exc


def read_labels(y, labels, n_samples, units=None, name="y"):
    """Label values as a float array, converted to the label units.

    Parameters
    ----------
    y : `~astropy.table.Table`, `~astropy.table.QTable`, dict or array-like
        Tables and dicts are read by column name; a 2-D array holds the labels
        in the order of ``labels`` (a 1-D array is allowed for one label).
        Quantities are converted; plain numbers are taken to be in the
        label's unit. Masked entries become NaN.
    labels : sequence of str
    n_samples : int
        Expected number of rows.
    units : dict, default=None
        Unit of each label (from a fitted model). Default: `label_unit`.
    name : str
        Name of the argument, for error messages.

    Returns
    -------
    values : ndarray, shape (n_samples, n_labels)
        NaN where a label is unknown.
    units : dict
        Unit of each label.

    Examples
    --------
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> y = QTable({"teff": [5.0, 6.0] * u.kK, "logg": [4.4, 2.5] * u.dex})
    >>> values, units = read_labels(y, ["teff", "logg"], 2)
    >>> values.tolist(), units["teff"]
    ([[5000.0, 4.4], [6000.0, 2.5]], Unit("K"))
    """
    labels = list(labels)
    columns = {}
    if isinstance(y, Table):
        for label in labels:
            if label not in y.colnames:
                raise ValueError(
                    f"{name} has no column '{label}' (named in labels); "
                    f"available: {', '.join(y.colnames)}"
                )
            columns[label] = _column(y[label], f"{name}['{label}']")
    elif isinstance(y, dict):
        for label in labels:
            if label not in y:
                raise ValueError(
                    f"{name} has no entry '{label}' (named in labels); "
                    f"available: {', '.join(map(str, y))}"
                )
            columns[label] = _column(y[label], f"{name}['{label}']")
    else:
        if y is None or isinstance(y, (str, bytes)):
            raise TypeError(
                f"{name} must be a Table, a dict of arrays or a 2-D array of labels, "
                f"got {type(y).__name__}"
            )
        values, unit = _column(y, name)
        if values.ndim == 1 and len(labels) == 1:
            values = values[:, np.newaxis]
        if values.ndim != 2 or values.shape[1] != len(labels):
            raise ValueError(
                f"{name} must be a 2-D array with one column per label ({len(labels)}: "
                f"{', '.join(labels)}), got shape {values.shape}"
            )
        if unit is not None and len(labels) > 1:
            raise ValueError(
                f"{name} is a Quantity array with one unit for several labels; "
                "pass a QTable or a dict instead"
            )
        columns = {label: (values[:, i], unit) for i, label in enumerate(labels)}

    out = np.empty((n_samples, len(labels)))
    found_units = {}
    for i, label in enumerate(labels):
        values, unit = columns[label]
        column_name = f"{name}['{label}']"
        if values.ndim != 1:
            raise ValueError(f"{column_name} must be 1-D, got shape {values.shape}")
        if values.shape[0] != n_samples:
            raise ValueError(
                f"{name} has {values.shape[0]} rows but X has {n_samples} spectra; "
                "expected one row of labels per spectrum"
            )
        if units is not None:
            target = units[label]
        else:
            target = label_unit(label, unit)
        values = _convert(values, unit, target, column_name)
        values = np.where(np.isfinite(values), values, np.nan)
        out[:, i] = values
        found_units[label] = target
    return out, found_units


def make_edges(values, n_bins=None, width=None, margin=0.05, log=False, name="label",
               max_bins=10_000):
    """Bin edges covering the range of ``values`` plus a margin.

    Parameters
    ----------
    values : ndarray
        Known label values (NaN ignored).
    n_bins : int, default=None
        Number of bins, at least 3 (used when ``width`` is None).
    width : float, default=None
        Bin width, in the label's unit (in log10 of the label with ``log``).
        The range is widened symmetrically to a whole number of widths.
    margin : float
        Fraction of the range added below the minimum and above the maximum;
        at least one bin, so that the first and last bins lie outside the
        range of ``values``.
    log : bool
        Bin uniformly in ``log10(values)``.
    name : str
        Label name, for error messages.
    max_bins : int
        Refuse a ``width`` that would make more bins than this.

    Returns
    -------
    edges : ndarray, shape (n_bins + 1,)
        Increasing edges in the unit of ``values``.

    Examples
    --------
    >>> make_edges([0.0, 1.0], n_bins=4, margin=0.0).tolist()
    [-0.5, 0.0, 0.5, 1.0, 1.5]
    >>> make_edges([4000.0, 6000.0], width=500.0, margin=0.0).tolist()
    [3500.0, 4000.0, 4500.0, 5000.0, 5500.0, 6000.0, 6500.0]
    """
    if width is None and (n_bins is None or n_bins < 3):
        raise ValueError(f"n_bins must be at least 3 for label '{name}', got {n_bins!r}")
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError(f"label '{name}' has no known value to bin")
    if log:
        if np.any(values <= 0):
            raise ValueError(f"label '{name}' must be positive to be binned in log space")
        lowest, highest = float(values.min()), float(values.max())
        values = np.log10(values)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise ValueError(
            f"label '{name}' has a single known value ({lo:g}{' in log10' if log else ''}); "
            "it needs at least two distinct values to be binned"
        )
    span = hi - lo
    if width is None:
        # at least one bin of margin: the edge bins then hold no training value
        margin = max(margin, 1.0 / (n_bins - 2))
        edges = np.linspace(lo - margin * span, hi + margin * span, n_bins + 1)
        edges[1], edges[-2] = min(edges[1], lo), max(edges[-2], hi)  # against rounding
    else:
        pad = max(margin * span, width)
        n = math.ceil((span + 2 * pad) / width - 1e-9)
        if n > max_bins:
            raise ValueError(
                f"a bin width of {width:g} over the range of label '{name}' ({lo:g} to {hi:g}) "
                f"makes {n} bins; expected at most {max_bins}: choose a wider bin_width"
            )
        centre = 0.5 * (lo + hi)
        edges = centre + width * (np.arange(n + 1) - n / 2)
    if not log:
        return edges
    edges = 10.0**edges
    # against the rounding of the round trip through log10
    edges[1], edges[-2] = min(edges[1], 10.0**lo, lowest), max(edges[-2], 10.0**hi, highest)
    return edges


def digitize(values, edges, clip=False):
    """Bin index of each value; -1 where unknown (and outside the edges unless ``clip``).

    Returns
    -------
    bins : ndarray of int64
    n_outside : int
        Known values outside the edges (clipped to the edge bins or set to -1).

    Examples
    --------
    >>> bins, n = digitize([0.5, 1.5, float("nan"), 3.0], [0.0, 1.0, 2.0])
    >>> bins.tolist(), n
    ([0, 1, -1, -1], 1)
    >>> digitize([3.0], [0.0, 1.0, 2.0], clip=True)[0].tolist()
    [1]
    """
    values = np.asarray(values, dtype=float)
    edges = np.asarray(edges, dtype=float)
    n_bins = edges.size - 1
    known = np.isfinite(values)
    bins = np.full(values.shape, -1, dtype=np.int64)
    raw = np.searchsorted(edges, values[known], side="right") - 1
    # the top edge belongs to the last bin
    raw = np.where(values[known] == edges[-1], n_bins - 1, raw)
    outside = (raw < 0) | (raw >= n_bins)
    if clip:
        raw = np.clip(raw, 0, n_bins - 1)
    else:
        raw = np.where(outside, -1, raw)
    bins[known] = raw
    return bins, int(outside.sum())


def binned_summaries(proba, edges):
    """Mean, standard deviation and 16th/84th percentiles of binned distributions.

    The density is uniform inside each bin: the variance includes the
    within-bin spread ``width**2 / 12``, and percentiles interpolate the
    cumulative distribution linearly inside the bin where it crosses the
    level.

    Parameters
    ----------
    proba : ndarray, shape (n, n_bins)
        Rows sum to one.
    edges : ndarray, shape (n_bins + 1,)

    Returns
    -------
    mean, std, p16, p84 : ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> mean, std, p16, p84 = binned_summaries(np.array([[0.5, 0.5]]), [0.0, 1.0, 2.0])
    >>> float(mean[0]), round(float(std[0]), 4), float(p16[0]), float(p84[0])
    (1.0, 0.5774, 0.32, 1.68)
    """
    proba = np.asarray(proba, dtype=float)
    edges = np.asarray(edges, dtype=float)
    proba = proba / proba.sum(axis=1, keepdims=True)
    centres = 0.5 * (edges[:-1] + edges[1:])
    widths = np.diff(edges)
    mean = proba @ centres
    second = proba @ (centres**2 + widths**2 / 12.0)
    std = np.sqrt(np.clip(second - mean**2, 0.0, None))
    return mean, std, _quantile(proba, edges, 0.16), _quantile(proba, edges, 0.84)


def _quantile(proba, edges, level):
    n, n_bins = proba.shape
    cdf = np.cumsum(proba, axis=1)
    k = np.minimum((cdf < level).sum(axis=1), n_bins - 1)
    rows = np.arange(n)
    below = np.where(k > 0, cdf[rows, np.maximum(k - 1, 0)], 0.0)
    p = proba[rows, k]
    fraction = np.clip(np.divide(level - below, p, out=np.zeros(n), where=p > 0), 0.0, 1.0)
    return edges[k] + fraction * (edges[k + 1] - edges[k])


def _softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    proba = np.exp(shifted)
    return proba / proba.sum(axis=1, keepdims=True)


def coverage_temperature(logits, edges, values, level=0.6827, bounds=(0.05, 20.0), n_grid=241):
    """Temperature at which central credible intervals of ``level`` hold that fraction of values.

    For each temperature ``T`` of a log-uniform grid, the distributions
    ``softmax(logits / T)`` (uniform inside each bin) give every value its
    cumulative probability ``F``; the value lies inside the central interval
    of level ``q`` when ``|2 F - 1| <= q``. The returned temperature brings
    the fraction of values inside the central ``level`` intervals closest to
    ``level``. With several
    levels, it makes the largest difference between fraction and level
    smallest: one temperature cannot change the shape of the distributions,
    so when the errors have heavier tails than predicted, fitting the 68%
    intervals alone leaves the 95% intervals short, and fitting both shares
    the miss between them.

    With a few dozen values the fraction inside changes in steps, so a range
    of temperatures ties; the middle of that range (in log) is returned. Its
    lower end would put some of these values exactly on the edges of their
    intervals, and intervals that narrow cover fewer of the values of other
    spectra.

    Parameters
    ----------
    logits : ndarray, shape (n, n_bins)
    edges : ndarray, shape (n_bins + 1,)
    values : ndarray, shape (n,)
        True values (NaN ignored; values outside the edges count as
        outside every interval short of 100 %).
    level : float or sequence of float
        Credible level(s) in (0, 1).
    bounds : (float, float)
        Smallest and largest temperature searched.
    n_grid : int
        Temperatures tried.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = np.arange(40) + 0.5
    >>> truth = rng.uniform(15, 25, 2000)
    >>> values = truth + rng.normal(0, 2.0, 2000)  # the errors are 2 bins
    >>> logits = -0.5 * ((centres - truth[:, None]) / 1.0) ** 2  # the model says 1 bin
    >>> round(coverage_temperature(logits, np.arange(41.0), values), 1)  # about (2 / 1)**2
    3.9
    >>> round(coverage_temperature(logits, np.arange(41.0), values, level=(0.6827, 0.9545)), 1)
    3.9
    """
    logits, values = known_values(logits, values)
    levels = np.atleast_1d(np.asarray(level, dtype=float))
    temperatures = np.exp(np.linspace(np.log(bounds[0]), np.log(bounds[1]), int(n_grid)))
    gaps = np.array([coverage_gap(_softmax(logits / temperature), edges, values, levels)
                     for temperature in temperatures])
    best = np.flatnonzero(gaps <= gaps.min() + 1e-12)
    return float(np.exp(np.median(np.log(temperatures[best]))))


def known_values(logits, values):
    """``(logits, values)`` as float arrays, kept where the value is finite; refuses none."""
    logits = np.asarray(logits, dtype=float)
    values = np.asarray(values, dtype=float)
    known = np.isfinite(values)
    if not known.any():
        raise ValueError("values must hold at least one finite value to fit a temperature")
    return logits[known], values[known]


def coverage_gap(proba, edges, values, levels):
    """The largest difference between the fraction of ``values`` inside the central
    credible intervals of ``proba`` and their ``levels`` (values all finite)."""
    pit = binned_cdf(proba, edges, values)
    covered = np.mean(np.abs(2.0 * pit - 1.0)[:, None] <= np.asarray(levels), axis=0)
    return float(np.max(np.abs(covered - levels)))
