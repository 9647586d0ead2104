"""Fast numpy kernels: the forwards of the derivative table that are more than one numpy call.

The table in ``primitives.py`` names these (``kernels.sigmoid``, ...). Each computes what its
one-line definition says; the code around it is there for speed or stability:

- stability: ``sigmoid``, ``softplus``, ``logsumexp`` and the scale mixture never take
  ``exp`` of a large number;
- speed on large tensors (at least ``SMALL`` elements): in-place work on the kernel's own
  temporaries (``out=``), and exponents floored above subnormal results (numpy's ``exp``
  is 5x slower there); on small tensors, fewer numpy calls;
- clear errors: ``matmul`` says which axes disagree.

Nothing here records anything or knows about tensors: inputs and outputs are numpy arrays.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

SMALL = 4096  # below this many elements, fewer numpy calls beat fewer passes over memory
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # a Python float, so float32 stays float32


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype: np.dtype) -> None:
    """Refuse what a tensor cannot hold (ints and bools are converted, so they pass)."""
    if dtype.kind not in "fiub" or (dtype.kind == "f" and dtype not in FLOAT_DTYPES):
        raise TypeError(
            f"microbbb tensors hold float32 or float64 numbers; got dtype {dtype}. "
            "Convert the data first, for example np.asarray(data, dtype=np.float64) "
            "(complex numbers, strings, objects and float16 are not supported)."
        )


class ShapeError(ValueError):
    """An op got inputs whose shapes do not fit together."""


def shape_error(name: str, shapes: list, params: dict, error: Exception) -> ShapeError:
    """The error for numpy's complaint about the shapes ``shapes`` of op ``name``'s inputs."""
    text = f"{name}: inputs of shapes {' and '.join(str(s) for s in shapes)} do not fit"
    if params:
        text += " (" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"
    if "broadcast" in str(error):
        text += (
            ". Broadcasting compares shapes from the right: each pair of sizes must be"
            " equal or one of them 1. Reshape an input (for example y.reshape(-1, 1))"
            " or fix the shape that is wrong"
        )
    return ShapeError(f"{text}. numpy said: {error}")


# --- elementwise ---------------------------------------------------------------------------


def exp_minus_abs(x: np.ndarray) -> np.ndarray:
    """e^-|x|, in (0, 1]: never overflows."""
    e = np.abs(x, out=np.empty_like(x))  # explicit out=: a 0-d result stays an array
    np.negative(e, out=e)
    return np.exp(e, out=e)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), as sigmoid(|x|) = 1 / (1 + e^-|x|), sigmoid(-|x|) = e^-|x| / (1 + e^-|x|):
    no exp of a large number, and full relative accuracy for very negative x too."""
    if x.size < SMALL:
        return np.exp(-np.logaddexp(0.0, -x))  # the same value in two calls
    e = exp_minus_abs(x)
    d = np.add(e, 1.0, out=np.empty_like(e))
    np.divide(1.0, d, out=d)
    e *= d
    return np.where(x >= 0, d, e)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): softplus(1000) = 1000, softplus(-1000) = 0."""
    if x.size < SMALL:
        return np.logaddexp(0.0, x)  # the same value in one call
    e = exp_minus_abs(x)
    np.log1p(e, out=e)
    e += np.maximum(x, 0.0)
    return e


def clip(x: np.ndarray, low: Any, high: Any) -> np.ndarray:
    """x clamped to [low, high]; a missing bound is no bound."""
    if high is None:  # np.clip with one bound is 3x slower than np.maximum / np.minimum
        return np.maximum(x, low) if low is not None else x.copy()
    if low is None:
        return np.minimum(x, high)
    return np.clip(x, low, high)


def normal_log_prob(x: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """log N(x; mu, sigma^2) = -z^2 / 2 - log sigma - log(2 pi) / 2 with z = (x - mu) / sigma."""
    z = (x - mu) / sigma
    return -0.5 * z * z - np.log(sigma) - HALF_LOG_2PI


@functools.cache
def mixture_terms(pi: float, sigma1: float, sigma2: float) -> tuple[float, ...]:
    """The scale mixture's two log-components are a = ln(pi N(w; 0, sigma1^2)) = c1 - h1 w^2
    and b = ln((1 - pi) N(w; 0, sigma2^2)) = c2 - h2 w^2. Returns c1, h1, c2, h2 and
    ln(1/sigma1^2), ln(1/sigma2^2), as Python floats (a numpy float64 scalar would upcast
    float32 weights)."""
    c1 = math.log(pi) - math.log(sigma1) - HALF_LOG_2PI
    c2 = math.log(1 - pi) - math.log(sigma2) - HALF_LOG_2PI
    return c1, 0.5 / sigma1**2, c2, 0.5 / sigma2**2, -2 * math.log(sigma1), -2 * math.log(sigma2)


@functools.cache
def log_tiny(dtype: np.dtype) -> float:
    """Just above the log of the smallest normal number. numpy's exp leaves its fast vector
    loop for results below it (5x slower on large tensors), and in the mixture such a term
    is negligible: it is added to a number of order one (a log-density, or the other
    component's share)."""
    return math.log(np.finfo(dtype).tiny) + 1.0


def scale_mixture_log_prob(w: np.ndarray, pi: float, sigma1: float, sigma2: float) -> np.ndarray:
    """log[pi N(w; 0, sigma1^2) + (1 - pi) N(w; 0, sigma2^2)] = logaddexp(a, b), elementwise."""
    c1, h1, c2, h2 = mixture_terms(pi, sigma1, sigma2)[:4]
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
    np.maximum(gap, log_tiny(w.dtype), out=gap)  # e^gap >= tiny: see log_tiny
    np.log1p(np.exp(gap, out=gap), out=gap)
    return np.add(np.maximum(wide, narrow, out=wide), gap, out=wide)


# --- matmul and reductions -----------------------------------------------------------------


def matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x @ y, with an error that says which axes disagree."""
    if x.ndim == 0 or y.ndim == 0 or x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
        inner = y.shape[-2 if y.ndim > 1 else 0] if y.ndim else None
        raise ShapeError(
            f"matmul: shapes {x.shape} @ {y.shape} do not fit: the last axis of the left"
            f" ({x.shape[-1] if x.ndim else 'none'}) must equal the"
            f" {'second-to-last' if y.ndim > 1 else 'only'} axis of the right ({inner})."
            " Check the order of the operands, or transpose one (.T)."
        )
    return x @ y


def einsum(*xs: np.ndarray, subscripts: str) -> np.ndarray:
    """np.einsum with explicit ``subscripts`` ("ij,jk->ik"). Its ``optimize`` (a contraction
    order, BLAS) costs ~10 us of planning, so it is asked for only where it can pay: more
    than two operands, or large ones."""
    optimize = len(xs) > 2 or any(x.size >= SMALL for x in xs)
    return np.einsum(subscripts, *xs, optimize=optimize)


def keepdims_shape(shape: tuple, axis: Any) -> tuple:
    """The shape of a reduction over ``axis`` with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def reduced_size(shape: tuple, axis: Any) -> int:
    """How many elements a reduction over ``axis`` adds up into each result (0 for an empty
    axis: the mean over nothing is then NaN, as in numpy)."""
    if axis is None:
        return math.prod(shape)
    return math.prod(shape[a] for a in (axis if isinstance(axis, tuple) else (axis,)))


def sum(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    """The sum over ``axis`` (np.add.reduce: np.sum's Python wrapper costs microseconds)."""
    return np.add.reduce(x, axis, keepdims=keepdims)


def mean(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    """The mean over ``axis``: what np.mean computes for float arrays, without its wrapper."""
    return np.add.reduce(x, axis, keepdims=keepdims) / reduced_size(x.shape, axis)


def logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    """log sum e^x over ``axis``, as m + log sum e^(x - m) with m the maximum."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf (or inf) slices: leave them to np.log
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


# --- shapes and indexing -------------------------------------------------------------------


def broadcast_to(x: np.ndarray, shape: tuple) -> np.ndarray:
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


def sum_to(x: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``x`` down to ``shape``: the reverse of broadcasting ``shape`` up to x.shape."""
    return sum_over(x, broadcast_axes(shape, x.shape), shape)


def broadcast_axes(shape: tuple, wide: tuple) -> tuple:
    """The axes of ``wide`` that broadcasting ``shape`` up to it added or widened: the
    leading axes ``shape`` lacks, and the axes where ``shape`` has a 1."""
    lead = len(wide) - len(shape)
    axes = list(range(lead))
    for i, n in enumerate(shape):
        if lead < 0 or (n != 1 and n != wide[lead + i]):  # cheaper than broadcast_shapes
            raise ShapeError(f"sum_to: shape {shape} does not broadcast to {wide}")
        if n != wide[lead + i]:
            axes.append(lead + i)
    return tuple(axes)


def sum_over(x: np.ndarray, axes: tuple, shape: tuple) -> np.ndarray:
    """Sum ``x`` over ``axes`` (from ``broadcast_axes``) and give it ``shape``."""
    if not axes:
        return x.reshape(shape)
    return np.add.reduce(x, axes, keepdims=True).reshape(shape)


def scatter_add(x: np.ndarray, index: Any, shape: tuple) -> np.ndarray:
    """zeros(shape) with x added at ``index``; repeated indices add up."""
    out = np.zeros(shape, dtype=x.dtype)
    parts = index if isinstance(index, tuple) else (index,)
    if all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in parts):
        out[index] = x  # ints and slices cannot repeat a position
    else:
        np.add.at(out, index, x)
    return out
