"""Declared parameter constraints, checked in one place.

Each estimator or transformer class states what its constructor parameters may
be in a class attribute ``_parameter_constraints``, a dict from parameter name
to a list of constraints (a value is valid when it satisfies any of them).
The dicts of the base classes are merged in, a subclass overriding an entry of
its bases. `validate_params` checks every parameter at the start of ``fit``.

This follows scikit-learn's ``_parameter_constraints``, whose machinery is
private API; the constraints here are the few this package needs, and numbers
never accept bools (``True`` is an ``int`` to Python, not a learning rate).

Constraints are:

* an `Interval` of integers or real numbers;
* an `Options` set of allowed values (strings, mostly);
* ``"boolean"`` (``True``/``False``, numpy bools included);
* ``None`` (the value None);
* a `Predicate`: a function with a description, for structured values;
* a `Converted` value: a function that converts or checks the value and
  raises its own, specific error (a TypeError for a plain number where a
  Quantity is needed, a UnitsError for the wrong units);
* a type, for ``isinstance``.

A value that satisfies none of its constraints raises `InvalidParameterError`,
which is both a ValueError and a TypeError (as scikit-learn's), so callers may
catch either.

Examples
--------
>>> from numbers import Integral, Real
>>> class Model:
...     _parameter_constraints = {"n": [Interval(Integral, 1, None, closed="left")],
...                               "lr": [Interval(Real, 0, None, closed="neither")]}
...     def __init__(self, n=3, lr=0.1):
...         self.n, self.lr = n, lr
...     def get_params(self):
...         return {"n": self.n, "lr": self.lr}
>>> validate_params(Model(n=True))
Traceback (most recent call last):
...
stellarlatent._params.InvalidParameterError: n must be a positive integer, got True
>>> validate_params(Model(lr=0))
Traceback (most recent call last):
...
stellarlatent._params.InvalidParameterError: lr must be a number in (0, inf), got 0
"""

import math
import numbers

import numpy as np

__all__ = [
    "Converted",
    "Interval",
    "InvalidParameterError",
    "Options",
    "Predicate",
    "all_constraints",
    "validate_params",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter satisfies none of its declared constraints.

    Both a ValueError and a TypeError: a value of the wrong kind (a bool for
    a learning rate) and one out of range are caught alike.
    """


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def is_number(value):
    """A real number that is not a bool (NaN and infinity included)."""
    return isinstance(value, numbers.Real) and not _is_bool(value)


class Interval:
    """Integers or real numbers between two bounds.

    Parameters
    ----------
    kind : `numbers.Integral` or `numbers.Real`
    left, right : number or None
        The bounds; None is unbounded.
    closed : {"both", "left", "right", "neither"}
        Which bounds belong to the interval.
    description : str, default=None
        What the interval is in words, for the error message; None states
        the bounds (``"a number in (0, inf)"``), or says ``"a positive
        integer"`` and ``"a non-negative integer"`` for those half-lines.

    Real intervals refuse NaN, and infinity unless an unbounded side allows
    it (never: an infinite learning rate or weight is always a mistake).
    """

    def __init__(self, kind, left, right, *, closed, description=None):
        if kind not in (numbers.Integral, numbers.Real):
            raise TypeError("kind must be numbers.Integral or numbers.Real")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        self.description = description

    def is_satisfied_by(self, value):
        if _is_bool(value) or not isinstance(value, self.kind):
            return False
        if self.kind is numbers.Real and not math.isfinite(value):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self):
        if self.description is not None:
            return self.description
        noun = "integer" if self.kind is numbers.Integral else "number"
        if self.kind is numbers.Integral and self.right is None and self.left is not None:
            # the usual half-lines in words, as the hand-written checks said them
            closed_left = self.closed in ("both", "left")
            if self.left == 0 and closed_left:
                return f"a non-negative {noun}"
            if (self.left == 0 and not closed_left) or (self.left == 1 and closed_left):
                return f"a positive {noun}"
        low = "[" if self.closed in ("both", "left") and self.left is not None else "("
        high = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        left = "-inf" if self.left is None else f"{self.left:g}"
        right = "inf" if self.right is None else f"{self.right:g}"
        return f"{'an' if noun == 'integer' else 'a'} {noun} in {low}{left}, {right}{high}"


class Options:
    """One of a fixed set of values."""

    def __init__(self, *values):
        self.values = values

    def is_satisfied_by(self, value):
        return any(value == option and type(value) is type(option) for option in self.values)

    def __str__(self):
        return "one of " + ", ".join(repr(v) for v in self.values)


class Predicate:
    """A value for which ``function(value)`` is true, described in words."""

    def __init__(self, function, description):
        self.function, self.description = function, description

    def is_satisfied_by(self, value):
        try:
            return bool(self.function(value))
        except (TypeError, ValueError, AttributeError):
            return False

    def __str__(self):
        return self.description


class Converted(Predicate):
    """A value that the function converting it accepts.

    ``function(value)`` checks the value and raises its own, specific error
    (a TypeError, a `~astropy.units.UnitsError` or a ValueError naming the
    parameter) when it is not acceptable; what it returns is ignored.
    `validate_params` calls it when no other constraint of the parameter is
    satisfied, so that error reaches the user unchanged. Use it for
    structured values (Quantities, region lists, ranges) whose checks already
    say precisely what is wrong; checks that need the data (one value per
    spectrum) stay where the data is.

    Parameters
    ----------
    function : callable
        ``function(value, name)``: raises if ``value`` is not acceptable for
        the parameter ``name``.
    description : str
        What is accepted, in words.
    """

    def check(self, value, name):
        """Raise the converter's error if ``value`` is not acceptable for ``name``."""
        self.function(value, name)

    def is_satisfied_by(self, value):
        try:
            self.function(value, "value")
        except Exception:  # noqa: BLE001 - converters raise UnitsError, TypeError...
            return False
        return True


def _satisfies(constraint, value):
    if constraint is None:
        return value is None
    if constraint == "boolean":
        return _is_bool(value)
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.is_satisfied_by(value)


def _describe(constraint):
    if constraint is None:
        return "None"
    if constraint == "boolean":
        return "True or False"
    if isinstance(constraint, type):
        return f"an instance of {constraint.__name__}"
    return str(constraint)


def all_constraints(cls):
    """The ``_parameter_constraints`` of ``cls`` merged with those of its bases."""
    merged = {}
    for klass in reversed(cls.__mro__):
        merged.update(getattr(klass, "__dict__", {}).get("_parameter_constraints", {}))
    return merged


def validate_params(estimator, skip=()):
    """Check every parameter of ``estimator`` against its declared constraints.

    Parameters
    ----------
    estimator : object with ``get_params``
    skip : iterable of str
        Parameters checked elsewhere.

    Raises
    ------
    InvalidParameterError
        A ValueError and TypeError naming the first parameter that satisfies
        none of its constraints, what it must be and the value given; or the
        error of a `Converted` constraint's function.
    KeyError
        If a parameter has no declared constraint (a programming error).
    """
    constraints = all_constraints(type(estimator))
    for name, value in estimator.get_params(deep=False).items() if _takes_deep(estimator) \
            else estimator.get_params().items():
        if name in skip:
            continue
        if name not in constraints:
            raise KeyError(f"{type(estimator).__name__}.{name} has no declared constraint")
        allowed = constraints[name]
        plain = [c for c in allowed if not isinstance(c, Converted)]
        if any(_satisfies(c, value) for c in plain):
            continue
        converted = [c for c in allowed if isinstance(c, Converted)]
        if converted:
            # the converter raises its specific error; it accepts the value otherwise
            converted[0].check(value, name)
            continue
        described = [_describe(c) for c in allowed]
        expected = described[0] if len(described) == 1 else (
            ", ".join(described[:-1]) + " or " + described[-1])
        raise InvalidParameterError(f"{name} must be {expected}, got {value!r}")


def _takes_deep(estimator):
    import inspect

    try:
        return "deep" in inspect.signature(estimator.get_params).parameters
    except (TypeError, ValueError):
        return False
