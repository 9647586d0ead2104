"""Functions on tensors: the primitives with friendly signatures, and stable composites.

Primitives (each one entry of the derivative table in ``engine/primitives.py``) are
re-exported here; reductions and shape ops get the usual ``axis``/``keepdims`` defaults.
Composites are built only from primitives, so their gradients need no new rules:

- ``log_sigmoid(x) = -softplus(-x)``: finite for x = +-1000 (log(sigmoid(x)) gives -inf)
- ``log_softmax(x) = x - logsumexp(x)``: finite for logits 1e4 apart
- ``softmax(x) = exp(log_softmax(x))``
- numpy's names, arguments and defaults for ops that are table entries because no exact,
  stable composite exists: ``maximum``/``minimum``, ``prod``, ``cumsum``, ``einsum``,
  ``expm1``, ``log2``/``log10``, ``arctan``, ``sinh``/``cosh``, ``sign``/``floor``/``ceil``
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

from .engine import Tensor
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
    "clip", "concatenate", "cos", "cosh", "cumsum", "div", "einsum", "exp", "expm1",
    "floor", "gaussian_nll", "log", "log10", "log1p", "log2", "log_sigmoid", "log_softmax",
    "logaddexp", "logsumexp", "matmul", "max", "maximum", "mean", "minimum", "mul", "neg",
    "normal_log_prob", "pow", "prod", "relu", "reparameterize", "reshape",
    "scale_mixture_log_prob", "sigmoid", "sign", "sin", "sinh", "softmax", "softplus",
    "sqrt", "stack", "sub", "sum", "tanh", "transpose", "where",
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


# --- elementwise ------------------------------------------------------------------------------


def maximum(x: Any, y: Any) -> Tensor:
    """Elementwise $\\max(x, y)$, with broadcasting. Where x == y both inputs get half of the
    gradient (torch's tie rule). The largest entry of one tensor is ``max``."""
    return P.maximum(x, y)


def minimum(x: Any, y: Any) -> Tensor:
    """Elementwise $\\min(x, y)$, with broadcasting; ties split the gradient as ``maximum``."""
    return P.minimum(x, y)


def expm1(x: Any) -> Tensor:
    """$e^x - 1$, accurate for tiny x (exp(x) - 1 keeps 7 of 16 digits at x = 1e-10)."""
    return P.expm1(x)


def log2(x: Any) -> Tensor:
    """$\\log_2 x$; exact at powers of 2, where log(x) / log(2) can be off by one ulp."""
    return P.log2(x)


def log10(x: Any) -> Tensor:
    """$\\log_{10} x$; exact at powers of 10 (log(1000) / log(10) is 2.9999999999999996)."""
    return P.log10(x)


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


def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``. The gradient of an entry is the product of the others, computed
    without dividing: with one zero in a product, that zero's gradient is the product of the
    others and every other gradient 0; with two or more zeros all are 0."""
    return P.prod(x, axis=_axis(axis), keepdims=keepdims)


def cumsum(x: Any, axis: int | None = None) -> Tensor:
    """Running sum along ``axis``; of the flattened tensor when None (numpy's default).
    Gradient: the running sum of g from the other end."""
    if axis is None:
        return P.cumsum(P.reshape(x, shape=(math.prod(_shape(x)),)), axis=0)
    return P.cumsum(x, axis=_axis_index("cumsum", axis, len(_shape(x))))


# --- products ----------------------------------------------------------------------------------


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
