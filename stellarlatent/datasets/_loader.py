"""Pieces shared by the package's specutils loaders (HARPS, LAMOST, MILES, PHOENIX).

`register_loader` registers a loader as the package registers all of its
formats; `load_fits` opens the file and words its errors; `header_meta`,
`spectral_axis` and `add_file_meta` build the parts of the Spectrum that the
readers have in common.
"""

from pathlib import Path

import astropy.units as u
from astropy.io import fits
from specutils import Spectrum
from specutils.io.parsing_utils import read_fileobj_or_hdulist
from specutils.io.registers import data_loader

from .._batch import check_spectral_axis
from ._io import describe_file

__all__ = ["register_loader", "load_fits", "header_meta", "spectral_axis", "add_file_meta"]

#: the errors of a loader that mean "not this kind of file" (a missing column, keyword...)
_NOT_THIS_KIND = (TypeError, KeyError, IndexError, AttributeError)


def register_loader(name, identifier, extensions=("fits",), priority=10):
    """The `~specutils.io.registers.data_loader` decorator of one of the package's formats.

    The loader reads a `~specutils.Spectrum` and replaces any loader already
    registered under ``name``.
    """
    return data_loader(name, identifier=identifier, dtype=Spectrum, extensions=list(extensions),
                       priority=priority, force=True)


def load_fits(file_obj, kwargs, build, kind, expected, wrapped=_NOT_THIS_KIND):
    """``build(hdulist, name)`` on the opened file; errors name the file and what was expected.

    A missing, unreadable or folder path raises as it is; another OSError
    becomes "not a readable FITS file"; one of ``wrapped`` becomes a
    ValueError "cannot be read as a ``kind`` spectrum".
    """
    name = describe_file(file_obj)
    try:
        with read_fileobj_or_hdulist(file_obj, **kwargs) as hdulist:
            return build(hdulist, name)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except OSError as exc:
        raise OSError(f"{name}: not a readable FITS file ({exc}); {expected}") from None
    except wrapped as exc:
        raise ValueError(f"{name}: cannot be read as a {kind} spectrum "
                         f"({type(exc).__name__}: {exc}); {expected}") from exc


def header_meta(header, keys):
    """``{key: value}`` of the header cards of ``keys`` (a card, or cards of which the first
    present wins); cards missing or without a value are left out."""
    meta = {}
    for key, cards in keys.items():
        for card in (cards,) if isinstance(cards, str) else cards:
            value = header.get(card)
            if value is not None and not isinstance(value, fits.card.Undefined):
                meta[key] = value
                break
    return meta


def spectral_axis(wave, name, kind):
    """`~stellarlatent._batch.check_spectral_axis`, its errors saying in a ``kind`` spectrum."""
    try:
        return check_spectral_axis(wave, name=name)
    except (ValueError, u.UnitsError) as exc:
        raise type(exc)(f"{exc} (in a {kind} spectrum)") from None


def add_file_meta(meta, hdulist, header):
    """Add the ``filename`` (when the HDUList has one) and the ``header`` to ``meta``."""
    filename = hdulist.filename()
    if filename:
        meta["filename"] = Path(filename).name
    meta["header"] = header
    return meta
