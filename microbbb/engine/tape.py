"""The tape: what calling an op records, and when.

Calling a ``Primitive`` (a numpy forward plus one VJP per input; their table is
``primitives.py``) runs the forward and, if grad mode is on and an input requires grad,
makes a ``Record``. Each output holds its record and each record its inputs: no global
list, so a graph is freed when nothing refers to its output. ``tape(output)`` lists the
records behind an output in recording order; the reverse sweep walks them newest first, a
valid reverse topological order since an op is recorded after all of its inputs exist.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from . import nonfinite
from .kernels import ShapeError, check_dtype, shape_error
from .modes import CLOCK, THREAD, Cut
from .saved import WRITES
from .tensor import Tensor


class Record:
    """One entry of the tape: ``out = op(*inputs, **params)``. ``values`` (the inputs'
    arrays) and ``out`` are made read-only: they cannot change under the tape (``saved.py``;
    ``written``: the newest engine write they saw). ``index``: the position in recording
    order (global, increasing); ``scope``: the ``scope()`` active when it was recorded."""

    __slots__ = ("op", "inputs", "params", "out", "values", "written", "index", "scope")

    def __init__(
        self, op: Primitive, inputs: tuple, params: dict, out: Any, values: list, scope: Any
    ):
        self.op, self.inputs = op, inputs  # (pairs: no tuple is built, unlike four at once)
        self.params, self.out = params, out
        self.values, self.written = values, WRITES.last
        self.index, self.scope = next(CLOCK), scope
        out.setflags(False)  # read-only (positional: twice as fast as write=False)
        for t in inputs:  # (the inputs other records made are read-only already)
            if t.record is None:
                t.data.setflags(False)

    def __repr__(self) -> str:
        shapes = ", ".join(str(t.shape) for t in self.inputs)
        return f"<Record #{self.index} {self.op.name}({shapes}) -> {self.out.shape}>"


class Primitive:
    """An op: ``forward`` on numpy arrays, ``vjps`` (one per input, or ``EachInput(vjp)``
    for any number of inputs: ``vjps[i](xp, g, out, *inputs, **params)`` pulls the output
    adjoint ``g`` back to input ``i``) and ``rules``, the VJPs as formulas. A call takes the
    tensor inputs as positional arguments (numbers and arrays become constants of the first
    tensor's dtype) and the op's parameters (axis, shape, ...) as keywords."""

    def __init__(self, name: str, forward: Callable, vjps: Sequence, rules: Sequence[str]):
        self.name, self.forward, self.vjps, self.rules = name, forward, vjps, tuple(rules)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *inputs: Any, **params: Any) -> Tensor:
        """Run the forward on the inputs' data; record it if any input requires grad."""
        tensors = inputs
        for a in inputs:
            if type(a) is not Tensor and not isinstance(a, Tensor):  # numbers and arrays
                tensors = _as_tensors(inputs)  # become constants
                break
        values = [t.data for t in tensors]
        try:
            out = self.forward(*values, **params)
        except ShapeError:
            raise
        except ValueError as error:
            raise shape_error(self.name, [t.shape for t in tensors], params, error) from error
        except RuntimeWarning:  # numpy's floating-point warning, an error in the engine
            out = nonfinite.quietly(self.forward, *values, **params)
            nonfinite.warn(self.name, "forward")
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        record, modes = None, THREAD.modes  # (this thread's: grad mode, scope, hooks)
        if modes.grad_enabled:
            for t in tensors:
                if t.requires_grad:
                    record = Record(self, tensors, params, out, values, modes.scope)
                    break
        if modes.on_forward:  # anomaly mode checks the output here
            for hook in modes.on_forward:
                hook(self, tensors, out, record)
        result = Tensor.wrap(out, record)
        if not modes.grad_enabled:
            cut_from = tuple(weakref.ref(t) for t in tensors if t.requires_grad)
            if cut_from:  # remember, for drawings, that no_grad cut a gradient path here
                result.cut = Cut("no_grad", self.name, cut_from)
        return result


def _as_tensors(inputs: tuple) -> tuple:
    """Inputs as tensors: numbers and arrays become constants of the first tensor's dtype,
    holding their own copy (a later change to the caller's array cannot reach the graph)."""
    dtype = next((a.data.dtype for a in inputs if isinstance(a, Tensor)), np.float64)
    tensors = []
    for a in inputs:
        if not isinstance(a, Tensor):
            if isinstance(a, (list, tuple)) and _holds_tensor(a):
                raise TypeError(
                    "a list of tensors is not a tensor (as a constant it would carry no"
                    " gradient): stack it first, mb.stack([...]), or concatenate it."
                )
            array = np.asarray(a)  # a new array, unless a is one: then copy it
            check_dtype(array.dtype)
            copy = array is a or array.dtype != dtype
            a = Tensor.wrap(array.astype(dtype) if copy else array)
        tensors.append(a)
    return tuple(tensors)


def _holds_tensor(items: list | tuple) -> bool:
    return any(
        isinstance(a, Tensor) or isinstance(a, (list, tuple)) and _holds_tensor(a) for a in items
    )


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
