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

from typing import Any

import numpy as np

from .core import NUMPY, ShapeError, Tensor, _accumulate, tape


class TapeProgram:
    """The tape of the scalar ``output``, as a program to run again (see the module doc)."""

    def __init__(self, output: Tensor):
        if output.record is None or not output.requires_grad or output.data.size != 1:
            raise ValueError(
                "TapeProgram needs a scalar computed from tensors that require grad (a loss);"
                f" got a tensor of shape {output.shape} that"
                f" {'was recorded' if output.record is not None else 'no op recorded'}."
            )
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

        # forward: values[k] = records[k].op.forward(*values[inputs], **params)
        self.forward = [(r.op.forward, [slot(t) for t in r.inputs], r.params) for r in records]
        # backward, newest record first: adjoints[target] += vjp(g = adjoints[k], ...)
        self.backward = []
        for k in reversed(range(len(records))):
            inputs = self.forward[k][1]
            for i, t in enumerate(records[k].inputs):
                if t.requires_grad:
                    vjp = records[k].op.vjps[i]
                    target = inputs[i]
                    like = (t.data.shape, t.data.dtype)  # the gradient's shape and dtype
                    self.backward.append((k, vjp, inputs, records[k].params, target, like))
        # the tensors that show each record's value, to update after a run
        self.shown: list[list[Tensor]] = [[] for _ in records]
        for t in (output, *(t for r in records for t in r.inputs)):
            if t.record is not None:
                shown = self.shown[position[t.record]]
                if all(u is not t for u in shown):
                    shown.append(t)
        self.records = records
        self.shapes = [t.data.shape for t in self.leaves]
        self.output = output

    def run(self) -> None:
        """Forward and backward on the leaves' current values; adds to leaves' ``.grad``."""
        n = len(self.records)
        for t, shape in zip(self.leaves, self.shapes, strict=True):
            if t.data.shape != shape:
                raise ShapeError(
                    f"TapeProgram: leaf {t.name or 'tensor'} now has shape {t.data.shape}, but"
                    f" the program was recorded with {shape}. Record a new program for the"
                    " new shape."
                )
        values: list[Any] = [None] * n + [t.data for t in self.leaves]
        for k, (forward, inputs, params) in enumerate(self.forward):
            out = forward(*[values[i] for i in inputs], **params)
            values[k] = out if type(out) is np.ndarray else np.asarray(out)
        for r, shown, out in zip(self.records, self.shown, values[:n], strict=True):
            r.out = out
            for t in shown:
                t.data = out

        adjoints: list[Any] = [None] * len(values)
        adjoints[n - 1] = np.ones_like(values[n - 1])
        current = n - 1
        for k, vjp, inputs, params, target, (shape, dtype) in self.backward:
            if k != current:  # record `current` is done: free its adjoint, as eager does
                adjoints[current], current = None, k
            g = adjoints[k]
            if g is None:
                continue
            gi = vjp(NUMPY, g, values[k], *[values[i] for i in inputs], **params)
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
