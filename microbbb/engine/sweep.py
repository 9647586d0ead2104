"""The reverse sweep: from an output's adjoint to the adjoint of every leaf behind it.

Walk the records newest first. Each record's output adjoint ``g`` is complete once every
later record has been visited; pull it back to each input that requires grad and add the
result to that input's adjoint. ``pull_back`` is the one place where a VJP is called.
What else a sweep should do (anomaly checks, keeping retained or wanted gradients,
collecting every edge for drawings) plugs in as hooks; ``gradients.py`` sets them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import nonfinite, saved
from .modes import enable_grad, no_grad
from .primitives import GRAPH, NUMPY, EachInput
from .tape import Record, reachable
from .tensor import Tensor


def pull_back(
    record: Record, i: int, g: Any, out: Any, args: Sequence, xp: Any = NUMPY
) -> tuple[Any, bool]:
    """Input ``i``'s share of ``record``'s output adjoint ``g``: its VJP at (``out``,
    ``args``), summed back to the shape of ``args[i]`` if broadcasting widened it
    ("unbroadcast"), and cast to its dtype. Returns the share and whether it was summed.
    numpy's floating-point warnings become one microbbb warning (see ``nonfinite.py``)."""
    vjps, params, x = record.op.vjps, record.params, args[i]
    try:
        if type(vjps) is EachInput:  # one VJP for any number of inputs, shown input i alone
            share = vjps.vjp(i, xp, g, out, x, **params)
        else:
            share = vjps[i](xp, g, out, *args, **params) if params else vjps[i](xp, g, out, *args)
    except RuntimeWarning:  # numpy's floating-point warning, an error in the engine
        nonfinite.warn(record.op.name, "backward")
        return nonfinite.quietly(pull_back, record, i, g, out, args, xp)
    summed = share.shape != x.shape
    if summed:
        share = xp.sum_to(share, shape=x.shape)
    if share.dtype is not x.dtype and share.dtype != x.dtype:  # (is: the common case, fast)
        share = xp.astype(share, dtype=x.dtype)
    return share, summed


def reverse_sweep(
    root: Tensor,
    seed: Any,
    create_graph: bool = False,
    on_adjoint: Sequence[Callable[[Record, Any], None]] = (),
    on_edge: Sequence[Callable[[Record, int, Any, Any, bool], None]] = (),
) -> dict[Tensor, Any]:
    """Backpropagate ``seed`` (the adjoint of ``root``); return each leaf's adjoint.

    Hooks: ``on_adjoint(record, g)`` when a record's output adjoint is complete;
    ``on_edge(record, i, g, share, summed)`` for every input share. With
    ``create_graph=True`` the VJPs run on tensors (``xp`` = the primitives), so the
    adjoints are recorded and can be differentiated again.
    """
    xp, records = GRAPH if create_graph else NUMPY, reachable(root)
    saved.check(records)  # nothing a record saved has changed since
    adjoint: dict[Record, Any] = {root.record: seed}
    leaves: dict[Tensor, Any] = {}
    with enable_grad() if create_graph else no_grad():
        for r in records:
            g = adjoint.pop(r, None)
            if g is None:  # no gradient reached this record
                continue
            if on_adjoint:
                for hook in on_adjoint:
                    hook(r, g)
            out, args = (Tensor.wrap(r.out, r), r.inputs) if create_graph else (r.out, r.values)
            for i, t in enumerate(r.inputs):
                if not t.requires_grad:
                    continue
                share, summed = pull_back(r, i, g, out, args, xp)
                if on_edge:
                    for hook in on_edge:
                        hook(r, i, g, share, summed)
                if t.record is None:
                    leaves[t] = share if t not in leaves else leaves[t] + share
                else:
                    previous = adjoint.get(t.record)
                    adjoint[t.record] = share if previous is None else previous + share
    return leaves
