"""Every public estimator and transformer declares every parameter, and refuses bools for numbers.

The declared tables (``_parameter_constraints``, see `stellarlatent._params`)
are read at collection time: each parameter whose constraints accept a number
but not a boolean is tried with ``True`` through the public ``fit``, which
must refuse it before any data is touched, naming the parameter.
"""

import re

import astropy.units as u
import numpy as np
import pytest
from specutils import Spectrum

from stellarlatent import estimators, preprocessing
from stellarlatent._params import _satisfies, all_constraints, validate_params

#: Numbers that some valid value of any numeric parameter equals.
_PROBES = (0, 1, 2, 3, 8, 100, 5000, 0.1, 0.5, 1.0, 100.0)


def _public_classes(module):
    classes = []
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, type) and hasattr(obj, "get_params"):
            classes.append(obj)
    return classes


CLASSES = _public_classes(preprocessing) + _public_classes(estimators)


def _numeric_params(cls):
    """Parameters declared to accept some number but not True."""
    names = []
    for name, allowed in sorted(all_constraints(cls).items()):
        if name not in cls().get_params(deep=False):
            continue
        takes_numbers = any(_satisfies(c, p) for c in allowed for p in _PROBES)
        if takes_numbers and not any(_satisfies(c, True) for c in allowed):
            names.append(name)
    return names


def _undeclared(cls):
    return sorted(set(cls().get_params(deep=False)) - set(all_constraints(cls)))


def test_the_public_classes_are_found():
    names = {cls.__name__ for cls in CLASSES}
    assert {"Resampler", "ContinuumNormalizer", "NoiseAugmenter", "Padder", "DopplerShift",
            "Broadener", "Masker", "SpectralVAE", "DeepREMAP", "DeepREMAPEnsemble"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_parameter_has_a_declared_constraint(cls):
    missing = _undeclared(cls)
    assert missing == [], f"{cls.__name__} declares no constraint for {missing}"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_the_defaults_satisfy_the_declared_constraints(cls):
    validate_params(cls())


def _spectrum():
    return Spectrum(flux=np.ones((2, 64)) * u.one,
                    spectral_axis=np.linspace(5000.0, 5010.0, 64) * u.AA,
                    spectral_axis_index=1)


def _fit(estimator):
    """Call the public ``fit`` with a tiny input that is refused after the parameters."""
    flux = np.ones((4, 64))
    if isinstance(estimator, preprocessing._base.SpectrumTransformer):
        return estimator.fit(_spectrum())
    if isinstance(estimator, estimators.SpectralVAE):
        return estimator.fit(flux)
    return estimator.fit(flux, {"teff": np.full(4, 5000.0), "logg": np.full(4, 4.0),
                                "feh": np.zeros(4)})


NUMERIC = [(cls, name) for cls in CLASSES for name in _numeric_params(cls)]


def _numeric_cases():
    for cls, name in NUMERIC:
        yield pytest.param(cls, name, id=f"{cls.__name__}-{name}")


def test_there_are_numeric_parameters_to_try():
    tried = {cls.__name__ for cls, _ in NUMERIC}
    assert {"SpectralVAE", "Padder", "ContinuumNormalizer", "Broadener",
            "DeepREMAPEnsemble"} <= tried
    assert ("SpectralVAE", "lr") in {(cls.__name__, name) for cls, name in NUMERIC}


@pytest.mark.parametrize("cls, name", list(_numeric_cases()))
def test_a_bool_for_a_number_is_refused_naming_the_parameter(cls, name):
    allowed = all_constraints(cls)[name]
    assert not any(_satisfies(c, True) for c in allowed)
    estimator = cls(**{name: True})
    with pytest.raises((ValueError, TypeError), match=rf"\b{re.escape(name)}\b"):
        _fit(estimator)
