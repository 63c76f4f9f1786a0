"""Reading the spectra the subcommands are given: files, folders or a store.

Bad files are never fatal: each one is skipped with its reason, and the
command reports how many were skipped and why.
"""

import logging
import re
import threading
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

from .._logging import log
from . import UserError

__all__ = ["UserError", "Skips", "expand_paths", "make_reader", "make_pipeline",
           "read_spectra", "subset", "is_store", "open_store", "read_label_table", "labels_for_files"]

FITS_PATTERNS = ("*.fits", "*.fit", "*.fts", "*.fits.gz", "*.fit.gz")
FORMAT_ALIASES = {"miles": "wcs1d-fits", "harps": "HARPS-ADP", "harps-adp": "HARPS-ADP"}
_PHOENIX_NAME = re.compile(r"^lte.*PHOENIX.*\.fits$", re.IGNORECASE)


class Skips:
    """Files skipped with their reasons; also collects the library's skip warnings."""

    def __init__(self):
        self.items = []

    def add(self, name, reason):
        reason = str(reason).strip().splitlines()[0] if str(reason).strip() else "unknown error"
        self.items.append((str(name), reason))
        log.warning("%s skipped: %s", name, reason)

    def __len__(self):
        return len(self.items)

    def capture(self):
        """Context manager collecting "X skipped: reason" warnings of the package logger."""
        return _Capture(self)

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


class _Capture(logging.Handler):
    def __init__(self, skips):
        super().__init__(logging.WARNING)
        self.skips = skips

    def emit(self, record):
        message = record.getMessage()
        if " skipped: " in message and not message.startswith(("%", " ")):
            name, reason = message.split(" skipped: ", 1)
            self.skips.items.append((name, (reason.strip().splitlines() or [""])[0]))

    def __enter__(self):
        logging.getLogger("stellarlatent").addHandler(self)
        return self.skips

    def __exit__(self, *exc):
        logging.getLogger("stellarlatent").removeHandler(self)
        return False


def expand_paths(paths, skips):
    """Files named on the command line, folders expanded to their FITS files."""
    files = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted({p for pattern in FITS_PATTERNS for p in path.glob(pattern) if p.is_file()})
            if not found:
                skips.add(path, "folder holds no FITS files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            skips.add(path, "FileNotFoundError: no such file or folder")
    return files


def make_reader(fmt="auto", phoenix_wave=None):
    """``reader(path) -> Spectrum`` for a ``--format`` and ``--phoenix-wave``."""
    from specutils import Spectrum

    from .. import datasets  # registers the HARPS-ADP loader

    key = (fmt or "auto").lower()
    wave = None
    if phoenix_wave is not None:
        wave_path = Path(phoenix_wave)
        if not wave_path.is_file():
            raise UserError(f"--phoenix-wave: no file at {wave_path}")
        wave = datasets.phoenix._read_wave(wave_path)
    if key == "phoenix" and wave is None:
        raise UserError("--format PHOENIX needs --phoenix-wave WAVE_PHOENIX-ACES-AGSS-COND-2011.fits")
    fmt = None if key == "auto" else FORMAT_ALIASES.get(key, fmt)

    from astropy.io.registry import IORegistryError

    def read_file(path):
        try:
            if key == "phoenix" or (key == "auto" and wave is not None
                                    and _PHOENIX_NAME.match(path.name)):
                return datasets.read_phoenix(path, wave)
            if fmt is None:
                return Spectrum.read(path)
            return Spectrum.read(path, format=fmt)
        except IORegistryError as exc:
            raise ValueError(
                f"{str(exc).splitlines()[0].rstrip('.')} (give --format, e.g. HARPS-ADP, MILES)"
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
            log.debug("%s: %s", path.name, warning.message)
        return spectrum

    return read


def make_pipeline(grid=None, grid_kind="log", normalize="median", method="flux_conserving",
                  pad_multiple_of=None):
    """The preprocessing of ``prepare``: Resampler, then a normaliser and a Padder."""
    from sklearn.pipeline import make_pipeline as sk_make_pipeline

    from ..preprocessing import ContinuumNormalizer, Padder, Resampler, SpectralGrid

    if grid is not None:
        start, stop, n = grid
        maker = SpectralGrid.log_uniform if grid_kind == "log" else SpectralGrid.linear
        try:
            grid = maker(float(start) * u.AA, float(stop) * u.AA, int(n))
        except ValueError as exc:
            raise UserError(f"--grid: {exc}") from None
    steps = [Resampler(grid, method=method)]
    if normalize != "none":
        steps.append(ContinuumNormalizer(method=normalize))
    if pad_multiple_of:
        steps.append(Padder(multiple_of=int(pad_multiple_of)))
    return sk_make_pipeline(*steps)


def _is_fitted(pipeline):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        for _, step in pipeline.steps:
            check_is_fitted(step)
    except NotFittedError:
        return False
    return True


def _transform(pipeline, spectra, names, skips):
    if pipeline is None:
        return spectra, list(range(len(spectra)))
    with np.errstate(divide="ignore", invalid="ignore"):
        if not _is_fitted(pipeline):
            pipeline.fit(spectra)
        try:
            return [pipeline.transform(spectra)], list(range(len(spectra)))
        except Exception as exc:  # noqa: BLE001 - retried file by file below
            log.debug("batch preprocessing failed (%s); retrying file by file", exc)
        out, kept = [], []
        for k, spectrum in enumerate(spectra):
            try:
                out.append(pipeline.transform(spectrum))
            except Exception as exc:  # noqa: BLE001 - a bad file is skipped
                skips.add(names[k], f"preprocessing failed: {type(exc).__name__}: {exc}")
                continue
            kept.append(k)
    return out, kept


def read_spectra(files, reader, pipeline, skips, *, batch_size=64, progress=False):
    """Read and preprocess files into one batch Spectrum.

    Returns
    -------
    batch : `~specutils.Spectrum` or None
        None when no file could be read.
    names : list of str
        The file name of each row of ``batch``.
    """
    from tqdm.auto import tqdm

    from .._batch import from_batch
    from ..datasets._io import stack_spectra

    parts, names = [], []
    with tqdm(total=len(files), disable=not progress, unit="file", desc="spectra") as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            spectra, chunk_names = [], []
            for path in chunk:
                try:
                    spectra.append(reader(path))
                except Exception as exc:  # noqa: BLE001 - a bad file is skipped, never fatal
                    skips.add(path.name, f"{type(exc).__name__}: {exc}")
                    continue
                chunk_names.append(path.name)
            bar.update(len(chunk))
            if not spectra:
                continue
            transformed, kept = _transform(pipeline, spectra, chunk_names, skips)
            kept_names = [chunk_names[k] for k in kept]
            if pipeline is not None and len(transformed) == 1 and len(kept) == len(spectra):
                batch = stack_spectra(transformed[0], "spectra")
                per_file = batch.n_spectra // len(kept)
                candidates = [(batch, np.repeat(kept_names, per_file).tolist())]
            else:
                candidates = []
                for name, spectrum in zip(kept_names, transformed):
                    batch = stack_spectra(spectrum, "spectra")
                    candidates.append((batch, [name] * batch.n_spectra))
            for batch, batch_names in candidates:
                if parts and not _same_grid(parts[0], batch):
                    skips.add(batch_names[0], "on another grid than the first file "
                              "(give --grid to resample every file onto one grid)")
                    continue
                parts.append(batch)
                names.extend(batch_names)
    if not parts:
        return None, []
    return from_batch(stack_spectra([from_batch(p) for p in parts], "spectra")), names


def _same_grid(a, b):
    from ..datasets._io import same_grid

    return same_grid(a.spectral_axis, b.spectral_axis)


def subset(batch, rows):
    """Some rows of a batch Spectrum."""
    from specutils import Spectrum

    uncertainty = None if batch.uncertainty is None else batch.uncertainty[rows]
    return Spectrum(flux=batch.flux[rows], spectral_axis=batch.spectral_axis,
                    mask=None if batch.mask is None else batch.mask[rows],
                    uncertainty=uncertainty, spectral_axis_index=1)


def is_store(path):
    """Whether ``path`` is an HDF5 file (a store built by ``prepare``)."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def open_store(path):
    from ..datasets import SpectralStore

    try:
        return SpectralStore(path)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None


def read_label_table(path):
    """Read a label table (ECSV, FITS, CSV, VOTable... anything astropy reads).

    The MILES parameter table (``paramsMILES*.txt``) is read with
    `~stellarlatent.datasets.read_miles_table` and given a ``filename`` column
    in the names of the MILES spectrum files.
    """
    from astropy.table import QTable

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--labels: no table file at {path}")
    if path.name.lower().startswith("paramsmiles"):
        from ..datasets import read_miles_table

        table = read_miles_table(path)
        table["filename"] = [f"MILES_res2.50_star_m{int(i):04d}V.fits" for i in table["miles_id"]]
        return table
    try:
        if path.suffix.lower() == ".csv":
            return QTable.read(path, format="ascii.csv")
        return QTable.read(path)
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for unreadable tables
        raise UserError(f"--labels: cannot read {path} as a table ({exc})") from None


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
    keys = {}
    for i, value in enumerate(table["filename"]):
        keys.setdefault(Path(str(value)).name, i)
        keys.setdefault(Path(str(value)).stem, i)
    rows = np.array([keys.get(n, keys.get(Path(n).stem, -1)) for n in names])
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
