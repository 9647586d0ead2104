"""Testing helpers: a microbbb function's values and gradients compared with its torch twin.

    from microbbb.testing import assert_same_gradients

    def test_my_softplus_matches_torch():
        x = np.linspace(-3, 3, 7)
        assert_same_gradients(my_softplus, torch.nn.functional.softplus, x)

``assert_same_gradients(fn, torch_fn, *arrays)`` runs both on the same float64 data and
compares, in this order: the output's shape and values; with ``order=1`` the vector-Jacobian
product of every input for one random upstream gradient ``v`` (seeded: the gradient of
``sum(out * v)``); with ``order=2`` also the Hessian-vector product of every input for one
random direction ``u`` (the gradient of ``sum_i <grad_i, u_i>``, which runs every VJP again
on recorded gradients). A random ``v`` and ``u`` reach every element of the Jacobian with
probability 1, so one sweep checks them all at the cost of one backward pass.

Tolerances: ``|ours - torch| <= atol + rtol * |torch|`` elementwise, with ``rtol=1e-10``
and ``atol=1e-12`` by default. Two float64 implementations of the same formula agree to a
few ulps (about 1e-15 relative); different but correct formulas (``log(1 + exp(x))`` against
a stable softplus, a sum in another order) lose a few digits more; a wrong derivative (a
sign, a factor 2, a missing term) is off by O(1). 1e-10 sits between the two.

torch is imported inside ``assert_same_gradients`` only, so microbbb itself never needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .engine import Tensor, grad, tensor

__all__ = ["assert_same_gradients"]


def assert_same_gradients(
    fn: Callable[..., Tensor],
    torch_fn: Callable[..., Any],
    *arrays: Any,
    order: int = 1,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    seed: int = 0,
) -> None:
    """Raise ``AssertionError`` unless ``fn`` (microbbb) and ``torch_fn`` (torch) agree on
    ``arrays``: output values, VJPs (``order=1``) and Hessian-vector products (``order=2``).

    ``fn`` takes microbbb tensors and returns one tensor, ``torch_fn`` takes torch tensors and
    returns one tensor; both get ``arrays`` as float64, each input differentiated. The error
    names the input, the worst element and both values.
    """
    if order not in (1, 2):
        raise ValueError(
            f"order must be 1 (gradients) or 2 (Hessian-vector products), not {order}."
        )
    if not arrays:
        raise ValueError("give at least one input array: assert_same_gradients(fn, torch_fn, x).")
    try:
        import torch
    except ImportError:
        raise ImportError("assert_same_gradients compares with torch: pip install torch") from None
    data = [_float64(a, i) for i, a in enumerate(arrays)]
    ours = [tensor(a, requires_grad=True) for a in data]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in data]
    out, twin = fn(*ours), torch_fn(*theirs)
    if not isinstance(out, Tensor):
        raise TypeError(f"fn must return a microbbb Tensor, got {type(out).__name__}.")
    if not isinstance(twin, torch.Tensor):
        raise TypeError(f"torch_fn must return a torch.Tensor, got {type(twin).__name__}.")
    if out.shape != tuple(twin.shape):
        raise AssertionError(
            f"the outputs differ in shape: microbbb {out.shape}, torch {tuple(twin.shape)}."
        )
    _compare("the output", out.data, twin.detach().numpy(), rtol, atol)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(out.shape)
    dx = grad(out, ours, grad_outputs=v, create_graph=order == 2)
    torch_dx = torch.autograd.grad(
        twin, theirs, grad_outputs=torch.tensor(v), create_graph=order == 2, allow_unused=True
    )
    for i, (g, t) in enumerate(zip(dx, torch_dx, strict=True)):
        what = f"the gradient of input {i} (of sum(out * v), v random)"
        _compare(what, g.data, _numpy(t, data[i]), rtol, atol)
    if order == 2:
        _compare_hvp(dx, torch_dx, ours, theirs, data, rng, rtol, atol)


def _compare_hvp(
    dx: tuple,
    torch_dx: tuple,
    ours: list,
    theirs: list,
    data: list,
    rng: Any,
    rtol: float,
    atol: float,
) -> None:
    """Hessian-vector products: the gradients of sum_i <dx_i, u_i>, for a random u."""
    import torch

    u = [rng.standard_normal(a.shape) for a in data]
    hv = grad(list(dx), ours, grad_outputs=u)
    pairs = [(t, torch.tensor(ui)) for t, ui in zip(torch_dx, u, strict=True) if t is not None]
    if pairs and any(t.requires_grad for t, _ in pairs):
        inner = sum((t * ui).sum() for t, ui in pairs if t.requires_grad)
        torch_hv = torch.autograd.grad(inner, theirs, allow_unused=True)
    else:  # torch's gradients do not depend on the inputs: the Hessian is zero
        torch_hv = [None] * len(theirs)
    for i, (h, t) in enumerate(zip(hv, torch_hv, strict=True)):
        _compare(f"the Hessian-vector product of input {i}", h.data, _numpy(t, data[i]), rtol, atol)


def _float64(a: Any, i: int) -> np.ndarray:
    array = np.asarray(a.detach().numpy() if hasattr(a, "detach") else a)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"input {i} must hold real numbers, got dtype {array.dtype}.")
    if not np.isfinite(array).all():
        raise ValueError(f"input {i} contains NaN or inf; compare on finite data.")
    return array.astype(np.float64)


def _numpy(t: Any, like: np.ndarray) -> np.ndarray:
    """A torch gradient as numpy; None (torch: the input is not used) as zeros."""
    return np.zeros_like(like) if t is None else t.detach().numpy(force=True)


def _compare(what: str, ours: np.ndarray, theirs: np.ndarray, rtol: float, atol: float) -> None:
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape:
        raise AssertionError(
            f"{what} differs in shape: microbbb {ours.shape}, torch {theirs.shape}."
        )
    bad = ~(np.abs(ours - theirs) <= atol + rtol * np.abs(theirs))  # NaN counts as bad
    if not bad.any():
        return
    excess = np.where(bad, np.abs(ours - theirs) - rtol * np.abs(theirs), -np.inf)
    excess = np.where(np.isnan(excess), np.inf, excess)
    where = np.unravel_index(int(np.argmax(excess)), ours.shape) if ours.ndim else ()
    at = f" at {list(map(int, where))}" if where else ""
    raise AssertionError(
        f"{what} differs from torch{at}: microbbb {float(ours[where]):.12g}, torch"
        f" {float(theirs[where]):.12g} (difference {float(ours[where] - theirs[where]):.3g};"
        f" {int(bad.sum())} of {bad.size} elements outside atol {atol:g} + rtol {rtol:g}"
        " * |torch|)."
    )
