"""Label containers (tables, dicts, arrays) as named float columns.

Diagnostics take labels in whatever form the user holds them: an astropy
`~astropy.table.Table` or `~astropy.table.QTable` (for example the table of
`~stellarlatent.datasets.read_miles`), a dict of arrays, or a plain array with
names. This module turns each of them into ``{name: (values, unit)}`` with
float values in which a missing entry is NaN, so the metrics only deal with
NaN.
"""

import astropy.units as u
import numpy as np
from astropy.table import Table

from .._logging import log

__all__ = ["label_columns", "label_values"]


def _column_values(column, name):
    """Return ``(float values with NaN where missing, unit or None)``."""
    unit = getattr(column, "unit", None)
    mask = None
    if hasattr(column, "unmasked"):  # astropy Masked quantities and arrays
        mask = np.asarray(column.mask, dtype=bool)
        column = column.unmasked
    elif np.ma.isMaskedArray(column):  # MaskedColumn and numpy masked arrays
        mask = np.ma.getmaskarray(column)
        column = np.ma.getdata(column)
    if isinstance(column, u.Quantity):
        unit = column.unit
        column = column.value
    data = np.asarray(column)
    if data.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold numbers, got values of dtype '{data.dtype}'"
        )
    values = data.astype(float)
    if mask is not None:
        values[np.broadcast_to(mask, values.shape)] = np.nan
    if unit is not None and (unit == u.dimensionless_unscaled):
        unit = None
    return values, unit


def as_2d_floats(values, name, what, shape):
    """Return ``values`` as a 2-D float array, or raise naming ``name``.

    ``what`` says what the entries are (``"latents"``) and ``shape`` the
    expected shape (``"(n_samples, latent_dim)"``), for the error messages.
    """
    try:
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a 2-D array of {what} {shape}, got {type(values).__name__}"
        ) from exc
    if values.ndim != 2:
        raise ValueError(f"{name} must be 2-D {shape}, got an array of shape {values.shape}")
    return values


def _check_one_per_sample(values, name, n_samples, meaning):
    """Raise unless ``values`` (the argument ``name``) are 1-D, ``n_samples`` of them if given."""
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D ({meaning}), got shape {values.shape}")
    if n_samples is not None and values.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {values.shape[0]} values; expected {n_samples} (one per sample)"
        )


def _dtype_kind(column):
    data = getattr(column, "unmasked", column)
    return np.asarray(getattr(data, "value", data)).dtype.kind


def label_columns(labels, n_samples=None, names=None, name="labels"):
    """Return label columns as ``{label_name: (values, unit)}``.

    Parameters
    ----------
    labels : `~astropy.table.Table`, dict, or array-like
        A table (its floating-point columns are used, so identifiers, flags
        and text are skipped unless asked for in ``names``), a dict of 1-D arrays or Quantities,
        or a 1-D array (one label) or 2-D array of shape
        (n_samples, n_labels).
    n_samples : int, default=None
        Expected number of rows.
    names : str or sequence of str, default=None
        For tables and dicts, the columns to use (in this order). For arrays,
        the names of the columns (default ``label_0``, ``label_1``, ... or
        ``label`` for a 1-D array).
    name : str
        Name of the argument, for error messages.

    Returns
    -------
    dict
        Maps each label name to ``(values, unit)``: float values of shape
        (n_samples,) with NaN where the label is missing or masked, and the
        label's unit (`None` when it has none).
    """
    if isinstance(names, str):
        names = [names]
    if names is not None:
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            raise ValueError(f"names has duplicated entries: {names}")
    columns = {}
    if isinstance(labels, Table):
        wanted = labels.colnames if names is None else names
        for key in wanted:
            if key not in labels.colnames:
                raise ValueError(
                    f"{name} has no column '{key}'; available: {', '.join(labels.colnames)}"
                )
            if names is None and _dtype_kind(labels[key]) != "f":
                log.debug("skipping column '%s' of %s (not floating point)", key, name)
                continue
            columns[key] = _column_values(labels[key], f"{name}['{key}']")
    elif isinstance(labels, dict):
        wanted = list(labels) if names is None else names
        for key in wanted:
            if key not in labels:
                raise ValueError(
                    f"{name} has no entry '{key}'; available: {', '.join(map(str, labels))}"
                )
            columns[str(key)] = _column_values(labels[key], f"{name}['{key}']")
    else:
        if isinstance(labels, (str, bytes)) or labels is None:
            raise TypeError(
                f"{name} must be a Table, a dict of arrays or an array, "
                f"got {type(labels).__name__}"
            )
        values, unit = _column_values(labels, name)
        if values.ndim == 1:
            values = values[:, np.newaxis]
            default = ["label"]
        elif values.ndim == 2:
            default = [f"label_{i}" for i in range(values.shape[1])]
        else:
            raise ValueError(
                f"{name} must be 1-D or 2-D (n_samples, n_labels), got shape {values.shape}"
            )
        if names is None:
            names = default
        if len(names) != values.shape[1]:
            raise ValueError(
                f"names has {len(names)} entries but {name} has {values.shape[1]} columns"
            )
        columns = {key: (values[:, i], unit) for i, key in enumerate(names)}
    for key, (values, _) in columns.items():
        _check_one_per_sample(values, f"{name}['{key}']", n_samples, "one value per sample")
    if not columns:
        raise ValueError(f"{name} has no numeric label column")
    return columns


def label_values(labels, key, n_samples=None, unit=None, name="labels"):
    """Return one label as float values in ``unit``.

    Parameters
    ----------
    labels : `~astropy.table.Table`, dict, or array-like
        As in `label_columns`; a 1-D array is taken as the values of ``key``.
    key : str
        The label to return.
    n_samples : int, default=None
        Expected number of rows.
    unit : `~astropy.units.UnitBase`, default=None
        Unit to convert a Quantity label to. Labels without a unit are taken
        to be in ``unit`` already.
    name : str
        Name of the argument, for error messages.

    Returns
    -------
    ndarray
        Float values with NaN where the label is missing.

    Raises
    ------
    astropy.units.UnitsError
        If the label's unit cannot be converted to ``unit``.
    """
    if isinstance(labels, (Table, dict)):
        values, label_unit = label_columns(labels, n_samples, names=[key], name=name)[key]
    else:
        values, label_unit = _column_values(labels, name)
        _check_one_per_sample(values, name, n_samples, f"the values of '{key}'")
    if unit is None or label_unit is None or label_unit == unit:
        return values
    try:
        return (values * label_unit).to_value(unit)
    except u.UnitConversionError as exc:
        raise u.UnitsError(
            f"{name}['{key}'] has unit '{label_unit}', which cannot be converted to "
            f"'{unit}' (the unit of the prediction)"
        ) from exc
