"""Reading the spectra the subcommands are given: files, folders or a store.

Bad files are never fatal: each one is skipped with its reason, and the
command reports how many were skipped and why.
"""

import threading
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

from .._logging import log
from . import UserError, first_line

__all__ = ["UserError", "Skips", "expand_paths", "make_reader", "make_pipeline", "check_grid",
           "is_store", "looks_like_store", "open_store", "read_label_table",
           "labels_for_files"]

FORMAT_ALIASES = {"miles": "MILES", "phoenix": "PHOENIX", "harps": "HARPS-ADP",
                  "harps-adp": "HARPS-ADP",
                  "adp": "HARPS-ADP", "espresso": "HARPS-ADP", "harps-s1d": "HARPS-s1d",
                  "s1d": "HARPS-s1d", "lamost-lrs": "LAMOST-LRS", "lamost-mrs": "LAMOST-MRS",
                  "columns": "columns", "table": "columns", "text": "columns"}
#: the formats named in messages
FORMAT_NAMES = "HARPS-ADP, HARPS-s1d, LAMOST-LRS, LAMOST-MRS, MILES, PHOENIX, columns"
#: the most pixels of a --grid: over ten times a HARPS 1-D spectrum; more is a typo
MAX_GRID_PIXELS = 4_000_000
#: extensions of an HDF5 store
STORE_SUFFIXES = (".h5", ".hdf5")


class Skips:
    """Files skipped with their reasons: `~stellarlatent.datasets.SkippedFile` records."""

    def __init__(self):
        self.items = []

    def add(self, name, reason):
        """Note (and log) a file skipped by the command itself."""
        reason = str(reason).strip().splitlines()[0] if str(reason).strip() else "unknown error"
        self.items.append((str(name), reason))
        log.warning("%s skipped: %s", name, reason)

    def on_skip(self, record):
        """The ``on_skip`` of the library's readers: note a `SkippedFile`."""
        self.add(record.name, record.reason)

    def __len__(self):
        return len(self.items)

    def finish(self, *lines):
        """Print a command's closing ``lines`` and then the `summary`; return 0, its exit code."""
        for line in (*lines, *self.summary()):
            print(line)
        return 0

    def summary(self, limit=10):
        """Lines saying how many files were skipped and why, grouped by reason."""
        if not self.items:
            return []
        groups = {}
        for name, reason in self.items:
            groups.setdefault(reason.split(":")[0].strip() or reason, []).append((name, reason))
        lines = [f"  {len(self.items)} file(s) skipped:"]
        for kind, items in groups.items():
            lines.append(f"    {len(items)} x {kind}")
            for name, reason in items[:limit]:
                lines.append(f"      {name}: {reason}")
            if len(items) > limit:
                lines.append(f"      ... and {len(items) - limit} more")
        return lines


def _fits_files(folder):
    """The spectrum files of a folder (not its subfolders), sorted.

    Hidden files (macOS leaves ``._NAME`` beside copied files) are no
    spectra, and neither is the PHOENIX wavelength file: the reader finds it
    beside the models.
    """
    from ..datasets._formats import FITS_SUFFIXES  # the endings searched for, in any case

    return sorted(p for p in folder.iterdir()
                  if p.name.lower().endswith(FITS_SUFFIXES) and p.is_file()
                  and not p.name.startswith((".", "WAVE_PHOENIX")))


def _say_what_is_left(folder, found):
    """Say which files and subfolders of ``folder`` its search leaves out.

    Subfolders that hold FITS files get a warning (their spectra were
    probably meant); other files, such as a README or a label table, a note.
    """
    taken = set(found)
    entries = [p for p in folder.iterdir()
               if p not in taken and not p.name.startswith((".", "WAVE_PHOENIX"))]
    nested = sorted(p.name for p in entries if p.is_dir() and _fits_files(p))
    if nested:
        log.warning("%s: its subfolders are not searched (%s); give them, or %s/*/*.fits",
                    folder, _some(nested), folder)
    others = sorted(p.name for p in entries if p.is_file())
    if others:
        log.info("%s: %d files not read, not being FITS by their names (%s); name them to "
                 "read them", folder, len(others), _some(others))


def _some(names, shown=5):
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def expand_paths(paths, skips):
    """Files named on the command line, folders expanded to their FITS files."""
    files = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = _fits_files(path)
            if found:
                _say_what_is_left(path, found)
            else:
                nested = sorted(p.name for p in path.iterdir() if p.is_dir() and _fits_files(p))
                skips.add(path, "folder holds no FITS files" + (
                    f"; its subfolders are not searched: give them ({', '.join(nested)}) or "
                    f"{path}/*/*.fits" if nested else ""))
            files.extend(found)
        elif path.is_file():
            if is_store(path):
                skips.add(path, "an HDF5 store, not a spectrum file (give a store on its own, "
                          "not among files)")
                continue
            files.append(path)
        else:
            skips.add(path, "FileNotFoundError: no such file or folder")
    return files


def make_reader(fmt="auto", phoenix_wave=None):
    """``reader(path) -> Spectrum`` for a ``--format`` and ``--phoenix-wave``.

    The reader is ``Spectrum.read(path, format=...)``: with the format given,
    or the one `~stellarlatent.datasets._formats.identify_format` finds (then
    specutils' own identification).
    """
    from specutils import Spectrum

    from .. import datasets  # registers the package's loaders (HARPS, LAMOST, MILES, PHOENIX)
    from ..datasets._formats import complete_survey_meta, identify_format

    key = (fmt or "auto").lower()
    wave = None
    if phoenix_wave is not None:
        if key not in ("auto", "phoenix"):
            raise UserError(f"--phoenix-wave applies to PHOENIX spectra, not to --format {fmt}: "
                            "leave one out")
        wave_path = Path(phoenix_wave)
        if not wave_path.is_file():
            raise UserError(f"--phoenix-wave: no file at {wave_path}")
        try:
            wave = datasets.read_phoenix_wave(wave_path)
        except Exception as exc:  # noqa: BLE001 - a damaged FITS file fails in many ways
            reason = first_line(exc)
            raise UserError(f"--phoenix-wave: could not read {wave_path} as the PHOENIX "
                            f"wavelength file ({reason})") from None
    fmt = None if key == "auto" else FORMAT_ALIASES.get(key, fmt)
    if fmt is not None:
        _check_format(fmt)

    from astropy.io.registry import IORegistryError

    def read_file(path):
        if path.is_file() and path.stat().st_size == 0:
            raise ValueError("the file is empty (0 bytes)")
        # one opening of the file for the package's formats, then specutils' own
        found = fmt or identify_format(path)
        # the PHOENIX wavelength file is looked for beside the models, unless given
        kwargs = {"wave_file": wave} if wave is not None and found == "PHOENIX" else {}
        try:
            if found:
                return Spectrum.read(path, format=found, **kwargs)
            # specutils' own formats; SDSS and APOGEE do not record their vacuum wavelengths
            return complete_survey_meta(Spectrum.read(path), path)
        except IORegistryError as exc:
            spectrum = _as_columns(path)
            if spectrum is not None:
                return spectrum
            raise ValueError(
                f"{str(exc).splitlines()[0].rstrip('.')} (give --format, e.g. {FORMAT_NAMES})"
            ) from None
        except (OSError, ValueError) as exc:
            reason = first_line(exc).rstrip(".:")
            if "cannot reshape array" in str(exc) or "truncated" in str(exc).lower():
                raise ValueError(f"the file is truncated or damaged ({reason})") from None
            if found == "PHOENIX" and "wave_file" in str(exc):
                raise ValueError(f"{reason}; give it with --phoenix-wave") from None
            if found or isinstance(exc, (FileNotFoundError, PermissionError)):
                raise
            # specutils' generic readers found no spectrum in it: a table of columns
            # (wavelength, flux, error) without the units they look for, perhaps
            spectrum = _as_columns(path)
            if spectrum is not None:
                return spectrum
            raise ValueError(f"not a spectrum any reader recognises ({type(exc).__name__}: "
                             f"{reason}); give --format, e.g. {FORMAT_NAMES}, if it is one"
                             ) from None

    def read(path):
        path = Path(path)
        if threading.current_thread() is not threading.main_thread():
            # catch_warnings is process-wide, not thread-safe: threads leave the
            # warnings to the filters of the caller (see prepare)
            return read_file(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spectrum = read_file(path)
        for warning in caught:
            if issubclass(warning.category, datasets.UnknownUnitWarning) and not said_units:
                # said once: the flux is normalised anyway, but a user should know
                said_units.append(True)
                log.warning("%s (said once; the other files' units are logged with --debug)",
                            warning.message)
                continue
            log.debug("%s: %s", path.name, warning.message)
        return spectrum

    said_units = []
    return read


def _as_columns(path):
    """The spectrum of a table whose wavelength and flux columns go by their names, or None.

    Tried on files that no format reads: by name only, so that a label
    table beside the spectra is not read as one.
    """
    from ..datasets import read_columns

    try:
        spectrum = read_columns(path, by_name=True)
    except (OSError, ValueError):
        return None
    columns = spectrum.meta["columns"]
    log.info("%s: read as columns (wavelength %s, flux %s, error %s)", Path(path).name,
             columns["wavelength"], columns["flux"], columns["error"])
    return spectrum


def _check_format(fmt):
    """Refuse a --format that no specutils reader has, before any file is read."""
    from astropy.io import registry
    from specutils import Spectrum

    formats = {str(name) for name in registry.get_formats(Spectrum, "Read")["Format"]}
    if fmt not in formats:
        raise UserError(f"--format: no reader for {fmt!r}; give auto, {FORMAT_NAMES} "
                        "or a format of specutils (python -c 'import specutils; "
                        "specutils.Spectrum.read.list_formats()' lists them)")


def make_pipeline(grid=None, grid_kind="log", normalize="median", method="flux_conserving",
                  pad_multiple_of=None, smoothing=None, mask_cosmic_rays=False):
    """The preprocessing of ``prepare``: Resampler, then a normaliser and a Padder.

    ``smoothing`` (km/s, ``--continuum-smoothing``) is the normaliser's;
    ``mask_cosmic_rays`` (``--mask-cosmic-rays``) puts a `CosmicRayMasker`
    first, at the files' own sampling, interpolating over them as the
    instrument matching does.
    """
    from sklearn.pipeline import make_pipeline as sk_make_pipeline

    from ..preprocessing import (ContinuumNormalizer, CosmicRayMasker, Padder, Resampler,
                                 SpectralGrid)

    if grid is None and grid_kind != "log":
        raise UserError(f"--grid-kind {grid_kind} needs --grid START STOP N (without --grid "
                        "the grid is learned from the first files)")
    if grid is not None:
        start, stop, n = check_grid(grid)
        maker = SpectralGrid.log_uniform if grid_kind == "log" else SpectralGrid.linear
        try:
            grid = maker(start * u.AA, stop * u.AA, n)
        except ValueError as exc:
            raise UserError(f"--grid: {exc}") from None
    if smoothing is not None:
        if normalize in ("median", "none"):
            raise UserError(f"--continuum-smoothing smooths the flux that a fitted or "
                            f"running-quantile continuum is estimated from; --normalize "
                            f"{normalize} estimates none: use running_quantile or polynomial")
        if not (np.isfinite(smoothing) and smoothing > 0):
            raise UserError(f"--continuum-smoothing must be a positive width in km/s, "
                            f"got {smoothing}")
        smoothing = smoothing * u.km / u.s
    steps = [CosmicRayMasker(interpolate=True)] if mask_cosmic_rays else []
    steps.append(Resampler(grid, method=method))
    if normalize != "none":
        steps.append(ContinuumNormalizer(method=normalize, smoothing=smoothing))
    if pad_multiple_of is not None:
        if isinstance(pad_multiple_of, bool) or int(pad_multiple_of) != pad_multiple_of \
                or pad_multiple_of < 1:
            raise UserError(f"--pad-multiple-of must be a positive integer, got {pad_multiple_of}")
        if pad_multiple_of > 1:
            steps.append(Padder(multiple_of=int(pad_multiple_of)))
    return sk_make_pipeline(*steps)


def check_grid(grid):
    """``--grid START STOP N`` as ``(start, stop, n)``: finite, increasing, a whole N >= 2."""
    start, stop, n = (float(v) for v in grid)
    if not (np.isfinite(start) and np.isfinite(stop)) or not 0 < start < stop:
        raise UserError(f"--grid: START and STOP must be wavelengths in Angstrom with "
                        f"0 < START < STOP, got {start:g} {stop:g}")
    if not np.isfinite(n) or n != int(n):
        raise UserError(f"--grid: N (the number of pixels) must be an integer, got {n:g}")
    if n < 2:
        raise UserError(f"--grid: N (the number of pixels) must be at least 2, got {int(n)}")
    if n > MAX_GRID_PIXELS:
        raise UserError(f"--grid: N (the number of pixels) must be at most {MAX_GRID_PIXELS}, "
                        f"got {int(n)}")
    return start, stop, int(n)


def is_store(path):
    """Whether ``path`` is an HDF5 file (a store built by ``prepare``)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def looks_like_store(path):
    """Whether ``path`` is a file named like a store (``*.h5``) that is not HDF5."""
    path = Path(path)
    return path.suffix.lower() in STORE_SUFFIXES and path.is_file() and not is_store(path)


def open_store(path, what="DATA"):
    """Open a store named on the command line; a corrupt one is a one-line error."""
    from ..datasets import SpectralStore

    path = Path(path)
    if not is_store(path):
        raise UserError(f"{what}: {path} is not an HDF5 file, so not a store written by "
                        "'stellarlatent prepare' (corrupt, truncated or misnamed?)")
    try:
        return SpectralStore(path)
    except (ValueError, OSError, KeyError) as exc:
        reason = first_line(exc)
        if str(path) not in reason and path.name not in reason:
            reason = f"{path}: {reason}"
        raise UserError(f"{what}: {reason}") from None


LABEL_TABLE_KINDS = ("an ECSV, FITS, CSV or VOTable table, "
                     "or the MILES parameter file (paramsMILES*.txt)")


def read_label_table(path, what="--labels"):
    """Read a label table (ECSV, FITS, CSV, VOTable... anything astropy reads).

    The MILES parameter table (``paramsMILES*.txt``) is read with
    `~stellarlatent.datasets.read_miles_table` and given a ``filename`` column
    in the names of the MILES spectrum files. A table that cannot be read is a
    one-line `UserError` that names it.
    """
    from astropy.io.registry import IORegistryError
    from astropy.table import QTable

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what}: {path} is a folder; give the label table file")
    if not path.is_file():
        raise UserError(f"{what}: no table file at {path}")
    if path.name.lower().startswith("paramsmiles"):
        return _miles_table(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix.lower() == ".csv":
                table = QTable.read(path, format="ascii.csv")
            elif is_store(path):
                raise UserError(f"{what}: {path} is a store (HDF5), not a label table; a store "
                                "carries its labels: name its columns instead")
            else:
                table = QTable.read(path)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for unreadable tables
        detail = "" if isinstance(exc, IORegistryError) else \
            f" ({first_line(exc)})"
        raise UserError(f"{what}: could not read the label table {path}: expected "
                        f"{LABEL_TABLE_KINDS}{detail}") from None
    if not len(table.colnames) or not len(table):
        raise UserError(f"{what}: the label table {path} is empty")
    _say_missing_value_codes(table, what)
    return table


#: numbers that tables write for "unknown", which no stellar label takes
_MISSING_CODES = (-9999.0, -999.0, 9999.0, -99999.0, 99999.0)


def _say_missing_value_codes(table, what):
    """Warn of columns holding a missing-value code: it would be trained on as a label."""
    for name in table.colnames:
        column = table[name]
        values = np.asarray(getattr(column, "value", column))
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
            continue
        coded = np.isin(values, _MISSING_CODES)
        mask = getattr(column, "mask", None)
        if mask is not None:
            coded &= ~np.asarray(mask, dtype=bool)
        if coded.any():
            log.warning("%s: %d values of %r are %g, a code for 'unknown'? They are taken as "
                        "they are: mask them (or write NaN) in the table", what,
                        int(coded.sum()), name, values[coded][0])


def _miles_table(path, what):
    from ..datasets import read_miles_table

    try:
        table = read_miles_table(path)
        table["filename"] = [f"MILES_res2.50_star_m{int(i):04d}V.fits" for i in table["miles_id"]]
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways
        reason = first_line(exc)
        raise UserError(f"{what}: could not read {path} as the MILES parameter file "
                        f"({reason})") from None
    return table


_AMBIGUOUS = -2


def labels_for_files(table, names, what="--labels"):
    """Rows of ``table`` for each file name: by its ``filename`` column, else in order.

    Files without a row get masked labels.
    """
    from astropy.table import MaskedColumn, Table

    names = [str(n) for n in names]
    if "filename" not in table.colnames:
        if len(table) != len(names):
            raise UserError(
                f"{what}: the table has {len(table)} rows for {len(names)} spectra and no "
                "'filename' column to match them by"
            )
        return table
    # a path as written matches first; a bare file name or stem only where it names one file
    exact, short, owner = {}, {}, {}
    repeated = set()
    for i, value in enumerate(table["filename"]):
        text = str(value)
        if text in exact:
            repeated.add(text)
        exact.setdefault(text, i)
        for key in (Path(text).name, Path(text).stem):
            if owner.setdefault(key, text) != text:
                short[key] = _AMBIGUOUS
            else:
                short.setdefault(key, i)
    if repeated:
        log.warning("%s: %d file names have more than one row in the table (such as %s); the "
                    "first row of each is used", what, len(repeated), sorted(repeated)[0])
    rows, keys, reached = [], [], {}
    for n in names:
        key = None
        if n in exact:
            rows.append(exact[n])
        elif "/" in n and any(text.endswith("/" + n) for text in exact):
            # a path below the folder the files share: the table may hold a longer one
            hits = {i for text, i in exact.items() if text.endswith("/" + n)}
            rows.append(hits.pop() if len(hits) == 1 else _AMBIGUOUS)
        else:
            key = Path(n).name if Path(n).name in short else Path(n).stem
            rows.append(short.get(key, -1))
            reached.setdefault(key, set()).add(n)
        keys.append(key)
    rows = np.array(rows)
    # one row's bare name reached from files of several folders belongs to none of them
    for k, key in enumerate(keys):
        if key is not None and len(reached[key]) > 1:
            rows[k] = _AMBIGUOUS
    ambiguous = rows == _AMBIGUOUS
    if ambiguous.all():
        raise UserError(f"{what}: the table's 'filename' column does not tell apart the files "
                        f"of one name in several folders ({', '.join(names[:2])}...); give "
                        "their paths there, as predict writes them")
    if ambiguous.any():
        log.warning("%s: %d files share their name with files of other folders, and the table "
                    "does not tell them apart; their labels are masked", what,
                    int(ambiguous.sum()))
        rows[ambiguous] = -1
    if (rows < 0).all():
        raise UserError(f"{what}: no file name matches the table's 'filename' column")
    out = Table()
    for name in table.colnames:
        if name == "filename":
            continue
        column = table[name]
        unit = getattr(column, "unit", None)
        mask = np.asarray(getattr(column, "mask", np.zeros(len(table), bool)), dtype=bool)
        values = np.asarray(getattr(getattr(column, "unmasked", column), "value",
                                    getattr(column, "unmasked", column)))
        take = np.maximum(rows, 0)
        out[name] = MaskedColumn(values[take], mask=(rows < 0) | mask[take], unit=unit)
    if (rows < 0).any():
        log.warning("%s: %d of %d files have no row in the table; their labels are masked",
                    what, int((rows < 0).sum()), len(names))
    return out
