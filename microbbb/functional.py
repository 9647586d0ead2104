"""Functions on tensors: the primitives with friendly signatures, and stable composites.

Primitives (each one entry of the derivative table in ``engine/primitives.py``) are
re-exported here; reductions and shape ops get the usual ``axis``/``keepdims`` defaults.
Composites are built only from primitives, so their gradients need no new rules:

- ``log_sigmoid(x) = -softplus(-x)``: finite for x = +-1000 (log(sigmoid(x)) gives -inf)
- ``log_softmax(x) = x - logsumexp(x)``: finite for logits 1e4 apart
- ``softmax(x) = exp(log_softmax(x))``
- the ops learners reach for (numpy's names, arguments and defaults): exact composites where
  the table already has what they need (``square = x * x``, ``tan = sin / cos``,
  ``min = -max(-x)``, ``var``/``std`` in two passes as numpy, every shape op from reshape,
  transpose, broadcast_to, getitem, scatter_add or where, ``dot``/``outer`` from matmul
  and mul, ``trace = sum(diagonal)``), and table entries where no exact, stable composite
  exists (``maximum``/``minimum``, ``prod``, ``cumsum``, ``einsum``, ``expm1``,
  ``log2``/``log10``, ``arctan``, ``sinh``/``cosh``, ``sign``/``floor``/``ceil``)
- negative log-likelihoods: ``gaussian_nll``, ``bernoulli_nll``, ``categorical_nll``. They
  refuse labels and predictions of different shapes instead of broadcasting them.

Nothing here knows about Bayes by Backprop.
"""

from __future__ import annotations

import builtins
import math
import string
from typing import Any

import numpy as np

from .engine import ShapeError, Tensor
from .engine import primitives as P
from .engine.primitives import (
    abs,
    add,
    broadcast_to,
    concatenate,
    cos,
    div,
    exp,
    log,
    log1p,
    logaddexp,
    matmul,
    mul,
    neg,
    normal_log_prob,
    pow,
    relu,
    reparameterize,
    sigmoid,
    sin,
    softplus,
    sqrt,
    stack,
    sub,
    tanh,
    where,
)

__all__ = [
    "abs", "add", "arctan", "bernoulli_nll", "broadcast_to", "categorical_nll", "ceil",
    "clip", "concatenate", "cos", "cosh", "cumsum", "diagonal", "div", "dot", "einsum",
    "exp", "expand_dims", "expm1", "flatten", "flip", "floor", "gaussian_nll", "log",
    "log10", "log1p", "log2", "log_sigmoid", "log_softmax", "logaddexp", "logsumexp",
    "matmul", "max", "maximum", "mean", "min", "minimum", "moveaxis", "mul", "neg",
    "normal_log_prob", "outer", "pad", "pow", "prod", "ravel", "relu", "reparameterize",
    "repeat", "reshape", "roll", "scale_mixture_log_prob", "sigmoid", "sign", "sin", "sinh",
    "softmax", "softplus", "split", "sqrt", "square", "squeeze", "stack", "std", "sub",
    "sum", "swapaxes", "tan", "tanh", "tile", "trace", "transpose", "tril", "triu",
    "unsqueeze", "var", "where",
]  # fmt: skip


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (all axes when None)."""
    return P.sum(x, axis=_axis(axis), keepdims=keepdims)


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (all axes when None)."""
    return P.mean(x, axis=_axis(axis), keepdims=keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis``. Tie rule: tied maxima share the gradient equally."""
    return P.max(x, axis=_axis(axis), keepdims=keepdims)


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """$\\log \\sum_i e^{x_i}$ over ``axis``, computed as m + log sum exp(x - m), m = max."""
    return P.logsumexp(x, axis=_axis(axis), keepdims=keepdims)


def reshape(x: Any, shape: Any) -> Tensor:
    """Same data, new shape."""
    return P.reshape(x, shape=tuple(shape) if isinstance(shape, list) else shape)


def transpose(x: Any, axes: Any = None) -> Tensor:
    """Permute axes (reverse them when None)."""
    ndim = np.ndim(x.data if isinstance(x, Tensor) else x)
    return P.transpose(x, axes=tuple(axes) if axes is not None else tuple(range(ndim))[::-1])


def clip(x: Any, low: float | None = None, high: float | None = None) -> Tensor:
    """Clamp to [low, high]; the gradient is zero where a value was clamped."""
    return P.clip(x, low=low, high=high)


def scale_mixture_log_prob(w: Any, pi: float, sigma1: float, sigma2: float) -> Tensor:
    """$\\log[\\pi N(w; 0, \\sigma_1^2) + (1 - \\pi) N(w; 0, \\sigma_2^2)]$, elementwise.

    One primitive (computed with logaddexp, finite for any w), so a prior costs one
    record per weight tensor instead of six.
    """
    return P.scale_mixture_log_prob(w, pi=float(pi), sigma1=float(sigma1), sigma2=float(sigma2))


def log_sigmoid(x: Any) -> Tensor:
    """$\\log \\sigma(x) = -\\mathrm{softplus}(-x)$, finite for any x."""
    return -softplus(neg(x))


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """$x_i - \\log \\sum_j e^{x_j}$ along ``axis``."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x: Any, axis: int = -1) -> Tensor:
    """$e^{x_i} / \\sum_j e^{x_j}$ along ``axis``."""
    return exp(log_softmax(x, axis=axis))


# --- the ops learners reach for: checks of their arguments ------------------------------------


def _shape(x: Any) -> tuple:
    return x.shape if isinstance(x, Tensor) else np.shape(x)


def _axis_index(fn: str, axis: Any, ndim: int, what: str = "axis") -> int:
    """``axis`` as an axis of a tensor with ``ndim`` axes (negative counts from the end)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: {what} must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        valid = f"from {-ndim} to {ndim - 1}" if ndim else "none: a 0-d tensor has no axes"
        raise ValueError(
            f"{fn}: {what} {axis} is out of range for a tensor with {ndim} axes (valid: {valid})"
        )
    return int(axis) % ndim


def _axes(fn: str, axis: Any, ndim: int) -> tuple:
    """An int or a sequence of ints as distinct non-negative axes, in the order given."""
    axes = tuple(_axis_index(fn, a, ndim) for a in (axis if _is_sequence(axis) else (axis,)))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{fn}: axis {axis!r} names the same axis twice; name each axis once")
    return axes


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (tuple, list, np.ndarray))


def _count(fn: str, what: str, value: Any) -> int:
    """A non-negative int (a repeat count, a number of sections, a pad width)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{fn}: {what} must be a non-negative int, got {value!r}")
    return int(value)


# --- elementwise ------------------------------------------------------------------------------


def maximum(x: Any, y: Any) -> Tensor:
    """Elementwise $\\max(x, y)$, with broadcasting. Where x == y both inputs get half of the
    gradient (torch's tie rule). The largest entry of one tensor is ``max``."""
    return P.maximum(x, y)


def minimum(x: Any, y: Any) -> Tensor:
    """Elementwise $\\min(x, y)$, with broadcasting; ties split the gradient as ``maximum``."""
    return P.minimum(x, y)


def square(x: Any) -> Tensor:
    """$x^2$, as x * x (what np.square computes). Gradient 2 x g."""
    return mul(x, x)


def expm1(x: Any) -> Tensor:
    """$e^x - 1$, accurate for tiny x (exp(x) - 1 keeps 7 of 16 digits at x = 1e-10)."""
    return P.expm1(x)


def log2(x: Any) -> Tensor:
    """$\\log_2 x$; exact at powers of 2, where log(x) / log(2) can be off by one ulp."""
    return P.log2(x)


def log10(x: Any) -> Tensor:
    """$\\log_{10} x$; exact at powers of 10 (log(1000) / log(10) is 2.9999999999999996)."""
    return P.log10(x)


def tan(x: Any) -> Tensor:
    """$\\tan x = \\sin x / \\cos x$ (within a few ulps of np.tan). Gradient $g / \\cos^2 x$."""
    return sin(x) / cos(x)


def arctan(x: Any) -> Tensor:
    """$\\arctan x$, in (-pi/2, pi/2). Gradient $g / (1 + x^2)$."""
    return P.arctan(x)


def sinh(x: Any) -> Tensor:
    """$\\sinh x = (e^x - e^{-x}) / 2$, accurate near 0 and finite up to |x| = 710."""
    return P.sinh(x)


def cosh(x: Any) -> Tensor:
    """$\\cosh x = (e^x + e^{-x}) / 2$, finite up to |x| = 710."""
    return P.cosh(x)


def sign(x: Any) -> Tensor:
    """-1, 0 or 1. Piecewise constant: its gradient is 0 (at 0 too, as in torch)."""
    return P.sign(x)


def floor(x: Any) -> Tensor:
    """The largest integer <= x. Gradient 0 (at the jumps too, as in torch)."""
    return P.floor(x)


def ceil(x: Any) -> Tensor:
    """The smallest integer >= x. Gradient 0 (at the jumps too, as in torch)."""
    return P.ceil(x)


# --- reductions and scans ---------------------------------------------------------------------


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axis``, as -max(-x) (exact: negation flips a sign bit). Tied minima
    share the gradient equally. The elementwise minimum of two tensors is ``minimum``."""
    return neg(P.max(neg(x), axis=_axis(axis), keepdims=keepdims))


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``. The gradient of an entry is the product of the others, computed
    without dividing: with one zero in a product, that zero's gradient is the product of the
    others and every other gradient 0; with two or more zeros all are 0."""
    return P.prod(x, axis=_axis(axis), keepdims=keepdims)


def var(x: Any, axis: Any = None, *, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """Variance over ``axis``: $\\sum (x - \\bar x)^2 / (n - \\mathrm{ddof})$, in two passes
    (the mean first) as numpy, so a large common offset costs no digits. ``ddof=1`` gives
    the unbiased estimate (torch's default). Gradient $2 (x - \\bar x) g / (n - ddof)$."""
    shape = _shape(x)
    axes = None if axis is None else _axes("var", axis, len(shape))
    n = math.prod(shape[a] for a in axes) if axes is not None else math.prod(shape)
    if n - ddof <= 0:
        raise ValueError(
            f"var: ddof={ddof} leaves n - ddof = {n - ddof} degrees of freedom for the {n}"
            f" value(s) reduced (x has shape {shape}, axis={axis!r}); use a smaller ddof or"
            " reduce over more values"
        )
    centred = x - mean(x, axis=axes, keepdims=True)
    return sum(centred * centred, axis=axes, keepdims=keepdims) / (n - ddof)


def std(x: Any, axis: Any = None, *, ddof: int = 0, keepdims: bool = False) -> Tensor:
    """Standard deviation, $\\sqrt{\\mathrm{var}(x)}$ (same arguments as ``var``). Where all
    values are equal (std = 0, a kink) the gradient is 0, as in torch, not 0 / 0."""
    v = var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    spread = v.data != 0  # (NaN included: it stays NaN)
    return where(spread, sqrt(where(spread, v, 1.0)), 0.0)  # sqrt never sees the zeros


def cumsum(x: Any, axis: int | None = None) -> Tensor:
    """Running sum along ``axis``; of the flattened tensor when None (numpy's default).
    Gradient: the running sum of g from the other end."""
    if axis is None:
        return P.cumsum(ravel(x), axis=0)
    return P.cumsum(x, axis=_axis_index("cumsum", axis, len(_shape(x))))


# --- shapes: moving, adding and removing axes -------------------------------------------------


def squeeze(x: Any, axis: Any = None) -> Tensor:
    """Remove axes of size 1: all of them when ``axis`` is None, else the ones named."""
    shape = _shape(x)
    if axis is None:
        axes = tuple(i for i, n in enumerate(shape) if n == 1)
    else:
        axes = _axes("squeeze", axis, len(shape))
        for a in axes:
            if shape[a] != 1:
                raise ValueError(
                    f"squeeze: axis {a} of x (shape {shape}) has size {shape[a]}, not 1; only"
                    " axes of size 1 can be removed (squeeze(x) removes all of them)"
                )
    return P.reshape(x, shape=tuple(n for i, n in enumerate(shape) if i not in axes))


def expand_dims(x: Any, axis: Any) -> Tensor:
    """Insert axes of size 1 at the positions ``axis`` (an int or a tuple) of the result."""
    shape = _shape(x)
    count = len(axis) if _is_sequence(axis) else 1
    axes = _axes("expand_dims", axis, len(shape) + count)
    rest = iter(shape)
    return P.reshape(
        x, shape=tuple(1 if i in axes else next(rest) for i in range(len(shape) + count))
    )


def unsqueeze(x: Any, dim: int) -> Tensor:
    """torch's name for ``expand_dims`` with one axis: a new axis of size 1 at ``dim``."""
    return expand_dims(x, dim)


def swapaxes(x: Any, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes (a transpose)."""
    ndim = len(_shape(x))
    order = list(range(ndim))
    a1, a2 = _axis_index("swapaxes", axis1, ndim), _axis_index("swapaxes", axis2, ndim)
    order[a1], order[a2] = a2, a1
    return P.transpose(x, axes=tuple(order))


def moveaxis(x: Any, source: Any, destination: Any) -> Tensor:
    """Move axes to new positions, the others keeping their order (a transpose)."""
    ndim = len(_shape(x))
    src, dst = _axes("moveaxis", source, ndim), _axes("moveaxis", destination, ndim)
    if len(src) != len(dst):
        raise ValueError(
            f"moveaxis: {len(src)} source axes but {len(dst)} destinations; give one"
            " destination per source axis"
        )
    order = [a for a in range(ndim) if a not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return P.transpose(x, axes=tuple(order))


def ravel(x: Any) -> Tensor:
    """The entries in one axis, in C order (a reshape to (-1,))."""
    return P.reshape(x, shape=(math.prod(_shape(x)),))


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge the axes ``start_dim`` to ``end_dim`` (both included) into one, as torch and
    tinygrad; with the defaults it is ``ravel`` (numpy's ``x.flatten()``)."""
    shape = _shape(x)
    if not shape:
        return ravel(x)
    s = _axis_index("flatten", start_dim, len(shape), "start_dim")
    e = _axis_index("flatten", end_dim, len(shape), "end_dim")
    if s > e:
        raise ValueError(
            f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for x of shape"
            f" {shape}; give start_dim <= end_dim"
        )
    return P.reshape(x, shape=shape[:s] + (math.prod(shape[s : e + 1]),) + shape[e + 1 :])


# --- shapes: copies, reversals, pieces ---------------------------------------------------------


def repeat(x: Any, repeats: Any, axis: int | None = None) -> Tensor:
    """numpy's repeat: each entry ``repeats`` times along ``axis`` (of the flattened tensor
    when None); ``repeats`` is an int or one count per entry. ([1, 2] -> [1, 1, 2, 2]; torch's
    ``x.repeat`` is ``tile``.) Gradient: the copies' gradients added up."""
    if axis is None:
        x, axis = ravel(x), 0
    shape = _shape(x)
    a = _axis_index("repeat", axis, len(shape))
    counts = np.asarray(repeats)
    if counts.ndim == 0 or counts.shape == (1,):  # the same count for every entry
        r = _count("repeat", "repeats", counts.reshape(()).item())
        copies = P.broadcast_to(
            P.reshape(x, shape=shape[: a + 1] + (1,) + shape[a + 1 :]),
            shape=shape[: a + 1] + (r,) + shape[a + 1 :],
        )
        return P.reshape(copies, shape=shape[:a] + (shape[a] * r,) + shape[a + 1 :])
    if counts.shape != (shape[a],):
        raise ValueError(
            f"repeat: {counts.size} repeat counts for axis {axis} of length {shape[a]}; give"
            " one count per entry along the axis, or a single int"
        )
    index = np.repeat(np.arange(shape[a]), [_count("repeat", "repeats", c) for c in counts])
    return P.getitem(x, (slice(None),) * a + (index,))


def tile(x: Any, reps: Any) -> Tensor:
    """numpy's tile: the whole tensor repeated ``reps`` times (an int or one count per axis,
    aligned from the right). ([1, 2] -> [1, 2, 1, 2]; torch's ``x.repeat``.)"""
    reps = tuple(_count("tile", "reps", r) for r in (reps if _is_sequence(reps) else (reps,)))
    shape = _shape(x)
    ndim = builtins.max(len(shape), len(reps))
    shape = (1,) * (ndim - len(shape)) + tuple(shape)
    reps = (1,) * (ndim - len(reps)) + reps
    spread = P.reshape(x, shape=tuple(v for n in shape for v in (1, n)))  # (1, n0, 1, n1, ...)
    copies = P.broadcast_to(
        spread, shape=tuple(v for r, n in zip(reps, shape, strict=True) for v in (r, n))
    )
    return P.reshape(copies, shape=tuple(r * n for r, n in zip(reps, shape, strict=True)))


def flip(x: Any, axis: Any = None) -> Tensor:
    """Reverse the order of the entries along ``axis`` (all axes when None): a getitem with
    step -1."""
    ndim = len(_shape(x))
    axes = range(ndim) if axis is None else _axes("flip", axis, ndim)
    return P.getitem(x, tuple(slice(None, None, -1 if i in axes else 1) for i in range(ndim)))


def roll(x: Any, shift: Any, axis: Any = None) -> Tensor:
    """Shift entries along ``axis`` by ``shift`` places, those pushed off the end coming back
    at the start (of the flattened tensor when ``axis`` is None): out[i] = x[(i - shift) % n],
    a getitem per axis."""
    shape = _shape(x)
    if axis is None:
        return P.reshape(roll(ravel(x), shift, 0), shape=shape)
    try:
        shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    except ValueError:
        raise ValueError(
            f"roll: shift {shift!r} and axis {axis!r} do not pair up; give one shift per axis"
        ) from None
    if shifts.dtype.kind not in "iu":
        raise TypeError(f"roll: shift must be an int or ints, got {shift!r}")
    total: dict[int, int] = {}  # several shifts of one axis add up, as in numpy
    for s, a in zip(shifts.ravel().tolist(), axes.ravel().tolist(), strict=True):
        a = _axis_index("roll", a, len(shape))
        total[a] = total.get(a, 0) + s
    out = x
    for a, s in total.items():
        out = P.getitem(out, (slice(None),) * a + (np.roll(np.arange(shape[a]), s),))
    return out


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """numpy's split along ``axis``: into N equal pieces (an int), or at the given indices
    ([2, 5] gives x[:2], x[2:5], x[5:]). Each piece is a getitem of a slice."""
    shape = _shape(x)
    a = _axis_index("split", axis, len(shape))
    n = shape[a]
    if _is_sequence(indices_or_sections):
        points = [int(i) for i in indices_or_sections]
    else:
        sections = _count("split", "the number of sections", indices_or_sections)
        if sections == 0:
            raise ValueError("split: the number of sections must be at least 1, got 0")
        if n % sections:
            raise ValueError(
                f"split: axis {axis} has length {n}, which {sections} equal sections cannot"
                f" divide; pass the split points instead, for example"
                f" split(x, {_even_points(n, sections)}, axis={axis}) for pieces whose"
                " lengths differ by at most one"
            )
        points = list(range(n // sections, n, n // sections))
    edges = [0, *points, n]
    return [
        P.getitem(x, (slice(None),) * a + (slice(lo, hi),))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]


def _even_points(n: int, sections: int) -> list[int]:
    """Split points for ``sections`` pieces of ``n`` as even as possible (np.array_split)."""
    q, r = divmod(n, sections)
    sizes = [q + 1] * r + [q] * (sections - r)
    return np.cumsum(sizes)[:-1].tolist()


def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: float = 0) -> Tensor:
    """numpy's pad, constant mode: ``pad_width`` entries of ``constant_values`` before and
    after each axis (an int, a (before, after) pair, or one pair per axis). x is placed
    with scatter_add, so its gradient is the matching slice of g."""
    if mode != "constant":
        raise ValueError(
            f"pad: only mode='constant' is supported, got mode={mode!r}. Other modes can be"
            " built from slices of x and concatenate: for example 'edge' along axis 0 with"
            " width 1 is concatenate([x[:1], x, x[-1:]])"
        )
    if np.ndim(constant_values) != 0:
        raise ValueError(
            "pad: constant_values must be a single number; one value per side or per axis"
            " is not supported (pad twice, or add a constant tensor to the padded result)"
        )
    shape = _shape(x)
    widths = _pad_widths(pad_width, len(shape))
    index = tuple(slice(before, before + n) for (before, _), n in zip(widths, shape, strict=True))
    padded_shape = tuple(b + n + a for (b, a), n in zip(widths, shape, strict=True))
    out = P.scatter_add(x, index=index, shape=padded_shape)
    if constant_values == 0:
        return out
    inside = np.zeros(padded_shape, dtype=bool)
    inside[index] = True
    return where(inside, out, float(constant_values))


def _pad_widths(pad_width: Any, ndim: int) -> list[tuple[int, int]]:
    """``pad_width`` as one (before, after) pair of non-negative ints per axis."""
    hint = (
        f"; give an int, a (before, after) pair, or one pair per axis ({ndim} pairs, as"
        " ((1, 1), (0, 2)) for a matrix)"
    )
    widths = np.asarray(pad_width)
    if widths.dtype.kind not in "iu":
        raise ValueError(f"pad: pad_width must hold ints, got {pad_width!r}{hint}")
    try:
        widths = np.broadcast_to(widths, (ndim, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width {pad_width!r} does not fit x's {ndim} axes{hint}"
        ) from None
    if (widths < 0).any():
        raise ValueError(f"pad: pad_width must not be negative, got {pad_width!r}")
    return [(int(b), int(a)) for b, a in widths]


# --- matrices: diagonals and triangles ---------------------------------------------------------


def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """numpy's diagonal: the entries x[..., i, i + offset] of the plane (axis1, axis2), as a
    new last axis. A getitem with two index arrays; the gradient lands on the diagonal."""
    shape = _shape(x)
    if len(shape) < 2:
        raise ValueError(f"diagonal: x has shape {shape}; a diagonal needs at least 2 axes")
    a1 = _axis_index("diagonal", axis1, len(shape), "axis1")
    a2 = _axis_index("diagonal", axis2, len(shape), "axis2")
    if a1 == a2:
        raise ValueError(f"diagonal: axis1 and axis2 are both axis {a1}; give two different axes")
    order = tuple(i for i in range(len(shape)) if i not in (a1, a2)) + (a1, a2)
    start1, start2 = builtins.max(-offset, 0), builtins.max(offset, 0)
    k = np.arange(builtins.max(0, builtins.min(shape[a1] - start1, shape[a2] - start2)))
    return P.getitem(P.transpose(x, axes=order), (Ellipsis, k + start1, k + start2))


def trace(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """The sum of the diagonal (numpy's trace: same arguments as ``diagonal``)."""
    return sum(diagonal(x, offset=offset, axis1=axis1, axis2=axis2), axis=-1)


def tril(x: Any, k: int = 0) -> Tensor:
    """The lower triangle of the last two axes: entries above diagonal ``k`` set to 0 (a
    where with a constant mask, so they get no gradient)."""
    return where(np.tri(*_matrix_shape("tril", x), k=k, dtype=bool), x, 0.0)


def triu(x: Any, k: int = 0) -> Tensor:
    """The upper triangle of the last two axes: entries below diagonal ``k`` set to 0."""
    return where(~np.tri(*_matrix_shape("triu", x), k=k - 1, dtype=bool), x, 0.0)


def _matrix_shape(fn: str, x: Any) -> tuple:
    shape = _shape(x)
    if not shape:
        raise ValueError(f"{fn}: x is 0-d; it needs at least one axis (the last two are a matrix)")
    return tuple(shape[-2:])


# --- products ----------------------------------------------------------------------------------


def dot(a: Any, b: Any) -> Tensor:
    """numpy's dot: a product for scalars, matmul up to 2-d operands, and for more axes the
    sum over the last axis of ``a`` and the second-to-last of ``b``
    (dot(a, b)[i, j, k, m] = sum_l a[i, j, l] b[k, l, m])."""
    sa, sb = _shape(a), _shape(b)
    if not sa or not sb:
        return mul(a, b)
    inner = sb[-2] if len(sb) > 1 else sb[0]
    if sa[-1] != inner:
        raise ShapeError(
            f"dot: shapes {sa} and {sb} do not fit: the last axis of a ({sa[-1]}) must equal"
            f" the {'second-to-last' if len(sb) > 1 else 'only'} axis of b ({inner}). Check"
            " the order of the operands, or transpose one"
        )
    if len(sb) <= 2:
        return matmul(a, b)
    rows = P.reshape(a, shape=(-1, inner))
    columns = P.reshape(moveaxis(b, -2, 0), shape=(inner, -1))
    return P.reshape(matmul(rows, columns), shape=sa[:-1] + sb[:-2] + sb[-1:])


def outer(a: Any, b: Any) -> Tensor:
    """numpy's outer: out[i, j] = a[i] * b[j] of the flattened inputs."""
    return mul(P.reshape(a, shape=(-1, 1)), P.reshape(b, shape=(1, -1)))


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """numpy's einsum: "ij,jk->ik" is a matrix product, "ii->" a trace, "bij,bjk->bik" a
    batch of products. "..." stands for leading axes that broadcast; without "->" the
    output is the letters used once, in alphabetical order (after "..."). One table entry:
    the gradient of each operand is the einsum of g with the other operands."""
    if not isinstance(subscripts, str):
        raise TypeError(
            "einsum: the first argument is the subscripts string, as in"
            " einsum('ij,jk->ik', a, b); numpy's (operand, sublist, ...) form is not supported"
        )
    if not operands:
        raise ValueError("einsum: no operands; give them after the subscripts")
    ndims = [len(_shape(a)) for a in operands]
    return P.einsum(*operands, subscripts=_explicit_subscripts(subscripts, ndims))


def _explicit_subscripts(subscripts: str, ndims: list[int]) -> str:
    """``subscripts`` with "..." spelled out as letters and the output written: "in,...->out"."""
    text = subscripts.replace(" ", "")
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(
            f"einsum: the subscripts {subscripts!r} name {len(terms)} operand(s), but"
            f" {len(ndims)} were given; write one comma-separated term per operand"
        )
    if set(text.replace("...", "")) - set(string.ascii_letters) - set(",->"):
        raise ValueError(
            f"einsum: subscripts {subscripts!r} may hold only letters, ',', '->' and '...'"
        )
    spare = [c for c in string.ascii_letters if c not in text]
    extra = [n - len(t.replace("...", "")) for t, n in zip(terms, ndims, strict=True)]
    for k, (term, n, e) in enumerate(zip(terms, ndims, extra, strict=True)):
        if e < 0 or (e > 0 and "..." not in term):
            raise ValueError(
                f"einsum: operand {k} has {n} axes but its term {term!r} names"
                f" {len(term.replace('...', ''))}; give one letter per axis (or '...' for the"
                " leading ones)"
            )
    batch = "".join(spare[: builtins.max([0, *extra])])
    explicit = [
        t.replace("...", batch[len(batch) - e :]) for t, e in zip(terms, extra, strict=True)
    ]
    if not arrow:
        letters = "".join(t.replace("...", "") for t in terms)
        output = batch + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    elif batch and "..." not in output:
        raise ValueError(
            f"einsum: the inputs of {subscripts!r} use '...' but the output does not; write"
            " '...' in the output too (and sum those axes afterwards if you want them gone)"
        )
    output = output.replace("...", batch)
    if len(set(output)) != len(output) or set(output) - set("".join(explicit)):
        raise ValueError(
            f"einsum: the output of {subscripts!r} must name each letter once, and only"
            " letters of the inputs"
        )
    return ",".join(explicit) + "->" + output


# --- negative log-likelihoods ---------------------------------------------------------------


def _reduce(terms: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return terms.sum()
    if reduction == "mean":
        return terms.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def _array(a: Any) -> np.ndarray:
    return a.data if isinstance(a, Tensor) else np.asarray(a)


def _check_same_shape(fn: str, pred_name: str, pred: Any, y: np.ndarray) -> None:
    shape = pred.shape
    if shape != y.shape:
        hint = ""
        if len(shape) == 2 and shape[1] == 1 and y.shape == shape[:1]:
            hint = (
                f" Multiplying them would silently broadcast to ({shape[0]}, {shape[0]})."
                f" Use {pred_name}.reshape(-1), or y.reshape(-1, 1)."
            )
        raise ValueError(
            f"{fn}: {pred_name} has shape {shape} but labels y have shape {y.shape};"
            f" they must be equal.{hint}"
        )
    if not np.isfinite(y).all():
        raise ValueError(f"{fn}: labels y contain NaN or inf; clean the data first.")


def gaussian_nll(y: Any, mean: Any, sigma: Any, reduction: str = "sum") -> Tensor:
    """$-\\sum_n \\log N(y_n; \\mathrm{mean}_n, \\sigma^2)$ (``sigma`` a number or tensor)."""
    y = _array(y)
    _check_same_shape("gaussian_nll", "mean", mean, y)
    return _reduce(-normal_log_prob(y.astype(mean.dtype), mean, sigma), reduction)


def bernoulli_nll(logits: Tensor, y: Any, reduction: str = "sum") -> Tensor:
    """$-\\sum_n [y_n \\log \\sigma(l_n) + (1 - y_n) \\log \\sigma(-l_n)]$ for y in {0, 1}.

    Computed as softplus(l) - y * l, the same value without evaluating sigmoid.
    """
    values = _array(y)
    _check_same_shape("bernoulli_nll", "logits", logits, values)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(
            "bernoulli_nll: labels y must be 0 or 1; got values such as"
            f" {np.unique(values[~np.isin(values, (0, 1))])[:5].tolist()}."
        )
    labels = y if isinstance(y, Tensor) else values.astype(logits.dtype)
    return _reduce(softplus(logits) - labels * logits, reduction)


def categorical_nll(logits: Tensor, y: Any, reduction: str = "sum") -> Tensor:
    """$-\\sum_n \\log \\mathrm{softmax}(l_n)_{y_n}$ for integer class labels y.

    ``logits`` has shape (N, C) with C >= 2, ``y`` shape (N,) with values in 0..C-1.
    """
    y = _array(y)
    if logits.ndim != 2:
        raise ValueError(f"categorical_nll: logits must have shape (N, C); got {logits.shape}.")
    n, n_classes = logits.shape
    if n_classes < 2:
        raise ValueError(
            "categorical_nll: logits have a single class column. A softmax over one"
            " output is constantly 1, so its log-likelihood is 0 and its gradient is zero:"
            " nothing would be learned. For binary labels use one logit with"
            " bernoulli_nll (a sigmoid), or two logits with categorical_nll."
        )
    if y.shape != (n,):
        raise ValueError(
            f"categorical_nll: labels y must have shape ({n},) to match logits {logits.shape};"
            f" got {y.shape}."
        )
    if y.dtype.kind not in "iu":
        raise ValueError(
            "categorical_nll: labels y must be integer class indices (0, 1, 2, ...); got"
            f" dtype {y.dtype} with values such as {y.ravel()[:5].tolist()}. If they are"
            " whole numbers stored as floats, convert them with y.astype(int)."
        )
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"categorical_nll: labels must lie in 0..{n_classes - 1}; got values from"
            f" {y.min()} to {y.max()}."
        )
    picked = log_softmax(logits, axis=1)[np.arange(n), y]
    return _reduce(-picked, reduction)
