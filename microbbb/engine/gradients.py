"""What users call to get gradients: ``backward``, ``grad`` and ``adjoint_flow``.

Each one runs the reverse sweep (``sweep.py``) with the hooks it needs:

- ``backward`` (``Tensor.backward``) adds every leaf's adjoint to its ``.grad``, and the
  adjoint of an intermediate tensor that asked for ``retain_grad()`` to that tensor's;
- ``grad`` returns the adjoints of the tensors asked for, leaves or not, and touches no
  ``.grad``;
- ``adjoint_flow`` returns every input share the sweep computed, as ``Edge`` s (drawings,
  trace tables and attribution read them);
- inside ``detect_anomaly()`` each share is checked for NaN and inf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import anomaly, nonfinite
from .kernels import ShapeError
from .sweep import reverse_sweep
from .tape import Record
from .tensor import RETAINING, Tensor


class Edge(NamedTuple):
    """One input share of a reverse sweep: the VJP of ``record``'s op for its input
    ``index``, given the output adjoint ``g``, gave ``contribution`` (already summed back to
    the input's shape; ``summed`` says broadcasting made that necessary)."""

    record: Record
    index: int
    g: np.ndarray
    contribution: np.ndarray
    summed: bool


def backward(root: Tensor, grad: Any = None, create_graph: bool = False) -> None:
    """Add d(root)/d(leaf) to ``.grad`` of every leaf (see ``Tensor.backward``)."""
    handed_out: set[int] = set()  # arrays that must not become a .grad uncopied
    retained = _by_record(t for t in RETAINING if t.record is not None) if RETAINING else {}

    def keep_retained(r: Record, g: Any) -> None:
        for t in retained.get(r, ()):
            accumulate(t, g, handed_out)

    hooks = [keep_retained] if retained else []
    for leaf, g in _sweep(root, grad, create_graph, hooks, handed_out).items():
        accumulate(leaf, g, handed_out)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    create_graph: bool = False,
) -> tuple[Tensor, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, as a tuple of tensors.

    Leaves' ``.grad`` are left untouched. ``grad_outputs`` are the adjoints of the outputs
    (needed for non-scalar outputs). An input the outputs do not depend on gets zeros.
    With ``create_graph=True`` the results are recorded, so they can be differentiated
    again (Hessian-vector products: ``grad(grad(f, x, create_graph=True)[0] @ v, x)``).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs] * len(outputs)
    total: dict[Tensor, Any] = {}
    wanted = _by_record(t for t in inputs if t.record is not None)

    def keep(r: Record, g: Any) -> None:
        for t in wanted.get(r, ()):
            total[t] = g if t not in total else total[t] + g

    for out, g in zip(outputs, grad_outputs, strict=True):
        if out.requires_grad:
            for t, gt in _sweep(out, g, create_graph, [keep], set()).items():
                total[t] = gt if t not in total else total[t] + gt
    results = []
    for t in inputs:
        g = total.get(t, np.zeros_like(t.data))
        # a copy: g may be shared with grad_outputs or with another result
        results.append(g if isinstance(g, Tensor) else Tensor.wrap(np.array(g, t.data.dtype)))
    return tuple(results)


def adjoint_flow(output: Tensor, grad: Any = None) -> list[Edge]:
    """Every contribution of a reverse sweep from ``output``, in the order computed.

    Nothing is written to any ``.grad``. The contributions into a tensor add up to its
    adjoint; drawings, trace tables and gradient attribution are built from this list.
    """
    edges: list[Edge] = []
    _sweep(output, grad, False, [], set(), lambda *edge: edges.append(Edge(*edge)))
    return edges


def accumulate(t: Tensor, g: Any, handed_out: set[int]) -> None:
    """Add the adjoint ``g`` to ``t.grad``. ``handed_out`` holds the ids of arrays that are
    already someone's ``.grad`` (or the caller's), which are copied before being kept."""
    if isinstance(g, Tensor):  # create_graph: gradients are recorded tensors
        t.grad = g if t.grad is None else t.grad + g
    elif t.grad is None:
        # .grad must own its memory (a later `+=` must not change another gradient). A
        # VJP's fresh result can be kept as is; anything else is copied: the same array
        # handed to two inputs (add passes g through), views (reshape, broadcast_to).
        owned = type(g) is np.ndarray and g.flags.owndata and g.flags.writeable
        if owned and id(g) not in handed_out:
            handed_out.add(id(g))
            t.grad = g
        else:
            t.grad = np.array(g, dtype=t.data.dtype)
    elif isinstance(t.grad, Tensor):
        t.grad = t.grad.data + g
    else:
        t.grad += g


def _sweep(
    root: Tensor,
    grad: Any,
    create_graph: bool,
    on_adjoint: list[Callable],
    handed_out: set[int],
    on_edge: Callable | None = None,
) -> dict[Tensor, Any]:
    """The reverse sweep from ``root`` with the seed ``grad`` and the hooks asked for."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad, so there is nothing to"
            " differentiate. Make the inputs you want gradients for with"
            " tensor(..., requires_grad=True), and do not compute it under no_grad()"
            " or from .detach()ed values."
        )
    nonfinite.ensure_filter()
    seed = _seed(root, grad, create_graph)
    handed_out.add(id(seed))  # the caller's array: never store it as a .grad uncopied
    if root.record is None:  # the root is itself a leaf
        return {root: seed}
    edge_hooks = [on_edge] if on_edge is not None else []
    if anomaly.is_enabled():
        edge_hooks.append(anomaly.check_backward)
    return reverse_sweep(root, seed, create_graph, on_adjoint, edge_hooks)


def _seed(root: Tensor, grad: Any, create_graph: bool) -> Any:
    """The adjoint the sweep starts from: ``grad``, or 1 for a scalar root."""
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward on a tensor of shape {root.shape} needs grad=..., an array of"
                " that shape holding the adjoint (the gradient of the final scalar with"
                " respect to this tensor). For a loss, reduce it to a scalar first, for"
                " example with .sum() or .mean()."
            )
        grad = np.ones_like(root.data)
    value = grad.data if isinstance(grad, Tensor) else np.asarray(grad, dtype=root.dtype)
    if value.shape != root.shape:
        raise ShapeError(
            f"backward: grad has shape {value.shape} but the tensor has shape {root.shape};"
            " they must be equal."
        )
    if create_graph:
        return grad if isinstance(grad, Tensor) else Tensor.wrap(value)
    return value


def _by_record(tensors: Any) -> dict[Record, list[Tensor]]:
    """Tensors grouped by the record that made them (several tensors can show one record)."""
    found: dict[Record, list[Tensor]] = {}
    for t in tensors:
        bucket = found.setdefault(t.record, [])
        if all(u is not t for u in bucket):
            bucket.append(t)
    return found
