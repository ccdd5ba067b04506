"""Checks of the arguments a user types, written once: a bad value is refused by name, with what is allowed."""
from __future__ import annotations

import math
import numbers


def integer(name: str, value, low: int = 1) -> int:
    """`value` as an int (any integral number: ``numpy.int64(16)`` too, never a bool), at least `low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")
    return int(value)


def real(name: str, value, low: float = 0.0, strict: bool = True) -> float:
    """`value` as a float (any real number: numpy's too, never a bool), finite and above `low` (at least `low`
    when not `strict`)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value < low or (strict and value == low)):
        raise ValueError(f"{name}={value!r} must be a finite number {'>' if strict else '>='} {low:g}")
    return float(value)
