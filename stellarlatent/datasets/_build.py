"""The batch-by-batch builder behind `SpectralStore.from_files`, serial or with dask.

Each batch of files becomes a `Chunk` (read, preprocessed and stacked by
`read_chunk`) in this process or in dask workers; `Builder` writes the chunks
in the order of the files, so every scheduler writes the same store.
"""

import logging
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.table import QTable

from .._batch import from_batch
from .._logging import log
from ._io import same_grid, stack_spectra

__all__ = ["Builder", "Chunk", "read_chunk", "build", "check_spectrum"]


class Chunk(NamedTuple):
    """What one batch of files gave: spectra ready to append, skips and log events.

    Made by `read_chunk`, in the caller's process or in a dask worker (it is
    picklable and holds no open file), and consumed by `Builder.add` in the
    process that writes the store.
    """

    #: preprocessed spectra: ``[(positions, SpectraBatch)]`` with one entry
    #: for the whole batch, or ``[(position, SpectraBatch or error message)]``,
    #: one per file, when the files went through one by one
    parts: list
    #: whether ``parts`` holds the whole batch in one entry
    whole: bool
    #: files read, out of those given
    n_read: int
    #: ``(level, message, args)`` to log, in order
    events: list
    #: ``meta["wavelength_medium"]`` of each spectrum read ("air", "vacuum" or None)
    media: tuple = ()


def read_chunk(paths, reader, preprocess, fit=False):
    """Read and preprocess a batch of files, skipping (and noting) the bad ones.

    Parameters
    ----------
    paths : list of path-like
        The files of the batch.
    reader : callable or None
        ``reader(path) -> Spectrum``; `specutils.Spectrum.read` when None.
    preprocess : transformer or None
        Fitted, unless ``fit`` is true.
    fit : bool, optional
        Fit ``preprocess`` (in place) on the spectra read before transforming them.

    Returns
    -------
    Chunk
    """
    if reader is None:
        from specutils import Spectrum

        reader = Spectrum.read
    events, spectra, positions = [], [], []
    for k, path in enumerate(paths):
        try:
            spectrum = reader(str(path))
        except Exception as exc:  # a bad file is skipped, never fatal
            events.append((logging.WARNING, "%s skipped: %s: %s",
                           (Path(path).name, type(exc).__name__, str(exc))))
            continue
        try:
            check_spectrum(spectrum)
        except (TypeError, ValueError) as exc:
            # checked here, where the file is known: in a batch, one file without
            # a valid pixel would stop the batch and name only its index
            events.append((logging.WARNING, "%s skipped: %s", (Path(path).name, str(exc))))
            continue
        spectra.append(spectrum)
        positions.append(k)
    if not spectra:
        return Chunk([], False, 0, events)
    media = tuple(_medium_of(s) for s in spectra)
    names = [Path(paths[k]).name for k in positions]
    transformed, kept = _transform(preprocess, spectra, names, fit, events)
    kept = [positions[k] for k in kept]
    if preprocess is not None and len(transformed) == 1 and len(kept) == len(spectra):
        return Chunk([(kept, stack_spectra(transformed[0], "spectra"))], True, len(spectra), events,
                     media)
    parts = []
    for position, spectrum in zip(kept, transformed):
        try:
            parts.append((position, stack_spectra(spectrum, "spectra")))
        except (TypeError, ValueError) as exc:
            parts.append((position, str(exc)))
    return Chunk(parts, False, len(spectra), events, media)


def _medium_of(spectrum):
    medium = (getattr(spectrum, "meta", None) or {}).get("wavelength_medium")
    return medium if medium in ("air", "vacuum") else None


def check_spectrum(spectrum):
    """Raise a ValueError (or TypeError) if a spectrum read from a file cannot be preprocessed.

    The message describes the spectrum without an index: the caller names the file.
    """
    try:
        stack_spectra(spectrum, "spectrum")
    except ValueError as exc:
        raise ValueError(file_reason(str(exc))) from None


_NO_VALID_PIXEL = re.compile(
    r"^\S+ has (\d+) spectra with no valid pixel \(all NaN or masked; first at row \d+\); "
    r"expected at least one valid pixel")


def file_reason(message):
    """A batch's error message reworded for one file: no batch index, no row number."""
    match = _NO_VALID_PIXEL.match(message)
    if match is None:
        return message
    where = "" if match.group(1) == "1" else f" (in {match.group(1)} of its spectra)"
    return f"no valid pixel: every flux value is NaN, masked or of zero weight{where}"


def _fit(preprocess, spectra, names, events):
    """Fit on the batch; when that fails, leave out (and note) the spectra that fail alone.

    Returns the indices of the spectra kept.
    """
    from sklearn.base import clone

    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            preprocess.fit(spectra)
        return list(range(len(spectra)))
    except Exception as exc:
        events.append((logging.DEBUG, "fitting the preprocessing on the batch failed (%s); "
                       "trying file by file", (str(exc),)))
    kept = []
    for k, spectrum in enumerate(spectra):
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                clone(preprocess).fit([spectrum])
        except Exception as exc:
            events.append((logging.WARNING, "%s skipped: preprocessing failed: %s: %s",
                           (names[k], type(exc).__name__, file_reason(str(exc)))))
            continue
        kept.append(k)
    if kept:
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                preprocess.fit([spectra[k] for k in kept])
        except Exception as exc:
            # each fits alone but not all together: files in flux units that do not
            # convert to each other (adu, a relative flux); fit on those in the units
            # of the first, the others are transformed one by one
            events.append((logging.DEBUG, "fitting the preprocessing on the files that fit "
                           "alone failed (%s); fitting on those in the flux unit of the first",
                           (str(exc),)))
            with np.errstate(divide="ignore", invalid="ignore"):
                preprocess.fit([spectra[k] for k in _same_unit(spectra, kept)])
    return kept


def _same_unit(spectra, indices):
    """The indices of the spectra whose flux converts to the unit of the first one."""
    first = spectra[indices[0]].flux.unit
    return [k for k in indices if spectra[k].flux.unit.is_equivalent(first)]


def _transform(preprocess, spectra, names, fit, events):
    """Preprocess a batch; on failure, one by one, skipping the spectra that fail."""
    if preprocess is None:
        return spectra, list(range(len(spectra)))
    candidates = list(range(len(spectra)))
    if fit:
        candidates = _fit(preprocess, spectra, names, events)
        if not candidates:
            return [], []
    if len(candidates) == len(spectra):
        try:
            with np.errstate(divide="ignore"):
                return [preprocess.transform(spectra)], candidates
        except Exception as exc:
            events.append((logging.DEBUG, "batch preprocessing failed (%s); retrying file by file",
                           (str(exc),)))
    out, kept = [], []
    for k in candidates:
        try:
            with np.errstate(divide="ignore"):
                out.append(preprocess.transform(spectra[k]))
        except Exception as exc:
            events.append((logging.WARNING, "%s skipped: preprocessing failed: %s: %s",
                           (names[k], type(exc).__name__, file_reason(str(exc)))))
            continue
        kept.append(k)
    return out, kept


def build(cls, files, path, *, reader, preprocess, labels, batch_size, progress, overwrite,
          create_kwargs, runner):
    """Write the store at ``path`` from ``files``, reading them with ``runner``.

    An unfitted ``preprocess`` is fitted here on the first batch with a
    readable file; the other batches go to the runner, whose chunks are
    appended in the order of ``files``. Returns the number of files skipped.
    """
    from tqdm.auto import tqdm

    batches = [files[start:start + batch_size] for start in range(0, len(files), batch_size)]
    starts = range(0, len(files), batch_size)
    builder = Builder(cls, path, preprocess, labels, overwrite, create_kwargs)
    skipped, done = 0, 0
    try:
        with tqdm(total=len(files), disable=not progress, unit="file", desc="spectra") as bar, \
                runner:
            if len(batches) > 1:
                runner.start()
            while done < len(batches) and not builder.fitted:
                chunk = read_chunk(batches[done], reader, preprocess, fit=True)
                skipped += _add(builder, chunk, starts[done], len(batches[done]), files, bar)
                done += 1
            chunks = runner.map(batches[done:], reader, preprocess)
            for start, batch, chunk in zip(starts[done:], batches[done:], chunks):
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

    def __init__(self, cls, path, preprocess, labels, overwrite, create_kwargs):
        self.cls, self.path, self.preprocess = cls, path, preprocess
        self.labels, self.overwrite, self.create_kwargs = labels, overwrite, dict(create_kwargs)
        self.store = None
        self.fitted = preprocess is None or _is_fitted(preprocess)
        self.media = set()

    def add(self, chunk, rows, files):
        """Log the chunk's events, append what can be appended; return the files skipped.

        ``rows`` are the indices in ``files`` of the files the chunk was made from.
        """
        for level, message, args in chunk.events:
            log.log(level, message, *args)
        self.media.update(chunk.media)
        if chunk.parts:
            # a batch whose every file failed leaves the preprocessing to the next one
            self.fitted = True
        skipped = len(rows) - chunk.n_read
        batches, counts, keep_rows = [], [], []
        if chunk.whole:
            (positions, batch), = chunk.parts
            per_file = batch.n_spectra // len(positions)
            if per_file * len(positions) != batch.n_spectra:
                raise ValueError(
                    f"preprocess returned {batch.n_spectra} spectra for {len(positions)} files"
                )
            batches, counts = [batch], [per_file] * len(positions)
            keep_rows = [rows[k] for k in positions]
        else:
            skipped += chunk.n_read - len(chunk.parts)
            for position, batch in chunk.parts:
                name = files[rows[position]].name
                if isinstance(batch, str):
                    log.warning("%s skipped: %s", name, batch)
                    skipped += 1
                    continue
                axis = batch.spectral_axis
                if self.store is not None and not same_grid(self.store.spectral_axis, axis):
                    log.warning(
                        "%s skipped: its grid differs from the store's (give preprocess="
                        "Resampler(grid=...) to put every file on one grid)",
                        name,
                    )
                    skipped += 1
                    continue
                if self.store is None:
                    self._create(batch)
                batches.append(batch)
                counts.append(batch.n_spectra)
                keep_rows.append(rows[position])
        if not batches:
            return skipped
        if self.store is None:
            self._create(batches[0])
        spectra_out = [from_batch(b) for b in batches]
        table = self._labels_for(keep_rows, counts, files)
        self.store.append(spectra_out if len(spectra_out) > 1 else spectra_out[0], table)
        return skipped

    def _create(self, batch):
        kwargs = dict(self.create_kwargs)
        kwargs.setdefault("ivar", batch.ivar is not None)
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
            table["filename"] = np.array([files[i].name for i in repeat], dtype=str)
        return table

    def finish(self):
        if self.store is None:
            raise ValueError(
                f"files: none of the files could be read; no store written at {self.path}"
            )
        self._record_medium()
        return self.store

    def _record_medium(self):
        """Keep the files' air/vacuum convention in the store's meta, when they all state one.

        The estimators read ``meta["wavelength_medium"]`` of a store to refuse
        spectra of the other convention; files of both are said in a warning.
        """
        import json

        if {"air", "vacuum"} <= self.media:
            log.warning(
                "%s: the files mix air (HARPS, MILES) and vacuum (LAMOST, PHOENIX, SDSS) "
                "wavelengths, about 1.5 A apart at 5000 A; convert one kind first "
                "(stellarlatent.preprocessing.air_to_vacuum or vacuum_to_air)", self.path)
            return
        if len(self.media) != 1 or None in self.media:
            return
        meta = self.store.meta
        meta.setdefault("wavelength_medium", next(iter(self.media)))
        self.store._file.attrs["meta"] = json.dumps(meta)

    def abort(self):
        if self.store is not None:
            self.store._abort()


def _is_fitted(estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if isinstance(estimator, Pipeline):
        # a pipeline counts as fitted by its last step only; every step must be
        return all(_is_fitted(step) for _, step in estimator.steps if step not in (None, "passthrough"))
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:
        return True
    return True
