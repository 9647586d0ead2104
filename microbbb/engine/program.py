"""Run a recorded tape again: ``TapeProgram``.

A tape is a program (a Wengert list): each record says which forward function to call on
which earlier values. Eager mode builds that program anew on every call (a Tensor and a
Record per op, a graph walk and a sort in backward), a few microseconds of Python per op
that dominate small networks. When the next step has the same shape as the last one (same
data, same network; new parameter values, new eps), the recorded program can simply be
run again: the same forward functions and the same VJPs, in the same order, on the
current values of the leaves. The numbers are the ones eager mode gives, bit for bit.

``TapeProgram(loss)`` compiles the tape of a scalar into two instruction lists over
numbered slots (the records' outputs first, then the leaves), and ``run()`` executes
them: forward, then the reverse sweep, then ``.grad`` of every leaf that requires grad
(accumulated, as ``backward`` does). Every tensor of the graph gets its new value, so the
loss, its parts and any intermediate you hold show the latest run.

It is first-order only (no ``create_graph``, no ``retain_grad``), does not check
anomalies (use eager mode under ``detect_anomaly()`` to find where a NaN came from), and
cannot see new Python control flow: if the code that built the graph would now take
another branch, or the data changes shape, record a new program.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from .core import NUMPY, ShapeError, Tensor, _accumulate, tape


class TapeProgram:
    """The tape of the scalar ``output``, as a program to run again (see the module doc)."""

    def __init__(self, output: Tensor):
        if output.record is None or output.data.size != 1:
            why = (
                f"a tensor of shape {output.shape}; reduce it first (.sum(), .mean())"
                if output.data.size != 1
                else "a tensor that no op recorded (a leaf, or computed from tensors that do not"
                " require grad, or under no_grad())"
            )
            raise ValueError(f"TapeProgram needs a recorded scalar (a loss); got {why}.")
        records = tape(output)  # forward order; output.record is the last one
        position = {r: k for k, r in enumerate(records)}
        self.leaves: list[Tensor] = []  # read afresh on every run: parameters, eps, data
        leaf_slot: dict[Tensor, int] = {}

        def slot(t: Tensor) -> int:
            if t.record is not None:
                return position[t.record]
            if t not in leaf_slot:
                leaf_slot[t] = len(records) + len(self.leaves)
                self.leaves.append(t)
            return leaf_slot[t]

        # the tensors that show each record's value, to update on every run
        shown: list[list[Tensor]] = [[] for _ in records]
        for t in (output, *(t for r in records for t in r.inputs)):
            if t.record is not None:
                bucket = shown[position[t.record]]
                if all(u is not t for u in bucket):
                    bucket.append(t)
        # forward: values[k] = op.forward(*values[inputs], **params), as (call, inputs, ...)
        # with the params bound and `inputs` fetching the input values in one C call
        slots = [[slot(t) for t in r.inputs] for r in records]
        self.forward = [
            (_bind(r.op.forward, r.params), _fetch(s), r, ts)
            for r, s, ts in zip(records, slots, shown, strict=True)
        ]
        # backward, newest record first: adjoints[target] += vjp(adjoints[k], values[k], *inputs)
        self.backward = []
        for k in reversed(range(len(records))):
            r = records[k]
            needed = [i for i, t in enumerate(r.inputs) if t.requires_grad]
            for i in needed:
                vjp = _bind(r.op.vjps[i], r.params, NUMPY)
                shape, dtype = r.inputs[i].data.shape, r.inputs[i].data.dtype  # of the gradient
                last = i == needed[-1]  # after it, record k's adjoint can be freed
                self.backward.append((k, vjp, _fetch(slots[k]), slots[k][i], shape, dtype, last))
        self.records = records
        self.shapes = [t.data.shape for t in self.leaves]
        self.output = output

    def run(self) -> None:
        """Forward and backward on the leaves' current values; adds to leaves' ``.grad``."""
        n = len(self.records)
        if [t.data.shape for t in self.leaves] != self.shapes:
            for t, shape in zip(self.leaves, self.shapes, strict=True):
                if t.data.shape != shape:
                    raise ShapeError(
                        f"TapeProgram: leaf {t.name or 'tensor'} now has shape {t.data.shape},"
                        f" but the program was recorded with {shape}. Record a new program for"
                        " the new shape."
                    )
        values: list[Any] = [None] * n + [t.data for t in self.leaves]
        for k, (forward, inputs, record, shown) in enumerate(self.forward):
            out = forward(*inputs(values))
            if type(out) is not np.ndarray:
                out = np.asarray(out)
            values[k] = record.out = out
            for t in shown:
                t.data = out

        # Every record's output feeds a later record (or is the output), so by the time a
        # record comes up in this newest-first sweep its adjoint has been set.
        adjoints: list[Any] = [None] * len(values)
        adjoints[n - 1] = np.ones_like(values[n - 1])
        for k, vjp, inputs, target, shape, dtype, last in self.backward:
            gi = vjp(adjoints[k], values[k], *inputs(values))
            if last:  # record k is done: free its adjoint, as eager mode does
                adjoints[k] = None
            if gi.shape != shape:  # broadcasting summed this gradient
                gi = NUMPY.sum_to(gi, shape=shape)
            if gi.dtype != dtype:
                gi = gi.astype(dtype)
            previous = adjoints[target]
            adjoints[target] = gi if previous is None else previous + gi

        handed_out: set[int] = set()
        for leaf, g in zip(self.leaves, adjoints[n:], strict=True):
            if g is not None:
                _accumulate(leaf, g, False, handed_out)

    def __repr__(self) -> str:
        return (
            f"<TapeProgram: {len(self.records)} records, {len(self.backward)} VJPs,"
            f" {len(self.leaves)} leaves>"
        )


def _bind(fn: Callable, params: dict, *first: Any) -> Callable:
    """``fn`` with its fixed arguments bound: ``first`` (xp, for a VJP) and the op's
    parameters. (Passing ``**params`` on every call costs more than the call itself.)"""
    return functools.partial(fn, *first, **params) if params or first else fn


def _fetch(slots: list[int]) -> Callable[[list], Any]:
    """``values -> [values[i] for i in slots]``, done in C by operator.itemgetter. With one
    slot, a slice of length one, so that the result can always be unpacked with ``*``."""
    if len(slots) == 1:
        return operator.itemgetter(slice(slots[0], slots[0] + 1))
    return operator.itemgetter(*slots)
