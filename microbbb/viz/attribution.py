"""Gradient-path attribution: which path did each part of a parameter's gradient take?

``attribute(output, param)`` splits ``d output / d param`` into the contributions that
reached the parameter through each of its consumers. When the parameter only feeds a chain
of single-use ops (``rho -> softplus -> sigma``), the split happens where that chain first
branches (at ``sigma``), and each part is pulled back through the chain's VJPs (linear in
the adjoint, so the parts still add up). Parts are labelled by op and scope, e.g.
``"add #12 in layer1"`` (#12: the consumer's position on the tape); ``by="op"`` merges the
consumers with the same op and scope (e.g. the Monte-Carlo samples), ``by="scope"`` groups
by scope only. The parts sum to the parameter's gradient (to rounding).

``bbb_split(loss, layer)`` names the parts as in Blundell et al. (2015): for mu, the part
through the sampled weights w (df/dw) and the direct part from log q (df/dmu); for rho, the
pathwise part df/dw * eps * sigmoid(rho) and the direct part df/drho.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.extend import Record, Tensor, pull_back
from .graph import Graph, build_graph


@dataclass
class Attribution:
    """``parts`` (label -> gradient part), their sum ``total`` and the chain the split was
    pulled back through (op names from the parameter to the branching point)."""

    param: str
    parts: dict[str, np.ndarray]
    total: np.ndarray
    chain: list[str]

    def __str__(self) -> str:
        lines = [
            f"gradient of {self.param} by path"
            + (f" (via {' -> '.join(self.chain)})" if self.chain else "")
        ]  # noqa: E501
        width = max(len(k) for k in self.parts) if self.parts else 0
        for label, part in self.parts.items():
            lines.append(f"  {label.ljust(width)}  {_brief(part)}")
        lines.append(f"  {'total'.ljust(width)}  {_brief(self.total)}")
        return "\n".join(lines)


def _brief(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.size <= 4:
        return np.array2string(a, precision=5, separator=", ")
    return f"norm {np.linalg.norm(a):.5g}"


def _consumers(graph: Graph) -> dict[tuple, list[tuple[Record, int]]]:
    consumers: dict[tuple, list[tuple[Record, int]]] = {}
    for record in graph.records:
        for i, t in enumerate(record.inputs):
            consumers.setdefault(graph.key(t), []).append((record, i))
    return consumers


def attribute(output: Tensor, param: Tensor, by: str = "consumer", grad: Any = None) -> Attribution:
    """Split ``param``'s gradient by the path it took (see the module docstring)."""
    if by not in ("consumer", "op", "scope"):
        raise ValueError(f"by must be 'consumer', 'op' or 'scope', got {by!r}")
    graph = build_graph(output, grad)
    if not graph.edges:
        raise ValueError("attribute needs an output that requires grad (and grad= if not scalar)")
    key = graph.key(param)
    if key not in graph.tensors:
        raise ValueError(f"{param.name or 'the tensor'} is not part of the graph behind output")
    consumers = _consumers(graph)
    flows = {(id(e.record), e.index): e.contribution for e in graph.edges}

    chain: list[Record] = []  # single-use ops from param to the branching tensor
    current = key
    while len(consumers.get(current, [])) == 1:
        record, _ = consumers[current][0]
        if sum(t.requires_grad for t in record.inputs) != 1:
            break
        chain.append(record)
        current = ("record", id(record))

    positions = {id(r): n for n, r in enumerate(graph.records, start=1)}
    parts: dict[str, np.ndarray] = {}
    for record, i in consumers.get(current, []):
        flow = flows.get((id(record), i))
        if flow is None:
            continue
        where = f" in {record.scope}" if record.scope else ""
        if by == "scope":
            label = record.scope or "(no scope)"
        elif by == "op":
            label = record.op.name + where
        else:
            label = f"{record.op.name} #{positions[id(record)]}{where}"
        parts[label] = flow if label not in parts else parts[label] + flow
    for record in reversed(chain):  # pull every part back through the chain's VJPs
        index = next(i for i, t in enumerate(record.inputs) if t.requires_grad)
        parts = {label: _pull_back(record, index, part) for label, part in parts.items()}

    total = graph.tensors[key].adjoint
    return Attribution(param.name or "param", parts, total, [r.op.name for r in chain])


def _pull_back(record: Record, index: int, g: np.ndarray) -> np.ndarray:
    part, _ = pull_back(record, index, g, record.out, [t.data for t in record.inputs])
    return part


def bbb_split(loss: Tensor, layer: Any) -> dict[str, dict[str, np.ndarray]]:
    """The paper's decomposition for a ``BayesianLinear`` layer, from the recorded graph.

    Returns, for "weight_mu", "bias_mu": {"through_w": df/dw, "direct": df/dmu}; for
    "weight_rho", "bias_rho": {"through_w": df/dw * eps * sigmoid(rho), "direct": df/drho};
    each with "total" (the gradient). Works with several Monte-Carlo samples (the parts
    of every sample are added) and with the closed-form KL (then "direct" is its gradient).

    Only for the estimator "reparam", where every path of the data term goes through the
    sampled w. With "local" and "flipout" the data term reaches mu and sigma directly (the
    pre-activations' mean and spread, or x @ mu and the flipped sigma * eps), so there is
    no df/dw to split off: ValueError; ``attribute(loss, param, by="op")`` gives the paths.
    """
    estimator = getattr(layer, "estimator", "reparam")
    if estimator != "reparam":
        raise ValueError(
            f"bbb_split splits the gradients of the estimator 'reparam' (every path through"
            f" the sampled w); {layer.name} uses {estimator!r}, whose data term does not go"
            " through w. Use attribute(loss, param, by='op') to see its paths."
        )
    result = {}
    for name in ("weight_mu", "bias_mu", "weight_rho", "bias_rho"):
        split = attribute(loss, getattr(layer, name), by="op")
        through_w = direct = None
        for label, part in split.parts.items():
            op = label.split(" in ")[0]
            if op == "reparameterize":  # w = mu + sigma * eps: the pathwise part
                through_w = part if through_w is None else through_w + part
            else:  # log q (kl="mc") or the closed-form KL: the direct part
                direct = part if direct is None else direct + part
        zeros = np.zeros_like(split.total)
        result[name] = {
            "through_w": zeros if through_w is None else through_w,
            "direct": zeros if direct is None else direct,
            "total": split.total,
        }
    return result
