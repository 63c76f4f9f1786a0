"""Small helpers shared by the readers and the store."""

import os
import warnings
from collections import Counter
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.utils.exceptions import AstropyUserWarning

from .._batch import to_batch

__all__ = ["files_from", "stack_spectra", "same_grid", "read_rows", "UnknownUnitWarning",
           "parse_unit", "describe_file", "fits_identifier"]

_IDENTIFIER_DOC = """

    Parameters
    ----------
    origin : str
        ``"read"`` or ``"write"`` (the astropy I/O registry calls it so).
    *args
        The file name, file object or `~astropy.io.fits.HDUList`.

    Returns
    -------
    bool
"""


def fits_identifier(check):
    """A specutils identifier from ``check(hdulist, args)``: for reading only, never raises.

    The identifier opens the file (or takes the HDUList) it is given and
    returns ``bool(check(hdulist, args))``; any error (a file that is not
    FITS, a missing keyword) means "not this format", as specutils expects of
    an identifier. The docstring of ``check`` becomes the identifier's, with
    its parameters appended.

    Examples
    --------
    >>> from astropy.io import fits
    >>> @fits_identifier
    ... def identify_two_hdus(hdulist, args):
    ...     "Tell whether a file has two HDUs."
    ...     return len(hdulist) == 2
    >>> identify_two_hdus("read", fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU()]))
    True
    >>> identify_two_hdus("read", "no-such-file.fits"), identify_two_hdus("write", None)
    (False, False)
    """
    import functools

    from specutils.io.parsing_utils import read_fileobj_or_hdulist

    @functools.wraps(check)
    def identify(origin, *args, **kwargs):
        if origin != "read":
            return False
        try:
            with read_fileobj_or_hdulist(*args, **kwargs) as hdulist:
                return bool(check(hdulist, args))
        except Exception:  # noqa: BLE001 - an identifier must never raise
            return False

    identify.__doc__ = (check.__doc__ or "").rstrip() + _IDENTIFIER_DOC
    del identify.__wrapped__  # the registry's signature, not the check's
    return identify


class UnknownUnitWarning(AstropyUserWarning):
    """A file states a unit that astropy cannot parse; the values are read without a unit.

    The message names the file, the text of the unit and what was used instead
    (`astropy.units.dimensionless_unscaled` for a flux).
    """


def parse_unit(text, default, name, what="flux"):
    """The unit a file states, or ``default`` (with an `UnknownUnitWarning`) when unparseable.

    Parameters
    ----------
    text : str or None
        The unit as the file writes it (``BUNIT``, ``TUNITn``); empty or None
        gives ``default`` without a warning.
    default : `~astropy.units.UnitBase`
        The unit to use when ``text`` is missing or cannot be parsed.
    name : str
        The file, for the warning.
    what : str, default="flux"
        What the unit is of, for the warning.

    Returns
    -------
    `~astropy.units.UnitBase`
    """
    text = "" if text is None else str(text).strip()
    if not text:
        return default
    try:
        unit = u.Unit(text, format="fits", parse_strict="silent")
        if isinstance(unit, u.UnrecognizedUnit):
            unit = u.Unit(text, parse_strict="silent")
    except (ValueError, TypeError):
        unit = None
    if unit is None or isinstance(unit, u.UnrecognizedUnit):
        warnings.warn(
            f"{name}: the {what} unit {text!r} is not a unit astropy can parse; the {what} "
            f"is read as {default.to_string() or 'dimensionless'}",
            UnknownUnitWarning,
            stacklevel=3,
        )
        return default
    return unit


def describe_file(file_obj):
    """How to name ``file_obj`` in messages: its path, or what it is."""
    from astropy.io import fits

    if isinstance(file_obj, (str, Path)):
        return str(file_obj)
    if isinstance(file_obj, fits.HDUList):
        return str(file_obj.filename() or "the HDUList")
    return str(getattr(file_obj, "name", None) or f"the {type(file_obj).__name__}")


def files_from(source, pattern, name="source"):
    """Return the files of a folder (matching ``pattern``), one file, or a list of files."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.glob(pattern) if p.is_file())
            if not files:
                raise FileNotFoundError(f"{name}: no files matching '{pattern}' in {path}")
            return files
        if path.is_file():
            return [path]
        raise FileNotFoundError(f"{name}: {path} is neither a file nor a folder")
    try:
        files = [Path(f) for f in source]
    except TypeError:
        raise TypeError(
            f"{name} must be a folder, a file or a list of files, got {type(source).__name__}"
        ) from None
    if not files:
        raise ValueError(f"{name}: empty list of files")
    return files


def spectrum_names(files):
    """The name each file's spectra go by: its file name, or where two files share one,
    its path below the folder that holds them all (``starA/spectrum.fits``).

    Examples
    --------
    >>> [str(n) for n in spectrum_names([Path("a/x.fits"), Path("a/b/y.fits")])]
    ['x.fits', 'y.fits']
    >>> spectrum_names([Path("obs/starA/s.fits"), Path("obs/starB/s.fits"), Path("obs/t.fits")])
    ['starA/s.fits', 'starB/s.fits', 't.fits']
    """
    files = [Path(f) for f in files]
    counts = Counter(f.name for f in files)
    if all(n == 1 for n in counts.values()):
        return [f.name for f in files]
    # absolute, not resolved: a link is named by where it is, not by what it points at
    resolved = [Path(os.path.abspath(f)) for f in files]
    common = Path(os.path.commonpath([str(f.parent) for f in resolved]))
    return [f.name if counts[f.name] == 1 else r.relative_to(common).as_posix()
            for f, r in zip(files, resolved)]


def stack_spectra(spectra, name="spectra"):
    """`~stellarlatent._batch.to_batch`, quiet about zero inverse variances of masked pixels."""
    with np.errstate(divide="ignore"):
        return to_batch(spectra, name)


def same_grid(a, b, rtol=1e-10):
    """Whether two spectral axes are equal to ``rtol`` (in any spectral units)."""
    if a.shape != b.shape:
        return False
    try:
        other = b.to_value(a.unit, equivalencies=u.spectral())
    except u.UnitsError:
        return False
    return bool(np.allclose(other, a.value, rtol=rtol, atol=0))


def read_rows(dataset, rows):
    """Rows of an HDF5 dataset in the given order, read run by run of consecutive rows.

    One slice per run of consecutive indices is much faster than h5py's fancy
    indexing for the scattered rows of a shuffled training batch.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return dataset[:0]
    unique, inverse = np.unique(rows, return_inverse=True)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [unique.size]])
    parts = [dataset[int(unique[a]) : int(unique[b - 1]) + 1] for a, b in zip(starts, stops)]
    data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return data if np.array_equal(unique, rows) else data[inverse]
