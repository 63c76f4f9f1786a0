"""The declared-constraint checker shared by the estimators and transformers."""

from numbers import Integral, Real

import numpy as np
import pytest

from stellarlatent._params import Interval, Options, Predicate, all_constraints, validate_params


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
    ({"n": True}, r"n must be an integer in \[1, inf\), got True"),
    ({"n": 0}, "n must be an integer"),
    ({"n": 2.0}, "n must be an integer"),
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
