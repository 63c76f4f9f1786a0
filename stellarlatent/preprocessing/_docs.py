"""Docstring text that several transformers share, written once and filled in where it stands.

A docstring line that holds only ``%(name)s`` is replaced by the shared text
``name``, indented like the line. `doc_filler` makes such a decorator for any
set of texts (`stellarlatent.datasets` has its own); `fill_doc` is the one of
this package.
"""

import re
import types

__all__ = ["doc_filler", "fill_doc"]

_PLACEHOLDER = re.compile(r"^([ \t]*)%\((\w+)\)s\n", flags=re.MULTILINE)


def doc_filler(snippets):
    """A decorator that fills the texts ``snippets`` into docstrings.

    Decorating a class fills its own docstring and those of the functions,
    class methods and static methods it defines.

    Examples
    --------
    >>> fill = doc_filler({"y": "y : None\\n    Ignored.\\n"})
    >>> @fill
    ... def fit(spectra, y=None):
    ...     '''Fit.
    ...
    ...     Parameters
    ...     ----------
    ...     %(y)s
    ...     '''
    >>> print(fit.__doc__.splitlines()[4:6])
    ['    y : None', '        Ignored.']
    """
    def snippet(match):
        indent = match.group(1)
        lines = snippets[match.group(2)].splitlines()
        return "".join((indent + line).rstrip() + "\n" for line in lines)

    def fill(obj):
        targets = [obj]
        if isinstance(obj, type):
            targets += [getattr(v, "__func__", v) for v in vars(obj).values()]
        for target in targets:
            if (isinstance(target, (type, types.FunctionType))
                    and target.__doc__ and "%(" in target.__doc__):
                target.__doc__ = _PLACEHOLDER.sub(snippet, target.__doc__)
        return obj

    return fill


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
