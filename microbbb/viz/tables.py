"""Evaluation-trace tables and a step-by-step replay of the backward pass.

``trace_table(output)`` lists the forward (primal) trace and the reverse (adjoint) trace in
the notation of the automatic-differentiation literature: inputs are ``v-1, v0`` (numbered
up to 0 in order of first use), each recorded op gives the next ``v1, v2, ...``; the reverse
trace lists, newest op first, each contribution ``v̄k += <rule>`` with its value and the
adjoint after it. Unnamed scalar constants are written inline. Both traces print as text
and show as HTML in Jupyter.

``replay(output)`` walks the same reverse sweep one op at a time and shows, for each input
of that op, its adjoint before and after the step.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import Record, Tensor
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
    """v-names: leaves numbered up to 0 in order of first use, then one per record."""
    leaves: list[tuple] = []
    for record in graph.records:
        for t in record.inputs:
            key = graph.key(t)
            if t.record is None and key not in leaves and not _inline(graph, t):
                leaves.append(key)
    names = {key: f"v{i - len(leaves) + 1}" for i, key in enumerate(leaves)}
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


def _rule(graph: Graph, names: dict, record: Record, i: int) -> str:
    """The VJP formula with the op's variables replaced by their v-names."""
    rule = record.op.rules[min(i, len(record.op.rules) - 1)]
    words = {"g": names[("record", id(record))] + "̄", "out": names[("record", id(record))]}
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
