"""How label columns are described, converted and stored in a SpectralStore."""

import astropy.units as u
import h5py
import numpy as np
from astropy.table import Table
from astropy.utils.masked import Masked

__all__ = ["label_specs", "h5_dtype", "label_values"]


def _column_spec(column, name):
    """(kind, unit) of a label column: a Table column, a unit, or a type."""
    if isinstance(column, (u.UnitBase, str)) and not isinstance(column, type):
        try:
            return "float", u.Unit(column)
        except ValueError:
            raise ValueError(f"labels[{name!r}]: {column!r} is not a unit") from None
    if isinstance(column, type) or isinstance(column, np.dtype):
        dtype = np.dtype(column)
        unit = None
    elif isinstance(column, u.Quantity):
        return "float", column.unit
    else:
        dtype = np.asarray(column).dtype
        unit = getattr(column, "unit", None)
    if dtype.kind == "f":
        return "float", (u.Unit(unit) if unit is not None else None)
    if dtype.kind in "iu":
        return "int", None
    if dtype.kind == "b":
        return "bool", None
    if dtype.kind in "USO":
        return "str", None
    raise TypeError(
        f"labels[{name!r}]: column of dtype {dtype} cannot be stored; expected float "
        "(with or without a unit), int, bool or str"
    )


def label_specs(labels):
    if labels is None:
        return {}
    if isinstance(labels, Table):
        return {name: _column_spec(labels[name], name) for name in labels.colnames}
    if isinstance(labels, dict):
        return {str(name): _column_spec(spec, name) for name, spec in labels.items()}
    if isinstance(labels, str):
        raise TypeError("labels must be a sequence of names, a dict or a Table, got a str")
    return {str(name): ("float", None) for name in labels}


def h5_dtype(kind):
    return {
        "float": np.float64,
        "int": np.int64,
        "bool": np.bool_,
        "str": h5py.string_dtype("utf-8"),
    }[kind]


def label_values(column, kind, unit, name):
    """Values and mask of one label column, converted for storage."""
    mask = np.zeros(len(column), dtype=bool)
    if isinstance(column, Masked) or np.ma.isMaskedArray(column):
        mask = np.array(np.ma.getmaskarray(column) if np.ma.isMaskedArray(column) else column.mask)
    if isinstance(column, Masked):
        column = column.unmasked
    if kind == "float":
        if isinstance(column, u.Quantity) or getattr(column, "unit", None) is not None:
            quantity = u.Quantity(column)
            target = unit if unit is not None else u.one
            try:
                values = quantity.to_value(target)
            except u.UnitsError:
                raise u.UnitsError(
                    f"labels[{name!r}] is in '{quantity.unit}', not convertible to the "
                    f"store's '{target}'"
                ) from None
        else:
            if unit is not None and unit != u.one:
                raise u.UnitsError(
                    f"labels[{name!r}] has no unit; the store expects '{unit}'"
                )
            values = np.asarray(np.ma.getdata(column), dtype=float)
        values = np.asarray(values, dtype=float)
        mask |= ~np.isfinite(values)
        return np.where(mask, np.nan, values), mask
    data = np.ma.getdata(column)
    if kind == "str":
        values = np.array(["" if m else str(v) for v, m in zip(data, mask)], dtype=object)
        return values, mask
    try:
        values = np.asarray(data).astype(h5_dtype(kind), casting="same_kind")
    except TypeError:
        raise TypeError(
            f"labels[{name!r}] of dtype {np.asarray(data).dtype} cannot be stored as {kind}"
        ) from None
    return np.where(mask, 0, values).astype(h5_dtype(kind)), mask
