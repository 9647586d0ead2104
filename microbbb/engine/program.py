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

from .core import NUMPY, ShapeError, Tensor, _accumulate, tape


class TapeProgram:
    """The tape of the scalar ``output``, as a program to run again (see the module doc).

    ``source`` is the generated code: ``l<j>`` are the leaves' values, ``v<k>`` the output
    of record k, ``v<k>_bar`` and ``l<j>_bar`` their adjoints.
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
        self.leaves: list[Tensor] = []  # read afresh on every run: parameters, eps, data
        self.shapes: list[tuple] = []
        self.source, namespace = self._generate()
        exec(compile(self.source, "<TapeProgram>", "exec"), namespace)  # noqa: S102
        self._run = namespace["run"]

    def _generate(self) -> tuple[str, dict[str, Any]]:
        """The Python source of one run, and the objects its names refer to."""
        records = self.records
        position = {r: k for k, r in enumerate(records)}
        leaf_index: dict[Tensor, int] = {}
        names: dict[str, Any] = {"np": np, "sum_to": NUMPY.sum_to, "accumulate": _accumulate}

        def value(t: Tensor) -> str:
            if t.record is not None:
                return f"v{position[t.record]}"
            if t not in leaf_index:
                leaf_index[t] = len(self.leaves)
                self.leaves.append(t)
            return f"l{leaf_index[t]}"

        def bind(name: str, fn: Any, params: dict, *first: Any) -> str:
            # the op's parameters (and xp, for a VJP) are bound once, not passed every run
            names[name] = functools.partial(fn, *first, **params) if params or first else fn
            return name

        # every tensor that shows record k's value gets it after each run
        shown: list[list[Tensor]] = [[] for _ in records]
        for t in (self.output, *(t for r in records for t in r.inputs)):
            if t.record is not None:
                bucket = shown[position[t.record]]
                if all(u is not t for u in bucket):
                    bucket.append(t)

        forward = ["    # forward"]
        for k, r in enumerate(records):
            args = ", ".join(value(t) for t in r.inputs)
            call = bind(f"{r.op.name}_{k}", r.op.forward, r.params)
            if r.out.ndim == 0:  # numpy returns a scalar, not an array, for 0-d results
                forward.append(f"    v{k} = np.asarray({call}({args}))")
            else:
                forward.append(f"    v{k} = {call}({args})")
            names[f"R{k}"] = r
            holders = [f"R{k}.out"]
            for m, t in enumerate(shown[k]):
                names[f"T{k}_{m}"] = t
                holders.append(f"T{k}_{m}.data")
            forward.append(f"    {' = '.join(holders)} = v{k}")
        leaves = ["    # the leaves' current values"]
        for j, t in enumerate(self.leaves):
            names[f"L{j}"] = t
            leaves.append(f"    l{j} = L{j}.data" + (f"  # {t.name}" if t.name else ""))
            self.shapes.append(t.data.shape)

        n = len(records)
        backward = [
            "    # backward, newest record first",
            f"    v{n - 1}_bar = np.ones_like(v{n - 1})",
        ]
        assigned: set[str] = set()
        for k in reversed(range(n)):
            r = records[k]
            args = ", ".join(value(t) for t in r.inputs)
            needed = [i for i, t in enumerate(r.inputs) if t.requires_grad]
            for i in needed:
                t = r.inputs[i]
                target = f"{value(t)}_bar"
                vjp = bind(f"{r.op.name}_{k}_vjp{i}", r.op.vjps[i], r.params, NUMPY)
                contribution = f"{vjp}(v{k}_bar, v{k}, {args})"
                fixes = []
                if t.data.shape != r.out.shape:  # broadcast, reduced or reshaped: check
                    shape = t.data.shape
                    fixes.append(f"    if g.shape != {shape}: g = sum_to(g, shape={shape})")
                dtypes = (*(u.data.dtype for u in r.inputs), r.out.dtype)
                if any(d != t.data.dtype for d in dtypes):  # mixed: cast back, as eager does
                    names[f"D{k}_{i}"] = t.data.dtype
                    fixes.append(f"    if g.dtype != D{k}_{i}: g = g.astype(D{k}_{i})")
                if fixes:
                    backward += [f"    g = {contribution}", *fixes]
                    contribution = "g"
                plus = f"{target} + " if target in assigned else ""
                backward.append(f"    {target} = {plus}{contribution}")
                assigned.add(target)
            backward.append(f"    del v{k}_bar")  # record k is done, as eager mode frees it

        finish = ["    # gradients into .grad", "    handed_out = set()"]
        for j in range(len(self.leaves)):
            if f"l{j}_bar" in assigned:
                finish.append(f"    accumulate(L{j}, l{j}_bar, False, handed_out)")
        legend = [
            "    # l<j>: the value of leaf L<j>; v<k>: the output of record R<k>, shown by the",
            "    # tensors T<k>_<m>; l<j>_bar, v<k>_bar: their adjoints (d loss / d value)",
        ]
        lines = ["def run():", *legend, *leaves, *forward, *backward, *finish]
        return "\n".join(lines) + "\n", names

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
        self._run()

    def __repr__(self) -> str:
        vjps = self.source.count("_vjp")
        return f"<TapeProgram: {len(self.records)} records, {vjps} VJPs, {len(self.leaves)} leaves>"
