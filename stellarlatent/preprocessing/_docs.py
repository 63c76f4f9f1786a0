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
        return "".join(indent + line + "\n" for line in snippets[match.group(2)].splitlines())

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


fill_doc = doc_filler({
    # the input of fit, transform and estimate
    "spectra": """\
spectra : `~specutils.Spectrum` or list of `~specutils.Spectrum`
    Spectra on any grids.
""",
    "y": """\
y : None
    Ignored; present for scikit-learn compatibility.
""",
    # the first lines of the transformers' examples
    "example_imports": """\
>>> import numpy as np
>>> import astropy.units as u
>>> from specutils import Spectrum
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
