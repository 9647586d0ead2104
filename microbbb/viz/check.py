"""Checking every node of a recorded graph: is each op's VJP right at the values it saw?

``check_graph(output)`` takes each record on the tape, re-runs its op's forward on the
recorded inputs (in float64), and compares the VJP with a central finite difference along
a random direction: for random ``g`` (output adjoint) and ``u`` (input direction),

    <VJP(g), u>   should equal   (<g, f(x + h u)> - <g, f(x - h u)>) / (2 h).

One number per input, so even a 784x400 matmul is checked in two forward passes. The
allowed difference is ``atol + rtol * |value|`` plus the rounding error of the difference
quotient (~ eps * sum|g f| / h: large when the op adds a small input to a huge one). The
report points at every node whose rule disagrees; a kink (relu at 0, a max tie) inside the
step h can cause a false alarm, which the report says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.extend import Record, Tensor, pull_back, tape


@dataclass
class NodeCheck:
    """The check of one record's VJP for one input."""

    position: int  # 1-based, in recording order
    record: Record
    index: int
    analytic: float
    numeric: float
    ok: bool

    def __str__(self) -> str:
        mark = "ok " if self.ok else "BAD"
        name = self.record.inputs[self.index].name or f"input {self.index}"
        return (
            f"{mark} #{self.position} {self.record.op.name} -> {name}: VJP gives"
            f" {self.analytic:.10g}, finite differences {self.numeric:.10g}"
        )


class GraphCheck:
    """Every node's check; ``failures`` lists the wrong ones, ``ok`` is True if none."""

    def __init__(self, checks: list[NodeCheck]):
        self.checks = checks

    @property
    def failures(self) -> list[NodeCheck]:
        """The checks that disagree."""
        return [c for c in self.checks if not c.ok]

    @property
    def ok(self) -> bool:
        """True when every VJP agrees with finite differences."""
        return not self.failures

    def __str__(self) -> str:
        head = f"checked {len(self.checks)} VJPs: " + (
            "all agree with finite differences"
            if self.ok
            else f"{len(self.failures)} disagree (a kink within the step can also cause this)"
        )
        return "\n".join([head, *(str(c) for c in self.failures or self.checks)])


def check_graph(
    output: Tensor, h: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8, seed: int = 0
) -> GraphCheck:
    """Check the VJP of every recorded op behind ``output`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    checks = []
    for position, record in enumerate(tape(output), start=1):
        values = [t.data.astype(np.float64) for t in record.inputs]
        g = rng.standard_normal(record.out.shape)
        for i, t in enumerate(record.inputs):
            if t.requires_grad:
                u = rng.standard_normal(t.shape)
                analytic, numeric, allowed = _directional(record, values, g, i, u, h)
                ok = abs(analytic - numeric) <= atol + rtol * max(abs(numeric), abs(analytic))
                ok = ok or abs(analytic - numeric) <= allowed
                checks.append(NodeCheck(position, record, i, analytic, numeric, ok))
    return GraphCheck(checks)


def _directional(
    record: Record, values: list, g: np.ndarray, i: int, u: np.ndarray, h: float
) -> tuple[float, float, float]:
    """<VJP_i(g), u>, its central difference, and the rounding error of that difference."""
    op, params = record.op, record.params
    out = op.forward(*values, **params)
    vjp, _ = pull_back(record, i, g, out, values)  # in float64, as the values

    def along(step: float) -> float:
        shifted = list(values)
        shifted[i] = values[i] + step * u
        return float(np.sum(g * op.forward(*shifted, **params)))

    numeric = (along(h) - along(-h)) / (2 * h)
    # rounding in f(x +- h u) is ~ eps |g f| per element, amplified by 1 / (2 h)
    noise = 8 * np.finfo(np.float64).eps * float(np.sum(np.abs(g * out))) / (2 * h)
    return float(np.sum(vjp * u)), numeric, noise
