"""Argument checks shared by the torch modules of `stellarlatent.nn`."""

import numbers

__all__ = []


def check_int(value, name, minimum=1):
    """Return ``value`` as an int, or raise naming ``name`` and the expectation."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_odd_int(value, name, minimum=1):
    """Return ``value`` as an odd int (a kernel or window width), checked by `check_int`."""
    value = check_int(value, name, minimum)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd, got {value}")
    return value


def check_int_sequence(values, name, minimum=1):
    """Return ``values`` as a tuple of ints, each checked by `check_int`."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers, got {values!r}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    return tuple(check_int(v, f"{name}[{i}]", minimum) for i, v in enumerate(values))


def check_float(value, name, minimum=None, maximum=None, inclusive=True):
    """Return ``value`` as a float within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if value != value:
        raise ValueError(f"{name} must not be NaN")
    if minimum is not None and (value < minimum or (not inclusive and value == minimum)):
        bound = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {bound} {minimum}, got {value!r}")
    if maximum is not None and (value > maximum or (not inclusive and value == maximum)):
        bound = "<=" if inclusive else "<"
        raise ValueError(f"{name} must be {bound} {maximum}, got {value!r}")
    return value


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {expected}, got {value!r}")
    return value
