"""The derivative table: every primitive op, its numpy forward and its VJPs side by side.

How to read an entry::

    mul = primitive("mul", np.multiply,
        lambda xp, g, out, x, y: g * y,     # VJP for x:  x_bar += g * y
        lambda xp, g, out, x, y: g * x,     # VJP for y:  y_bar += g * x
        rules=("g * y", "g * x"))

``g`` is the adjoint of the output (d final / d out, the shape of ``out``), ``out`` the
output value, then the inputs, then the op's keyword parameters. A VJP returns the adjoint
contribution for its input. If the input was broadcast, the VJP may return the broadcast
shape: the engine sums it back ("unbroadcast", ``sum_to``) in one place.

``xp`` is numpy (the forwards below) in an ordinary backward and microbbb (these
primitives) under ``create_graph=True``, so each line gives first and higher derivatives.
Inside VJPs, only operators (``+ - * / ** @ [] .T``) and ``xp.<primitive>`` are used, plus
two non-differentiable helpers (``xp.sign``, ``xp.equal``) that return constant arrays.

Public functions that need a little argument handling (``where``, ``concatenate``,
``stack``, ``sum``...) are defined at the end, on top of the table.
"""

from __future__ import annotations

import builtins
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .core import Primitive, ShapeError, Tensor

PRIMITIVES: list[Primitive] = []


def primitive(name: str, forward: Callable, *vjps: Callable, rules: Sequence[str]) -> Primitive:
    """Register an op: its numpy ``forward``, one VJP per input, and their formulas."""
    if len(vjps) == 1 and isinstance(vjps[0], EachInput):
        vjps = vjps[0]  # type: ignore[assignment]
    op = Primitive(name, forward, vjps, rules)
    PRIMITIVES.append(op)
    return op


class EachInput:
    """VJPs of an op with any number of inputs: ``vjps[i]`` calls ``make(i, ...)``."""

    def __init__(self, make: Callable):
        self.make = make

    def __getitem__(self, i: int) -> Callable:
        return lambda *args, **params: self.make(i, *args, **params)


# --- forward helpers ----------------------------------------------------------------------


# The forwards below work in place on their own temporaries: on large weight tensors the
# time goes into new arrays and into np.logaddexp, which numpy does not vectorise.


def _exp_minus_abs(x: np.ndarray) -> np.ndarray:
    e = np.abs(x, out=np.empty_like(x))  # explicit out=: a 0-d result stays an array
    np.negative(e, out=e)
    return np.exp(e, out=e)  # e^-|x| in (0, 1]: never overflows


SMALL = 4096  # below this many elements, fewer numpy calls beat fewer passes over memory


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # sigmoid(|x|) = 1 / (1 + e^-|x|) and sigmoid(-|x|) = e^-|x| / (1 + e^-|x|): no exp of a
    # large number, and full relative accuracy for very negative x too
    if x.size < SMALL:
        return np.exp(-np.logaddexp(0.0, -x))  # the same value in two calls
    e = _exp_minus_abs(x)
    d = np.add(e, 1.0, out=np.empty_like(e))
    np.divide(1.0, d, out=d)
    e *= d
    return np.where(x >= 0, d, e)


def _softplus(x: np.ndarray) -> np.ndarray:
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): softplus(1000) = 1000, softplus(-1000) = 0
    if x.size < SMALL:
        return np.logaddexp(0.0, x)  # the same value in one call
    e = _exp_minus_abs(x)
    np.log1p(e, out=e)
    e += np.maximum(x, 0.0)
    return e


def _keepdims_shape(shape: tuple, axis: Any) -> tuple:
    """The shape of a reduction over ``axis`` with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _reduced_size(shape: tuple, axis: Any) -> int:
    return math.prod(shape) // math.prod(_keepdims_shape(shape, axis))


def _broadcast_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """np.broadcast_to: a read-only view. A single value (the VJP of a full sum) is
    broadcast without numpy's helper (7 us): into a new array when the result is small
    (it can then become a ``.grad`` without a copy), else as a zero-stride view."""
    if x.shape == shape:
        return x
    if x.size == 1:
        if math.prod(shape) < SMALL:
            filled = np.empty(shape, x.dtype)
            filled[...] = x
            return filled
        view = np.ndarray(shape, x.dtype, np.ascontiguousarray(x), strides=(0,) * len(shape))
        view.flags.writeable = False
        return view
    return np.broadcast_to(x, shape)


def _sum_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``x`` down to ``shape``: the reverse of broadcasting ``shape`` up to x.shape.
    Summed: the leading axes ``shape`` lacks, and the axes where ``shape`` has a 1."""
    lead = x.ndim - len(shape)
    axes = list(range(lead))
    for i, n in enumerate(shape):
        if lead < 0 or (n != 1 and n != x.shape[lead + i]):  # cheaper than broadcast_shapes
            raise ShapeError(f"sum_to: shape {shape} does not broadcast to {x.shape}")
        if n != x.shape[lead + i]:
            axes.append(lead + i)
    if not axes:
        return x.reshape(shape)
    return np.add.reduce(x, tuple(axes), keepdims=True).reshape(shape)


def _scatter_add(x: np.ndarray, index: Any, shape: tuple) -> np.ndarray:
    """zeros(shape) with x added at ``index``; repeated indices add up."""
    out = np.zeros(shape, dtype=x.dtype)
    if _is_basic(index):
        out[index] = x  # ints and slices cannot repeat a position
    else:
        np.add.at(out, index, x)
    return out


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in parts)


def _matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.ndim == 0 or y.ndim == 0 or x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
        inner = y.shape[-2 if y.ndim > 1 else 0] if y.ndim else None
        raise ShapeError(
            f"matmul: shapes {x.shape} @ {y.shape} do not fit: the last axis of the left"
            f" ({x.shape[-1] if x.ndim else 'none'}) must equal the"
            f" {'second-to-last' if y.ndim > 1 else 'only'} axis of the right ({inner})."
            " Check the order of the operands, or transpose one (.T)."
        )
    return x @ y


def _clip(x: np.ndarray, low: Any, high: Any) -> np.ndarray:
    # np.clip with one bound is 3x slower than np.maximum / np.minimum
    if high is None:
        return np.maximum(x, low) if low is not None else x.copy()
    if low is None:
        return np.minimum(x, high)
    return np.clip(x, low, high)


def _zero_where(xp: Any, value: Any, mask: np.ndarray) -> Any:
    return xp.where(0.0, value, cond=mask)


def _zero_base(x: Any, y: Any) -> np.ndarray:
    x, y = _data(x), _data(y)
    return (x == 0) & (y >= 0)


def _inside(x: Any, low: Any, high: Any) -> np.ndarray:
    """low <= x <= high (a missing bound is no bound), as a constant mask."""
    x = _data(x)
    return (True if low is None else x >= low) & (True if high is None else x <= high)


def _inverse_permutation(axes: tuple, ndim: int) -> tuple:
    return tuple(int(i) for i in np.argsort([a % ndim for a in axes]))


def _mT(xp: Any, a: Any) -> Any:
    """Swap the last two axes."""
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return xp.transpose(a, axes=axes)


# matmul of 1-d operands drops an axis (numpy's rule); the VJPs put it back on g. Batch axes
# broadcast, and the engine sums the gradient back over them.
def _matmul_vjp_x(xp: Any, g: Any, out: Any, x: Any, y: Any) -> Any:
    if x.ndim == 2 and y.ndim == 2:
        return g @ y.T
    if x.ndim == 1 and y.ndim == 1:  # a dot product
        return g * y
    if x.ndim == 1:  # x (k,), y (..., k, m), g (..., m)
        return _row(xp, g) @ _mT(xp, y)
    if y.ndim == 1:  # x (..., n, k), y (k,), g (..., n)
        return xp.reshape(g, shape=g.shape + (1,)) * y
    return g @ _mT(xp, y)


def _matmul_vjp_y(xp: Any, g: Any, out: Any, x: Any, y: Any) -> Any:
    if x.ndim == 2 and y.ndim == 2:
        return x.T @ g
    if x.ndim == 1 and y.ndim == 1:
        return g * x
    if x.ndim == 1:  # x (k,), y (..., k, m), g (..., m)
        return xp.reshape(x, shape=(-1, 1)) @ _row(xp, g)
    if y.ndim == 1:  # x (..., n, k), y (k,), g (..., n)
        return _row(xp, g) @ x
    return _mT(xp, x) @ g


def _row(xp: Any, g: Any) -> Any:
    """(..., m) -> (..., 1, m)"""
    return xp.reshape(g, shape=g.shape[:-1] + (1, g.shape[-1]))


def _mean(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    # np.mean's Python wrapper costs 4 us; this is what it computes for float arrays
    return np.add.reduce(x, axis, keepdims=keepdims) / _reduced_size(x.shape, axis)


def _unreduce(xp: Any, g: Any, shape: tuple, axis: Any) -> Any:
    """The VJP of a sum over ``axis``: g put back on the summed axes, then broadcast."""
    if axis is not None:  # after a full sum g is one number: no axes to put back
        g = xp.reshape(g, shape=_keepdims_shape(shape, axis))
    return xp.broadcast_to(g, shape=shape)


def _max(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.max(x, axis=axis, keepdims=keepdims)


def _max_vjp(xp: Any, g: Any, out: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    shape = _keepdims_shape(x.shape, axis)
    is_max = xp.equal(x, xp.reshape(out, shape=shape))  # ties: every maximum is marked
    share = (is_max / is_max.sum(axis=axis, keepdims=True)).astype(x.dtype)  # split g
    return xp.reshape(g, shape=shape) * share


def _logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) slices: leave them to np.log
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # a Python float, so float32 stays float32


def _normal_log_prob(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    z = (x - mu) / sigma
    return -0.5 * z * z - np.log(sigma) - HALF_LOG_2PI


@functools.cache
def _mixture_terms(pi: float, sigma1: float, sigma2: float) -> tuple[float, ...]:
    """a = ln(pi N(w; 0, sigma1^2)) = c1 - h1 w^2 and b = ln((1 - pi) N(w; 0, sigma2^2))
    = c2 - h2 w^2: the constants c1, h1, c2, h2, and ln(1/sigma1^2), ln(1/sigma2^2), as
    Python floats (a numpy float64 scalar would upcast float32 weights)."""
    c1 = math.log(pi) - math.log(sigma1) - HALF_LOG_2PI
    c2 = math.log(1 - pi) - math.log(sigma2) - HALF_LOG_2PI
    return c1, 0.5 / sigma1**2, c2, 0.5 / sigma2**2, -2 * math.log(sigma1), -2 * math.log(sigma2)


@functools.cache
def _log_tiny(dtype: np.dtype) -> float:
    """Just above the log of the smallest normal number. numpy's exp leaves its fast vector
    loop for results below it (5x slower on large tensors), and in the mixture such a term
    is negligible: it is added to a number of order one (a log-density, or the other
    component's share)."""
    return math.log(np.finfo(dtype).tiny) + 1.0


def _scale_mixture_log_prob(w: np.ndarray, pi: float, sigma1: float, sigma2: float) -> np.ndarray:
    c1, h1, c2, h2 = _mixture_terms(pi, sigma1, sigma2)[:4]
    w2 = w * w
    if w.size < SMALL:
        return np.logaddexp(c1 - h1 * w2, c2 - h2 * w2)
    # logaddexp(a, b) = max(a, b) + log1p(e^-|a - b|), in place
    wide = np.multiply(w2, -h1, out=np.empty_like(w2))
    wide += c1
    narrow = np.multiply(w2, -h2, out=w2)
    narrow += c2
    gap = np.subtract(wide, narrow, out=np.empty_like(wide))
    np.abs(gap, out=gap)
    np.negative(gap, out=gap)
    np.maximum(gap, _log_tiny(w.dtype), out=gap)  # e^gap >= tiny: see _log_tiny
    np.log1p(np.exp(gap, out=gap), out=gap)
    return np.add(np.maximum(wide, narrow, out=wide), gap, out=wide)


def _mixture_vjp(xp: Any, g: Any, out: Any, w: Any, pi: float, sigma1: float, sigma2: float):
    # d out/dw = -w (r1/s1^2 + r2/s2^2) with the shares r1 = e^(a - out), r2 = e^(b - out)
    # (r1 + r2 = 1). Each share is computed from out, not as 1 - the other: no cancellation
    # near 1, which 1/s2^2 ~ 10^5 would magnify. The 1/s^2 go into the exponents; on large
    # tensors these are floored at _log_tiny (the other share is then of order one).
    c1, h1, c2, h2, log_k1, log_k2 = _mixture_terms(pi, sigma1, sigma2)
    w2 = w * w
    wide = (c1 + log_k1) - h1 * w2 - out  # ln(r1 / s1^2)
    narrow = (c2 + log_k2) - h2 * w2 - out  # ln(r2 / s2^2)
    if w.size >= SMALL:
        floor = _log_tiny(w.dtype)
        wide, narrow = xp.clip(wide, low=floor, high=None), xp.clip(narrow, low=floor, high=None)
    return -g * w * (xp.exp(wide) + xp.exp(narrow))


def _concat_vjp(i: int, xp: Any, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    axis = axis % g.ndim
    start = builtins.sum(x.shape[axis] for x in xs[:i])
    index = (slice(None),) * axis + (slice(start, start + xs[i].shape[axis]),)
    return xp.getitem(g, index=index)


# --- the table ------------------------------------------------------------------------------
# fmt: off
# elementwise, two inputs (numpy broadcasting; the engine sums gradients back to each shape)

add = primitive("add", np.add,
    lambda xp, g, out, x, y: g,
    lambda xp, g, out, x, y: g,
    rules=("g", "g"))
sub = primitive("sub", np.subtract,
    lambda xp, g, out, x, y: g,
    lambda xp, g, out, x, y: -g,
    rules=("g", "-g"))
mul = primitive("mul", np.multiply,
    lambda xp, g, out, x, y: g * y,
    lambda xp, g, out, x, y: g * x,
    rules=("g * y", "g * x"))
div = primitive("div", np.divide,
    lambda xp, g, out, x, y: g / y,
    lambda xp, g, out, x, y: -g * out / y,
    rules=("g / y", "-g * out / y"))
pow = primitive("pow", np.power,  # the masks give 0 where 0 * inf would give NaN
    lambda xp, g, out, x, y: _zero_where(xp, g * y * x ** (y - 1), xp.equal(y, 0)),
    lambda xp, g, out, x, y: _zero_where(xp, g * out * xp.log(x), _zero_base(x, y)),
    rules=("g * y * x**(y-1) (0 where y = 0)", "g * out * log(x) (0 where x = 0, y >= 0)"))
logaddexp = primitive("logaddexp", np.logaddexp,
    lambda xp, g, out, x, y: g * xp.exp(x - out),
    lambda xp, g, out, x, y: g * xp.exp(y - out),
    rules=("g * exp(x - out)", "g * exp(y - out)"))
matmul = primitive("matmul", _matmul,
    _matmul_vjp_x,
    _matmul_vjp_y,
    rules=("g @ y.mT", "x.mT @ g"))
normal_log_prob = primitive("normal_log_prob", _normal_log_prob,
    lambda xp, g, out, x, mu, sigma: -g * (x - mu) / sigma**2,
    lambda xp, g, out, x, mu, sigma: g * (x - mu) / sigma**2,
    lambda xp, g, out, x, mu, sigma: g * (((x - mu) / sigma) ** 2 - 1) / sigma,
    rules=("-g * (x-mu)/sigma**2", "g * (x-mu)/sigma**2",
           "g * (((x-mu)/sigma)**2 - 1)/sigma"))
scale_mixture_log_prob = primitive("scale_mixture_log_prob", _scale_mixture_log_prob,
    _mixture_vjp,
    rules=("-g * w * (r1/sigma1**2 + r2/sigma2**2), r_k = share of component k",))
reparameterize = primitive("reparameterize", lambda mu, sigma, eps: mu + sigma * eps,
    lambda xp, g, out, mu, sigma, eps: g,
    lambda xp, g, out, mu, sigma, eps: g * eps,
    lambda xp, g, out, mu, sigma, eps: g * sigma,
    rules=("g", "g * eps", "g * sigma"))

# elementwise, one input

neg = primitive("neg", np.negative,
    lambda xp, g, out, x: -g,
    rules=("-g",))
exp = primitive("exp", np.exp,
    lambda xp, g, out, x: g * out,
    rules=("g * out",))
log = primitive("log", np.log,
    lambda xp, g, out, x: g / x,
    rules=("g / x",))
log1p = primitive("log1p", np.log1p,
    lambda xp, g, out, x: g / (1 + x),
    rules=("g / (1 + x)",))
sqrt = primitive("sqrt", np.sqrt,
    lambda xp, g, out, x: g / (2 * out),
    rules=("g / (2 * out)",))
abs = primitive("abs", np.abs,
    lambda xp, g, out, x: g * xp.sign(x),
    rules=("g * sign(x)",))
sin = primitive("sin", np.sin,
    lambda xp, g, out, x: g * xp.cos(x),
    rules=("g * cos(x)",))
cos = primitive("cos", np.cos,
    lambda xp, g, out, x: -g * xp.sin(x),
    rules=("-g * sin(x)",))
tanh = primitive("tanh", np.tanh,
    lambda xp, g, out, x: g * (1 - out * out),
    rules=("g * (1 - out * out)",))
sigmoid = primitive("sigmoid", _sigmoid,
    lambda xp, g, out, x: g * out * (1 - out),
    rules=("g * out * (1 - out)",))
softplus = primitive("softplus", _softplus,
    lambda xp, g, out, x: g * xp.exp(x - out),
    rules=("g * exp(x - out) (= g * sigmoid(x))",))
relu = primitive("relu", lambda x: np.maximum(x, 0),
    lambda xp, g, out, x: g * (x > 0),
    rules=("g * (x > 0)",))
clip = primitive("clip", _clip,
    lambda xp, g, out, x, low, high: g * _inside(x, low, high),
    rules=("g * (low <= x <= high)",))
_where = primitive("where", lambda x, y, cond: np.where(cond, x, y),
    lambda xp, g, out, x, y, cond: xp.where(g, 0.0, cond=cond),
    lambda xp, g, out, x, y, cond: xp.where(0.0, g, cond=cond),
    rules=("where(cond, g, 0)", "where(cond, 0, g)"))

# reductions (axis: None, an int or a tuple of ints)

sum = primitive("sum", lambda x, axis, keepdims: np.add.reduce(x, axis, keepdims=keepdims),
    lambda xp, g, out, x, axis, keepdims: _unreduce(xp, g, x.shape, axis),
    rules=("broadcast g back to x.shape",))
mean = primitive("mean", _mean,
    lambda xp, g, out, x, axis, keepdims: _unreduce(xp, g, x.shape, axis)
        / _reduced_size(x.shape, axis),
    rules=("broadcast g back to x.shape, / n",))
max = primitive("max", _max,
    _max_vjp,
    rules=("g to the maxima of x (ties share equally)",))
logsumexp = primitive("logsumexp", _logsumexp,
    lambda xp, g, out, x, axis, keepdims: xp.reshape(
        g, shape=_keepdims_shape(x.shape, axis)
    ) * xp.exp(x - xp.reshape(out, shape=_keepdims_shape(x.shape, axis))),
    rules=("g * exp(x - out) (= g * softmax(x))",))

# shapes and indexing (each pair is its own dual: reshape/reshape, broadcast_to/sum_to, ...)

reshape = primitive("reshape", lambda x, shape: np.reshape(x, shape),
    lambda xp, g, out, x, shape: xp.reshape(g, shape=x.shape),
    rules=("reshape(g, x.shape)",))
transpose = primitive("transpose", lambda x, axes: np.transpose(x, axes),
    lambda xp, g, out, x, axes: xp.transpose(g, axes=_inverse_permutation(axes, x.ndim)),
    rules=("transpose(g, inverse of axes)",))
broadcast_to = primitive("broadcast_to", _broadcast_to,
    lambda xp, g, out, x, shape: xp.sum_to(g, shape=x.shape),
    rules=("sum_to(g, x.shape)",))
sum_to = primitive("sum_to", _sum_to,
    lambda xp, g, out, x, shape: xp.broadcast_to(g, shape=x.shape),
    rules=("broadcast_to(g, x.shape)",))
getitem = primitive("getitem", lambda x, index: x[index],
    lambda xp, g, out, x, index: xp.scatter_add(g, index=index, shape=x.shape),
    rules=("scatter_add(g, index, x.shape)",))
scatter_add = primitive("scatter_add", _scatter_add,
    lambda xp, g, out, x, index, shape: xp.getitem(g, index=index),
    rules=("g[index]",))
_concatenate = primitive("concatenate", lambda *xs, axis: np.concatenate(xs, axis=axis),
    EachInput(_concat_vjp),
    rules=("g[the slice of input i]",))
# fmt: on


def _data(a: Any) -> Any:
    return a.data if isinstance(a, Tensor) else a


# Not differentiable, so they need no VJP: they return constant arrays in both namespaces.
CONSTANT_HELPERS = {
    "sign": lambda a: np.sign(_data(a)),
    "equal": lambda a, b: np.equal(_data(a), _data(b)),
}


# --- public functions on top of the table ---------------------------------------------------


def _axis_param(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` is true, else ``y`` (gradients flow to the chosen one)."""
    cond = np.asarray(_data(condition), dtype=bool)
    return _where(x, y, cond=cond)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    ndim = np.ndim(_data(tensors[0]))
    return _concatenate(*tensors, axis=axis % ndim if ndim else axis)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis."""
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shape = np.shape(_data(tensors[0]))
    axis = axis % (len(shape) + 1)
    new_shape = shape[:axis] + (1,) + shape[axis:]
    return concatenate([_reshape_any(t, new_shape) for t in tensors], axis=axis)


def _reshape_any(a: Any, shape: tuple) -> Any:
    return reshape(a, shape=shape) if isinstance(a, Tensor) else np.reshape(a, shape)
