"""Run a recorded tape again: ``TapeProgram``.

A tape is a program (a Wengert list): each record says which forward function to call on
which earlier values. Eager mode builds that program anew on every call (a Tensor and a
Record per op, a graph walk and a sort in backward), a few microseconds of Python per op
that dominate small networks. When the next step has the same shape as the last one (same
data, same network; new parameter values, new eps), the recorded program can simply be
run again: the same forward functions and the same VJPs, in the same order, on the
current values of the leaves. The numbers are the ones eager mode gives, bit for bit.

``TapeProgram(loss)`` writes the tape out as straight-line Python, one line per forward
op and one per VJP, and compiles it once (``print(program.source)`` shows it: the forward
trace, then the adjoint trace of the AD literature, as code). ``run()`` executes it:
forward, then the reverse sweep, then ``.grad`` of every leaf that requires grad
(accumulated, as ``backward`` does). Every tensor of the graph gets its new value, so the
loss, its parts and any intermediate you hold show the latest run. Writing and compiling
the code costs about 0.1 ms per op (2 s for a 20 000-op chain), so a program pays off
when it runs many times, as in training.

It is first-order only (no ``create_graph``, no ``retain_grad``), does not check
anomalies (use eager mode under ``detect_anomaly()`` to find where a NaN came from), and
cannot see new Python control flow: if the code that built the graph would now take
another branch, or the data changes shape, record a new program.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import kernels, nonfinite, saved
from .gradients import accumulate
from .kernels import ShapeError
from .primitives import NUMPY
from .sweep import pull_back
from .tape import Record, tape
from .tensor import Tensor


class TapeProgram:
    """The tape of the scalar ``output``, as a program to run again (see the module doc).

    ``source`` is the generated code: ``l<j>`` are the leaves' values, ``v<k>`` the output
    of record k, ``v<k>_bar`` and ``l<j>_bar`` their adjoints; each VJP line ends with the
    VJP's formula as a comment.
    """

    def __init__(self, output: Tensor):
        if output.record is None or output.data.size != 1:
            why = (
                f"a tensor of shape {output.shape}; reduce it first (.sum(), .mean())"
                if output.data.size != 1
                else "a tensor that no op recorded (a leaf, or computed from tensors that do not"
                " require grad, or under no_grad())"
            )
            raise ValueError(f"TapeProgram needs a recorded scalar (a loss); got {why}.")
        self.output = output
        self.records = tape(output)  # forward order; output.record is the last one
        _check_leaf_shapes(self.records)
        self.leaves: list[Tensor] = []  # read afresh on every run: parameters, eps, data
        writer = _Writer(self.records, self.leaves)
        self.source, namespace = writer.program(output)
        self.shapes = [t.data.shape for t in self.leaves]
        exec(compile(self.source, "<TapeProgram>", "exec"), namespace)  # noqa: S102
        self._run = namespace["run"]

    def run(self) -> None:
        """Forward and backward on the leaves' current values; adds to leaves' ``.grad``."""
        if [t.data.shape for t in self.leaves] != self.shapes:
            for t, shape in zip(self.leaves, self.shapes, strict=True):
                if t.data.shape != shape:
                    raise ShapeError(
                        f"TapeProgram: leaf {t.name or 'tensor'} now has shape {t.data.shape},"
                        f" but the program was recorded with {shape}. Record a new program for"
                        " the new shape."
                    )
        nonfinite.ensure_filter()
        try:
            self._run()
        except RuntimeWarning:  # numpy's floating-point warning: run again, quietly
            nonfinite.quietly(self._run)  # (.grad is written only at the end of a run)
            nonfinite.warn("(a recorded op)", "run")

    def __repr__(self) -> str:
        vjps = self.source.count("_bar = ")
        return f"<TapeProgram: {len(self.records)} records, {vjps} VJPs, {len(self.leaves)} leaves>"


def _check_leaf_shapes(records: list[Record]) -> None:
    """Refuse a tape whose leaves were given arrays of another shape or dtype since it was
    recorded (``t.data = new``): the program's shapes, and its decisions on summing and
    casting gradients (``_Writer.share``), are the recorded ones."""
    for r in records:
        for t, value in zip(r.inputs, r.values, strict=True):
            now, then = (t.data.shape, t.data.dtype), (value.shape, value.dtype)
            if t.record is None and now != then:
                raise ShapeError(
                    f"TapeProgram: leaf {t.name or 'tensor'} has shape {now[0]} and dtype"
                    f" {now[1]} now, but op '{r.op.name}' was recorded with {then[0]} and"
                    f" {then[1]}. Compute the loss again and record that."
                )


class _Writer:
    """Writes the source of one run and collects the objects its names refer to."""

    def __init__(self, records: list[Record], leaves: list[Tensor]):
        self.records, self.leaves = records, leaves
        self.position = {r: k for k, r in enumerate(records)}
        self.leaf_index: dict[Tensor, int] = {}
        self.names: dict[str, Any] = {"np": np, "pull_back": pull_back, "accumulate": accumulate}
        self.names["__name__"] = "microbbb.engine.program.run"  # whose warnings the engine owns
        self.names["WRITES"] = saved.WRITES

    def value(self, t: Tensor) -> str:
        """The local name of a tensor's value: v<k> for record k's output, l<j> for a leaf."""
        if t.record is not None:
            return f"v{self.position[t.record]}"
        if t not in self.leaf_index:
            self.leaf_index[t] = len(self.leaves)
            self.leaves.append(t)
        return f"l{self.leaf_index[t]}"

    def bind(self, name: str, fn: Any, params: dict, *first: Any) -> str:
        """Bind an op's parameters (and ``xp``, for a VJP) once, not on every run."""
        self.names[name] = functools.partial(fn, *first, **params) if params or first else fn
        return name

    def program(self, output: Tensor) -> tuple[str, dict[str, Any]]:
        """The source of ``run()`` and its namespace."""
        forward = self.forward(output)
        leaves = ["    written = WRITES.last  # (records hold this run's values: saved.py)"]
        leaves.append("    # the leaves' current values")
        for j, t in enumerate(self.leaves):
            self.names[f"L{j}"] = t
            leaves.append(f"    l{j} = L{j}.data" + (f"  # {t.name}" if t.name else ""))
        backward, assigned = self.backward()
        finish = ["    # gradients into .grad", "    handed_out = set()"]
        for j in range(len(self.leaves)):
            if f"l{j}_bar" in assigned:
                finish.append(f"    accumulate(L{j}, l{j}_bar, handed_out)")
        legend = [
            "    # l<j>: the value of leaf L<j>; v<k>: the output of record R<k>, shown by the",
            "    # tensors T<k>_<m>; l<j>_bar, v<k>_bar: their adjoints (d loss / d value)",
        ]
        lines = ["def run():", *legend, *leaves, *forward, *backward, *finish]
        return "\n".join(lines) + "\n", self.names

    def forward(self, output: Tensor) -> list[str]:
        """One line per record, then the new value written where tensors show it."""
        shown: list[list[Tensor]] = [[] for _ in self.records]
        for t in (output, *(t for r in self.records for t in r.inputs)):
            if t.record is not None:
                bucket = shown[self.position[t.record]]
                if all(u is not t for u in bucket):
                    bucket.append(t)
        lines = ["    # forward"]
        for k, r in enumerate(self.records):
            args = ", ".join(self.value(t) for t in r.inputs)
            call = self.bind(f"{r.op.name}_{k}", r.op.forward, r.params)
            if r.out.ndim == 0:  # numpy returns a scalar, not an array, for 0-d results
                lines.append(f"    v{k} = np.asarray({call}({args}))")
            else:
                lines.append(f"    v{k} = {call}({args})")
            self.names[f"R{k}"] = r
            # what an eager backward would read, and the newest engine write it has seen
            lines.append(f"    R{k}.values, R{k}.written = [{args}], written")
            holders = [f"R{k}.out"]
            for m, t in enumerate(shown[k]):
                self.names[f"T{k}_{m}"] = t
                holders.append(f"T{k}_{m}.data")
            lines.append(f"    {' = '.join(holders)} = v{k}")
        return lines

    def backward(self) -> tuple[list[str], set[str]]:
        """One line per VJP, newest record first; adjoints freed when their record is done."""
        n = len(self.records)
        lines = [
            "    # backward, newest record first",
            f"    v{n - 1}_bar = np.ones_like(v{n - 1})",
        ]
        assigned: set[str] = set()
        for k in reversed(range(n)):
            r = self.records[k]
            for i, t in enumerate(r.inputs):
                if t.requires_grad:
                    target = f"{self.value(t)}_bar"
                    plus = f"{target} + " if target in assigned else ""
                    rule = r.op.rules[min(i, len(r.op.rules) - 1)]
                    lines.append(f"    {target} = {plus}{self.share(k, i)}  # {rule}")
                    assigned.add(target)
            lines.append(f"    del v{k}_bar")  # record k is done, as eager mode frees it
        return lines, assigned

    def share(self, k: int, i: int) -> str:
        """The expression for input i's share of record k's adjoint: what ``pull_back``
        does in eager mode (the VJP, summed back over broadcast axes, cast to the input's
        dtype), with its decisions taken once, here. The VJP is tried once on the recorded
        values: its result's shape and dtype depend on the shapes and dtypes alone, which
        every run keeps. Same shape and dtype as the input: the VJP is called directly; a
        broadcast shape: summed over the axes found now; a dtype to cast: ``pull_back``."""
        r = self.records[k]
        args = ", ".join(self.value(t) for t in r.inputs)
        x = r.inputs[i].data
        vjp = self.bind(f"{r.op.name}_{k}_vjp{i}", r.op.vjps[i], r.params, NUMPY)
        try:
            with np.errstate(all="ignore"):  # (only the shape and dtype are looked at)
                tried = self.names[vjp](np.ones_like(r.out), r.out, *r.values)
            axes = kernels.broadcast_axes(x.shape, tried.shape)
        except Exception:  # (a VJP that refuses ones, or a bad shape: as eager mode, each
            tried = None  # run's pull_back then decides, and raises where eager mode does)
        if tried is not None and tried.dtype == x.dtype:
            if tried.shape == x.shape:
                return f"{vjp}(v{k}_bar, v{k}, {args})"
            sum_back = functools.partial(kernels.sum_over, axes=axes, shape=x.shape)
            self.names[f"unbroadcast_{k}_{i}"] = sum_back
            return f"unbroadcast_{k}_{i}({vjp}(v{k}_bar, v{k}, {args}))"
        args = f"({args},)" if len(r.inputs) == 1 else f"({args})"
        return f"pull_back(R{k}, {i}, v{k}_bar, v{k}, {args})[0]"
