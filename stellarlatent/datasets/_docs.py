"""Docstring text that several readers share, filled in where it stands (see
`stellarlatent._docfill`)."""

from .._docfill import doc_filler

__all__ = ["fill_doc"]

_FITS_KWARGS = """\
**kwargs
    Passed to `astropy.io.fits.open`.
"""
_FITS_OSERROR = """\
OSError
    If the file is not a readable FITS file; the message names it.
"""

fill_doc = doc_filler({
    # the readers of FITS files: their last parameter, and the first error
    # they raise (the readers whose Raises section follows the parameters use
    # the two at once)
    "fits_kwargs": _FITS_KWARGS,
    "fits_oserror": _FITS_OSERROR,
    "fits_kwargs_raises": _FITS_KWARGS + "\nRaises\n------\n" + _FITS_OSERROR,
    # both LAMOST readers
    "lamost_use_ormask": """\
use_ormask : bool, default=False
    Also mask the pixels flagged in any single exposure (the ``ormask`` row
    of a low-resolution file, the ``ORMASK`` column of a medium-resolution
    one); by default only those flagged in all of them (``andmask``,
    ``ANDMASK``) are masked.
""",
    # the first lines of their examples, which write a small file to read
    "fits_example_imports": """\
>>> import os, tempfile
>>> import numpy as np
>>> from astropy.io import fits
""",
})
