"""Evaluation-trace tables and a step-by-step replay of the backward pass.

``trace_table(output)`` lists the forward (primal) trace and the reverse (adjoint) trace in
the notation of the automatic-differentiation literature: the inputs (leaves) are
``l1, l2, ...`` in order of first use (the literature writes them v-1, v0, which on a slide
reads as "v minus 1"), each recorded op gives the next ``v1, v2, ...``; the reverse
trace lists, newest op first, each contribution ``v̄k += <rule>`` with its value and the
adjoint after it. Unnamed scalar constants are written inline. Both traces print as text
and show as HTML in Jupyter.

``tangent_trace(output)`` is forward mode in the same notation: the forward trace with a
tangent column per input (or per seed given), each ``vk̇`` computed from its inputs'
tangents in recording order (as in Table 2 of Baydin et al. 2018; the adjoint trace is
their Table 3).

``replay(output)`` walks the same reverse sweep one op at a time and shows, for each input
of that op, its adjoint before and after the step.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Record, Tensor, jvp
from .graph import Graph, build_graph, input_names, summary

SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "matmul": "@"}


@dataclass
class Row:
    """One line of a trace: the variable, how it is computed, and its value."""

    variable: str
    expression: str
    value: np.ndarray
    after: np.ndarray | None = None  # reverse trace: the adjoint after this contribution


class TraceTable:
    """The forward and reverse traces of one computation (see the module docstring)."""

    def __init__(self, forward: list[Row], reverse: list[Row]):
        self.forward = forward
        self.reverse = reverse

    def _text(self, rows: list[Row], title: str, reverse: bool) -> str:
        header = ["", "", "value"] + (["adjoint after"] if reverse else [])
        body = [
            [r.variable, r.expression, summary(r.value)]
            + ([summary(r.after)] if reverse and r.after is not None else [])
            for r in rows
        ]
        widths = [
            max(len(line[i]) for line in [header, *body] if i < len(line))
            for i in range(len(header))
        ]  # noqa: E501
        lines = [title]
        for line in [header, *body]:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)))
        return "\n".join(line.rstrip() for line in lines)

    def __str__(self) -> str:
        return (
            self._text(self.forward, "forward (primal) trace", False)
            + "\n\n"
            + self._text(self.reverse, "reverse (adjoint) trace", True)
        )

    def _repr_html_(self) -> str:
        def table(rows: list[Row], title: str, reverse: bool) -> str:
            head = "<th></th><th></th><th>value</th>" + (
                "<th>adjoint after</th>" if reverse else ""
            )
            cells = "".join(
                "<tr>"
                + f"<td><b>{html.escape(r.variable)}</b></td>"
                + f"<td><code>{html.escape(r.expression)}</code></td>"
                + f"<td>{html.escape(summary(r.value))}</td>"
                + (f"<td>{html.escape(summary(r.after))}</td>" if reverse else "")
                + "</tr>"
                for r in rows
            )
            return f"<h4>{title}</h4><table><tr>{head}</tr>{cells}</table>"

        return table(self.forward, "forward (primal) trace", False) + table(
            self.reverse, "reverse (adjoint) trace", True
        )


def _names(graph: Graph) -> dict[tuple, str]:
    """Trace names: ``l1, l2, ...`` for the leaves in order of first use, then ``v1, v2,
    ...``, one per record."""
    leaves: list[tuple] = []
    for record in graph.records:
        for t in record.inputs:
            key = graph.key(t)
            if t.record is None and key not in leaves and not _inline(graph, t):
                leaves.append(key)
    names = {key: f"l{i}" for i, key in enumerate(leaves, start=1)}
    for k, record in enumerate(graph.records, start=1):
        names[("record", id(record))] = f"v{k}"
    return names


def _inline(graph: Graph, t: Tensor) -> bool:
    return t.record is None and not t.requires_grad and t.size == 1 and not t.name


def _operand(graph: Graph, names: dict, t: Tensor) -> str:
    if _inline(graph, t):
        return summary(t.data)
    return names[graph.key(t)]


def _expression(graph: Graph, names: dict, record: Record) -> str:
    args = [_operand(graph, names, t) for t in record.inputs]
    op = record.op.name
    if op in SYMBOLS and len(args) == 2:
        return f"{args[0]} {SYMBOLS[op]} {args[1]}"
    if op == "neg":
        return f"-{args[0]}"
    params = [f"{k}={v!r}" for k, v in record.params.items() if k not in ("cond", "bounds")]
    return f"{op}({', '.join(args + params)})"


def _rule(graph: Graph, names: dict, record: Record, i: int, g: str | None = None) -> str:
    """The VJP formula with the op's variables replaced by their trace names (``g`` by the
    output's adjoint, or by the word ``g`` given)."""
    rule = record.op.rules[min(i, len(record.op.rules) - 1)]
    out = names[("record", id(record))]
    words = {"g": g or out + "̄", "out": out}
    for name, t in zip(input_names(record.op, len(record.inputs)), record.inputs, strict=True):
        words[name] = _operand(graph, names, t)
    return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: words.get(m.group(0), m.group(0)), rule)


def trace_table(output: Tensor, grad: Any = None) -> TraceTable:
    """The forward and reverse evaluation traces of the computation behind ``output``."""
    graph = build_graph(output, grad)
    names = _names(graph)
    forward = [
        Row(names[key], graph.tensors[key].name or "input", graph.tensors[key].value)
        for key in names
        if key[0] == "tensor"
    ]
    forward += [
        Row(names[("record", id(r))], _expression(graph, names, r), r.out) for r in graph.records
    ]
    reverse = []
    if graph.edges:
        root = names[graph.key(output)] + "̄"
        seed = np.ones_like(output.data) if grad is None else np.asarray(grad)
        reverse.append(Row(root, "seed", seed, seed))
        for step in _steps(graph, names):
            for variable, rule, contribution, _, after in step.updates:
                reverse.append(Row(f"{variable} +=", rule, contribution, after))
    return TraceTable(forward, reverse)


# --- replay ---------------------------------------------------------------------------------------


@dataclass
class Step:
    """One op of the reverse sweep: ``updates`` holds, per input that needs a gradient,
    (adjoint name, rule, contribution, adjoint before, adjoint after)."""

    position: int
    record: Record
    expression: str
    adjoint: np.ndarray
    updates: list[tuple[str, str, np.ndarray, np.ndarray | None, np.ndarray]]


def _steps(graph: Graph, names: dict) -> list[Step]:
    running: dict[tuple, np.ndarray] = {}
    steps: list[Step] = []
    by_record: dict[int, list] = {}
    for edge in graph.edges:
        by_record.setdefault(id(edge.record), []).append(edge)
    for record in reversed(graph.records):
        edges = by_record.get(id(record), [])
        if not edges:
            continue
        out_name = names[("record", id(record))]
        step = Step(len(steps) + 1, record, f"{out_name} = {_expression(graph, names, record)}",
                    edges[0].g, [])  # fmt: skip
        for edge in edges:
            key = graph.key(record.inputs[edge.index])
            before = running.get(key)
            after = edge.contribution if before is None else before + edge.contribution
            running[key] = after
            target = _operand(graph, names, record.inputs[edge.index]) + "̄"
            step.updates.append(
                (target, _rule(graph, names, record, edge.index), edge.contribution, before, after)
            )
        steps.append(step)
    return steps


class Replay:
    """The backward pass, one op at a time, with each adjoint before and after the step."""

    def __init__(self, steps: list[Step]):
        self.steps = steps

    def __iter__(self) -> Any:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        lines = []
        for s in self.steps:
            lines.append(f"step {s.position}: {s.expression}   (adjoint {summary(s.adjoint)})")
            for target, rule, contribution, before, after in s.updates:
                was = "0 (first contribution)" if before is None else summary(before)
                lines.append(
                    f"    {target} += {rule} = {summary(contribution)}:  {was} -> {summary(after)}"
                )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = []
        for s in self.steps:
            for k, (target, rule, contribution, before, after) in enumerate(s.updates):
                first = (
                    f"<td rowspan='{len(s.updates)}'>{s.position}</td>"
                    f"<td rowspan='{len(s.updates)}'><code>{html.escape(s.expression)}</code></td>"
                    if k == 0
                    else ""
                )
                was = "0" if before is None else summary(before)
                rows.append(
                    f"<tr>{first}<td><code>{html.escape(target)} += {html.escape(rule)}</code></td>"
                    f"<td>{html.escape(was)}</td><td>{html.escape(summary(contribution))}</td>"
                    f"<td>{html.escape(summary(after))}</td></tr>"
                )
        head = (
            "<tr><th>step</th><th>op</th><th>update</th><th>before</th>"
            "<th>contribution</th><th>after</th></tr>"
        )
        return f"<table>{head}{''.join(rows)}</table>"


def replay(output: Tensor, grad: Any = None) -> Replay:
    """The reverse sweep from ``output`` as a list of steps (see ``Replay``)."""
    graph = build_graph(output, grad)
    if not graph.edges:
        raise ValueError("replay needs an output that requires grad (and grad= if not scalar)")
    return Replay(_steps(graph, _names(graph)))


# --- tangent trace (forward mode) -----------------------------------------------------------------

DOT = "̇"  # combining dot above: v1̇ is the tangent of v1, as v1̄ is its adjoint


def _width(text: str) -> int:
    """Columns on screen: a combining dot or bar takes none."""
    return sum(not unicodedata.combining(c) for c in text)


@dataclass
class TangentRow:
    """One line of the tangent trace: a primal row and its tangent, one value per seed."""

    primal: Row
    tangent: str  # the tangent's formula, e.g. "l1̇ * l2 + l2̇ * l1"
    values: list[np.ndarray]  # one per tangent column (seed)


class TangentTrace:
    """The forward (primal) trace with its tangent columns, in forward-mode notation: each
    ``vk̇`` is computed from the tangents of ``vk``'s inputs, in recording order, for each
    seed (``columns``: e.g. ``x1̇ = 1`` for the derivative with respect to ``x1``)."""

    def __init__(self, rows: list[TangentRow], columns: list[str]):
        self.rows = rows
        self.columns = columns

    def _cells(self) -> list[list[str]]:
        header = ["", "", "value", "", "tangent", *self.columns]
        body = [
            [r.primal.variable, r.primal.expression, summary(r.primal.value),
             r.primal.variable + DOT, r.tangent, *(summary(v) for v in r.values)]
            for r in self.rows
        ]  # fmt: skip
        return [header, *body]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(_width(line[i]) for line in cells) for i in range(len(cells[0]))]
        lines = ["forward (primal) trace with tangents"]
        for line in cells:
            padded = (c + " " * (w - _width(c)) for c, w in zip(line, widths, strict=True))
            lines.append("  ".join(padded))
        return "\n".join(line.rstrip() for line in lines)

    def _repr_html_(self) -> str:
        header, *body = self._cells()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in body
        )
        return f"<h4>forward (primal) trace with tangents</h4><table><tr>{head}</tr>{rows}</table>"


def _tangent_formula(graph: Graph, names: dict, record: Record) -> str:
    """vk̇ as the sum over the inputs that can move: for scalars each term is the VJP rule
    with g replaced by the input's tangent (a 1 x 1 Jacobian is its own transpose), else
    the chain rule written out, ∂vk/∂vi·vi̇."""
    out = names[("record", id(record))]
    scalar = record.out.size == 1 and all(t.size == 1 for t in record.inputs)
    terms = []
    for i, t in enumerate(record.inputs):
        if not t.requires_grad:  # a constant: its tangent is 0
            continue
        dot = _operand(graph, names, t) + DOT
        term = _rule(graph, names, record, i, g=dot) if scalar else None
        terms.append(term or f"∂{out}/∂{_operand(graph, names, t)}·{dot}")
    return " + ".join(terms).replace("+ -", "- ") or "0"


def _seeds(graph: Graph, names: dict, tangents: Any) -> tuple[list[dict], list[str]]:
    """One {leaf key: tangent array} per column, and the columns' labels."""
    leaves = {key: graph.tensors[key].tensor for key in names if key[0] == "tensor"}
    if tangents is None:  # one column per input that requires grad: its partial derivatives
        inputs = [key for key, t in leaves.items() if t.requires_grad]
        labels = [(leaves[key].name or names[key]) + DOT + " = 1" for key in inputs]
        return [{key: np.ones_like(leaves[key].data)} for key in inputs], labels
    several = isinstance(tangents, (list, tuple))
    columns = list(tangents) if several else [tangents]
    seeds = []
    for column in columns:
        if not isinstance(column, dict):
            raise TypeError(
                "tangent_trace: tangents must be a dict {input tensor: tangent}, a list of"
                f" such dicts, or None; got {type(column).__name__}"
            )
        seed = {}
        for t, u in column.items():
            key = graph.key(t) if isinstance(t, Tensor) else None
            if key not in leaves or not t.requires_grad:
                raise ValueError(
                    "tangent_trace: every key of tangents must be an input tensor of the"
                    f" output that requires grad; {t!r} is not"
                )
            seed[key] = np.asarray(u, dtype=t.dtype)
            if seed[key].shape != t.shape:
                raise ValueError(
                    f"tangent_trace: the tangent of {t.name or names[key]} has shape"
                    f" {seed[key].shape}, the input has shape {t.shape}; they must be equal"
                )
        seeds.append(seed)
    return seeds, [f"u{k}" for k in range(1, len(seeds) + 1)] if several else ["u"]


def tangent_trace(output: Tensor, tangents: Any = None) -> TangentTrace:
    """The forward (primal) trace of ``output`` with tangent columns: forward mode, op by op.

    ``tangents`` gives the inputs' tangents (seeds): a dict ``{input: tangent}`` (inputs
    left out get 0) for one column, a list of dicts for several, or None for one column
    per input that requires grad, seeded with ones (for scalar inputs, the partial
    derivatives: the last row holds the gradient, entry by entry). Each ``vk̇`` is
    ``microbbb.jvp`` of ``vk``'s op at its recorded inputs, so it uses the same VJPs as
    the reverse trace of ``trace_table``.
    """
    if output.record is None:
        raise ValueError("tangent_trace needs an output computed by recorded ops")
    graph = build_graph(output)
    names = _names(graph)
    seeds, labels = _seeds(graph, names, tangents)
    rows, tangent = [], {}  # tangent: node key -> its tangent, one array per column
    for key in (k for k in names if k[0] == "tensor"):
        t = graph.tensors[key].tensor
        tangent[key] = [seed.get(key, np.zeros_like(t.data)) for seed in seeds]
        formula = (t.name or names[key]) + DOT if t.requires_grad else "0 (constant)"
        rows.append(TangentRow(Row(names[key], t.name or "input", t.data), formula, tangent[key]))
    for r in graph.records:  # in recording order: each tangent from its inputs' tangents
        key = ("record", id(r))
        tangent[key] = [_push(graph, r, tangent, c) for c in range(len(seeds))]
        primal = Row(names[key], _expression(graph, names, r), r.out)
        rows.append(TangentRow(primal, _tangent_formula(graph, names, r), tangent[key]))
    return TangentTrace(rows, labels)


def _push(graph: Graph, record: Record, tangent: dict, column: int) -> np.ndarray:
    """The output tangent of ``record`` for one column: ``jvp`` of its op at its recorded
    inputs, with its inputs' tangents (0 for constants)."""
    us = tuple(
        tangent[graph.key(t)][column] if graph.key(t) in tangent else np.zeros_like(v)
        for t, v in zip(record.inputs, record.values, strict=True)
    )
    _, dot = jvp(lambda *xs: record.op(*xs, **record.params), tuple(record.values), us)
    return dot.data
