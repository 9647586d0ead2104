"""Drawing the computation graph behind a tensor, with values and the gradients that flowed.

``draw(output)`` returns a ``graphviz.Digraph``: one box per tensor (name, shape, value,
adjoint), one ellipse per op (its name and its backward rules, e.g. ``x̄ += g * y``), edges
from inputs to ops labelled with the gradient that flowed back along them (the value when
scalar, the norm otherwise). Parameters, noise (the eps a Bayesian layer draws and marks
as ``Noise``), data and constants are styled differently, with a legend; edges where
broadcasting summed a gradient are marked ``Σ``; tensors cut off by ``detach()`` or
``no_grad()`` are drawn with a dashed ``✂`` edge instead of being dropped; NaN and inf are
red. Groups made with ``microbbb.scope`` become clusters, and ``collapse=[...]`` folds a
group into one box.

In Jupyter the returned graph displays itself; ``save(graph, "g.svg")`` (or .png, .pdf)
renders it through Graphviz's ``dot`` program. The gradients come from
``microbbb.engine.adjoint_flow``: drawing never changes any ``.grad``.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Any

import graphviz
import numpy as np

from ..bbb import Noise
from ..engine import Edge, Primitive, Record, Tensor, adjoint_flow, tape

STYLE = {  # kind -> graphviz node attributes
    "param": {"shape": "box", "style": "filled,rounded", "fillcolor": "#cfe2ff"},
    "noise": {"shape": "box", "style": "filled,rounded", "fillcolor": "#ffe5b4"},
    "data": {"shape": "box", "style": "filled", "fillcolor": "#e9ecef"},
    "constant": {"shape": "box", "style": "filled", "fillcolor": "#f8f9fa", "fontsize": "9"},
    "intermediate": {"shape": "box", "style": "rounded"},
    "output": {"shape": "box", "style": "filled,rounded,bold", "fillcolor": "#d1e7dd"},
    "cut": {"shape": "box", "style": "dashed,rounded"},
    "op": {"shape": "ellipse", "style": "filled", "fillcolor": "#fff3cd", "fontsize": "10"},
    "group": {"shape": "box3d", "style": "filled", "fillcolor": "#e2d9f3"},
}
LEGEND = {
    "param": "parameter (mu, rho, ...)",
    "noise": "noise (eps)",
    "data": "data",
    "constant": "constant",
    "intermediate": "intermediate",
    "output": "output",
    "cut": "cut by detach / no_grad",
    "op": "op: backward rules",
}
RED = "#d62728"
BROADCAST = "#6f42c1"


@dataclass
class TensorNode:
    """A tensor in the drawing: its value, its adjoint, and what kind of tensor it is."""

    key: tuple
    tensor: Tensor
    kind: str
    name: str
    value: np.ndarray
    adjoint: np.ndarray | None = None
    scope: str | None = None


@dataclass
class Graph:
    """The graph behind an output, as plain data: drawn by ``draw``, read by the tables."""

    output: Tensor
    tensors: dict[tuple, TensorNode] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)  # in recording order
    edges: list[Edge] = field(default_factory=list)  # gradient contributions, in order
    cuts: list[tuple[tuple, tuple, str]] = field(default_factory=list)  # source, cut, label

    def key(self, t: Tensor) -> tuple:
        """Node key: the record for computed tensors (shared by views), else the tensor."""
        return ("record", id(t.record)) if t.record is not None else ("tensor", id(t))

    def output_node(self, record: Record) -> TensorNode:
        """The tensor node that ``record`` produced."""
        return self.tensors[("record", id(record))]


def input_names(op: Primitive, n_inputs: int) -> list[str]:
    """The names the VJPs give their inputs (``x``, ``y``, ``mu``, ``sigma`` ...)."""
    try:
        params = list(inspect.signature(op.vjps[0]).parameters)
    except (TypeError, ValueError, IndexError, KeyError):
        params = []
    names = [p for p in params[3:] if p not in ("args", "params", "xs")][:n_inputs]
    if len(names) < n_inputs:
        names = [f"x{i}" for i in range(n_inputs)]
    return names


def build_graph(output: Tensor, grad: Any = None) -> Graph:
    """Collect the tensors, records, gradient flow and cuts behind ``output``."""
    graph = Graph(output)
    if output.record is not None:
        graph.records = tape(output)
    _add_tensor(graph, output, "output")
    made_by = {id(t.record): t for r in graph.records for t in r.inputs if t.record is not None}
    for record in graph.records:
        made = made_by.get(id(record), graph.output if record is output.record else None)
        _add_tensor(graph, made if made is not None else Tensor.wrap(record.out, record), None)
        for t in record.inputs:
            _add_tensor(graph, t, None)
    if output.requires_grad and (output.size == 1 or grad is not None):
        graph.edges = adjoint_flow(output, grad)
        _fill_adjoints(graph, grad)
    for node in list(graph.tensors.values()):
        _add_cut(graph, node)
    _place_leaves(graph)
    return graph


def _add_tensor(graph: Graph, t: Tensor, kind: str | None) -> None:
    key = graph.key(t)
    if key in graph.tensors:
        return
    if kind is None:
        kind = _leaf_kind(t) if t.record is None else "intermediate"
    name = t.name or ""
    scope = t.record.scope if t.record is not None else None
    graph.tensors[key] = TensorNode(key, t, kind, name, t.data, scope=scope)


def _leaf_kind(t: Tensor) -> str:
    if t.cut is not None:
        return "cut"
    if t.requires_grad:
        return "param"
    if isinstance(t, Noise):
        return "noise"
    return "constant" if t.size == 1 else "data"


def _fill_adjoints(graph: Graph, grad: Any) -> None:
    root = graph.tensors[graph.key(graph.output)]
    root.adjoint = np.ones_like(root.value) if grad is None else np.asarray(grad)
    for edge in graph.edges:
        node = graph.tensors[graph.key(edge.record.inputs[edge.index])]
        node.adjoint = (
            edge.contribution if node.adjoint is None else node.adjoint + edge.contribution
        )


def _add_cut(graph: Graph, node: TensorNode) -> None:
    cut = node.tensor.cut
    if cut is None:
        return
    node.kind = "cut" if node.tensor.record is None else node.kind
    for ref in cut.sources:
        source = ref()
        label = "✂ detach" if cut.reason == "detach" else f"✂ no_grad ({cut.op})"
        if source is None:
            continue  # the source is gone (garbage): nothing to point at
        key = graph.key(source)
        if key not in graph.tensors:
            _add_tensor(graph, source, None)
        graph.cuts.append((key, node.key, label))


def _place_leaves(graph: Graph) -> None:
    """Put each leaf in the innermost group that holds all of its consumers."""
    consumers: dict[tuple, list[str]] = {}
    for record in graph.records:
        for t in record.inputs:
            consumers.setdefault(graph.key(t), []).append(record.scope or "")
    for key, node in graph.tensors.items():
        if node.tensor.record is None and key in consumers:
            common = os.path.commonprefix([s.split("/") for s in consumers[key]])
            node.scope = "/".join(common) or None


# --- labels ----------------------------------------------------------------------------------


def _fmt(x: float, digits: int = 4) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.{digits}g}"


def summary(a: np.ndarray, digits: int = 4) -> str:
    """The values when there are at most 4, else mean and range; NaN and inf counted."""
    a = np.asarray(a)
    if a.size <= 4:
        values = ", ".join(_fmt(float(v), digits) for v in a.ravel())
        return values if a.ndim == 0 else f"[{values}]"
    finite = a[np.isfinite(a)]
    if finite.size:
        low, high = _fmt(float(finite.min()), digits), _fmt(float(finite.max()), digits)
        text = f"mean {_fmt(float(finite.mean()), digits)} in [{low}, {high}]"
    else:
        text = "no finite value"
    bad = a.size - finite.size
    return text + (f", {bad} not finite" if bad else "")


def magnitude(a: np.ndarray) -> str:
    """A scalar gradient as its value, a larger one as its norm."""
    a = np.asarray(a)
    if a.size == 1:
        return _fmt(float(a.ravel()[0]))
    if not np.isfinite(a).all():
        return f"{int((~np.isfinite(a)).sum())} not finite"
    return f"‖{_fmt(float(np.linalg.norm(a)), 3)}‖"


def _finite(a: np.ndarray | None) -> bool:
    return a is None or bool(np.isfinite(a).all())


def _tensor_label(node: TensorNode) -> str:
    title = node.name or ("output" if node.kind == "output" else "")
    if node.kind == "constant" and not node.name:
        return summary(node.value)
    lines = [title] if title else []
    kind = "" if node.kind in ("intermediate", "output") else node.kind + ", "
    lines.append(f"{kind}shape {tuple(node.value.shape)}")
    lines.append(f"value {summary(node.value, 3)}")
    if node.adjoint is not None:
        lines.append(f"grad {summary(node.adjoint, 3)}")
    return "\n".join(lines)


def _tooltip(node: TensorNode) -> str:
    def full(a: np.ndarray) -> str:
        return np.array2string(np.asarray(a), precision=6, threshold=400, max_line_width=80)

    text = f"{node.name or node.kind} shape {tuple(node.value.shape)}\nvalue:\n{full(node.value)}"
    if node.adjoint is not None:
        text += f"\ngradient (adjoint):\n{full(node.adjoint)}"
    return text


def _inlined(node: TensorNode) -> bool:
    """Unnamed scalar constants are written into their op's label, not drawn as nodes."""
    return node.kind == "constant" and not node.name and node.tensor.cut is None


def _op_label(graph: Graph, record: Record) -> str:
    names = input_names(record.op, len(record.inputs))
    lines = [record.op.name]
    params = {k: v for k, v in record.params.items() if k not in ("cond", "index", "bounds")}
    if params:
        lines[0] += "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
    for i, t in enumerate(record.inputs):
        if t.requires_grad:
            rule = record.op.rules[min(i, len(record.op.rules) - 1)]
            lines.append(f"{names[i]}̄ += {rule}")
    constants = [
        f"{names[i]} = {summary(t.data)}"
        for i, t in enumerate(record.inputs)
        if _inlined(graph.tensors[graph.key(t)])
    ]
    if constants:
        lines.append("(" + ", ".join(constants) + ")")
    return "\n".join(lines)


# --- drawing ----------------------------------------------------------------------------------


def draw(
    output: Tensor,
    grad: Any = None,
    collapse: list[str] | tuple[str, ...] = (),
    color_by_grad: bool = False,
    legend: bool = True,
    rankdir: str = "TB",
) -> graphviz.Digraph:
    """The graph behind ``output`` as a ``graphviz.Digraph`` (see the module docstring).

    ``grad``: the adjoint of a non-scalar output (scalars need none); gradients are only
    shown when the output requires grad. ``collapse``: scope names to fold into one box
    each. ``color_by_grad``: fill tensors by log10 of their gradient's size.
    """
    graph = build_graph(output, grad)
    dot = graphviz.Digraph(
        graph_attr={
            "rankdir": rankdir,
            "fontname": "Helvetica",
            "fontsize": "10",
            "nodesep": "0.12",
            "ranksep": "0.3",
        },
        node_attr={"fontname": "Helvetica", "fontsize": "9", "margin": "0.05,0.03"},
        edge_attr={"fontname": "Helvetica", "fontsize": "8"},
    )
    folded = _folded(graph, collapse)
    ids = {key: f"t{n}" for n, key in enumerate(graph.tensors)}
    op_ids = {id(r): f"op{n}" for n, r in enumerate(graph.records)}
    colors = _gradient_colors(graph) if color_by_grad else {}
    clusters: dict[str | None, list[tuple[str, dict[str, str]]]] = {}

    for key, node in graph.tensors.items():
        if node.tensor.record is not None and id(node.tensor.record) in folded:
            continue  # inside a collapsed group
        if _inlined(node):
            continue  # shown in its op's label instead
        attrs = dict(STYLE[node.kind], label=_tensor_label(node), tooltip=_tooltip(node))
        if key in colors:
            attrs.update(style="filled,rounded", fillcolor=colors[key])
        if not (_finite(node.value) and _finite(node.adjoint)):
            attrs.update(color=RED, fontcolor=RED, penwidth="2")
        clusters.setdefault(node.scope, []).append((ids[key], attrs))

    for record in graph.records:
        if id(record) in folded:
            continue
        attrs = dict(STYLE["op"], label=_op_label(graph, record), tooltip=_op_tooltip(record))
        clusters.setdefault(record.scope, []).append((op_ids[id(record)], attrs))
    for scope, count in _group_sizes(graph, folded).items():
        label = f"{scope}\n({count} ops, collapsed)"
        clusters.setdefault(_parent(scope), []).append(
            (_group_id(scope), dict(STYLE["group"], label=label))
        )

    _emit_clusters(dot, clusters)
    _emit_edges(dot, graph, ids, op_ids, folded)
    for source, target, label in graph.cuts:
        dot.edge(ids[source], ids[target], label=label, style="dashed", color=RED,
                 fontcolor=RED, arrowhead="tee")  # fmt: skip
    if legend:
        _emit_legend(dot)
    return dot


def _op_tooltip(record: Record) -> str:
    shapes = ", ".join(str(t.shape) for t in record.inputs)
    return f"{record.op.name}({shapes}) -> {record.out.shape}; scope {record.scope}"


def _folded(graph: Graph, collapse: Any) -> dict[int, str]:
    """record id -> the collapsed group that swallows it."""
    folded = {}
    for record in graph.records:
        for name in collapse:
            scope = record.scope or ""
            if scope == name or scope.startswith(name + "/"):
                folded[id(record)] = name
                break
    return folded


def _group_sizes(graph: Graph, folded: dict[int, str]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for name in folded.values():
        sizes[name] = sizes.get(name, 0) + 1
    return sizes


def _group_id(scope: str) -> str:
    return "group_" + "".join(c if c.isalnum() else "_" for c in scope)


def _parent(scope: str) -> str | None:
    return scope.rsplit("/", 1)[0] if "/" in scope else None


def _emit_clusters(dot: graphviz.Digraph, clusters: dict) -> None:
    """Nested scopes ("a/b") become nested clusters."""
    tree: dict[str, Any] = {}
    for scope in clusters:
        if scope:
            level = tree
            for part in scope.split("/"):
                level = level.setdefault(part, {})

    def emit(parent: graphviz.Digraph, path: str, children: dict) -> None:
        for name, grandchildren in children.items():
            full = f"{path}/{name}" if path else name
            with parent.subgraph(name="cluster_" + _group_id(full)) as sub:
                sub.attr(label=full, style="rounded,dashed", color="#888888", fontsize="11")
                for node_id, attrs in clusters.get(full, []):
                    sub.node(node_id, **attrs)
                emit(sub, full, grandchildren)

    for node_id, attrs in clusters.get(None, []):
        dot.node(node_id, **attrs)
    emit(dot, "", tree)


def _emit_edges(dot: graphviz.Digraph, graph: Graph, ids: dict, op_ids: dict, folded: dict):
    flows: dict[tuple[int, int], Edge] = {(id(e.record), e.index): e for e in graph.edges}
    seen: dict[tuple[str, str], list[Edge]] = {}
    for record in graph.records:
        target = _group_id(folded[id(record)]) if id(record) in folded else op_ids[id(record)]
        out_key = ("record", id(record))
        if id(record) not in folded:
            dot.edge(op_ids[id(record)], ids[out_key], arrowsize="0.6")
        names = input_names(record.op, len(record.inputs))
        for i, t in enumerate(record.inputs):
            source_key = graph.key(t)
            if _inlined(graph.tensors[source_key]):
                continue
            source_record = t.record
            if source_record is not None and id(source_record) in folded:
                source = _group_id(folded[id(source_record)])
            else:
                source = ids[source_key]
            if source == target:
                continue  # an edge inside a collapsed group
            edge = flows.get((id(record), i))
            if id(record) in folded or (source_record is not None and id(source_record) in folded):
                seen.setdefault((source, target), []).append(edge)
                continue
            dot.edge(source, target, **_edge_attrs(names[i], edge))
    for (source, target), edges in seen.items():  # merged edges into or out of groups
        flowing = [e for e in edges if e is not None]
        total = None
        if flowing and all(e.contribution.shape == flowing[0].contribution.shape for e in flowing):
            total = sum(e.contribution for e in flowing)
        attrs = {"style": "bold"}
        if total is not None:
            attrs["label"] = f"ḡ = {magnitude(total)}"
        dot.edge(source, target, **attrs)


def _edge_attrs(role: str, edge: Edge | None) -> dict[str, str]:
    if edge is None:
        return {"label": role, "color": "#999999", "fontcolor": "#777777"}
    attrs = {"label": f"{role}: ḡ = {magnitude(edge.contribution)}"}
    if edge.summed:
        attrs.update(label=attrs["label"] + "\nΣ broadcast", color=BROADCAST,
                     fontcolor=BROADCAST, penwidth="2")  # fmt: skip
    if not _finite(edge.contribution):
        attrs.update(color=RED, fontcolor=RED, penwidth="2")
    return attrs


def _gradient_colors(graph: Graph) -> dict[tuple, str]:
    sizes = {
        key: float(np.sqrt(np.mean(np.square(node.adjoint))))
        for key, node in graph.tensors.items()
        if node.adjoint is not None and _finite(node.adjoint)
    }
    logs = {k: math.log10(v) for k, v in sizes.items() if v > 0}
    if not logs:
        return {}
    low, high = min(logs.values()), max(logs.values())
    span = (high - low) or 1.0
    # white (small) to saturated orange (large), in graphviz's "H S V" notation
    return {k: f"0.08 {0.1 + 0.8 * (v - low) / span:.3f} 1.0" for k, v in logs.items()}


def _emit_legend(dot: graphviz.Digraph) -> None:
    """One compact table: a swatch and a line of text per kind of node and edge."""
    rows = []
    for kind, text in LEGEND.items():
        style = STYLE[kind]
        fill = style.get("fillcolor", "white") if "filled" in style["style"] else "white"
        border = ' style="dashed"' if "dashed" in style["style"] else ""
        rows.append(
            f'<tr><td bgcolor="{fill}" border="1"{border} width="26"> </td>'
            f'<td align="left">{text}</td></tr>'
        )
    rows.append(
        f'<tr><td><font color="{BROADCAST}">Σ</font></td><td align="left"><font'
        f' color="{BROADCAST}">broadcasting summed this gradient</font></td></tr>'
    )
    rows.append(
        f'<tr><td><font color="{RED}">✂</font></td><td align="left"><font color="{RED}">'
        "gradient path cut (detach, no_grad)</font></td></tr>"
    )
    rows.append('<tr><td>ḡ</td><td align="left">gradient flowing back along an edge</td></tr>')
    table = (
        '<<table border="0" cellborder="0" cellspacing="2" cellpadding="2">'
        '<tr><td colspan="2"><b>legend</b></td></tr>' + "".join(rows) + "</table>>"
    )
    dot.node("legend", label=table, shape="box", style="rounded", color="#bbbbbb", fontsize="9")


# --- files ------------------------------------------------------------------------------------


def save(graph: graphviz.Digraph, path: str | os.PathLike) -> str:
    """Render ``graph`` to ``path`` (.svg, .png or .pdf) with Graphviz's ``dot``."""
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"save: the file must end in .svg, .png or .pdf, got {path!r}")
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as error:
        raise RuntimeError(
            "rendering needs Graphviz's `dot` program, which was not found. Install it"
            " (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz;"
            " conda: conda install graphviz) and try again. The DOT source is still"
            " available as graph.source."
        ) from error
    with open(path, "wb") as file:
        file.write(data)
    return path
