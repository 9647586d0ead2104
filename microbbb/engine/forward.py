"""Forward mode from reverse mode: ``jvp(f, primals, tangents)`` gives ``f(x)`` and ``J u``.

Forward mode pushes a tangent ``u`` (a direction in input space) through a program and
returns ``J u``, the derivative of ``f`` at ``x`` along ``u``. The derivative table has no
tangent rules: every op has only VJPs, ``J^T g``. This module gets ``J u`` from them by
the *double-VJP trick* (the one ``torch.autograd.functional.jvp`` uses):

1. run ``y = f(x)`` on inputs that require grad;
2. take a dummy cotangent ``g`` (zeros of ``y``'s shape that require grad) and compute
   ``J^T g`` with ``create_graph=True``: a recorded tensor, linear in ``g``;
3. ``<J^T g, u> = <g, J u>`` is a scalar, linear in ``g``: its gradient with respect to
   ``g`` is ``J u``, whatever value ``g`` has (zeros are as good as any).

So no op needs a second rule, at a price: ``f`` runs once, then two reverse sweeps, the
first recorded (a tape of VJPs); a tangent column computed alongside the forward pass
would cost about one extra forward pass and no tape (docs/derivatives.md, "Forward mode").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .gradients import grad
from .modes import enable_grad
from .tensor import Tensor


def jvp(f: Callable, primals: Any, tangents: Any) -> tuple[Any, Any]:
    """``(f(*primals), J u)``: the outputs and their forward-mode derivatives along ``u``.

    ``primals`` is a tuple or list of inputs (tensors, arrays or numbers; each becomes a
    new leaf, so ``f`` is differentiated at their values, never through a graph behind
    them) and ``tangents`` the matching tuple or list of directions ``u``, each of its
    primal's shape (numbers and lists take the primal's dtype; arrays must have it). A
    single primal with a single tangent may be given without a tuple. ``f`` returns a
    tensor or a tuple of tensors; the result has the same structure, as constants. An
    output that does not depend on the inputs gets a zero tangent.
    """
    single = not isinstance(primals, (tuple, list))
    primals = [primals] if single else list(primals)
    tangents = [tangents] if single else tangents
    if not primals:
        raise ValueError("jvp: primals is empty; give at least one input to differentiate at")
    if not isinstance(tangents, (tuple, list)) or len(tangents) != len(primals):
        raise TypeError(
            f"jvp: tangents must be a tuple or list with one tangent per primal"
            f" ({len(primals)}), got {type(tangents).__name__}"
            + (f" of length {len(tangents)}" if isinstance(tangents, (tuple, list)) else "")
        )
    xs = [_leaf(i, p, single) for i, p in enumerate(primals)]
    us = [_tangent(i, u, x, single) for i, (u, x) in enumerate(zip(tangents, xs, strict=True))]
    with enable_grad():  # also under no_grad(): jvp needs the tape
        result = f(*xs)
        ys = _outputs(result)
        gs = [Tensor(np.zeros_like(y.data), requires_grad=True) for y in ys]  # dummy g
        vjps = grad(ys, xs, grad_outputs=gs, create_graph=True)  # J^T g, linear in g
        inner = (vjps[0] * us[0]).sum()  # <J^T g, u>
        for v, u in zip(vjps[1:], us[1:], strict=True):
            inner = inner + (v * u).sum()
        dots = grad(inner, gs)  # d<g, J u>/dg = J u
    outs = tuple(Tensor.wrap(y.data) for y in ys)
    if isinstance(result, Tensor):
        return outs[0], dots[0]
    return outs, dots


def _name(i: int, single: bool, kind: str) -> str:
    return kind if single else f"{kind}[{i}]"


def _leaf(i: int, primal: Any, single: bool) -> Tensor:
    """A new leaf holding a copy of the primal (int arrays and numbers become float64)."""
    try:
        return Tensor(primal.data if isinstance(primal, Tensor) else primal, requires_grad=True)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"jvp: {_name(i, single, 'primals')} must be a tensor, a float array or a number:"
            f" {error}"
        ) from error


def _tangent(i: int, u: Any, x: Tensor, single: bool) -> np.ndarray:
    """The tangent as an array of the primal's shape and dtype, or a clear error."""
    name, primal = _name(i, single, "tangents"), _name(i, single, "primals")
    given = u.data if isinstance(u, Tensor) else u
    array = np.asarray(given)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"jvp: {name} must hold real numbers, got dtype {array.dtype}")
    if isinstance(given, np.ndarray) and array.dtype.kind == "f" and array.dtype != x.dtype:
        raise TypeError(
            f"jvp: {name} has dtype {array.dtype} but {primal} is {x.dtype}; give the"
            f" tangent the primal's dtype (u.astype(np.{x.dtype}))"
        )
    if array.shape != x.shape:
        raise ValueError(
            f"jvp: {name} has shape {array.shape} but {primal} has shape {x.shape}; a"
            " tangent is a direction in the primal's space, of the same shape"
        )
    return array.astype(x.dtype)


def _outputs(result: Any) -> list[Tensor]:
    """f's outputs as a list of tensors, or a clear error."""
    ys = [result] if isinstance(result, Tensor) else result
    if not isinstance(ys, (tuple, list)) or not ys or not all(isinstance(y, Tensor) for y in ys):
        raise TypeError(
            f"jvp: f must return a tensor or a tuple of tensors, got {type(result).__name__};"
            " build the result from the inputs with microbbb ops"
        )
    return list(ys)
