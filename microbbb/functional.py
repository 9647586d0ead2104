"""Functions on tensors: the primitives with friendly signatures, and stable composites.

Primitives (each one entry of the derivative table in ``engine/primitives.py``) are
re-exported here; reductions and shape ops get the usual ``axis``/``keepdims`` defaults.
Composites are built only from primitives, so their gradients need no new rules:

- ``log_sigmoid(x) = -softplus(-x)``: finite for x = +-1000 (log(sigmoid(x)) gives -inf)
- ``log_softmax(x) = x - logsumexp(x)``: finite for logits 1e4 apart
- ``softmax(x) = exp(log_softmax(x))``
- negative log-likelihoods: ``gaussian_nll``, ``bernoulli_nll``, ``categorical_nll``. They
  refuse labels and predictions of different shapes instead of broadcasting them.

Nothing here knows about Bayes by Backprop.
"""

from __future__ import annotations

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
    "abs", "add", "bernoulli_nll", "broadcast_to", "categorical_nll", "clip", "concatenate",
    "cos", "div", "exp", "gaussian_nll", "log", "log1p", "log_sigmoid", "log_softmax",
    "logaddexp", "logsumexp", "matmul", "max", "mean", "mul", "neg", "normal_log_prob",
    "pow", "relu", "reparameterize", "reshape", "scale_mixture_log_prob", "sigmoid", "sin",
    "softmax", "softplus", "sqrt", "stack", "sub", "sum", "tanh", "transpose", "where",
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
