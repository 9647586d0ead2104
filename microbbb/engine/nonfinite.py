"""numpy's floating-point warnings, owned by the engine: one microbbb warning per op and line.

An op whose forward or VJP overflows or divides by zero makes numpy print a RuntimeWarning
("overflow encountered in exp") from inside microbbb's files, step after step, before the
engine can say anything useful. Instead, microbbb turns numpy's RuntimeWarnings raised in
its engine modules into exceptions (a ``warnings`` filter: it costs nothing while no warning
happens; ``ensure_filter``, called where tensors are made and where backward and programs
run, puts it back in a ``warnings.catch_warnings`` block that started without it, as
pytest's do; it goes last, so your own filters still decide first),
catches them where an op runs, computes the op again
under ``np.errstate(all="ignore")`` (same values: NaN or inf where numpy would give them),
and warns once, with a ``NonFiniteWarning`` that names the op and points to
``detect_anomaly()``. Once per op, phase and call site (the first line outside microbbb),
not once per training step. Inside ``detect_anomaly()`` there is no warning: anomaly mode
raises ``AnomalyError`` at that op instead.

Why a filter, not ``np.errstate`` around every op: entering ``np.errstate`` costs about a
microsecond, more than many small ops themselves.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .modes import THREAD

FILTER = ("error", None, RuntimeWarning, r"microbbb\.engine\.")  # action, text, category, module
_WARNED: set[tuple] = set()
_FILTERS: list = []  # the list of filters the engine's filter was last put into


def ensure_filter() -> None:
    """Put the engine's filter in the current list of warning filters, if it is not there.
    (Cheap: the list is only searched when it is another list than last time.)"""
    global _FILTERS
    if warnings.filters is not _FILTERS:
        _FILTERS = warnings.filters
        if not any(_is_ours(f) for f in _FILTERS):
            warnings.filterwarnings(FILTER[0], category=FILTER[2], module=FILTER[3], append=True)


def _is_ours(f: tuple) -> bool:
    return f[0] == FILTER[0] and f[2] is FILTER[2] and getattr(f[3], "pattern", "") == FILTER[3]


ensure_filter()


class NonFiniteWarning(UserWarning):
    """An op made NaN or inf outside anomaly mode; ``detect_anomaly()`` says where and why."""


def quietly(function: Callable, *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` with numpy's floating-point warnings off."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(*args, **kwargs)


def warn(op: str, phase: str) -> None:
    """Warn once per op, phase ("forward", "backward") and call site; not in anomaly mode."""
    if THREAD.modes.anomaly_start is not None:
        return  # anomaly mode raises AnomalyError at this op instead
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("microbbb."):
        frame = frame.f_back
    filename, line = (frame.f_code.co_filename, frame.f_lineno) if frame else ("?", 0)
    if (op, phase, filename, line) in _WARNED:
        return
    _WARNED.add((op, phase, filename, line))
    what = "its VJP" if phase == "backward" else "it"
    warnings.warn_explicit(
        f"the {phase} of op '{op}' made NaN or inf (numpy: overflow, division by zero or an"
        f" invalid value); the numbers go on as numpy gives them. To see which input made"
        f" {what} fail, run this under microbbb.detect_anomaly(). (Said once per op and line.)",
        NonFiniteWarning,
        filename,
        line,
        module=frame.f_globals.get("__name__", "") if frame else "",
    )
