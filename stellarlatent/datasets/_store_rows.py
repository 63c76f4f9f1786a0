"""Rows of a `~stellarlatent.datasets.SpectralStore`: what is appended, what is read back.

`as_batch` and `label_columns` turn what `SpectralStore.append` is given
into the arrays of its rows; `indices_of` and `read_label_columns` select and
read rows back.
"""

import astropy.units as u
import numpy as np
from astropy.table import MaskedColumn, QTable, Table
from astropy.utils.masked import Masked
from specutils import Spectrum

from .._batch import SpectraBatch, check_spectral_axis, checked_ivar
from .._logging import log
from ._io import read_rows, same_grid, stack_spectra
from ._labels import h5_dtype, label_values

__all__ = ["axis_of", "as_batch", "label_columns", "indices_of", "read_label_columns",
           "numeric_labels"]


def axis_of(grid, name):
    """The spectral axis of a grid, a Spectrum or a Quantity, checked (as a Quantity)."""
    if isinstance(grid, Spectrum):
        grid = u.Quantity(grid.spectral_axis)
    elif not isinstance(grid, u.Quantity) and hasattr(grid, "spectral_axis"):
        grid = grid.spectral_axis
    axis, _ = check_spectral_axis(grid, name)
    return u.Quantity(axis)


def as_batch(spectra, mask, ivar, axis, flux_unit):
    """A `SpectraBatch` on ``axis`` in ``flux_unit`` from spectra or a flux array."""
    if isinstance(spectra, (np.ndarray, list, tuple)) and not (
        isinstance(spectra, (list, tuple)) and spectra and isinstance(spectra[0], Spectrum)
    ):
        flux = np.asarray(spectra, dtype=float)
        if flux.ndim == 1:
            flux = flux[np.newaxis]
        if flux.ndim != 2 or flux.shape[1] != axis.size:
            raise ValueError(
                f"spectra: flux array has shape {flux.shape}, expected (n_spectra, {axis.size})"
            )
        mask = np.zeros(flux.shape, bool) if mask is None else np.asarray(mask, bool)
        if mask.shape != flux.shape:
            raise ValueError(f"mask has shape {mask.shape}, expected {flux.shape}")
        mask = mask | ~np.isfinite(flux)
        if ivar is not None:
            ivar = np.asarray(ivar, dtype=float)
            if ivar.shape != flux.shape:
                raise ValueError(f"ivar has shape {ivar.shape}, expected {flux.shape}")
            # a row without any finite positive value is a spectrum without an uncertainty
            ivar, bad = checked_ivar(ivar)
            mask = mask | bad
        return SpectraBatch(
            flux=flux, spectral_axis=axis, ivar=ivar, mask=mask, flux_unit=flux_unit
        )
    if mask is not None or ivar is not None:
        raise ValueError(
            "mask and ivar are only accepted with a flux array; a Spectrum has its own"
        )
    batch = stack_spectra(spectra, "spectra")
    if not same_grid(axis, batch.spectral_axis):
        raise ValueError(
            f"spectra are on another grid ({batch.n_pixels} pixels from "
            f"{batch.spectral_axis[0]:.6g}) than the store ({axis.size} pixels from "
            f"{axis[0]:.6g}); resample them first with "
            "stellarlatent.preprocessing.Resampler(grid=store.spectral_axis)"
        )
    if batch.flux_unit != flux_unit:
        try:
            scale = batch.flux_unit.to(flux_unit)
        except u.UnitsError:
            raise u.UnitsError(
                f"spectra have flux unit '{batch.flux_unit}', not convertible to the "
                f"store's '{flux_unit}'"
            ) from None
        batch = batch.replace(
            flux=batch.flux * scale,
            ivar=None if batch.ivar is None else batch.ivar / scale**2,
        )
    return batch


def label_columns(group, names, labels, n_new):
    """``{name: (values, missing)}`` to append for the label columns ``names`` of ``group``."""
    if labels is None:
        out = {}
        for name in names:
            kind = group[name].attrs["kind"]
            fill = np.array([""] * n_new, dtype=object) if kind == "str" else np.zeros(
                n_new, dtype=h5_dtype(kind)
            )
            if kind == "float":
                fill[:] = np.nan
            out[name] = (fill, np.ones(n_new, bool))
        return out
    if not isinstance(labels, Table):
        raise TypeError(f"labels must be an astropy Table, got {type(labels).__name__}")
    if len(labels) != n_new:
        raise ValueError(f"labels has {len(labels)} rows for {n_new} spectra")
    missing = [name for name in names if name not in labels.colnames]
    if missing:
        raise ValueError(f"labels lacks the store's columns {missing}")
    extra = [name for name in labels.colnames if name not in names]
    if extra:
        log.info("labels columns %s are not in the store and were not written", extra)
    out = {}
    for name in names:
        attrs = group[name].attrs
        unit = u.Unit(attrs["unit"]) if attrs.get("has_unit", False) else None
        out[name] = label_values(labels[name], attrs["kind"], unit, name)
    return out


def indices_of(indices, n):
    """Rows of a store of ``n`` spectra from indices, a slice or a boolean mask (None: all)."""
    if indices is None:
        return np.arange(n)
    if isinstance(indices, slice):
        return np.arange(n)[indices]
    idx = np.asarray(indices)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"boolean indices must have shape ({n},), got {idx.shape}")
        return np.flatnonzero(idx)
    if idx.dtype.kind not in "iu":
        raise IndexError(
            f"indices must be integers, a slice or a boolean mask, got {idx.dtype}"
        )
    idx = idx.astype(np.int64).ravel()
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"index {int(idx[bad][0])} is out of range for a store of {n} spectra")
    return np.where(idx < 0, idx + n, idx)


def read_label_columns(f, names, rows, n):
    """The label columns ``names`` of the rows ``rows`` of a store of ``n`` spectra."""
    table = QTable()
    for name in names:
        ds = f["labels"][name]
        kind, attrs = ds.attrs["kind"], ds.attrs
        if kind == "str":
            ds = ds.asstr()
        if rows.size == n and np.array_equal(rows, np.arange(n)):
            values, missing = ds[:n], f["label_masks"][name][:n]
        else:
            values = read_rows(ds, rows)
            missing = read_rows(f["label_masks"][name], rows)
        values = np.asarray(values)
        missing = np.asarray(missing, dtype=bool)
        if kind == "str":
            values = values.astype(str)
        if kind == "float" and attrs.get("has_unit", False):
            quantity = u.Quantity(values, u.Unit(attrs["unit"]), copy=False)
            table[name] = Masked(quantity, mask=missing) if missing.any() else quantity
        elif missing.any():
            table[name] = MaskedColumn(values, mask=missing)
        else:
            table[name] = values
    return table


def numeric_labels(f, names, labels, n):
    """The numeric label columns ``labels`` of a store of ``n`` spectra as float32 ``(n, k)``.

    Missing values are NaN.
    """
    labels = [labels] if isinstance(labels, str) else list(labels)
    missing = [name for name in labels if name not in names]
    if missing:
        raise ValueError(f"labels {missing} are not columns of the store ({names})")
    columns = []
    for name in labels:
        ds = f["labels"][name]
        if ds.attrs["kind"] not in ("float", "int", "bool"):
            raise ValueError(f"label {name!r} is not numeric")
        values = ds[:n].astype(np.float32)
        values[f["label_masks"][name][:n].astype(bool)] = np.nan
        columns.append(values)
    return np.stack(columns, axis=1)
