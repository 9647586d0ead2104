"""The tape: what calling an op records, and when.

A ``Primitive`` is an op: a numpy forward plus one vector-Jacobian product (VJP) per input
(the table of them is ``primitives.py``). Calling it on tensors runs the forward and, if
grad mode is on and an input requires grad, makes a ``Record``: the op, its input tensors,
its parameters, its output value and its position in recording order.

There is no global list of records: each output tensor holds its record and each record
holds its input tensors, so a graph is freed as soon as nothing refers to its output.
``tape(output)`` collects the records an output depends on, in recording order (the
forward trace); the reverse sweep (``sweep.py``) walks the same records newest first, a
valid reverse topological order because an op is recorded after all of its inputs exist.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from .kernels import ShapeError
from .tensor import Cut, Tensor, check_dtype


class _State:
    """Process-wide switches and counters."""

    grad_enabled = True
    clock = 0  # how many records were ever made: gives each its position in order
    on_forward: tuple = ()  # called after every op as hook(op, inputs, out, record)
    scopes: list[str] = []  # the active scope() names, innermost last


STATE = _State()


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self) -> None:
        self.previous = STATE.grad_enabled
        STATE.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = self.previous


def no_grad() -> _GradMode:
    """Context manager: ops inside it record nothing and their outputs need no grad."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager: switch recording back on (inside a ``no_grad`` block)."""
    return _GradMode(True)


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad are being recorded."""
    return STATE.grad_enabled


class scope:
    """Context manager that names a group of ops (``with scope("layer1"): ...``).

    Records made inside it carry the name (nested scopes are joined with "/"); drawings use
    it to draw the group as a cluster. It changes nothing in the math.
    """

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        scopes = STATE.scopes
        scopes.append(f"{scopes[-1]}/{self.name}" if scopes else self.name)

    def __exit__(self, *exc: object) -> None:
        STATE.scopes.pop()


class Record:
    """One entry of the tape: ``out = op(*inputs, **params)``.

    ``out`` is the output's value (a numpy array), ``index`` the record's position in
    recording order (global, increasing), ``scope`` the ``scope()`` active when it was
    recorded (drawings group by it).
    """

    __slots__ = ("op", "inputs", "params", "out", "index", "scope")

    def __init__(self, op: Primitive, inputs: tuple, params: dict, out: np.ndarray):
        self.op, self.inputs, self.params, self.out = op, inputs, params, out
        STATE.clock += 1
        self.index = STATE.clock
        self.scope = STATE.scopes[-1] if STATE.scopes else None

    def __repr__(self) -> str:
        shapes = ", ".join(str(t.shape) for t in self.inputs)
        return f"<Record #{self.index} {self.op.name}({shapes}) -> {self.out.shape}>"


class EachInput:
    """The VJPs of an op with any number of inputs: ``vjps[i]`` calls ``vjp(i, ...)``."""

    def __init__(self, vjp: Callable):
        self.vjp = vjp

    def __getitem__(self, i: int) -> Callable:
        return lambda *args, **params: self.vjp(i, *args, **params)


class Primitive:
    """An op: ``forward`` on numpy arrays and one VJP per input, with ``rules``, the same
    VJPs as short formulas (for drawings, docs and messages).

    ``vjps[i](xp, g, out, *inputs, **params)`` returns the adjoint ``g`` of the output
    pulled back to input ``i`` (see ``primitives.py``); ``vjps`` is a list with one VJP per
    input, or ``EachInput(vjp)`` for an op with any number of inputs. A call's positional
    arguments are the op's tensor inputs (numbers and arrays become constants of the first
    tensor input's dtype); keyword arguments are its non-differentiable parameters (axis,
    shape, index, ...).
    """

    def __init__(
        self,
        name: str,
        forward: Callable,
        vjps: Sequence[Callable] | EachInput,
        rules: Sequence[str],
    ):
        self.name, self.forward, self.vjps, self.rules = name, forward, vjps, tuple(rules)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *inputs: Any, **params: Any) -> Tensor:
        """Run the forward on the inputs' data; record it if any input requires grad."""
        tensors = inputs
        for a in inputs:
            if not isinstance(a, Tensor):  # numbers and arrays become constants
                tensors = _as_tensors(inputs)
                break
        try:
            out = self.forward(*[t.data for t in tensors], **params)
        except ShapeError:
            raise
        except ValueError as error:
            raise _shape_error(self.name, tensors, params, error) from error
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        record = None
        if STATE.grad_enabled:
            for t in tensors:
                if t.requires_grad:
                    record = Record(self, tensors, params, out)
                    break
        for hook in STATE.on_forward:  # anomaly mode checks the output here
            hook(self, tensors, out, record)
        result = Tensor.wrap(out, record)
        if not STATE.grad_enabled:
            cut_from = tuple(weakref.ref(t) for t in tensors if t.requires_grad)
            if cut_from:  # remember, for drawings, that no_grad cut a gradient path here
                result.cut = Cut("no_grad", self.name, cut_from)
        return result


def _as_tensors(inputs: tuple) -> tuple:
    """Inputs as tensors: numbers and arrays become constants of the first tensor's dtype."""
    dtype = next((a.data.dtype for a in inputs if isinstance(a, Tensor)), np.float64)
    tensors = []
    for a in inputs:
        if not isinstance(a, Tensor):
            array = np.asarray(a)
            check_dtype(array.dtype)
            a = Tensor.wrap(array.astype(dtype, copy=False))
        tensors.append(a)
    return tuple(tensors)


def _shape_error(name: str, tensors: tuple, params: dict, error: Exception) -> ShapeError:
    shapes = " and ".join(str(t.shape) for t in tensors)
    text = f"{name}: inputs of shapes {shapes} do not fit"
    if params:
        text += " (" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"
    if "broadcast" in str(error):
        text += (
            ". Broadcasting compares shapes from the right: each pair of sizes must be"
            " equal or one of them 1. Reshape an input (for example y.reshape(-1, 1))"
            " or fix the shape that is wrong"
        )
    return ShapeError(f"{text}. numpy said: {error}")


def reachable(root: Tensor) -> list[Record]:
    """The records ``root`` depends on, newest first (reverse order of recording)."""
    if root.record is None:
        return []
    records, seen, stack = [root.record], {root.record}, [root.record]
    while stack:  # an explicit stack, not recursion: deep graphs are fine
        for t in stack.pop().inputs:
            r = t.record
            if r is not None and r not in seen:
                seen.add(r)
                records.append(r)
                stack.append(r)
    records.sort(key=attrgetter("index"), reverse=True)
    return records


def tape(output: Tensor) -> list[Record]:
    """The records ``output`` depends on, in the order they were recorded (the forward
    trace). The reverse sweep walks the same list from the end."""
    return reachable(output)[::-1]
