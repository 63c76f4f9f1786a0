"""The file layout of a `~stellarlatent.datasets.SpectralStore`: writing it, checking it.

Layout of a store (format version 1)::

    /                 attrs: format, version, complete, n_spectra, flux_unit, has_ivar, meta
    /spectral_axis    (n_pixels,) float64, attrs: unit
    /flux             (n_spectra, n_pixels) float32, chunked by spectrum
    /ivar             (n_spectra, n_pixels) float32 (only when has_ivar)
    /mask             (n_spectra, n_pixels) uint8, 1 = bad pixel
    /labels/<name>    (n_spectra,) one dataset per label, attrs: unit, kind
    /label_masks/<name>  (n_spectra,) bool, True = missing label

The group ``labels`` lists its columns, in order, in its ``columns`` attribute.
``n_spectra`` is the number of spectra the store holds: an append writes it
last, once every row is on disk, so rows beyond it are the remains of an
interrupted append, ignored on reading and removed by the next opening with
``mode="a"`` (a store without it, written before it was recorded, holds every
row of ``flux``). ``complete`` is false only in the temporary file of a build.
"""

import json
import os

import astropy.units as u
import h5py
import numpy as np

from .. import __version__
from ._labels import h5_dtype

__all__ = ["FORMAT", "VERSION", "CHUNK_BYTES", "COUNT", "EXPECTED", "write_layout",
           "check_layout", "row_datasets", "fsync"]

FORMAT = "stellarlatent.SpectralStore"
VERSION = 1
#: flux bytes per HDF5 chunk, by default
CHUNK_BYTES = 1 << 18
#: the attribute holding the number of spectra
COUNT = "n_spectra"
EXPECTED = "expected an HDF5 file written by SpectralStore.create or SpectralStore.from_files"


def fsync(path):
    """Flush a file or a folder to disk, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # folders cannot be synced on some platforms (Windows)
    finally:
        os.close(fd)


def write_layout(f, axis, flux_unit, ivar, specs, chunk_spectra, compression, meta_text):
    """The empty datasets and attributes of a new store in the open HDF5 file ``f``."""
    n_pixels = axis.size
    f.attrs.update(
        format=FORMAT,
        version=VERSION,
        complete=False,
        **{COUNT: 0},
        flux_unit=flux_unit.to_string(),
        has_ivar=bool(ivar),
        meta=meta_text,
        stellarlatent_version=__version__,
    )
    axis_ds = f.create_dataset("spectral_axis", data=axis.value.astype(np.float64))
    axis_ds.attrs["unit"] = axis.unit.to_string()
    options = dict(
        shape=(0, n_pixels),
        maxshape=(None, n_pixels),
        chunks=(chunk_spectra, n_pixels),
        compression=compression,
    )
    f.create_dataset("flux", dtype=np.float32, **options)
    if ivar:
        f.create_dataset("ivar", dtype=np.float32, **options)
    f.create_dataset("mask", dtype=np.uint8, **options)
    group = f.create_group("labels")
    masks = f.create_group("label_masks")
    group.attrs["columns"] = json.dumps(list(specs))
    for name, (kind, unit) in specs.items():
        ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=h5_dtype(kind))
        ds.attrs["kind"] = kind
        ds.attrs["unit"] = "" if unit is None else unit.to_string()
        ds.attrs["has_unit"] = unit is not None
        masks.create_dataset(name, shape=(0,), maxshape=(None,), dtype=np.bool_)


def row_datasets(f, has_ivar):
    """Paths of the datasets with one row per spectrum."""
    names = ["flux", "mask"] + (["ivar"] if has_ivar else [])
    columns = json.loads(f["labels"].attrs["columns"])
    labels = [f"{group}/{name}" for group in ("labels", "label_masks") for name in columns]
    return names + labels


def check_layout(f, where, has_ivar):
    """Check the file against the layout of the module docstring.

    Returns
    -------
    n : int
        The number of spectra the store holds.
    uncommitted : int
        The rows of an interrupted append beyond them.
    """
    fmt = f.attrs.get("format")
    if not isinstance(fmt, str) or fmt != FORMAT:
        raise ValueError(
            f"{where} is not a SpectralStore: {EXPECTED} (with a '{FORMAT}' format "
            "attribute)"
        )
    if int(f.attrs.get("version", 0)) > VERSION:
        raise ValueError(
            f"{where} has store format version {f.attrs['version']}; this version of "
            f"stellarlatent reads up to {VERSION}"
        )
    if not bool(f.attrs.get("complete", False)):
        raise ValueError(
            f"{where} is incomplete: it is the temporary file of an interrupted build (or "
            "of an append by an earlier stellarlatent); rebuild it"
        )
    required = ["spectral_axis", "flux", "mask", "labels", "label_masks"]
    if has_ivar:
        required.append("ivar")
    missing = [name for name in required if name not in f]
    if missing:
        raise ValueError(f"{where} is missing the datasets {missing}; {EXPECTED}")
    not_groups = [
        name for name in ("labels", "label_masks") if not isinstance(f[name], h5py.Group)
    ]
    if not_groups:
        raise ValueError(f"{where}: {not_groups} are not HDF5 groups; {EXPECTED}")
    try:
        u.Unit(f.attrs["flux_unit"])
        u.Unit(f["spectral_axis"].attrs["unit"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where} has no readable units: {exc}") from None
    n_pixels = f["spectral_axis"].shape[0]
    flux = f["flux"]
    if flux.ndim != 2 or flux.shape[1] != n_pixels:
        raise ValueError(
            f"{where}: flux has shape {flux.shape}, expected (n_spectra, {n_pixels})"
        )
    for name in ("mask", "ivar") if has_ivar else ("mask",):
        if f[name].shape[1:] != flux.shape[1:]:
            raise ValueError(
                f"{where}: {name} has shape {f[name].shape} but flux has {flux.shape}"
            )
    try:
        columns = json.loads(f["labels"].attrs["columns"])
    except (KeyError, ValueError):
        raise ValueError(f"{where}: the labels group does not list its columns") from None
    for name in columns:
        if name not in f["labels"] or name not in f["label_masks"]:
            raise ValueError(f"{where} is missing the label column {name!r}")
        if "kind" not in f["labels"][name].attrs:
            raise ValueError(f"{where}: label column {name!r} has no 'kind' attribute")
    rows = {name: f[name].shape[0] for name in row_datasets(f, has_ivar)}
    committed = f.attrs.get(COUNT)
    if committed is None:
        # written before the count was recorded: every row is a spectrum
        n = rows["flux"]
    else:
        n = int(committed)
        if n < 0:
            raise ValueError(f"{where}: its {COUNT} attribute is negative ({n})")
    for name, n_rows in rows.items():
        if n_rows < n or (committed is None and n_rows != n):
            if name.startswith("label"):
                raise ValueError(
                    f"{where}: label column {name.split('/', 1)[1]!r} has {n_rows} rows "
                    f"for {n} spectra"
                )
            raise ValueError(f"{where}: {name} has {n_rows} rows for {n} spectra")
    if n:
        try:
            flux[n - 1, :1]
            f["mask"][n - 1, :1]
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"{where}: data cannot be read (truncated?): {exc}") from None
    return n, max(rows.values()) - n
