"""Drawing the computation graph behind a tensor, with values and the gradients that flowed.

``draw(output)`` returns a ``graphviz.Digraph``: one box per tensor (name, shape, value,
adjoint), one ellipse per op (its name and its backward rules, e.g. ``x̄ += g * y``), edges
from inputs to ops labelled with the gradient that flowed back along them (the value when
scalar, the norm otherwise; ``edge_labels="node"`` writes these parts in the boxes instead,
where no edge can cross them). Parameters, noise (the eps a Bayesian layer draws and marks
as ``Noise``), data and constants are styled differently, with a legend; edges where
broadcasting summed a gradient are marked ``Σ``; tensors cut off by ``detach()`` or
``no_grad()`` are drawn with a dashed red edge marked ``cut`` instead of being dropped; NaN
and inf are red. Groups made with ``microbbb.scope`` become clusters, and ``collapse=[...]``
folds a group into one box (with the leaves, such as its mu, rho and eps, that only it
uses). The legend lists only the kinds the drawing holds. Labels use plain text and a few
common symbols (Σ, ‖, the bar of ḡ) that the usual fonts draw.

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
    "group": "collapsed group (collapse=[...])",
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
        label = "cut: detach" if cut.reason == "detach" else f"cut: no_grad ({cut.op})"
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
    edge_labels: str = "all",
) -> graphviz.Digraph:
    """The graph behind ``output`` as a ``graphviz.Digraph`` (see the module docstring).

    ``grad``: the adjoint of a non-scalar output (scalars need none); gradients are only
    shown when the output requires grad. ``collapse``: scope names to fold into one box
    each (with the leaves that only the group uses). ``color_by_grad``: fill tensors by
    log10 of their gradient's size. ``legend``: add a legend of the kinds of node and edge
    the drawing holds. ``edge_labels``: where the gradient that flowed along each edge is
    written. ``"all"``: on every edge. ``"split"``: only on the edges out of a box that feeds
    several ops (its gradient is the sum of their parts); on any other edge it equals the
    box's own ``grad`` line. ``"node"``: no gradient on the edges; a box that feeds several
    ops lists the parts, one line each (``to reparameterize (mu): ḡ = ...``), so no edge can
    cross a label and the drawing is smaller.
    """
    if edge_labels not in ("all", "split", "node"):
        raise ValueError(f"draw: edge_labels must be 'all', 'split' or 'node', got {edge_labels!r}")
    if isinstance(collapse, str):
        raise TypeError(
            f"draw: collapse must be a list of scope names, got the string {collapse!r}; "
            f"write collapse=[{collapse!r}]"
        )
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
    leaves: dict[str, list[str]] = {}  # group -> the names of the leaves it swallowed
    for key, group in _folded_leaves(graph, folded).items():
        ids[key] = _group_id(group)  # drawn as (and edges go to) the group's box
        leaves.setdefault(group, []).append(graph.tensors[key].name or "?")
    op_ids = {id(r): f"op{n}" for n, r in enumerate(graph.records)}
    edges = _drawn_edges(graph, ids, op_ids, folded)
    parts = _parts(edges) if edge_labels == "node" else {}
    colors = _gradient_colors(graph) if color_by_grad else {}
    clusters: dict[str | None, list[tuple[str, dict[str, str]]]] = {}
    drawn: set[str] = set()  # what the legend lists: the kinds of node and edge drawn

    for key, node in graph.tensors.items():
        if node.tensor.record is not None and id(node.tensor.record) in folded:
            continue  # inside a collapsed group
        if _inlined(node) or ids[key].startswith("group_"):
            continue  # shown in its op's label, or folded into a group's box
        label = "\n".join([_tensor_label(node), *parts.get(ids[key], [])])
        attrs = dict(STYLE[node.kind], label=label, tooltip=_tooltip(node))
        drawn.add(node.kind)
        if key in colors:
            attrs.update(style="filled,rounded", fillcolor=colors[key])
        if not (_finite(node.value) and _finite(node.adjoint)):
            attrs.update(color=RED, fontcolor=RED, penwidth="2")
            drawn.add("not_finite")
        clusters.setdefault(node.scope, []).append((ids[key], attrs))

    for record in graph.records:
        if id(record) in folded:
            continue
        attrs = dict(STYLE["op"], label=_op_label(graph, record), tooltip=_op_tooltip(record))
        drawn.add("op")
        clusters.setdefault(record.scope, []).append((op_ids[id(record)], attrs))
    for scope, count in _group_sizes(graph, folded).items():
        lines = [scope, f"({count} ops, collapsed)"]
        lines += _group_outputs(graph, folded, scope) + _leaves_line(leaves.get(scope, []))
        lines += parts.get(_group_id(scope), [])
        drawn.add("group")
        clusters.setdefault(_parent(scope), []).append(
            (_group_id(scope), dict(STYLE["group"], label="\n".join(lines)))
        )

    _emit_clusters(dot, clusters)
    drawn |= _emit_edges(dot, graph, edges, op_ids, ids, folded, edge_labels)
    for source, target, label in graph.cuts:
        drawn.add("cut_edge")
        dot.edge(_node_id(graph, ids, folded, source), _node_id(graph, ids, folded, target),
                 label=label, style="dashed", color=RED, fontcolor=RED,
                 arrowhead="tee")  # fmt: skip
    if legend:
        _emit_legend(dot, drawn)
    return dot


def _node_id(graph: Graph, ids: dict, folded: dict, key: tuple) -> str:
    """The drawn node of a tensor: its own box, or the box of the group that folds it."""
    record = graph.tensors[key].tensor.record
    if record is not None and id(record) in folded:
        return _group_id(folded[id(record)])
    return ids[key]


def _folded_leaves(graph: Graph, folded: dict[int, str]) -> dict[tuple, str]:
    """Leaves (not the output, not cut) whose consumers all fold into one collapsed group."""
    groups: dict[tuple, set[str | None]] = {}
    for record in graph.records:
        for t in record.inputs:
            groups.setdefault(graph.key(t), set()).add(folded.get(id(record)))
    cut_ends = {k for source, target, _ in graph.cuts for k in (source, target)}
    return {
        key: next(iter(names))
        for key, names in groups.items()
        if len(names) == 1
        and None not in names
        and graph.tensors[key].tensor.record is None
        and key not in cut_ends
        and key != graph.key(graph.output)
        and not _inlined(graph.tensors[key])
    }


def _leaves_line(names: list[str]) -> list[str]:
    if not names:
        return []
    if len(names) <= 2:
        return ["with " + ", ".join(names)]
    return [f"with {len(names)} leaves ({names[0]}, ...)"]


def _group_outputs(graph: Graph, folded: dict[int, str], scope: str) -> list[str]:
    """The named tensors a collapsed group makes for the ops outside it, with their values."""
    lines = []
    for record in graph.records:
        node = graph.tensors.get(("record", id(record)))
        if folded.get(id(record)) != scope or node is None or not node.name:
            continue
        used_outside = any(
            folded.get(id(r)) != scope and any(t.record is record for t in r.inputs)
            for r in graph.records
        )
        if used_outside or node.tensor is graph.output:
            line = f"out: {node.name} = {summary(node.value, 3)}"
            if node.adjoint is not None:
                line += f", grad {summary(node.adjoint, 3)}"
            lines.append(line)
    return lines


@dataclass
class DrawnEdge:
    """An edge of the drawing: the gradient contributions it carries, merged at groups."""

    source: str
    target: str
    role: str  # the input's name in the op (x, y, mu ...), or "" into or out of a group
    target_name: str  # the op or group it goes into
    flows: list[Edge | None]
    merged: bool  # into or out of a collapsed group
    long_name: str  # the target with the tensor it makes: add -> log_q

    def total(self) -> np.ndarray | None:
        """The summed gradient along the edge (None when none flows or shapes differ)."""
        flowing = [e.contribution for e in self.flows if e is not None]
        if not flowing or any(f.shape != flowing[0].shape for f in flowing):
            return None
        return sum(flowing[1:], flowing[0])

    def summed(self) -> bool:
        """Whether broadcasting summed the gradient on its way along this edge."""
        return any(e is not None and e.summed for e in self.flows)


def _drawn_edges(graph: Graph, ids: dict, op_ids: dict, folded: dict) -> list[DrawnEdge]:
    """The input edges to draw, in recording order; edges into or out of groups merged."""
    flows: dict[tuple[int, int], Edge] = {(id(e.record), e.index): e for e in graph.edges}
    edges: list[DrawnEdge] = []
    merged: dict[tuple[str, str], DrawnEdge] = {}
    for record in graph.records:
        group = folded.get(id(record))
        target = _group_id(group) if group else op_ids[id(record)]
        names = input_names(record.op, len(record.inputs))
        for i, t in enumerate(record.inputs):
            source_key = graph.key(t)
            if _inlined(graph.tensors[source_key]):
                continue
            source = _node_id(graph, ids, folded, source_key)
            if source == target:
                continue  # an edge inside a collapsed group
            flow = flows.get((id(record), i))
            if group or source.startswith("group_"):
                if (source, target) not in merged:
                    name = group or record.op.name
                    merged[source, target] = DrawnEdge(
                        source, target, "", name, [], True, group or _op_name(graph, record)
                    )
                    edges.append(merged[source, target])
                merged[source, target].flows.append(flow)
                continue
            edge = DrawnEdge(source, target, names[i], record.op.name, [flow], False,
                             _op_name(graph, record))  # fmt: skip
            edges.append(edge)
    return edges


def _op_name(graph: Graph, record: Record) -> str:
    """An op's name, with the name of the tensor it makes when that has one (add -> log_q)."""
    node = graph.tensors.get(("record", id(record)))
    return f"{record.op.name} -> {node.name}" if node is not None and node.name else record.op.name


def _fan_out(edges: list[DrawnEdge]) -> dict[str, int]:
    targets: dict[str, set[str]] = {}
    for edge in edges:
        targets.setdefault(edge.source, set()).add(edge.target)
    return {source: len(t) for source, t in targets.items()}


def _parts(edges: list[DrawnEdge]) -> dict[str, list[str]]:
    """For each box that feeds several ops: a line per edge with the gradient it carried."""
    fan_out, parts = _fan_out(edges), {}
    names: dict[str, list[str]] = {}  # source -> the names of the ops it feeds
    for edge in edges:
        names.setdefault(edge.source, []).append(edge.target_name)
    for edge in edges:
        total = edge.total()
        if fan_out[edge.source] < 2 or total is None:
            continue
        twice = names[edge.source].count(edge.target_name) > 1  # two adds: say which
        name = edge.long_name if twice else edge.target_name
        role = f" ({edge.role})" if edge.role else ""
        mark = ", Σ broadcast" if edge.summed() else ""
        parts.setdefault(edge.source, []).append(f"to {name}{role}: ḡ = {magnitude(total)}{mark}")
    return parts


def _emit_edges(
    dot: graphviz.Digraph,
    graph: Graph,
    edges: list[DrawnEdge],
    op_ids: dict,
    ids: dict,
    folded: dict,
    labels: str,
) -> set[str]:
    """Draw the op -> output edges and the input edges; return the marks used (legend)."""
    for record in graph.records:
        if id(record) not in folded:
            dot.edge(op_ids[id(record)], ids[("record", id(record))], arrowsize="0.6")
    fan_out, marks = _fan_out(edges), set()
    for edge in edges:
        total = edge.total()
        flowing = any(e is not None for e in edge.flows)
        attrs = {"style": "bold"} if edge.merged else {}
        if not flowing:
            attrs.update(color="#999999", fontcolor="#777777")
            marks.add("no_flow")
        if edge.summed():
            attrs.update(color=BROADCAST, fontcolor=BROADCAST, penwidth="2")
            marks.add("broadcast")
        if total is not None and not _finite(total):
            attrs.update(color=RED, fontcolor=RED, penwidth="2")
            marks.add("not_finite")
        label = _edge_label(edge, total, labels, fan_out[edge.source])
        if label:
            attrs["label"] = label
            marks |= {"flow"} if "ḡ" in label else set()
        if labels == "node" and total is not None and fan_out[edge.source] > 1:
            marks.add("flow_in_node")
        dot.edge(edge.source, edge.target, **attrs)
    return marks


def _edge_label(edge: DrawnEdge, total: np.ndarray | None, labels: str, fan_out: int) -> str:
    """The text on an edge (see ``draw``'s ``edge_labels``)."""
    if not any(e is not None for e in edge.flows):
        return "" if labels == "node" else edge.role  # a grey edge: data, noise
    if total is None:
        return ""
    text = f"{edge.role}: ḡ = {magnitude(total)}" if edge.role else f"ḡ = {magnitude(total)}"
    if edge.summed():
        text += "\nΣ broadcast"
    show = {"all": True, "split": fan_out > 1, "node": False}[labels]
    return text if show or edge.summed() and labels != "node" else ""


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


EDGE_LEGEND = {  # mark -> (symbol, text, colour)
    "flow": ("ḡ", "gradient flowing back along an edge", "black"),
    "flow_in_node": ("to op: ḡ", "in a box: the part of its grad from that op", "black"),
    "no_flow": ("--", "grey edge: no gradient flows back (data, noise)", "#777777"),
    "broadcast": ("Σ", "broadcasting summed this gradient", BROADCAST),
    "cut_edge": ("- - -|", "gradient path cut (detach, no_grad)", RED),
    "not_finite": ("red", "NaN or inf in the value or gradient", RED),
}


def _emit_legend(dot: graphviz.Digraph, drawn: set[str] | None = None) -> None:
    """One compact table: a swatch or symbol and a line of text per kind drawn."""
    rows = []
    for kind, text in LEGEND.items():
        if drawn is not None and kind not in drawn:
            continue
        style = STYLE[kind]
        fill = style.get("fillcolor", "white") if "filled" in style["style"] else "white"
        border = ' style="dashed"' if "dashed" in style["style"] else ""
        rows.append(
            f'<tr><td bgcolor="{fill}" border="1"{border} width="26"> </td>'
            f'<td align="left">{text}</td></tr>'
        )
    for mark, (symbol, text, color) in EDGE_LEGEND.items():
        if drawn is not None and mark not in drawn:
            continue
        rows.append(
            f'<tr><td><font color="{color}">{symbol}</font></td>'
            f'<td align="left"><font color="{color}">{text}</font></td></tr>'
        )
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
