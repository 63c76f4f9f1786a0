"""The batch-by-batch builder behind `SpectralStore.from_files`, serial or with dask.

Each batch of files becomes a `~stellarlatent.datasets._reading.Chunk`
(read, preprocessed and stacked by ``_reading.read_chunk``, the road that
`read_spectra_files` takes too) in this process or in dask workers; `Builder`
writes the chunks in the order of the files, so every scheduler writes the
same store.
"""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from .._batch import from_batch, unknown_ivar_rows
from .._logging import log, progress_bar, said_once
from ._io import files_from, same_grid, spectrum_names
from ._parallel import make_runner
from ._reading import (SkippedFile, chunk_batches, common_resolution, is_fitted, log_skip,
                       read_chunk)

__all__ = ["Builder", "build", "build_store"]

#: why a file whose spectra are not on the grid of the store is skipped
OTHER_GRID = ("its grid differs from the store's (give preprocess=Resampler(grid=...) to put "
              "every file on one grid)")


def other_unit(unit, store_unit):
    """Why a file whose flux unit cannot be converted to the store's is skipped."""
    return (f"its flux unit ({unit.to_string() or 'dimensionless'}) cannot be converted to the "
            f"store's ({store_unit.to_string() or 'dimensionless'}); normalise the flux "
            "(preprocess=ContinuumNormalizer(...), prepare --normalize) to put files of "
            "different units in one store")


def build_store(cls, files, path, *, reader, preprocess, labels, pattern, batch_size, progress,
                overwrite, scheduler, n_workers, on_skip, create_kwargs):
    """`SpectralStore.from_files` after its arguments are checked: build, log, reopen."""
    files = files_from(files, pattern, name="files")
    if labels is not None:
        if not isinstance(labels, Table):
            raise TypeError(f"labels must be an astropy Table, got {type(labels).__name__}")
        if len(labels) != len(files):
            raise ValueError(
                f"labels has {len(labels)} rows for {len(files)} files; expected one per file"
            )
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if Path(path).exists() and not overwrite:
        raise FileExistsError(f"path: {path} exists; pass overwrite=True to replace it")
    store, skipped = build(
        cls, files, path, reader=reader, preprocess=preprocess, labels=labels,
        batch_size=batch_size, progress=progress, overwrite=overwrite,
        create_kwargs=create_kwargs, runner=make_runner(scheduler, n_workers), on_skip=on_skip,
    )
    if skipped:
        log.warning("%d of %d files skipped while building %s", skipped, len(files), path)
    store.close()
    return cls(path, "r")


def build(cls, files, path, *, reader, preprocess, labels, batch_size, progress, overwrite,
          create_kwargs, runner, on_skip=None):
    """Write the store at ``path`` from ``files``, reading them with ``runner``.

    An unfitted ``preprocess`` is fitted here on the first batch with a
    readable file; the other batches go to the runner, whose chunks are
    appended in the order of ``files``; ``on_skip`` is called with the
    `SkippedFile` of each file skipped (by default it is logged). Returns the
    store and the number of files skipped.
    """
    batches = [files[start:start + batch_size] for start in range(0, len(files), batch_size)]
    starts = range(0, len(files), batch_size)
    builder = Builder(cls, path, preprocess, labels, overwrite, create_kwargs, on_skip)
    skipped, done = 0, 0
    try:
        with progress_bar(total=len(files), enabled=progress, unit="file",
                          desc="spectra") as bar, runner:
            if len(batches) > 1:
                runner.start()
            while done < len(batches) and not builder.fitted:
                # a batch that fails is tried file by file: its warnings are said once
                with said_once():
                    chunk = read_chunk(batches[done], reader, preprocess, fit=True)
                    skipped += _add(builder, chunk, starts[done], len(batches[done]), files, bar)
                done += 1
            chunks = runner.map(batches[done:], reader, preprocess)
            for start, batch, chunk in zip(starts[done:], batches[done:], chunks):
                with said_once():  # the events of the chunk (a worker process's warnings)
                    skipped += _add(builder, chunk, start, len(batch), files, bar)
            store = builder.finish()
    except BaseException:
        builder.abort()
        raise
    return store, skipped


def _add(builder, chunk, start, n_files, files, bar):
    skipped = builder.add(chunk, list(range(start, start + n_files)), files)
    bar.update(n_files)
    return skipped


class Builder:
    """Appends the `Chunk` of each batch of files to a new store, in order."""

    def __init__(self, cls, path, preprocess, labels, overwrite, create_kwargs, on_skip=None):
        self.cls, self.path, self.preprocess = cls, path, preprocess
        self.labels, self.overwrite, self.create_kwargs = labels, overwrite, dict(create_kwargs)
        self.on_skip = log_skip if on_skip is None else on_skip
        self.store = None
        self.fitted = preprocess is None or is_fitted(preprocess)
        self.media = set()
        self.resolutions = []

    def add(self, chunk, rows, files):
        """Log the chunk's events, append what can be appended; return the files skipped.

        ``rows`` are the indices in ``files`` of the files the chunk was made from.
        """
        for level, message, args in chunk.events:
            log.log(level, message, *args)
        for record in chunk.skipped:
            self.on_skip(record)
        self.media.update(chunk.media)
        self.resolutions.extend(chunk.resolutions)
        if chunk.parts:
            # a batch whose every file failed leaves the preprocessing to the next one
            self.fitted = True
        skipped = len(chunk.skipped)
        batches, counts, keep_rows = [], [], []
        for batch, positions, per_file in chunk_batches(chunk):
            axis = batch.spectral_axis
            first = self.store if self.store is not None else (batches[0] if batches else None)
            unit = self._flux_unit(first)
            reason = None
            if first is not None and not same_grid(first.spectral_axis, axis):
                reason = OTHER_GRID
            elif unit is not None and not batch.flux_unit.is_equivalent(unit):
                reason = other_unit(batch.flux_unit, unit)
            if reason is not None:
                for k in positions:
                    self.on_skip(SkippedFile(files[rows[k]].name, reason))
                skipped += len(positions)
                continue
            batches.append(batch)
            counts.extend(per_file)
            keep_rows.extend(rows[k] for k in positions)
        if not batches:
            return skipped
        if self.store is None:
            self._create(batches[0])
        spectra_out = [from_batch(b) for b in batches]
        table = self._labels_for(keep_rows, counts, files)
        self.store.append(spectra_out if len(spectra_out) > 1 else spectra_out[0], table)
        return skipped

    def _flux_unit(self, first):
        """The flux unit of the store: its own, the one asked for, or that of ``first``."""
        if self.store is not None:
            return self.store.flux_unit
        if self.create_kwargs.get("flux_unit") is not None:
            return u.Unit(self.create_kwargs["flux_unit"])
        return None if first is None else first.flux_unit

    def _create(self, batch):
        kwargs = dict(self.create_kwargs)
        # spectra without an uncertainty get rows of NaN in a store that keeps them
        kwargs.setdefault("ivar", batch.ivar is not None
                          and not unknown_ivar_rows(batch.ivar).all())
        kwargs.setdefault("flux_unit", batch.flux_unit)
        template = QTable() if self.labels is None else QTable(self.labels[:0])
        if "filename" not in template.colnames:
            template["filename"] = np.array([], dtype=str)
        self.store = self.cls.create(
            self.path,
            batch.spectral_axis,
            labels=template,
            overwrite=self.overwrite,
            **kwargs,
        )

    def _labels_for(self, rows, counts, files):
        repeat = np.repeat(np.asarray(rows, dtype=int), counts)
        table = QTable() if self.labels is None else QTable(self.labels[repeat])
        if "filename" not in table.colnames:
            if getattr(self, "_names", None) is None:
                self._names = spectrum_names(files)
            table["filename"] = np.array([self._names[i] for i in repeat], dtype=str)
        return table

    def finish(self):
        if self.store is None:
            raise ValueError(
                f"files: none of the files could be read; no store written at {self.path}"
            )
        self._record_instrument()
        return self.store

    def _record_instrument(self):
        """Keep the files' air/vacuum convention and resolution in the store's meta, when
        they all state the same.

        The estimators read ``meta["wavelength_medium"]`` of a store to refuse
        spectra of the other convention; files of both are said in a warning.
        ``meta["fwhm"]`` (``"2.5 Angstrom"``) or ``meta["resolution"]`` (R)
        is what ``fit-remap`` pre-trains at and what its model brings other
        spectra to.
        """
        import json

        meta = self.store.meta
        if {"air", "vacuum"} <= self.media:
            log.warning(
                "%s: the files mix air (HARPS, MILES) and vacuum (LAMOST, PHOENIX, SDSS) "
                "wavelengths, about 1.5 A apart at 5000 A; convert one kind first "
                "(stellarlatent.preprocessing.air_to_vacuum or vacuum_to_air)", self.path)
        elif len(self.media) == 1 and None not in self.media:
            meta.setdefault("wavelength_medium", next(iter(self.media)))
        for key, value in common_resolution(self.resolutions).items():
            meta.setdefault(key, f"{value.value:g} {value.unit}" if key == "fwhm" else value)
        self.store._file.attrs["meta"] = json.dumps(meta)

    def abort(self):
        if self.store is not None:
            self.store._abort()
