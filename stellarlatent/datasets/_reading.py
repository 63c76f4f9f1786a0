"""One road from spectrum files to a batch: read, check, preprocess, skip the bad ones by name.

`read_each` is the loop over files that every reader of the package shares:
it defines which errors skip a file (`SKIPPED_ERRORS`) and how the reason is
worded (`skip_reason`). `read_chunk` reads, checks and preprocesses one batch
of files into a `Chunk` (in this process or in a dask worker);
`read_spectra_files` reads a whole list of files into one batch Spectrum,
and `SpectralStore.from_files` appends chunk after chunk to a store
(``_build``). Skipped files travel as `SkippedFile` records, never as log
lines to parse back.
"""

import logging
import re
from pathlib import Path
from typing import NamedTuple

import astropy.units as u
import numpy as np

from .._batch import from_batch
from .._logging import log, progress_bar, said_once
from ..preprocessing.airvac import recorded_medium
from ._io import files_from, same_grid, spectrum_names, stack_spectra

__all__ = ["SkippedFile", "SpectraRead", "read_spectra_files", "SKIPPED_ERRORS", "skip_reason",
           "read_each", "log_skip", "read_logged", "warn_skipped", "Chunk", "read_chunk",
           "chunk_batches", "check_spectrum", "file_reason", "is_fitted"]

#: the errors that skip a file rather than stop the reading: any error of a
#: reader or a preprocessing step (a damaged file fails in many ways, and
#: third-party loaders raise KeyError, IndexError...), except running out of memory
SKIPPED_ERRORS = (Exception,)
_NOT_SKIPPED = (MemoryError,)

#: why a file whose spectra are not on the grid of the first file is skipped
OTHER_GRID = ("on another grid than the first file (resample every file onto one grid: "
              "preprocess=Resampler(grid=...), or --grid on the command line)")


class SkippedFile(NamedTuple):
    """A file that was not read, and why."""

    #: the file name (without its folder)
    name: str
    #: the reason, one line: ``"OSError: not a readable FITS file ..."``,
    #: ``"no valid pixel: ..."``, ``"preprocessing failed: ..."``
    reason: str


class SpectraRead(NamedTuple):
    """What `read_spectra_files` read: the spectra, the file of each, the files skipped."""

    #: one batch `~specutils.Spectrum` (flux ``(n_spectra, n_pixels)``), or
    #: None when no file could be read
    spectra: object
    #: the file name of each spectrum (a file holding several spectra is
    #: named once per spectrum)
    names: list
    #: a `SkippedFile` per file skipped, in the order they were met
    skipped: list


def skip_reason(exc, name=None):
    """The one-line reason of a skipped file: ``"Type: message"``, without the file's name.

    Parameters
    ----------
    exc : Exception
        What reading the file raised.
    name : str or path-like, default=None
        The file; a message that begins with it (or with its name) loses that
        beginning, since the record names the file already.

    Returns
    -------
    str

    Examples
    --------
    >>> from stellarlatent.datasets._reading import skip_reason
    >>> skip_reason(ValueError("a.fits: no linear wavelength solution\\nmore"), "/data/a.fits")
    'ValueError: no linear wavelength solution'
    """
    text = str(exc).strip()
    if name is not None:
        for prefix in (f"{name}: ", f"{Path(name).name}: "):
            text = text.removeprefix(prefix)
    text = _one_line(text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(text):
    return (str(text).strip().splitlines() or [""])[0].strip()


def log_skip(record):
    """Log a `SkippedFile` as a warning of the ``stellarlatent`` logger (the default on_skip)."""
    log.warning("%s skipped: %s", record.name, record.reason)


def read_each(paths, read, check=None, names=None):
    """Read each file with ``read(path)``; skip, with its reason, each one that fails.

    Parameters
    ----------
    paths : sequence of path-like
    read : callable
        ``read(path)``, given ``str(path)``; any of `SKIPPED_ERRORS` skips the file.
    check : callable, default=None
        ``check(item)`` on what ``read`` returned; a ValueError or TypeError
        skips the file with the message as its reason.
    names : sequence of str, default=None
        The name each file goes by in the skip records (`spectrum_names`);
        its file name by default.

    Returns
    -------
    items : list
        What ``read`` returned for the files kept.
    positions : list of int
        The index in ``paths`` of each file kept.
    skipped : list of SkippedFile
    """
    items, positions, skipped = [], [], []
    for k, path in enumerate(paths):
        name = Path(path).name if names is None else names[k]
        try:
            item = read(str(path))
        except _NOT_SKIPPED:
            raise
        except SKIPPED_ERRORS as exc:  # a bad file is skipped, never fatal
            skipped.append(SkippedFile(name, skip_reason(exc, path)))
            continue
        if check is not None:
            try:
                check(item)
            except (TypeError, ValueError) as exc:
                skipped.append(SkippedFile(name, _one_line(exc)))
                continue
        items.append(item)
        positions.append(k)
    return items, positions, skipped


def read_logged(paths, read):
    """`read_each` without a check, logging each file skipped (`log_skip`).

    Returns
    -------
    items : list
        What ``read`` returned for the files kept.
    kept : list
        The path of each file kept, from ``paths``.
    skipped : list of SkippedFile
    """
    items, positions, skipped = read_each(paths, read)
    for record in skipped:
        log_skip(record)
    return items, [paths[k] for k in positions], skipped


def warn_skipped(kept, paths, what):
    """Log how many of ``paths`` were read and skipped, if any was (``what``: the files' kind)."""
    if len(kept) < len(paths):
        log.warning("read %d %s files; %d skipped", len(kept), what, len(paths) - len(kept))


def read_spectra_files(paths, reader=None, preprocess=None, *, pattern="*.fits", batch_size=64,
                       progress=False, on_skip=None):
    """Read spectrum files into one batch, through a preprocessing, skipping the bad files.

    Files are read and preprocessed batch by batch. A file that cannot be
    read, holds no valid pixel, fails its preprocessing or gives spectra on
    another grid than the first file is skipped, with its name and reason,
    and the others go on; no error of a file stops the reading.

    Parameters
    ----------
    paths : str, path-like or sequence of them
        A folder (its files matching ``pattern``), one file, or a list of files.
    reader : callable, default=None
        ``reader(path) -> Spectrum`` (1-D or a batch). By default
        `specutils.Spectrum.read`, which knows the package's formats (HARPS,
        LAMOST, MILES, PHOENIX) once `stellarlatent.datasets` is imported.
    preprocess : transformer or `~sklearn.pipeline.Pipeline`, default=None
        Applied to each batch of spectra; an unfitted one is fitted (in place)
        on the first batch with a readable file, with ``fit_transform`` (the
        batch goes through once; a step whose ``fit_transform`` differs from
        ``fit`` then ``transform`` treats that batch as its ``fit_transform``
        does). Without it, every file must be on the grid of the first one.
    pattern : str, optional
        Glob pattern when ``paths`` is a folder (default ``"*.fits"``).
    batch_size : int, default=64
        Files read and preprocessed at a time.
    progress : bool, default=False
        Show a tqdm progress bar.
    on_skip : callable, default=None
        Called with each `SkippedFile` as it is skipped; by default each is
        logged as a warning of the ``stellarlatent`` logger
        (``"NAME skipped: REASON"``).

    Returns
    -------
    SpectraRead
        ``(spectra, names, skipped)``: one batch `~specutils.Spectrum` (None
        when no file could be read), the file name of each of its spectra,
        and the `SkippedFile` records.

    See Also
    --------
    SpectralStore.from_files : the same road, into a store larger than memory.

    Examples
    --------
    Write three spectra as MILES files, damage a fourth, name a fifth that
    does not exist, then read them through a normaliser:

    >>> import functools, tempfile
    >>> from pathlib import Path
    >>> import astropy.units as u
    >>> from specutils import Spectrum
    >>> from stellarlatent.datasets import make_synthetic_spectra, read_spectra_files, write_miles
    >>> from stellarlatent.preprocessing import ContinuumNormalizer, SpectralGrid
    >>> folder = Path(tempfile.mkdtemp())
    >>> grid = SpectralGrid.linear(4800 * u.AA, 5200 * u.AA, 200)
    >>> spectra, labels = make_synthetic_spectra(3, grid, random_state=0)
    >>> labels["miles_id"] = [1, 2, 3]
    >>> write_miles(folder, spectra, labels)
    >>> _ = (folder / "MILES_res2.50_star_m0004V.fits").write_text("not FITS")
    >>> files = sorted(folder.glob("*.fits")) + [folder / "missing.fits"]
    >>> read = read_spectra_files(files, functools.partial(Spectrum.read, format="MILES"),
    ...                           ContinuumNormalizer(),
    ...                           on_skip=lambda skipped: print(*skipped, sep=": "))
    MILES_res2.50_star_m0004V.fits: OSError: not a readable FITS file ...
    missing.fits: FileNotFoundError: [Errno 2] No such file or directory: ...
    >>> read.spectra.flux.shape, read.names[0]
    ((3, 200), 'MILES_res2.50_star_m0001V.fits')
    >>> [name for name, reason in read.skipped]
    ['MILES_res2.50_star_m0004V.fits', 'missing.fits']
    """
    files = files_from(paths, pattern, name="paths")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    on_skip = log_skip if on_skip is None else on_skip
    parts, names, skipped = [], [], []

    def skip(record):
        skipped.append(record)
        on_skip(record)

    resolutions, name_of = [], dict(zip(files, spectrum_names(files)))
    with progress_bar(total=len(files), enabled=progress, unit="file", desc="spectra") as bar:
        for start in range(0, len(files), batch_size):
            batch_files = files[start:start + batch_size]
            fit = preprocess is not None and not is_fitted(preprocess)
            # a batch that fails is tried file by file: its warnings are said once
            with np.errstate(divide="ignore", invalid="ignore"), said_once():
                chunk = read_chunk(batch_files, reader, preprocess, fit=fit,
                                   names=[name_of[f] for f in batch_files])
                for level, message, args in chunk.events:
                    log.log(level, message, *args)
            resolutions.extend(chunk.resolutions)
            for record in chunk.skipped:
                skip(record)
            for batch, positions, counts in chunk_batches(chunk):
                batch_names = [name_of[batch_files[k]] for k in positions]
                if parts and not same_grid(parts[0].spectral_axis, batch.spectral_axis):
                    for name in batch_names:
                        skip(SkippedFile(name, OTHER_GRID))
                    continue
                parts.append(batch)
                names.extend(np.repeat(batch_names, counts).tolist())
            bar.update(len(batch_files))
    if not parts:
        return SpectraRead(None, [], skipped)
    spectra = from_batch(stack_spectra([from_batch(p) for p in parts], "spectra"))
    # the files' common resolution: a model trained on them records it (fit-remap, fit-vae)
    for key, value in common_resolution(resolutions).items():
        spectra.meta.setdefault(key, value)
    return SpectraRead(spectra, names, skipped)


class Chunk(NamedTuple):
    """What one batch of files gave: spectra ready to append, skipped files and log events.

    Made by `read_chunk`, in the caller's process or in a dask worker (it is
    picklable and holds no open file), and consumed by `read_spectra_files`
    or ``_build.Builder.add`` in the calling process.
    """

    #: preprocessed spectra: ``[(positions, SpectraBatch)]`` with one entry
    #: for the whole batch, or ``[(position, SpectraBatch)]``, one per file,
    #: when the files went through one by one
    parts: list
    #: whether ``parts`` holds the whole batch in one entry
    whole: bool
    #: the `SkippedFile` of each file of the batch left out, in order
    skipped: list
    #: ``(level, message, args)`` to log, in order (debugging information)
    events: list
    #: ``meta["wavelength_medium"]`` of each spectrum read ("air", "vacuum" or None)
    media: tuple = ()
    #: the resolution each spectrum's file recorded (`resolution_of`)
    resolutions: tuple = ()


def chunk_batches(chunk):
    """The batches of a chunk: ``[(SpectraBatch, positions, spectra per file)]``."""
    if chunk.whole:
        (positions, batch), = chunk.parts
        per_file = batch.n_spectra // len(positions)
        if per_file * len(positions) != batch.n_spectra:
            raise ValueError(
                f"preprocess returned {batch.n_spectra} spectra for {len(positions)} files"
            )
        return [(batch, list(positions), [per_file] * len(positions))]
    return [(batch, [position], [batch.n_spectra]) for position, batch in chunk.parts]


def read_chunk(paths, reader, preprocess, fit=False, names=None):
    """Read and preprocess a batch of files, skipping (and recording) the bad ones.

    Parameters
    ----------
    paths : list of path-like
        The files of the batch.
    reader : callable or None
        ``reader(path) -> Spectrum``; `specutils.Spectrum.read` when None.
    preprocess : transformer or None
        Fitted, unless ``fit`` is true.
    fit : bool, default=False
        Fit ``preprocess`` (in place) on the spectra read before transforming them.
    names : sequence of str, default=None
        The name each file goes by in the skip records; its file name by default.

    Returns
    -------
    Chunk
    """
    if reader is None:
        from specutils import Spectrum

        reader = Spectrum.read
    events = []
    # checked here, where the file is known: in a batch, one file without
    # a valid pixel would stop the batch and name only its index
    names = [Path(p).name for p in paths] if names is None else list(names)
    spectra, positions, skipped = read_each(paths, reader, check=check_spectrum, names=names)
    if not spectra:
        return Chunk([], False, skipped, events)
    media = tuple(recorded_medium(getattr(s, "meta", None)) for s in spectra)
    # a step that broadens (or is unknown) leaves the files' resolution behind: record none
    resolutions = tuple(resolution_of(s) if keeps_resolution(preprocess) else None
                        for s in spectra)
    transformed, kept = _transform(preprocess, spectra, [names[k] for k in positions], fit,
                                   events, skipped)
    kept = [positions[k] for k in kept]
    if preprocess is not None and len(transformed) == 1 and len(kept) == len(spectra):
        return Chunk([(kept, stack_spectra(transformed[0], "spectra"))], True, skipped, events,
                     media, resolutions)
    parts = []
    for position, spectrum in zip(kept, transformed):
        try:
            parts.append((position, stack_spectra(spectrum, "spectra")))
        except (TypeError, ValueError) as exc:
            skipped.append(SkippedFile(names[position], _one_line(exc)))
    return Chunk(parts, False, skipped, events, media, resolutions)


def resolution_of(spectrum):
    """``("fwhm", Angstrom)`` or ``("resolution", R)`` that a spectrum's meta records, or None."""
    meta = getattr(spectrum, "meta", None) or {}
    fwhm = meta.get("fwhm")
    if (isinstance(fwhm, u.Quantity) and fwhm.isscalar and fwhm.unit.is_equivalent(u.AA)
            and np.isfinite(fwhm.value) and fwhm.value > 0):
        return ("fwhm", round(float(fwhm.to_value(u.AA)), 6))
    for key in ("resolution", "resolving_power"):
        value = meta.get(key)
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) \
                and np.isfinite(value) and value > 0:
            return ("resolution", float(value))
    return None


#: the steps that leave a spectrum's line-spread function as it is (a grid finer than a pixel
#: aside, which `~stellarlatent._preprocessing_spec.with_instrument` looks after)
_KEEP_RESOLUTION = ("Resampler", "ContinuumNormalizer", "Masker", "Padder")


def keeps_resolution(preprocess):
    """Whether ``preprocess`` (None, a transformer or a Pipeline) keeps the files' resolution."""
    if preprocess is None:
        return True
    steps = ([step for _, step in preprocess.steps] if hasattr(preprocess, "steps")
             else [preprocess])
    return all(step in (None, "passthrough") or type(step).__name__ in _KEEP_RESOLUTION
               for step in steps)


def common_resolution(resolutions):
    """``{"fwhm": Quantity}`` or ``{"resolution": R}`` when every spectrum records the same.

    Examples
    --------
    >>> common_resolution([("fwhm", 2.5), ("fwhm", 2.5)])
    {'fwhm': <Quantity 2.5 Angstrom>}
    >>> common_resolution([("fwhm", 2.5), None])
    {}
    """
    found = set(resolutions)
    if len(found) != 1 or None in found:
        return {}
    kind, value = found.pop()
    return {"fwhm": value * u.AA} if kind == "fwhm" else {"resolution": value}


def check_spectrum(spectrum):
    """Raise a ValueError (or TypeError) if a spectrum read from a file cannot be preprocessed.

    The message describes the spectrum without an index: the caller names the file.
    """
    try:
        stack_spectra(spectrum, "spectrum")
    except ValueError as exc:
        raise ValueError(file_reason(str(exc))) from None


_NO_VALID_PIXEL = re.compile(
    r"^\S+ has (\d+) spectra with no valid pixel \(all NaN or masked; first at row \d+"
    r"(; its uncertainties are negative[^)]*)?\); expected at least one valid pixel")


def file_reason(message):
    """A batch's error message reworded for one file: no batch index, no row number."""
    match = _NO_VALID_PIXEL.match(message)
    if match is None:
        return message
    where = "" if match.group(1) == "1" else f" (in {match.group(1)} of its spectra)"
    if match.group(2):
        return f"no valid pixel: its uncertainties are negative, a sign error upstream?{where}"
    return f"no valid pixel: every flux value is NaN, masked or of zero weight{where}"


def _preprocessing_failed(name, exc):
    return SkippedFile(name, f"preprocessing failed: {type(exc).__name__}: "
                             f"{file_reason(_one_line(exc))}")


def _fit(preprocess, spectra, names, events, skipped):
    """Fit on the batch; when that fails, leave out (and record) the spectra that fail alone.

    Returns the indices of the spectra kept.
    """
    from sklearn.base import clone

    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            preprocess.fit(spectra)
        return list(range(len(spectra)))
    except SKIPPED_ERRORS as exc:
        if isinstance(exc, _NOT_SKIPPED):
            raise
        events.append((logging.DEBUG, "fitting the preprocessing on the batch failed (%s); "
                       "trying file by file", (str(exc),)))
    _, kept = _one_by_one(lambda spectrum: clone(preprocess).fit([spectrum]), spectra,
                          range(len(spectra)), names, skipped, divide="ignore", invalid="ignore")
    if kept:
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                preprocess.fit([spectra[k] for k in kept])
        except SKIPPED_ERRORS as exc:
            if isinstance(exc, _NOT_SKIPPED):
                raise
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


def _transform(preprocess, spectra, names, fit, events, skipped):
    """Preprocess a batch; on failure, one by one, skipping the spectra that fail."""
    if preprocess is None:
        return spectra, list(range(len(spectra)))
    candidates = list(range(len(spectra)))
    if fit:
        # one pass: fitting a pipeline transforms the batch through all but its last step,
        # so fitting and then transforming would run the costly steps (broadening) twice
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                return [preprocess.fit_transform(spectra)], candidates
        except SKIPPED_ERRORS as exc:
            if isinstance(exc, _NOT_SKIPPED):
                raise
            events.append((logging.DEBUG, "fitting the preprocessing on the batch failed (%s); "
                           "trying file by file", (str(exc),)))
        candidates = _fit(preprocess, spectra, names, events, skipped)
        if not candidates:
            return [], []
    if len(candidates) == len(spectra):
        try:
            with np.errstate(divide="ignore"):
                return [preprocess.transform(spectra)], candidates
        except SKIPPED_ERRORS as exc:
            if isinstance(exc, _NOT_SKIPPED):
                raise
            events.append((logging.DEBUG, "batch preprocessing failed (%s); retrying file by file",
                           (str(exc),)))
    return _one_by_one(preprocess.transform, spectra, candidates, names, skipped,
                       divide="ignore")


def _one_by_one(step, spectra, indices, names, skipped, **errstate):
    """``step(spectra[k])`` for each k of ``indices``, skipping (and recording) those that fail.

    Returns what ``step`` returned and the indices of the spectra kept.
    """
    out, kept = [], []
    for k in indices:
        try:
            with np.errstate(**errstate):
                out.append(step(spectra[k]))
        except _NOT_SKIPPED:
            raise
        except SKIPPED_ERRORS as exc:
            skipped.append(_preprocessing_failed(names[k], exc))
            continue
        kept.append(k)
    return out, kept


def is_fitted(estimator):
    """Whether a transformer (every step of a pipeline) is fitted."""
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if isinstance(estimator, Pipeline):
        # a pipeline counts as fitted by its last step only; every step must be
        return all(is_fitted(step) for _, step in estimator.steps
                   if step not in (None, "passthrough"))
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except TypeError:
        return True
    return True
