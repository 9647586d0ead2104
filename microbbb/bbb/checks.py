"""Argument checks shared by bbb's classes and functions.

Each check returns the value (as a plain int or float) or raises an error that names the
argument, says what it got and what to pass: ``TypeError`` for a value of the wrong type
(a float where a count is meant, a bool, a string), ``ValueError`` for one out of range
(NaN and infinities included). Nothing is rounded, clipped or replaced by a default.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any


def _kind(value: Any) -> str:
    return f"{value!r} (a {type(value).__name__})"


def count(value: Any, name: str, meaning: str) -> int:
    """An integer >= 1, such as a number of samples or epochs (bools are refused)."""
    if type(value) is int and value >= 1:  # the common case, without building a message
        return value
    wanted = f"{name} must be an integer >= 1 ({meaning})"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{wanted}, got {_kind(value)}")
    if value < 1:
        raise ValueError(f"{wanted}, got {value}")
    return int(value)


def number(value: Any, name: str, meaning: str, low: float = -math.inf) -> float:
    """A finite real number >= ``low`` (bools are refused)."""
    if (type(value) is int or isinstance(value, float)) and math.isfinite(value) and value >= low:
        return float(value)  # the common case, without building a message
    bound = "" if low == -math.inf else f" >= {low:g}"
    wanted = f"{name} must be a finite number{bound} ({meaning})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{wanted}, got {_kind(value)}")
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{wanted}, got {value}")
    return float(value)


def positive(value: Any, name: str, meaning: str) -> float:
    """A finite real number > 0, such as a standard deviation (bools are refused)."""
    wanted = f"{name} must be a positive finite number ({meaning})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{wanted}, got {_kind(value)}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{wanted}, got {value}")
    return float(value)


def between(value: Any, name: str, meaning: str, low: float, high: float) -> float:
    """A real number strictly between ``low`` and ``high`` (bools are refused)."""
    wanted = f"{name} must be in ({low:g}, {high:g}) ({meaning})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{wanted}, got {_kind(value)}")
    if not low < value < high:
        raise ValueError(f"{wanted}, got {value}")
    return float(value)


def choice(value: Any, name: str, options: Sequence[str]) -> str:
    """One of the strings ``options``."""
    if not isinstance(value, str) or value not in options:
        listed = " or ".join(repr(option) for option in options)
        raise ValueError(f"{name} must be {listed}, got {value!r}")
    return value


# --- the arguments that several functions take ------------------------------------------------


def n_samples(value: Any) -> int:
    """The number of Monte-Carlo weight samples, an integer >= 1."""
    return count(value, "n_samples", "the number of weight samples averaged")


def complexity_weight(value: Any) -> float:
    """The weight of a minibatch's complexity cost: a finite number >= 0."""
    meaning = "the weight of the complexity cost log q - log P(w); 1 for the whole data set"
    return number(value, "complexity_weight", meaning, low=0)
