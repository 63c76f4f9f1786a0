"""Docstring text written once and filled in where it stands.

A docstring line that holds only ``%(name)s`` is replaced by the shared text
``name``, indented like the line. Each subpackage makes its decorator with
`doc_filler` from its own texts (``preprocessing/_docs.py``,
``datasets/_docs.py``, ``estimators/_docs.py``).
"""

import re
import types

__all__ = ["doc_filler"]

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
