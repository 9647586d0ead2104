"""Anomaly mode: stop at the first op that produces NaN or inf, and say which one.

Inside ``with detect_anomaly():`` every op's output is checked in the forward pass and every
VJP result in the backward pass. The first non-finite value raises ``AnomalyError`` naming
the op, its position on the tape (counted from the start of the ``detect_anomaly`` block),
the shapes and value ranges of its inputs, and, for a backward failure, the forward op whose
VJP produced it. Checking costs one ``isfinite`` per op, so it is off by default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .modes import CLOCK, THREAD
from .tape import Primitive, Record
from .tensor import Tensor


class AnomalyError(FloatingPointError):
    """An op produced NaN or inf inside ``detect_anomaly()``.

    ``op`` is the op's name, ``position`` its place on the tape (None if not recorded),
    ``phase`` "forward" or "backward".
    """

    def __init__(self, message: str, op: str, position: int | None, phase: str):
        super().__init__(message)
        self.op = op
        self.position = position
        self.phase = phase


class detect_anomaly:
    """Context manager: raise ``AnomalyError`` at the first NaN or inf an op produces (in
    this thread)."""

    def __init__(self) -> None:
        self.before: list = []

    def __enter__(self) -> detect_anomaly:
        modes = THREAD.modes
        self.before.append((modes.anomaly_start, modes.on_forward))
        modes.anomaly_start, modes.on_forward = next(CLOCK), (check_forward,)
        return self

    def __exit__(self, *exc: object) -> None:
        modes = THREAD.modes
        modes.anomaly_start, modes.on_forward = self.before.pop()


def is_enabled() -> bool:
    """True inside ``detect_anomaly()`` (in this thread)."""
    return THREAD.modes.anomaly_start is not None


def describe(value: Any) -> str:
    """Shape and value range of an array, counting NaN and inf: for error messages."""
    a = np.asarray(value.data if isinstance(value, Tensor) else value)
    if a.size == 0:
        return f"shape {a.shape}, empty"
    finite = a[np.isfinite(a)]
    text = f"shape {a.shape}"
    if finite.size:
        text += f", finite values in [{finite.min():.4g}, {finite.max():.4g}]"
    n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if n_nan:
        text += f", {n_nan} NaN"
    if n_inf:
        text += f", {n_inf} inf"
    return text


def _position(record: Record | None) -> int | None:
    start = THREAD.modes.anomaly_start
    return None if record is None or start is None else record.index - start


def _where(record: Record | None) -> str:
    pos = _position(record)
    return "not recorded (no input requires grad)" if pos is None else f"tape position {pos}"


def check_forward(op: Primitive, inputs: tuple, out: np.ndarray, record: Record | None) -> None:
    """Raise if ``out`` holds NaN or inf."""
    if np.isfinite(out).all():
        return
    lines = [
        f"forward of op '{op.name}' ({_where(record)}) produced non-finite values:"
        f" output {describe(out)}."
    ]
    for i, t in enumerate(inputs):
        label = f" '{t.name}'" if t.name else ""
        lines.append(f"  input {i}{label}: {describe(t)}")
    if record is not None and record.params:
        lines.append(f"  params: {record.params}")
    lines.append(_hint(op.name))
    raise AnomalyError("\n".join(lines), op.name, _position(record), "forward")


def check_backward(record: Record, i: int, g: Any, share: Any, summed: bool = False) -> None:
    """Raise if the VJP of ``record``'s op for input ``i`` gave NaN or inf (a hook of the
    reverse sweep: ``share`` is what it pulled back to the input)."""
    value = share.data if isinstance(share, Tensor) else share
    if np.isfinite(value).all():
        return
    op = record.op.name
    lines = [
        f"backward of op '{op}' (the forward op at {_where(record)}) produced non-finite"
        f" values in the gradient of its input {i}: {describe(value)}.",
        f"  VJP for input {i}: {record.op.rules[min(i, len(record.op.rules) - 1)]}",
        f"  incoming adjoint g: {describe(g)}",
    ]
    for j, t in enumerate(record.inputs):
        label = f" '{t.name}'" if t.name else ""
        lines.append(f"  input {j}{label}: {describe(t)}")
    lines.append(_hint(op))
    raise AnomalyError("\n".join(lines), op, _position(record), "backward")


_HINTS = {
    "log": "log of 0 or a negative number: if it is log(softmax(...)) or log(sigmoid(...)),"
    " use log_softmax / log_sigmoid; if it is log(1 + exp(x)), use softplus.",
    "exp": "exp overflows above about 709 (float64) or 88 (float32): work in log space"
    " (logsumexp, logaddexp, softplus).",
    "div": "division by zero or by an underflowed value: check scales such as sigma.",
    "normal_log_prob": "a sigma of 0 or inf: sigma = softplus(rho) underflows to 0 when rho"
    " drops below about -745 (a step size that is too large), and any other"
    " parametrisation of sigma should be softplus(rho).",
    "sqrt": "the derivative of sqrt is infinite at 0.",
    "pow": "a power of 0 or of a negative number.",
}


def _hint(op: str) -> str:
    return "  hint: " + _HINTS.get(op, "check the inputs listed above for huge or NaN values.")
