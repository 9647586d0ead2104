"""Watch backprop happen: one self-contained HTML page that steps through a recorded graph.

``explore(output)`` records nothing new and changes no ``.grad``: it reads the graph behind
``output`` (``build_graph``: the tape and every gradient share of the reverse sweep), computes
every number the page shows here in Python, and writes them into the page as JSON next to a
small script that only displays them. The page steps forward through the tape record by
record (each op's value appears), then backward (the adjoint ``ḡ`` flows along each edge, the
op's VJP rule is shown with the numbers put in, and the adjoint table grows) until every
leaf shows its gradient. Arrow keys or the buttons step; clicking a box shows its value and
gradient. For a Bayes by Backprop loss a parameter (mu or rho) can be chosen: its two paths
are highlighted and the paper's split of its gradient is shown (``bbb_split``).

Scopes are groups drawn as frames; a large graph starts with its nested scopes folded (one
box each), and clicking a group's title folds or unfolds it. The layout is computed here by
Graphviz's ``dot`` for the starting view and for each view one click away from it.

No server and no network: the page's script and styles are inline. In Jupyter the returned
``Explorer`` shows itself (an iframe); ``Explorer.save(path)`` writes the file.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from importlib import resources
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..engine.extend import Record, Tensor
from .attribution import bbb_split
from .explorer_layout import Box, Link, layout
from .graph import Graph, build_graph, input_names, magnitude, summary
from .tables import _expression, _inline, _names, _operand, _rule, _steps

FULL = 128  # arrays with at most this many entries are written out in full
INLINE = 4  # ... and with at most this many are put into the rules' formulas
FOLD_AFTER = 40  # a graph with more records than this starts with its nested scopes folded
BBB_PARTS = ("weight_mu", "bias_mu", "weight_rho", "bias_rho")


class Explorer:
    """The page made by ``explore``: ``html`` (the file's text), ``path`` (where it was
    written, or None), ``save(path)``; in Jupyter it shows itself inline."""

    def __init__(self, page: str, path: str | None = None):
        self.html = page
        self.path = path

    def save(self, path: str | os.PathLike) -> str:
        """Write the page to ``path`` (one self-contained .html file); return the path."""
        path = os.fspath(path)
        if not path.lower().endswith((".html", ".htm")):
            raise ValueError(f"save: the file must end in .html, got {path!r}")
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.html)
        self.path = path
        return path

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;'
            'height:820px;border:1px solid #bbb" title="microbbb explorer"></iframe>'
        )

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"<microbbb explorer, {len(self.html) / 1e6:.2f} MB{where}>"


def explore(
    output: Tensor,
    path: str | os.PathLike | None = None,
    grad: Any = None,
    collapse: list[str] | tuple[str, ...] | None = None,
    title: str | None = None,
) -> Explorer:
    """The step-by-step explorer of the graph behind ``output`` (see the module docstring).

    ``path``: also write the page there (.html). ``grad``: the adjoint of a non-scalar
    output (a scalar output needs none). ``collapse``: the scopes to fold at the start
    (default: the nested ones, when the graph has more than 40 records). ``title``: the
    page's heading.
    """
    if not isinstance(output, Tensor):
        raise TypeError(
            f"explore: output must be a microbbb Tensor, got {type(output).__name__};"
            " pass the tensor whose graph you want to watch (e.g. the loss)"
        )
    if output.record is None:
        raise ValueError(
            "explore: output has no recorded graph (it is a leaf, or was computed without"
            " grad): compute it from tensors with requires_grad=True, outside no_grad()"
        )
    if output.requires_grad and output.size != 1 and grad is None:
        raise ValueError(
            f"explore: output has shape {output.shape}; pass grad= (its adjoint, same shape)"
            " or explore a scalar such as output.sum()"
        )
    if isinstance(collapse, str) or not (
        collapse is None or all(isinstance(s, str) for s in collapse)
    ):
        raise TypeError(
            f"explore: collapse must be a list of scope names, e.g. ['layer1/log_q'], got"
            f" {collapse!r}"
        )
    data = page_data(output, grad, collapse, title)
    page = render(data)
    result = Explorer(page)
    if path is not None:
        result.save(path)
    return result


# --- numbers ----------------------------------------------------------------------------------


def _number(v: float) -> float | str:
    v = float(v)
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return float(f"{v:.9g}")


def array(a: Any) -> dict[str, Any]:
    """An array for the page: shape, a short text, and the entries when there are few."""
    a = np.asarray(a, dtype=float)
    out: dict[str, Any] = {"shape": list(a.shape), "text": summary(a, 4), "short": _brief(a)}
    if a.size <= FULL:
        out["values"] = [_number(v) for v in a.ravel()]
    else:
        finite = a[np.isfinite(a)]
        out["norm"] = _number(np.linalg.norm(finite)) if finite.size else "NaN"
    return out


def _short(a: Any) -> str:
    """A value written into a formula: the numbers when few, else its shape."""
    a = np.asarray(a)
    if a.size <= INLINE:
        return summary(a, 4)
    return "⟨" + "×".join(str(n) for n in a.shape) + "⟩"


def _substituted(
    graph: Graph, names: dict, record: Record, index: int, g: np.ndarray
) -> tuple[str, list[str]]:
    """The rule of input ``index`` with numbers in place of its letters (a large array keeps
    its trace name, with its shape), and what those large arrays hold."""
    rule = record.op.rules[min(index, len(record.op.rules) - 1)]
    out_name = names[("record", id(record))]
    words = {"g": (out_name + "\u0304", g), "out": (out_name, record.out)}
    for name, t, value in zip(
        input_names(record.op, len(record.inputs)), record.inputs, record.values, strict=False
    ):
        words[name] = (names.get(graph.key(t), name), value)
    where: list[str] = []

    def put(match: re.Match) -> str:
        word = match.group(0)
        if word not in words:
            return word
        name, value = words[word][0], np.asarray(words[word][1])
        if value.size <= INLINE:
            return _short(value)
        line = f"{name} {_short(value)}: {summary(value, 4)}"
        if line not in where:
            where.append(line)
        return name + _short(value)

    return re.sub(r"\b[A-Za-z_]\w*\b", put, rule), where


# --- the page's data ---------------------------------------------------------------------------


def page_data(output: Tensor, grad: Any, collapse: Any, title: str | None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-ready data."""
    graph = build_graph(output, grad)
    names = _names(graph)
    tensors, boxes, ids = _tensors(graph, names)
    records, links = _records(graph, names, ids, boxes)
    backward = _backward(graph, names, ids)
    scopes = sorted({b.scope for b in boxes if b.scope} | _all_parents(b.scope for b in boxes))
    if collapse is None:
        collapse = [s for s in scopes if "/" in s] if len(graph.records) > FOLD_AFTER else []
    unknown = [s for s in collapse if s not in scopes]
    if unknown:
        raise ValueError(f"explore: collapse names scopes that are not in the graph: {unknown}")
    start = frozenset(collapse)
    views = {_view_key(start): layout(boxes, links, start)}
    for scope in scopes:  # every view one click away from the start
        view = start ^ {scope}
        views.setdefault(_view_key(view), layout(boxes, links, view))
    return {
        "title": title or f"the graph behind {output.name or 'the output'}",
        "tensors": tensors,
        "records": records,
        "backward": backward,
        "leaves": [t["id"] for t in tensors if t["leaf"] and t["grad"] is not None],
        "output": ids[graph.key(output)],
        "scopes": scopes,
        "start": _view_key(start),
        "views": views,
        "bbb": _bbb(output, graph, ids),
        "full": FULL,
    }


def _all_parents(scopes: Any) -> set[str]:
    found = set()
    for scope in scopes:
        parts = scope.split("/") if scope else []
        found |= {"/".join(parts[:n]) for n in range(1, len(parts))}
    return found


def _view_key(folded: frozenset[str]) -> str:
    return "|".join(sorted(folded))


def _tensors(graph: Graph, names: dict) -> tuple[list[dict], list[Box], dict]:
    tensors, boxes, ids = [], [], {}
    used = {graph.key(t) for r in graph.records for t in r.inputs if not _inline(graph, t)}
    used |= {("record", id(r)) for r in graph.records}
    for key, node in graph.tensors.items():
        if key not in used or key not in names:
            continue
        ident = f"t{len(tensors)}"
        ids[key] = ident
        leaf = node.tensor.record is None
        grad = node.tensor.grad if leaf and node.tensor.requires_grad else None
        entry = {
            "id": ident,
            "v": names[key],
            "name": node.name,
            "kind": node.kind,
            "scope": node.scope or "",
            "shape": list(node.value.shape),
            "value": array(node.value),
            "leaf": leaf,
            "grad": None if node.adjoint is None else array(node.adjoint),
            "dotgrad": None if grad is None else array(grad),
            "grad_note": _grad_note(node.adjoint, grad) if leaf else "",
        }
        tensors.append(entry)
        lines = [
            f"{names[key]}  {node.name}" if node.name else names[key],
            _shape_line(node.kind, node.value),
        ]
        entry["lines"] = list(lines)
        lines += ["= " + _brief(node.value), "= ? (not computed yet)", "ḡ = ? (waiting)"]
        if node.adjoint is not None:  # as wide as the widest adjoint the sweep can show
            widest = ("-1.234e-05", "[-1.234e-05, -1.234e-05]", "mean -1.234e-05, norm 1.234e+05")
            lines.append("ḡ = " + widest[min(node.value.size, 3) - 1])
        boxes.append(Box(ident, node.scope or "", lines[:2] + [max(lines[2:], key=len)], "tensor"))
    return tensors, boxes, ids


def _grad_note(adjoint: np.ndarray | None, grad: np.ndarray | None) -> str:
    """Whether the leaf's ``.grad`` holds the adjoint the page shows."""
    if adjoint is None:
        return ""
    if grad is None:
        return "no .grad yet (backward not called)"
    if np.array_equal(adjoint, grad) or np.allclose(adjoint, grad, rtol=1e-12, atol=0):
        return "= .grad"
    diff = float(np.abs(np.asarray(grad) - adjoint).max())
    return f".grad differs (max |diff| {diff:.3g}): more than one backward added to it?"


def _shape_line(kind: str, a: np.ndarray) -> str:
    shape = f"({', '.join(str(n) for n in a.shape)})" if a.ndim else "scalar"
    return shape if kind == "intermediate" else f"{kind}, {shape}"


def _brief(a: np.ndarray) -> str:
    """What a box says about an array: the number(s) when at most 2, else mean and norm."""
    a = np.asarray(a, dtype=float)
    if a.size <= 2:
        return summary(a, 4)
    finite = a[np.isfinite(a)]
    if finite.size < a.size:
        return f"{a.size - finite.size} not finite of {a.size}"
    return f"mean {_fmt(float(a.mean()))}, norm {_fmt(float(np.linalg.norm(a)))}"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _records(graph: Graph, names: dict, ids: dict, boxes: list[Box]) -> tuple[list, list]:
    records, links = [], []
    for k, record in enumerate(graph.records):
        out_id = ids[("record", id(record))]
        op_id = f"o{k}"
        expression = f"{names[('record', id(record))]} = {_expression(graph, names, record)}"
        records.append(
            {
                "id": op_id,
                "op": record.op.name,
                "out": out_id,
                "expression": expression,
                "scope": record.scope or "",
                "inputs": [ids.get(graph.key(t)) for t in record.inputs],
                "rules": _rules(graph, names, record),
            }
        )
        boxes.append(Box(op_id, record.scope or "", [expression], "op"))
        links.append(Link(f"{op_id}>out", op_id, out_id))
        for i, t in enumerate(record.inputs):
            source = ids.get(graph.key(t))
            if source is not None:
                label = "ḡ ‖0.000e+00‖" if t.requires_grad else ""
                links.append(Link(f"{op_id}:{i}", source, op_id, label))
    return records, links


def _rules(graph: Graph, names: dict, record: Record) -> list[str]:
    """The op's VJP rules for the inputs that need a gradient, in its letters and in trace names."""
    rules = []
    for i, (name, t) in enumerate(
        zip(input_names(record.op, len(record.inputs)), record.inputs, strict=True)
    ):
        if t.requires_grad:
            rule = record.op.rules[min(i, len(record.op.rules) - 1)]
            here = f"{_operand(graph, names, t)}\u0304 += {_rule(graph, names, record, i)}"
            rules.append(f"{name}\u0304 += {rule}   (here {here})")
    return rules


def _backward(graph: Graph, names: dict, ids: dict) -> list[dict]:
    """The reverse sweep as steps: the seed, then one step per record that got a gradient."""
    if not graph.edges:
        return []
    root = graph.tensors[graph.key(graph.output)]
    seed = {
        "title": f"seed: {names[root.key]}̄ = d{names[root.key]}/d{names[root.key]}",
        "record": None,
        "g": array(root.adjoint),
        "updates": [
            {
                "target": ids[root.key],
                "edge": None,
                "lhs": f"{names[root.key]}̄",
                "rule": "1 (seed)",
                "numbers": summary(root.adjoint, 4),
                "where": [],
                "contribution": array(root.adjoint),
                "after": array(root.adjoint),
                "flow": magnitude(root.adjoint),
            }
        ],
    }
    positions = {id(r): k for k, r in enumerate(graph.records)}
    shares = {(id(e.record), e.index): e for e in graph.edges}
    steps = [seed]
    for step in _steps(graph, names):
        record, k = step.record, positions[id(step.record)]
        edges = [e for e in graph.edges if e.record is record]
        updates = []
        for edge, (lhs, rule, contribution, _, after) in zip(edges, step.updates, strict=True):
            numbers, where = _substituted(graph, names, record, edge.index, edge.g)
            share = shares[(id(record), edge.index)]
            text = f"{numbers} = {summary(contribution, 4)}"
            if share.summed:
                text += f"  (Σ over the broadcast axes, to shape {tuple(contribution.shape)})"
            updates.append(
                {
                    "target": ids[graph.key(record.inputs[edge.index])],
                    "edge": f"o{k}:{edge.index}",
                    "lhs": lhs,
                    "rule": rule,
                    "numbers": text,
                    "where": where,
                    "contribution": array(contribution),
                    "after": array(after),
                    "flow": magnitude(contribution),
                }
            )
        steps.append(
            {
                "title": step.expression,
                "record": f"o{k}",
                "g": array(step.adjoint),
                "updates": updates,
            }  # fmt: skip
        )
    return steps


# --- Bayes by Backprop --------------------------------------------------------------------------


def _bbb(output: Tensor, graph: Graph, ids: dict) -> list[dict]:
    """For each BayesianLinear parameter in the graph (found by its name, ``layerN.weight_mu``
    ...): its two paths and the paper's split of its gradient, from ``bbb_split``. None for
    the estimators "local" and "flipout": the split describes the plain one (bbb_split)."""
    if not graph.edges or getattr(output, "estimator", "reparam") != "reparam":
        return []
    leaves: dict[str, dict[str, Tensor]] = {}
    for key, node in graph.tensors.items():
        if node.tensor.record is None and node.tensor.requires_grad and key in ids:
            prefix, _, part = node.name.rpartition(".")
            if part in BBB_PARTS:
                leaves.setdefault(prefix, {})[part] = node.tensor
    found = []
    for parts in leaves.values():
        if set(parts) != set(BBB_PARTS):
            continue
        split = bbb_split(output, SimpleNamespace(**parts))
        for part in BBB_PARTS:
            param = parts[part]
            through_w, direct = _paths(graph, param)
            found.append(
                {
                    "name": param.name,
                    "tensor": ids[graph.key(param)],
                    "kind": part.split("_")[1],
                    "through_w": array(split[part]["through_w"]),
                    "direct": array(split[part]["direct"]),
                    "total": array(split[part]["total"]),
                    "path_w": sorted(through_w),
                    "path_direct": sorted(direct),
                }
            )
    return found


def _paths(graph: Graph, param: Tensor) -> tuple[set[str], set[str]]:
    """The logical edges from ``param`` to the output through the sampled weights w (via
    ``reparameterize``) and directly (every other consumer, e.g. log q)."""
    consumers: dict[tuple, list[tuple[int, Record, int]]] = {}
    for k, record in enumerate(graph.records):
        for i, t in enumerate(record.inputs):
            consumers.setdefault(graph.key(t), []).append((k, record, i))
    start = graph.key(param)
    chain = [start]  # through softplus for rho: param -> sigma
    first: list[str] = []
    while len(consumers.get(chain[-1], [])) == 1:
        k, record, i = consumers[chain[-1]][0]
        if record.op.name == "reparameterize" or not record.inputs[i].requires_grad:
            break
        first += [f"o{k}:{i}", f"o{k}>out"]
        chain.append(("record", id(record)))
    through_w, direct = set(first), set(first)
    for k, record, i in consumers.get(chain[-1], []):
        target = through_w if record.op.name == "reparameterize" else direct
        target.add(f"o{k}:{i}")
        target |= _downstream(graph, consumers, ("record", id(record)), k)
    return through_w, direct


def _downstream(graph: Graph, consumers: dict, key: tuple, k: int) -> set[str]:
    """Every logical edge from record ``k``'s output onwards."""
    found, stack, seen = {f"o{k}>out"}, [key], {key}
    while stack:
        for j, record, i in consumers.get(stack.pop(), []):
            found |= {f"o{j}:{i}", f"o{j}>out"}
            out = ("record", id(record))
            if out not in seen:
                seen.add(out)
                stack.append(out)
    return found


# --- the page -----------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return resources.files("microbbb.viz").joinpath("explorer_page", name).read_text("utf-8")


def render(data: dict[str, Any]) -> str:
    """The page: the template with its styles, script and the data put in."""
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    payload = payload.replace("</", "<\\/")
    page = _asset("page.html")
    for name, text in (
        ("/*STYLE*/", _asset("explorer.css")),
        ("/*SCRIPT*/", _asset("explorer.js")),
        ("/*DATA*/", payload),
    ):
        page = page.replace(name, text, 1)
    page = page.replace("<!--TITLE-->", html.escape(data["title"]))
    return page
