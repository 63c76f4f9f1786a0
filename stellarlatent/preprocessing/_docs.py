"""Docstring text that several transformers share, written once and filled in where it
stands (see `stellarlatent._docfill`); `fill_doc` is the decorator of this package."""

from .._docfill import doc_filler

__all__ = ["fill_doc"]

_SPECTRA = """\
spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
    Spectra on any grids.
"""
_Y = """\
y : None
    Ignored; present for scikit-learn compatibility.
"""

fill_doc = doc_filler({
    # the input of fit, transform and estimate
    "spectra": _SPECTRA,
    "y": _Y,
    # the whole of a fit docstring but its summary
    "fit_sections": "Parameters\n----------\n" + _SPECTRA + _Y + "\nReturns\n-------\nself\n",
    # transform of the transformers that run before the Resampler, on spectra of any grids
    "each_grid": """\
Parameters
----------
spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
    Spectra on any grids.

Returns
-------
`~specutils.Spectrum` or list of `~specutils.Spectrum`
    One batch when the spectra share a grid, else one per grid, in order
    (for the `Resampler` that follows).
""",
    # the first lines of the transformers' examples
    "example_imports": """\
>>> import numpy as np
>>> import astropy.units as u
>>> from specutils import Spectrum
""",
    # the functions gaussian_broaden and rotational_broaden
    "broaden_data": """\
wavelength : `~astropy.units.Quantity`, shape (n_pixels,)
    Strictly increasing wavelengths; any grid.
flux : array-like or `~astropy.units.Quantity`, shape (n_pixels,) or (n_spectra, n_pixels)
""",
    "broaden_mask": """\
mask : array of bool, default=None
    ``True`` marks pixels to ignore; non-finite flux is always ignored.
""",
    # SpectralGrid's regularly spaced constructors
    "spaced_parameters": """\
start, stop : `~astropy.units.Quantity`
    First and last pixel centres (inclusive).
n : int
    Number of pixels.
unit : `~astropy.units.UnitBase`, default=None
    Unit of ``start`` and ``stop`` when they are plain numbers.
""",
})
