"""Every public docstring is filled: no ``%(name)s`` placeholder of the doc fillers is left."""

import inspect

import pytest

import stellarlatent.datasets
import stellarlatent.diagnostics
import stellarlatent.estimators
import stellarlatent.preprocessing

MODULES = (stellarlatent.datasets, stellarlatent.diagnostics, stellarlatent.estimators,
           stellarlatent.preprocessing)


def _public():
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and callable(member):
                        yield f"{module.__name__}.{name}.{attr}", member


@pytest.mark.parametrize("name,obj", list(_public()), ids=lambda v: v if isinstance(v, str) else "")
def test_no_placeholder_is_left_in_a_docstring(name, obj):
    assert "%(" not in (inspect.getdoc(obj) or ""), name
