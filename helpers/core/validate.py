"""Checks of parameter values where they enter: whole numbers, finite numbers, choices; ValueError names the parameter."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any


def check_int(name: str, value: Any, minimum: int = 1, optional: bool = False) -> int | None:
    """value as an int when it is a whole number >= minimum (None too when optional); else ValueError naming `name`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}{' or None' if optional else ''}; got {value!r}")
    return int(value)


def check_number(name: str, value: Any, minimum: float = 0.0, maximum: float | None = None,
                 above_minimum: bool = False, optional: bool = False) -> float | None:
    """value as a float when it is a finite number in range (None too when optional); else ValueError naming `name`."""
    if value is None and optional:
        return None
    low = f"> {minimum:g}" if above_minimum else f">= {minimum:g}"
    wanted = f"a number {low}" + (f" and <= {maximum:g}" if maximum is not None else "")
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be {wanted}; got {value!r}")
    if value < minimum or (above_minimum and value == minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {wanted}; got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """value when it is True or False; else ValueError naming `name`."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """value when it is one of allowed; else ValueError naming `name` and the choices."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value
