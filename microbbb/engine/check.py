"""Checking VJPs against central finite differences, in float64.

``gradcheck(fn, *inputs)`` builds the full Jacobian of ``fn`` twice: from the VJPs (one
reverse sweep per output element) and from central differences
``(f(x + eps e_k) - f(x - eps e_k)) / (2 eps)`` (two forward passes per input element), and
compares them elementwise with ``|analytic - numeric| <= atol + rtol * |numeric|``.

Why these defaults: the central difference has truncation error ~ eps^2 |f'''| / 6 (about
1e-12 for eps = 1e-6) and rounding error ~ 1e-16 |f| / eps (about 1e-10 |f|), so for
well-scaled functions the two Jacobians agree to ~1e-9; ``atol=1e-5, rtol=1e-3`` (PyTorch's
defaults) leave room for badly scaled inputs, while a wrong rule (a sign, a factor 2, a
missing term) is off by O(1) and always caught.

``gradgradcheck`` applies ``gradcheck`` to the gradient itself, computed with
``create_graph=True``, i.e. it checks second derivatives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .gradients import grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and numeric derivatives disagree; the message says where."""


def _outputs(fn: Callable, inputs: Sequence[Tensor]) -> list[Tensor]:
    out = fn(*inputs)
    return [out] if isinstance(out, Tensor) else list(out)


def gradcheck(
    fn: Callable[..., Any],
    *inputs: Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Compare the VJPs of ``fn`` with central finite differences; raise on mismatch.

    ``fn`` takes the tensors ``inputs`` and returns a tensor or a tuple of tensors. Only
    inputs with ``requires_grad=True`` are checked; they must be float64. On failure,
    ``GradcheckError`` names the input, the element, the output element, and the analytic
    and numeric values. Returns True when every entry agrees.
    """
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need"
                " float64 (in float32 the rounding error swamps eps)."
            )
    outputs = _outputs(fn, inputs)
    analytic = _analytic_jacobians(outputs, [inputs[i] for i in checked])
    numeric = _numeric_jacobians(fn, inputs, checked, eps)
    for k, (a_out, n_out) in enumerate(zip(analytic, numeric, strict=True)):
        for slot, i in enumerate(checked):
            a, n = a_out[slot], n_out[slot]
            bad = np.abs(a - n) > atol + rtol * np.abs(n)
            if bad.any():
                j, e = np.unravel_index(int(np.argmax(bad)), bad.shape)
                raise GradcheckError(
                    f"gradcheck failed for input {i} (shape {inputs[i].shape}), element"
                    f" {_multi(e, inputs[i].shape)}, output {k} element"
                    f" {_multi(j, outputs[k].shape)}: analytic {float(a[j, e])!r}, numeric"
                    f" {float(n[j, e])!r} (allowed |difference| <= {atol} + {rtol} * |numeric|)."
                )
    return True


def _multi(flat: int, shape: tuple) -> tuple:
    return tuple(int(v) for v in np.unravel_index(flat, shape)) if shape else ()


def _analytic_jacobians(outputs: list[Tensor], wrt: list[Tensor]) -> list[list[np.ndarray]]:
    """For each output, one (out.size, input.size) Jacobian per input, row by row."""
    result = []
    for out in outputs:
        rows = [np.zeros((out.size, t.size)) for t in wrt]
        if out.requires_grad:
            for j in range(out.size):
                seed = np.zeros(out.size)
                seed[j] = 1.0
                grads = grad(out, wrt, grad_outputs=seed.reshape(out.shape))
                for slot, g in enumerate(grads):
                    rows[slot][j] = g.data.ravel()
        result.append(rows)
    return result


def _numeric_jacobians(
    fn: Callable, inputs: Sequence[Tensor], checked: list[int], eps: float
) -> list[list[np.ndarray]]:
    """Central differences, one input element at a time (in C order). Each evaluation gets
    a perturbed copy as the input's array; the original array is put back at the end."""
    # (grad mode stays on: for gradgradcheck, fn itself computes a gradient)
    columns: dict[tuple[int, int], list[np.ndarray]] = {}
    for i in checked:
        original = inputs[i].data
        try:
            for e in np.ndindex(original.shape):
                plus = _evaluate(fn, inputs, i, original, e, original[e] + eps)
                minus = _evaluate(fn, inputs, i, original, e, original[e] - eps)
                for k, (p, m) in enumerate(zip(plus, minus, strict=True)):
                    columns.setdefault((k, i), []).append(((p - m) / (2 * eps)).ravel())
        finally:
            inputs[i].data = original
    n_outputs = 1 + max(k for k, _ in columns)
    return [[np.stack(columns[(k, i)], axis=1) for i in checked] for k in range(n_outputs)]


def _evaluate(
    fn: Callable, inputs: Sequence[Tensor], i: int, original: np.ndarray, e: tuple, value: float
) -> list:
    """The outputs' values with input ``i`` = ``original`` but element ``e`` = ``value``."""
    shifted = original.copy()
    shifted[e] = value
    inputs[i].data = shifted
    return [o.data.copy() for o in _outputs(fn, inputs)]


def gradgradcheck(
    fn: Callable[..., Any],
    *inputs: Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check second derivatives: ``gradcheck`` of x -> grad(sum(fn(x) * v), x).

    ``v`` is a fixed random adjoint (from ``seed``), so this checks the VJPs of the VJPs,
    i.e. that each VJP was itself written with differentiable ops.
    """
    rng = np.random.default_rng(seed)
    wrt_index = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    shapes = [o.shape for o in _outputs(fn, inputs)]
    adjoints = [rng.standard_normal(s) for s in shapes]

    def first_derivative(*xs: Tensor) -> tuple[Tensor, ...]:
        outs = _outputs(fn, xs)
        wrt = [xs[i] for i in wrt_index]
        return grad(outs, wrt, grad_outputs=adjoints, create_graph=True)

    return gradcheck(first_derivative, *inputs, eps=eps, atol=atol, rtol=rtol)
