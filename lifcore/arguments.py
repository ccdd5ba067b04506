"""Checks of the arguments a user types, written once: a bad value is refused by name, with what is allowed."""
from __future__ import annotations

import numbers


def integer(name: str, value, low: int = 1) -> int:
    """`value` as an int (any integral number: ``numpy.int64(16)`` too, never a bool), at least `low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)
