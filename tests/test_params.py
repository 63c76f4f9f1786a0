"""The declared-constraint checker shared by the estimators and transformers."""

from numbers import Integral, Real

import numpy as np
import pytest

import astropy.units as u

from stellarlatent._params import (
    Converted,
    Interval,
    InvalidParameterError,
    Options,
    Predicate,
    all_constraints,
    validate_params,
)


class _Base:
    _parameter_constraints = {"n": [Interval(Integral, 1, None, closed="left")],
                              "kind": [Options("a", "b")]}

    def __init__(self, **params):
        self.params = {"n": 1, "kind": "a", **params}

    def get_params(self, deep=True):
        return dict(self.params)


class _Child(_Base):
    _parameter_constraints = {"kind": [Options("a", "b", "c"), None],
                              "lr": [Interval(Real, 0, 1, closed="right")],
                              "flag": ["boolean"],
                              "pair": [Predicate(lambda v: len(v) == 2, "a pair")]}

    def __init__(self, **params):
        super().__init__(**{"lr": 0.5, "flag": False, "pair": (1, 2), **params})


def test_constraints_merge_through_inheritance_with_overrides():
    merged = all_constraints(_Child)
    assert set(merged) == {"n", "kind", "lr", "flag", "pair"}
    validate_params(_Child(kind="c"))
    validate_params(_Child(kind=None))
    with pytest.raises(ValueError, match="kind must be one of 'a', 'b'"):
        validate_params(_Base(kind="c"))


@pytest.mark.parametrize("params, message", [
    ({"n": True}, r"n must be a positive integer, got True"),
    ({"n": 0}, "n must be a positive integer"),
    ({"n": 2.0}, "n must be a positive integer"),
    ({"lr": 0}, r"lr must be a number in \(0, 1\]"),
    ({"lr": float("nan")}, "lr must be a number"),
    ({"lr": np.True_}, "lr must be a number"),
    ({"flag": 1}, "flag must be True or False"),
    ({"pair": 3}, "pair must be a pair, got 3"),
    ({"kind": 1}, "kind must be one of 'a', 'b', 'c' or None"),
])
def test_a_value_outside_every_constraint_is_named(params, message):
    with pytest.raises(ValueError, match=message):
        validate_params(_Child(**params))


def test_numpy_numbers_are_numbers():
    validate_params(_Child(n=np.int64(3), lr=np.float32(0.25), flag=np.bool_(True)))


def test_a_parameter_without_a_constraint_is_a_programming_error():
    with pytest.raises(KeyError, match="_Base.extra has no declared constraint"):
        validate_params(_Base(extra=1))


def test_the_error_is_both_a_value_error_and_a_type_error():
    with pytest.raises(TypeError, match="flag must be True or False"):
        validate_params(_Child(flag="yes"))
    assert issubclass(InvalidParameterError, ValueError)


@pytest.mark.parametrize("interval, words", [
    (Interval(Integral, 1, None, closed="left"), "a positive integer"),
    (Interval(Integral, 0, None, closed="left"), "a non-negative integer"),
    (Interval(Integral, 0, None, closed="neither"), "a positive integer"),
    (Interval(Real, 0, None, closed="neither"), "a number in (0, inf)"),
    (Interval(Real, 0, None, closed="neither", description="a positive number"),
     "a positive number"),
    (Interval(Real, 0, 1, closed="left"), "a number in [0, 1)"),
    (Interval(Integral, 3, None, closed="left"), "an integer in [3, inf)"),
    (Interval(Real, None, 2.5, closed="right"), "a number in (-inf, 2.5]"),
])
def test_intervals_are_described_in_words(interval, words):
    assert str(interval) == words


def _check_length(value, name):
    if not isinstance(value, u.Quantity):
        raise TypeError(f"{name} must be a Quantity, got {type(value).__name__}")
    value.to(u.AA)


class _Converting(_Base):
    _parameter_constraints = {"width": [None, Converted(_check_length, "a length Quantity")]}

    def __init__(self, **params):
        super().__init__(**{"width": None, **params})


def test_a_converted_parameter_raises_the_converters_own_error():
    validate_params(_Converting(width=2 * u.AA))
    with pytest.raises(TypeError, match="width must be a Quantity, got float"):
        validate_params(_Converting(width=2.0))
    with pytest.raises(u.UnitsError):
        validate_params(_Converting(width=2 * u.s))
    converted = all_constraints(_Converting)["width"][1]
    assert converted.is_satisfied_by(1 * u.nm) and not converted.is_satisfied_by(1 * u.s)
    assert str(converted) == "a length Quantity"
