"""An HDF5 store of spectra on one grid, read lazily during training.

The file layout is described (written and checked) in
``stellarlatent.datasets._store_layout``; the conversion of appended rows and
the reading of label rows in ``stellarlatent.datasets._store_rows``.
"""

import io
import json
import os
from pathlib import Path

import astropy.units as u
import h5py
import numpy as np
from specutils import Spectrum

from .._batch import SpectraBatch, from_batch, unknown_ivar_rows
from .._logging import log
from ._build import build_store
from ._io import read_rows, same_grid
from ._labels import label_specs
from ._store_layout import (CHUNK_BYTES, COUNT, EXPECTED, check_layout, fsync, row_datasets,
                            write_layout)
from ._store_rows import (as_batch, axis_of, indices_of, label_columns, numeric_labels,
                          read_label_columns)
from ._subset import StoreSubset

__all__ = ["SpectralStore", "StoreSubset"]
__doctest_requires__ = {"SpectralStore.from_files": ["dask"]}


def _describe(axis):
    """``2048 pixels, log-uniform, 3600 Angstrom to 7400 Angstrom``: enough to tell grids apart."""
    values = axis.value
    spacing = "irregular"
    if values.size > 2:
        steps = np.diff(values)
        ratios = values[1:] / values[:-1]
        if np.allclose(steps, steps[0], rtol=1e-6):
            spacing = "linear"
        elif np.allclose(ratios, ratios[0], rtol=1e-9):
            spacing = "log-uniform"
    return f"{values.size} pixels, {spacing}, {axis[0]:.6g} to {axis[-1]:.6g}"


class SpectralStore:
    """Spectra on one grid in an HDF5 file, read (and streamed) lazily.

    Open an existing store with ``SpectralStore(path)`` (read-only) or
    ``SpectralStore(path, mode="a")`` (to append); build a new one with
    `create` and `append`, or all at once from files with `from_files`.

    Parameters
    ----------
    path : str or path-like
        The HDF5 file.
    mode : {"r", "a"}
        Read-only, or read and append.
    expected_grid : `~astropy.units.Quantity` or `~stellarlatent.preprocessing.SpectralGrid`
        Refuse a store written on another spectral grid (a
        `~specutils.Spectrum` gives its own).
    required_labels : sequence of str, default=()
        Refuse a store that lacks one of these label columns.

    Raises
    ------
    ValueError
        If the file is not a complete, consistent store: not HDF5, truncated
        or corrupt, another HDF5 file, written by an interrupted build,
        missing a dataset or a label column, or on another grid than
        ``expected_grid``. The message names the file.
    BlockingIOError
        With ``mode="a"``, if another process has the file open for writing.

    Notes
    -----
    Flux and inverse variance are stored as float32, the mask as uint8, each
    chunked by whole spectra so that reading a spectrum touches one chunk. A
    store being built is written to a temporary file beside ``path`` that is
    renamed to ``path`` only by a successful `close`, and its ``complete``
    attribute is set only then; a store that is not complete is refused.

    An append to an existing store is all or nothing: the number of spectra
    is written last, once the new rows are on disk, so a process killed
    while it appends leaves the store with the spectra it had before. The
    rows it had begun are ignored (with a warning of the ``stellarlatent``
    logger) and removed when the store is next opened with ``mode="a"``; an
    append that fails with an exception removes them itself. Like any HDF5
    file, a store can still be damaged by a crash while HDF5 writes its own
    bookkeeping; such a file is refused with a `ValueError`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import astropy.units as u
    >>> from astropy.table import QTable
    >>> from stellarlatent.datasets import SpectralStore
    >>> wave = np.linspace(5000, 5100, 64) * u.AA
    >>> path = os.path.join(tempfile.mkdtemp(), "spectra.h5")
    >>> with SpectralStore.create(path, wave, labels={"teff": u.K}, ivar=False) as store:
    ...     store.append(np.ones((3, 64)), QTable({"teff": [5000, 5500, 6000] * u.K}))
    slice(0, 3, None)
    >>> with SpectralStore(path) as store:
    ...     print(len(store), store[1:].flux.shape, store.labels["teff"][-1])
    3 (2, 64) 6000.0 K
    """

    def __init__(self, path, mode="r", *, expected_grid=None, required_labels=()):
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r} (use create for a new store)")
        self.path = Path(path)
        self.mode = mode
        self._tmp_path = None
        self._file = None
        if not self.path.is_file():
            raise FileNotFoundError(f"path: no store at {self.path}")
        if self.path.stat().st_size == 0:
            # HDF5 would open an empty file for writing as a new, empty HDF5 file
            raise ValueError(f"{self.path} is not a SpectralStore: the file is empty; {EXPECTED}")
        try:
            # "r+", not h5py's "a", which would create a file that vanished meanwhile
            self._file = h5py.File(self.path, "r" if mode == "r" else "r+")
        except BlockingIOError as exc:
            raise BlockingIOError(
                exc.errno,
                f"{self.path} is open for writing by another process (HDF5 file lock); "
                "close it there before opening the store with mode='a'",
            ) from exc
        except (PermissionError, FileNotFoundError):
            raise
        except OSError as exc:
            raise ValueError(
                f"{self.path} is not a readable SpectralStore: {EXPECTED}, but HDF5 cannot "
                "open it (truncated, corrupt or not HDF5)"
            ) from exc
        try:
            self._validate()
            if expected_grid is not None:
                self.check_grid(expected_grid)
            missing = [name for name in required_labels if name not in self.label_names]
            if missing:
                raise ValueError(
                    f"{self.path} lacks the label columns {missing}; it has {self.label_names}"
                )
            self._settle_uncommitted()
        except BaseException:
            self._file.close()
            raise

    # -- construction -----------------------------------------------------------------

    @classmethod
    def open(cls, path, *, expected_grid=None, required_labels=()):
        """Open an existing store read-only (same as ``SpectralStore(path)``)."""
        return cls(path, "r", expected_grid=expected_grid, required_labels=required_labels)

    @classmethod
    def create(
        cls,
        path,
        spectral_axis,
        *,
        labels=None,
        flux_unit=None,
        ivar=True,
        overwrite=False,
        chunk_spectra=None,
        compression=None,
        meta=None,
    ):
        """Start a new, empty store; fill it with `append`, finish it with `close`.

        Parameters
        ----------
        path : str or path-like
            The HDF5 file to write.
        spectral_axis : `~astropy.units.Quantity` or `~stellarlatent.preprocessing.SpectralGrid`
            The grid shared by every spectrum of the store (a
            `~specutils.Spectrum` gives its own).
        labels : sequence of str, dict or `~astropy.table.Table`, default=None
            The label columns: names (float, dimensionless), a dict from name
            to a unit (float column) or to a type (``str``, ``int``, ``bool``,
            ``float``), or a table whose columns (not rows) give names, types
            and units.
        flux_unit : `~astropy.units.Unit`, default=None
            Unit of the stored flux (default dimensionless); appended spectra
            are converted to it.
        ivar : bool, default=True
            Store inverse variances (then every appended batch needs them).
        overwrite : bool, default=False
            Replace an existing file at ``path`` (only when the build finishes).
        chunk_spectra : int, default=None
            Spectra per HDF5 chunk (default: about 256 KiB of flux per chunk,
            at least one spectrum).
        compression : str, default=None
            HDF5 compression filter (``"gzip"`` or ``"lzf"``), none by default.
        meta : dict, default=None
            JSON-serialisable information kept with the store (`meta`).

        Returns
        -------
        SpectralStore
            Open for appending. Use it as a context manager or call `close`:
            until then the store exists only as a temporary file.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"path: {path} exists; pass overwrite=True to replace it")
        axis = axis_of(spectral_axis, "spectral_axis")
        flux_unit = u.one if flux_unit is None else u.Unit(flux_unit)
        specs = label_specs(labels)
        n_pixels = axis.size
        if chunk_spectra is None:
            chunk_spectra = max(1, min(1024, CHUNK_BYTES // (4 * n_pixels)))
        chunk_spectra = int(chunk_spectra)
        if chunk_spectra < 1:
            raise ValueError(f"chunk_spectra must be a positive integer, got {chunk_spectra}")
        meta_text = json.dumps(meta or {})

        self = cls.__new__(cls)
        self.path = path
        self.mode = "w"
        self._n = self._uncommitted = 0
        self._tmp_path = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self._file = h5py.File(self._tmp_path, "w")
        try:
            write_layout(self._file, axis, flux_unit, ivar, specs, chunk_spectra, compression,
                         meta_text)
        except BaseException:
            # h5py checks the compression filter only here: leave no temporary file behind
            self._file.close()
            os.remove(self._tmp_path)
            raise
        self._reset_cache()
        return self

    @classmethod
    def from_files(
        cls,
        files,
        path,
        *,
        reader=None,
        preprocess=None,
        labels=None,
        pattern="*.fits",
        batch_size=64,
        progress=True,
        overwrite=False,
        scheduler=None,
        n_workers=None,
        on_skip=None,
        **create_kwargs,
    ):
        """Build a store from spectrum files, batch by batch, serially or with dask.

        Parameters
        ----------
        files : str, path-like or sequence of them
            A folder (its files matching ``pattern``), one file, or a list.
        path : str or path-like
            The store to write.
        reader : callable, default=None
            ``reader(path) -> Spectrum`` (1-D or a batch). By default
            `specutils.Spectrum.read`, which recognises HARPS ADP files once
            `stellarlatent.datasets` is imported and every format specutils
            knows.
        preprocess : transformer or `~sklearn.pipeline.Pipeline`, default=None
            Applied to each batch of spectra (``transform``); it must give
            spectra on one grid, the store's. An unfitted transformer is
            fitted on the first batch. Without it, every file must be on the
            grid of the first one.
        labels : `~astropy.table.Table`, default=None
            One row per file, in the order of ``files``; stored with the
            spectra (rows of skipped files are dropped). A ``filename`` column
            is always added.
        pattern : str, optional
            Glob pattern when ``files`` is a folder (default ``"*.fits"``).
        batch_size : int, default=64
            Files read, preprocessed and written at a time.
        progress : bool, default=True
            Show a tqdm progress bar.
        overwrite : bool, default=False
            Replace an existing store at ``path``.
        scheduler : str or ``distributed.Client``, default=None
            Where the files are read and preprocessed: None or ``"serial"``
            (this process, without dask; the default), a dask scheduler,
            ``"threads"``, ``"processes"`` or ``"synchronous"`` (one task at a
            time, for debugging), the address of a ``dask.distributed``
            scheduler (``"tcp://10.0.0.5:8786"``) or a
            ``dask.distributed.Client``. Needs ``pip install
            'stellarlatent[dask]'``. Every scheduler writes the same store.
        n_workers : int, default=None
            Threads or processes of the ``"threads"`` and ``"processes"``
            schedulers (default: the number of CPU cores). On a cluster, the
            batches kept in flight are twice this (default: twice its threads).
        on_skip : callable, default=None
            Called with the `~stellarlatent.datasets.SkippedFile` of each file
            skipped, as it is skipped (in this process, whatever the
            scheduler); by default each is logged as a warning.
        **create_kwargs
            Passed to `create` (``ivar``, ``flux_unit``, ``compression``,
            ``chunk_spectra``, ``meta``). ``ivar`` defaults to whether the
            first batch has inverse variances.

        Returns
        -------
        SpectralStore
            The finished store, open read-only.

        Raises
        ------
        ValueError
            If no file could be read, ``labels`` does not have one row per
            file, or ``scheduler`` or ``n_workers`` is not one of the above.
        ImportError
            If ``scheduler`` needs dask (or ``distributed``) and it is not
            installed.

        Notes
        -----
        Files are read as by `~stellarlatent.datasets.read_spectra_files`. A
        file that cannot be read or preprocessed, or whose spectrum lies on
        another grid, is skipped; the reason is logged (``stellarlatent``
        logger, level WARNING) or given to ``on_skip``, and the number
        skipped is logged at the end. An
        interrupted build leaves no file at ``path``.

        Without a format, ``Spectrum.read`` tries every loader registered with
        specutils on each file; naming the format, for example
        ``reader=functools.partial(Spectrum.read, format="HARPS-ADP")``, reads
        several times faster (MILES files: 4 instead of 17 ms per file).

        With a dask ``scheduler``, each batch of ``batch_size`` files is read
        and preprocessed as one dask task, while this process appends the
        finished batches to the store in the order of ``files``: the store is
        the same as the serial one, and at most about ``2 * n_workers``
        batches are in memory at once, however many files there are. An
        unfitted ``preprocess`` is first fitted here on the first batch. The
        ``"processes"`` scheduler and a cluster pickle ``reader`` and
        ``preprocess`` to their workers, and a cluster must see the files at
        the same paths.

        Examples
        --------
        Write a few spectra as MILES files, then build a store from them,
        serially and with two threads:

        >>> import functools, tempfile
        >>> from pathlib import Path
        >>> import astropy.units as u
        >>> from specutils import Spectrum
        >>> from stellarlatent.datasets import SpectralStore, make_synthetic_spectra, write_miles
        >>> from stellarlatent.preprocessing import SpectralGrid
        >>> folder = Path(tempfile.mkdtemp())
        >>> grid = SpectralGrid.linear(4800 * u.AA, 5200 * u.AA, 200)
        >>> spectra, labels = make_synthetic_spectra(6, grid, random_state=0)
        >>> labels["miles_id"] = range(1, 7)
        >>> write_miles(folder, spectra, labels)
        >>> read = functools.partial(Spectrum.read, format="MILES")
        >>> serial = SpectralStore.from_files(folder, folder / "serial.h5", reader=read,
        ...                                   progress=False)
        >>> threads = SpectralStore.from_files(folder, folder / "threads.h5", reader=read,
        ...                                    progress=False, batch_size=2,
        ...                                    scheduler="threads", n_workers=2)
        >>> len(threads), threads.n_pixels
        (6, 200)
        >>> bool((serial.read().flux == threads.read().flux).all())
        True
        >>> serial.close(); threads.close()

        On a ``dask.distributed`` cluster (started with ``dask scheduler``
        and ``dask worker tcp://10.0.0.5:8786`` on each machine)::

            SpectralStore.from_files(files, "store.h5", preprocess=pipeline,
                                     scheduler="tcp://10.0.0.5:8786")
        """
        return build_store(
            cls, files, path, reader=reader, preprocess=preprocess, labels=labels,
            pattern=pattern, batch_size=batch_size, progress=progress, overwrite=overwrite,
            scheduler=scheduler, n_workers=n_workers, on_skip=on_skip,
            create_kwargs=create_kwargs,
        )

    # -- state ------------------------------------------------------------------------

    def _reset_cache(self):
        self._axis = None
        self._labels = None

    def _validate(self):
        try:
            self._check_layout()
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            # h5py's own errors on a damaged file would not say which file or what was expected
            raise ValueError(
                f"{self.path} is not a readable SpectralStore: {EXPECTED}, but part of it "
                f"cannot be read (truncated or corrupt?): {type(exc).__name__}: {exc}"
            ) from exc
        self._reset_cache()

    def _check_layout(self):
        """Check the file against the layout of ``_store_layout``; find its row count."""
        self._n, self._uncommitted = check_layout(self._file, self.path, self.has_ivar)

    def _row_datasets(self):
        """Paths of the datasets with one row per spectrum."""
        return row_datasets(self._file, self.has_ivar)

    def _settle_uncommitted(self):
        """Warn of the rows of an interrupted append, and remove them in mode "a"."""
        extra = self._uncommitted
        if not extra:
            return
        if self.mode == "r":
            log.warning(
                "%s: ignoring %d rows of an interrupted append; the store holds its %d "
                "earlier spectra (open it with mode='a' to remove those rows)",
                self.path, extra, self._n,
            )
            return
        self._truncate(self._n)
        self._sync()
        log.warning(
            "%s: removed %d rows of an interrupted append; the store holds its %d earlier spectra",
            self.path, extra, self._n,
        )

    def _truncate(self, n):
        for name in self._row_datasets():
            if self._file[name].shape[0] > n:
                self._file[name].resize(n, axis=0)
        self._uncommitted = 0

    def _require_writable(self):
        if self._file is None or not self._file.id.valid:
            raise ValueError(f"the store {self.path} is closed")
        if self.mode == "r":
            raise io.UnsupportedOperation(
                f"the store {self.path} is open read-only; open it with mode='a' to append"
            )

    def _require_open(self):
        if self._file is None or not self._file.id.valid:
            raise ValueError(f"the store {self.path} is closed")

    @property
    def closed(self):
        """Whether the file is closed."""
        return self._file is None or not self._file.id.valid

    @property
    def spectral_axis(self):
        """The grid of every spectrum (`~astropy.units.Quantity`)."""
        if self._axis is None:
            self._require_open()
            ds = self._file["spectral_axis"]
            self._axis = ds[()] * u.Unit(ds.attrs["unit"])
        return self._axis

    @property
    def n_pixels(self):
        """Number of pixels per spectrum."""
        self._require_open()
        return int(self._file["flux"].shape[1])

    @property
    def flux_unit(self):
        """Unit of the stored flux."""
        self._require_open()
        return u.Unit(self._file.attrs["flux_unit"])

    @property
    def has_ivar(self):
        """Whether the store holds inverse variances."""
        self._require_open()
        return bool(self._file.attrs.get("has_ivar", False))

    @property
    def label_names(self):
        """Names of the label columns, in order."""
        self._require_open()
        return json.loads(self._file["labels"].attrs["columns"])

    @property
    def meta(self):
        """The information given as ``meta`` to `create` (a dict)."""
        self._require_open()
        return json.loads(self._file.attrs.get("meta", "{}"))

    def __len__(self):
        self._require_open()
        return self._n

    def __repr__(self):
        if self.closed:
            return f"<SpectralStore {self.path} (closed)>"
        return (
            f"<SpectralStore {self.path}: {len(self)} spectra x {self.n_pixels} pixels, "
            f"labels {self.label_names}, mode={self.mode!r}>"
        )

    def check_grid(self, expected):
        """Raise `ValueError` unless the store's grid equals ``expected``.

        Parameters
        ----------
        expected : `~astropy.units.Quantity` or `~stellarlatent.preprocessing.SpectralGrid`
            The grid the caller works on (a `~specutils.Spectrum` gives its
            own), compared to 1e-10 relative.
        """
        axis = axis_of(expected, "expected_grid")
        if not same_grid(self.spectral_axis, axis):
            mine = self.spectral_axis
            raise ValueError(
                f"{self.path} was written on another grid ({_describe(mine)}) than the one "
                f"expected ({_describe(axis)})"
            )

    # -- writing ----------------------------------------------------------------------

    def append(self, spectra, labels=None, *, mask=None, ivar=None):
        """Add spectra (and their labels) at the end of the store.

        Parameters
        ----------
        spectra : `~specutils.Spectrum`, list of `~specutils.Spectrum` or array
            Spectra on the store's grid (a batch, one spectrum or a list), or
            a 2-D flux array ``(n_spectra, n_pixels)`` in the store's flux
            unit, with optional ``mask`` and ``ivar`` arrays.
        labels : `~astropy.table.Table`, default=None
            One row per spectrum with every label column of the store
            (quantities are converted to the store's units; masked values stay
            masked). Without it the labels of these spectra are masked.
        mask, ivar : array-like, default=None
            Only with a flux array. Zero or non-finite inverse variances mask
            their pixels, except in a row that has no finite positive value:
            that is a spectrum without an uncertainty.

        A store that keeps inverse variances records a row of NaN for each
        spectrum without an uncertainty: it is read back as a spectrum
        without one, and training weights its pixels alike.

        Returns
        -------
        slice
            Where the new spectra are in the store.

        Notes
        -----
        All or nothing: the spectra become part of the store only once every
        row is written, when the number of spectra is updated. If the append
        fails, its rows are removed and the exception raised; if the process
        is killed, they are ignored when the store is opened again (see
        `SpectralStore`).
        """
        self._require_writable()
        batch = as_batch(spectra, mask, ivar, self.spectral_axis, self.flux_unit)
        n_new = batch.n_spectra
        columns = label_columns(self._file["labels"], self.label_names, labels, n_new)
        rows = {"flux": batch.flux.astype(np.float32), "mask": batch.mask.astype(np.uint8)}
        if self.has_ivar:
            # a spectrum without an uncertainty keeps none: a row of NaN (see unknown_ivar_rows)
            ivar = np.full(batch.flux.shape, np.nan) if batch.ivar is None else batch.ivar
            ivar = np.where(batch.mask, 0.0, ivar)
            ivar[unknown_ivar_rows(ivar)] = np.nan
            rows["ivar"] = ivar.astype(np.float32)
        for name, (values, missing) in columns.items():
            rows[f"labels/{name}"] = values
            rows[f"label_masks/{name}"] = missing
        f = self._file
        start = self._n
        stop = start + n_new
        self._labels = None
        try:
            for name, values in rows.items():
                f[name].resize(stop, axis=0)
                f[name][start:stop] = values
            # the rows must be on disk before the count that makes them part of the store
            self._sync()
            f.attrs[COUNT] = stop
            self._sync()
        except BaseException:
            self._roll_back(start)
            raise
        self._n = stop
        return slice(start, stop)

    def _sync(self):
        """Put what was written on disk (an existing store only; a build is discarded whole)."""
        if self.mode != "a":
            return
        self._file.flush()
        try:
            os.fsync(self._file.id.get_vfd_handle())
        except (OSError, ValueError, TypeError):
            pass  # a driver without a file descriptor: the flush is all there is

    def _roll_back(self, n):
        """Undo a failed append: the store keeps its first ``n`` spectra."""
        try:
            self._file.attrs[COUNT] = n
            self._truncate(n)
            self._sync()
        except Exception as exc:
            log.warning(
                "%s: the rows of a failed append could not be removed (%s); they are ignored, "
                "and removed when the store is next opened with mode='a'",
                self.path, exc,
            )

    # -- reading ----------------------------------------------------------------------

    def _indices(self, indices):
        return indices_of(indices, len(self))

    def read_arrays(self, indices=None):
        """Flux, mask and inverse variance of some spectra as float32/bool arrays.

        Returns
        -------
        flux : ndarray, shape (n, n_pixels), float32
        mask : ndarray of bool
        ivar : ndarray (float32) or None
        """
        self._require_open()
        rows = self._indices(indices)
        names = ["flux", "mask"] + (["ivar"] if self.has_ivar else [])
        arrays = [read_rows(self._file[name], rows) for name in names]
        return arrays[0], arrays[1].astype(bool), (arrays[2] if self.has_ivar else None)

    def read(self, indices=None):
        """Read spectra as one batch `~specutils.Spectrum`.

        Parameters
        ----------
        indices : int array, slice or boolean mask, default=None
            Which spectra (all by default), in any order.

        Returns
        -------
        `~specutils.Spectrum`
            A batch (flux ``(n, n_pixels)``, spectral axis last) with
            `~astropy.nddata.InverseVariance` uncertainty when the store has
            it; ``meta["labels"]`` holds the matching rows of `labels` and
            ``meta["indices"]`` the indices read.
        """
        rows = self._indices(indices)
        if rows.size == 0:
            raise IndexError("no spectrum selected")
        flux, mask, ivar = self.read_arrays(rows)
        batch = SpectraBatch(
            flux=flux.astype(float),
            spectral_axis=self.spectral_axis,
            ivar=None if ivar is None else ivar.astype(float),
            mask=mask,
            flux_unit=self.flux_unit,
            meta={"labels": self.read_labels(rows), "indices": rows},
        )
        return from_batch(batch)

    def __getitem__(self, item):
        """``store[i]`` is one 1-D spectrum; slices and index arrays give a batch."""
        if isinstance(item, (int, np.integer)):
            batch = self.read([item])
            meta = dict(batch.meta)
            return Spectrum(
                flux=batch.flux[0],
                spectral_axis=batch.spectral_axis,
                uncertainty=None if batch.uncertainty is None else batch.uncertainty[0],
                mask=batch.mask[0],
                meta=meta,
            )
        return self.read(item)

    def iter_batches(self, batch_size=256, indices=None):
        """Yield the spectra as consecutive batches (see `read`).

        Parameters
        ----------
        batch_size : int
            Spectra per batch.
        indices : array-like, default=None
            Which spectra (all by default).
        """
        rows = self._indices(indices)
        for start in range(0, rows.size, int(batch_size)):
            yield self.read(rows[start : start + int(batch_size)])

    def read_labels(self, indices=None):
        """Label columns of some spectra as a `~astropy.table.QTable`."""
        self._require_open()
        rows = self._indices(indices)
        return read_label_columns(self._file, self.label_names, rows, self._n)

    @property
    def labels(self):
        """Every label column as a `~astropy.table.QTable` (masked values stay masked)."""
        if self._labels is None:
            self._labels = self.read_labels()
        return self._labels

    def subset(self, indices):
        """Some spectra of the store, as a view that estimators stream from.

        Nothing is read: ``fit``, ``transform``, ``predict`` and ``calibrate``
        of the estimators accept the view as they accept the store, and read
        its spectra batch by batch. Use it to split a store larger than
        memory into training, calibration and test sets.

        Parameters
        ----------
        indices : array-like of int or bool
            Rows of the store (a boolean mask of length ``len(store)`` is
            turned into rows).

        Returns
        -------
        `StoreSubset`

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> import astropy.units as u
        >>> from astropy.table import Table
        >>> from stellarlatent.datasets import SpectralStore
        >>> path = Path(tempfile.mkdtemp()) / "s.h5"
        >>> with SpectralStore.create(path, np.arange(5.0) * u.AA, labels=["teff"],
        ...                           ivar=False) as store:
        ...     _ = store.append(np.ones((10, 5)), Table({"teff": np.arange(10.0)}))
        >>> with SpectralStore(path) as store:
        ...     train = store.subset(np.arange(10) % 5 != 0)
        ...     print(len(train), train.labels["teff"].tolist())
        8 [1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0]
        """
        return StoreSubset(self, indices)

    def to_torch_dataset(self, indices=None, *, labels=None):
        """A `torch.utils.data.Dataset` that reads spectra from the file lazily.

        Parameters
        ----------
        indices : array-like, default=None
            The spectra to serve (all by default).
        labels : sequence of str, default=None
            Numeric label columns to serve with each spectrum.

        Returns
        -------
        `torch.utils.data.Dataset`
            Items are ``(flux, mask, ivar)`` float32 tensors of shape
            ``(n_pixels,)`` (``(flux, mask, ivar, y)`` with ``labels``, ``y``
            of shape ``(n_labels,)`` with NaN for missing labels). ``mask`` is
            1.0 at bad pixels; ``flux`` and ``ivar`` are 0 there. A store
            without inverse variances gives unit weights (``ivar = 1 - mask``).
            Each process opens the file on first use (the dataset pickles
            without it), so the dataset works with ``DataLoader(num_workers >
            0)`` under any start method; a ``DataLoader`` batch is read with
            one HDF5 read per run of consecutive rows, and no flux is cached,
            so memory does not grow with the store. Label values, when asked
            for, are held in memory (one float32 per spectrum and label).
        """
        from ._torch import StoreDataset

        self._require_open()
        rows = None if indices is None else self._indices(indices)
        label_values = None
        if labels is not None:
            label_values = numeric_labels(self._file, self.label_names, labels, self._n)
        return StoreDataset(self.path, rows, self.has_ivar, label_values, n_rows=len(self))

    # -- closing ----------------------------------------------------------------------

    def close(self):
        """Close the file; a store being built is finished and moved to its path."""
        if self._file is None or not self._file.id.valid:
            return
        if self.mode == "w":
            self._file.attrs["complete"] = True
            self._file.flush()
        self._file.close()
        if self._tmp_path is not None:
            # on disk before the rename, so that a crash cannot leave a half-written file at path
            fsync(self._tmp_path)
            os.replace(self._tmp_path, self.path)
            fsync(self.path.parent)
            self._tmp_path = None
            self.mode = "r"

    def _abort(self):
        """Close a store being built without finishing it, removing its temporary file."""
        if self._file is not None and self._file.id.valid:
            self._file.close()
        if self._tmp_path is not None:
            try:
                os.remove(self._tmp_path)
            except FileNotFoundError:
                pass
            log.warning("build of %s abandoned; no store was written", self.path)
            self._tmp_path = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.mode == "w":
            self._abort()
        else:
            self.close()
        return False
