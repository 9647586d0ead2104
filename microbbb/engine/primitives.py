"""The derivative table: every primitive op, its forward and its VJPs side by side.

Read an entry as ``out = forward(*inputs, **params)``, then one vector-Jacobian product
(VJP) per input: ``g`` is the adjoint of the output (d final / d out, shaped like ``out``)
and each VJP returns its input's share, ``x̄ += vjp(...)``. A VJP may return the broadcast
shape: the engine sums it back to the input's shape (``sweep.pull_back``). ``rules`` are
the same VJPs as formulas, shown by drawings, docs and error messages; a test evaluates
each formula and compares it with its VJP.

``xp`` is numpy (the forwards below) in an ordinary backward and microbbb (these
primitives) under ``create_graph=True``, so each line gives first and higher derivatives.
Inside VJPs only operators (``+ - * / ** @ [] .T``), ``xp.<primitive>`` and two constant
helpers (``xp.sign``, ``xp.equal``) are used. Forwards longer than a numpy call live in
``kernels.py``; VJPs longer than a line call the helpers after the table.
"""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import kernels
from .kernels import keepdims_shape, reduced_size
from .tape import Primitive
from .tensor import Tensor


class EachInput:
    """The VJPs of an op with any number of inputs, from one function
    ``vjp(i, xp, g, out, x_i, **params)`` that sees its own input only (so a backward
    through n inputs costs O(n), not O(n^2)). ``vjps[i]`` takes the usual arguments."""

    def __init__(self, vjp: Callable):
        self.vjp = vjp

    def __getitem__(self, i: int) -> Callable:
        return lambda xp, g, out, *xs, **params: self.vjp(i, xp, g, out, xs[i], **params)


class EachInputOfAll(EachInput):
    """``EachInput`` for an op whose VJP of input i needs every input (einsum's is made of
    the others): ``vjps[i]`` calls ``vjp(i, xp, g, out, *inputs, **params)``, written out so
    that it holds even if ``EachInput`` comes to show each VJP its own input only."""

    def __getitem__(self, i: int) -> Callable:
        return lambda *args, **params: self.vjp(i, *args, **params)


# fmt: off
# elementwise, two inputs (numpy broadcasting; the engine sums gradients back to each shape)

add = Primitive("add", np.add,
    [lambda xp, g, out, x, y: g,
     lambda xp, g, out, x, y: g],
    rules=("g", "g"))
sub = Primitive("sub", np.subtract,
    [lambda xp, g, out, x, y: g,
     lambda xp, g, out, x, y: -g],
    rules=("g", "-g"))
mul = Primitive("mul", np.multiply,
    [lambda xp, g, out, x, y: g * y,
     lambda xp, g, out, x, y: g * x],
    rules=("g * y", "g * x"))
div = Primitive("div", np.divide,
    [lambda xp, g, out, x, y: g / y,
     lambda xp, g, out, x, y: -g * out / y],
    rules=("g / y", "-g * out / y"))
pow = Primitive("pow", np.power,  # the masked places get 0, and a base of 1 (see pow_vjp_x)
    [lambda xp, g, out, x, y: pow_vjp_x(xp, g, x, y),
     lambda xp, g, out, x, y: pow_vjp_y(xp, g, out, x, y)],
    rules=("g * y * x**(y-1) (0 where y = 0)", "g * out * log(x) (0 where x = 0, y >= 0)"))
logaddexp = Primitive("logaddexp", np.logaddexp,
    [lambda xp, g, out, x, y: g * xp.exp(x - out),
     lambda xp, g, out, x, y: g * xp.exp(y - out)],
    rules=("g * exp(x - out)", "g * exp(y - out)"))
maximum = Primitive("maximum", np.maximum,  # tie rule: equal inputs share g (torch's)
    [lambda xp, g, out, x, y: g * larger_share(x, y),
     lambda xp, g, out, x, y: g * larger_share(y, x)],
    rules=("g * ((x > y) + (x == y) / 2)", "g * ((y > x) + (x == y) / 2)"))
minimum = Primitive("minimum", np.minimum,
    [lambda xp, g, out, x, y: g * larger_share(y, x),
     lambda xp, g, out, x, y: g * larger_share(x, y)],
    rules=("g * ((x < y) + (x == y) / 2)", "g * ((y < x) + (x == y) / 2)"))
matmul = Primitive("matmul", kernels.matmul,
    [lambda xp, g, out, x, y: matmul_vjp_x(xp, g, x, y),
     lambda xp, g, out, x, y: matmul_vjp_y(xp, g, x, y)],
    rules=("g @ y.mT", "x.mT @ g"))
einsum = Primitive("einsum", kernels.einsum,  # subscripts explicit: "ij,jk->ik"
    EachInputOfAll(lambda i, xp, g, out, *xs, subscripts: einsum_vjp(i, xp, g, xs, subscripts)),
    rules=("einsum(g, the other inputs -> the letters of input i)",))
normal_log_prob = Primitive("normal_log_prob", kernels.normal_log_prob,
    [lambda xp, g, out, x, mu, sigma: g * (mu - x) / sigma**2,
     lambda xp, g, out, x, mu, sigma: g * (x - mu) / sigma**2,
     lambda xp, g, out, x, mu, sigma: g * (((x - mu) / sigma) ** 2 - 1) / sigma],
    rules=("g * (mu-x)/sigma**2", "g * (x-mu)/sigma**2",
           "g * (((x-mu)/sigma)**2 - 1)/sigma"))
scale_mixture_log_prob = Primitive("scale_mixture_log_prob", kernels.scale_mixture_log_prob,
    [lambda xp, g, out, w, pi, sigma1, sigma2: mixture_vjp(xp, g, out, w, pi, sigma1, sigma2)],
    rules=("-g * w * (r1/sigma1**2 + r2/sigma2**2), r_k = share of component k",))
reparameterize = Primitive("reparameterize", lambda mu, sigma, eps: mu + sigma * eps,
    [lambda xp, g, out, mu, sigma, eps: g,
     lambda xp, g, out, mu, sigma, eps: g * eps,
     lambda xp, g, out, mu, sigma, eps: g * sigma],
    rules=("g", "g * eps", "g * sigma"))

# elementwise, one input

neg = Primitive("neg", np.negative,
    [lambda xp, g, out, x: -g],
    rules=("-g",))
exp = Primitive("exp", np.exp,
    [lambda xp, g, out, x: g * out],
    rules=("g * out",))
expm1 = Primitive("expm1", np.expm1,  # e^x - 1, accurate near 0
    [lambda xp, g, out, x: g * xp.exp(x)],
    rules=("g * exp(x)",))
log = Primitive("log", np.log,
    [lambda xp, g, out, x: g / x],
    rules=("g / x",))
log2 = Primitive("log2", np.log2,  # exact at powers of 2, unlike log(x) / log(2)
    [lambda xp, g, out, x: g / (x * math.log(2))],
    rules=("g / (x * log(2))",))
log10 = Primitive("log10", np.log10,
    [lambda xp, g, out, x: g / (x * math.log(10))],
    rules=("g / (x * log(10))",))
log1p = Primitive("log1p", np.log1p,
    [lambda xp, g, out, x: g / (1 + x)],
    rules=("g / (1 + x)",))
sqrt = Primitive("sqrt", np.sqrt,
    [lambda xp, g, out, x: g / (2 * out)],
    rules=("g / (2 * out)",))
abs = Primitive("abs", np.abs,
    [lambda xp, g, out, x: g * xp.sign(x)],
    rules=("g * sign(x)",))
sign = Primitive("sign", np.sign,  # sign, floor, ceil: piecewise constant, so gradient 0
    [lambda xp, g, out, x: zero(xp, g)],
    rules=("0",))
floor = Primitive("floor", np.floor,
    [lambda xp, g, out, x: zero(xp, g)],
    rules=("0",))
ceil = Primitive("ceil", np.ceil,
    [lambda xp, g, out, x: zero(xp, g)],
    rules=("0",))
sin = Primitive("sin", np.sin,
    [lambda xp, g, out, x: g * xp.cos(x)],
    rules=("g * cos(x)",))
cos = Primitive("cos", np.cos,
    [lambda xp, g, out, x: -g * xp.sin(x)],
    rules=("-g * sin(x)",))
arctan = Primitive("arctan", np.arctan,
    [lambda xp, g, out, x: g / (1 + x * x)],
    rules=("g / (1 + x * x)",))
sinh = Primitive("sinh", np.sinh,
    [lambda xp, g, out, x: g * xp.cosh(x)],
    rules=("g * cosh(x)",))
cosh = Primitive("cosh", np.cosh,
    [lambda xp, g, out, x: g * xp.sinh(x)],
    rules=("g * sinh(x)",))
tanh = Primitive("tanh", np.tanh,
    [lambda xp, g, out, x: g * (1 - out * out)],
    rules=("g * (1 - out * out)",))
sigmoid = Primitive("sigmoid", kernels.sigmoid,
    [lambda xp, g, out, x: g * out * (1 - out)],
    rules=("g * out * (1 - out)",))
softplus = Primitive("softplus", kernels.softplus,
    [lambda xp, g, out, x: g * xp.exp(x - out)],
    rules=("g * exp(x - out) (= g * sigmoid(x))",))
relu = Primitive("relu", lambda x: np.maximum(x, 0),
    [lambda xp, g, out, x: g * (x > 0)],
    rules=("g * (x > 0)",))
clip = Primitive("clip", kernels.clip,
    [lambda xp, g, out, x, low, high: g * inside(x, low, high)],
    rules=("g * ((low <= x) & (x <= high))",))
_where = Primitive("where", lambda x, y, cond: np.where(cond, x, y),
    [lambda xp, g, out, x, y, cond: xp.where(g, 0.0, cond=cond),
     lambda xp, g, out, x, y, cond: xp.where(0.0, g, cond=cond)],
    rules=("where(cond, g, 0)", "where(cond, 0, g)"))

# reductions (axis: None, an int or a tuple of ints)

sum = Primitive("sum", kernels.sum,
    [lambda xp, g, out, x, axis, keepdims: unreduce(xp, g, x.shape, axis)],
    rules=("broadcast g back to x.shape",))
mean = Primitive("mean", kernels.mean,
    [lambda xp, g, out, x, axis, keepdims: unreduce(xp, g, x.shape, axis)
         / reduced_size(x.shape, axis)],
    rules=("broadcast g back to x.shape, / n",))
max = Primitive("max", lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    [lambda xp, g, out, x, axis, keepdims: max_vjp(xp, g, out, x, axis)],
    rules=("g to the maxima of x (ties share equally)",))
prod = Primitive("prod", lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
    [lambda xp, g, out, x, axis, keepdims: xp.reshape(g, shape=keepdims_shape(x.shape, axis))
         * others_product(xp, x, axis)],
    rules=("g * out / x (= g * the product of the other entries, computed without dividing)",))
logsumexp = Primitive("logsumexp", kernels.logsumexp,
    [lambda xp, g, out, x, axis, keepdims: xp.reshape(g, shape=keepdims_shape(x.shape, axis))
         * xp.exp(x - xp.reshape(out, shape=keepdims_shape(x.shape, axis)))],
    rules=("g * exp(x - out) (= g * softmax(x))",))
cumsum = Primitive("cumsum", lambda x, axis: np.cumsum(x, axis=axis),  # a scan: axis an int
    [lambda xp, g, out, x, axis: reverse_cumsum(xp, g, axis)],
    rules=("flip(cumsum(flip(g, axis), axis), axis)",))

# shapes and indexing (each pair is its own dual: reshape/reshape, broadcast_to/sum_to, ...)

reshape = Primitive("reshape", lambda x, shape: np.reshape(x, shape),
    [lambda xp, g, out, x, shape: xp.reshape(g, shape=x.shape)],
    rules=("reshape(g, x.shape)",))
transpose = Primitive("transpose", lambda x, axes: np.transpose(x, axes),
    [lambda xp, g, out, x, axes: xp.transpose(g, axes=inverse_permutation(axes, x.ndim))],
    rules=("transpose(g, inverse of axes)",))
broadcast_to = Primitive("broadcast_to", kernels.broadcast_to,
    [lambda xp, g, out, x, shape: xp.sum_to(g, shape=x.shape)],
    rules=("sum_to(g, x.shape)",))
sum_to = Primitive("sum_to", kernels.sum_to,
    [lambda xp, g, out, x, shape: xp.broadcast_to(g, shape=x.shape)],
    rules=("broadcast_to(g, x.shape)",))
_getitem = Primitive("getitem", lambda x, index: x[index],
    [lambda xp, g, out, x, index: xp.scatter_add(g, index=index, shape=x.shape)],
    rules=("scatter_add(g, index, x.shape)",))
scatter_add = Primitive("scatter_add", kernels.scatter_add,
    [lambda xp, g, out, x, index, shape: xp.getitem(g, index=index)],
    rules=("g[index]",))
astype = Primitive("astype", lambda x, dtype: x.astype(dtype),
    [lambda xp, g, out, x, dtype: xp.astype(g, dtype=x.dtype)],
    rules=("astype(g, x.dtype)",))
_concatenate = Primitive("concatenate", lambda *xs, axis, bounds: np.concatenate(xs, axis=axis),
    EachInput(lambda i, xp, g, out, x, axis, bounds: concatenate_vjp(i, xp, g, axis, bounds)),
    rules=("g[the slice of input i]",))
# fmt: on

PRIMITIVES = [op for op in dict(globals()).values() if isinstance(op, Primitive)]  # in order


# --- helpers of the VJPs above --------------------------------------------------------------


def data(a: Any) -> Any:
    """The array behind a tensor; anything else as it is."""
    return a.data if isinstance(a, Tensor) else a


def zero_where(xp: Any, value: Any, mask: np.ndarray) -> Any:
    """``value`` with 0 where ``mask`` holds (differentiable in ``value``)."""
    return xp.where(0.0, value, cond=mask)


def pow_vjp_x(xp: Any, g: Any, x: Any, y: Any) -> Any:
    """g * y * x**(y-1), and 0 where y = 0 (x**0 = 1 is constant). There the base is set to
    1 first, so that no 0**-1 = inf is computed: it would give 0 * inf = NaN in the second
    derivative, even masked."""
    mask = xp.equal(y, 0)
    return zero_where(xp, g * y * xp.where(1.0, x, cond=mask) ** (y - 1), mask)


def pow_vjp_y(xp: Any, g: Any, out: Any, x: Any, y: Any) -> Any:
    """g * out * log(x), and 0 where x = 0 and y >= 0 (0**y is constant in y there), where
    the base is set to 1 first (log 1 = 0), so that no 0 * log 0 = NaN is computed."""
    mask = (data(x) == 0) & (data(y) >= 0)
    return zero_where(xp, g * out * xp.log(xp.where(1.0, x, cond=mask)), mask)


def inside(x: Any, low: Any, high: Any) -> np.ndarray:
    """low <= x <= high (a missing bound is no bound), as a constant mask."""
    x = data(x)
    return (True if low is None else x >= low) & (True if high is None else x <= high)


def inverse_permutation(axes: tuple, ndim: int) -> tuple:
    """The axes that undo ``transpose(x, axes)``."""
    return tuple(int(i) for i in np.argsort([a % ndim for a in axes]))


def swap_last_two(xp: Any, a: Any) -> Any:
    """a.mT: the last two axes swapped."""
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return xp.transpose(a, axes=axes)


def as_row(xp: Any, g: Any) -> Any:
    """(..., m) -> (..., 1, m)"""
    return xp.reshape(g, shape=g.shape[:-1] + (1, g.shape[-1]))


# matmul of 1-d operands drops an axis (numpy's rule); the VJPs put it back on g. Batch axes
# broadcast, and the engine sums the gradient back over them.
def matmul_vjp_x(xp: Any, g: Any, x: Any, y: Any) -> Any:
    """g @ y.mT, for every combination of 1-d and n-d operands."""
    if x.ndim == 2 and y.ndim == 2:
        return g @ y.T
    if x.ndim == 1 and y.ndim == 1:  # a dot product
        return g * y
    if x.ndim == 1:  # x (k,), y (..., k, m), g (..., m)
        return as_row(xp, g) @ swap_last_two(xp, y)
    if y.ndim == 1:  # x (..., n, k), y (k,), g (..., n)
        return xp.reshape(g, shape=g.shape + (1,)) * y
    return g @ swap_last_two(xp, y)


def matmul_vjp_y(xp: Any, g: Any, x: Any, y: Any) -> Any:
    """x.mT @ g, for every combination of 1-d and n-d operands."""
    if x.ndim == 2 and y.ndim == 2:
        return x.T @ g
    if x.ndim == 1 and y.ndim == 1:
        return g * x
    if x.ndim == 1:  # x (k,), y (..., k, m), g (..., m)
        return xp.reshape(x, shape=(-1, 1)) @ as_row(xp, g)
    if y.ndim == 1:  # x (..., n, k), y (k,), g (..., n)
        return as_row(xp, g) @ x
    return swap_last_two(xp, x) @ g


def unreduce(xp: Any, g: Any, shape: tuple, axis: Any) -> Any:
    """The VJP of a sum over ``axis``: g put back on the summed axes, then broadcast."""
    if axis is not None:  # after a full sum g is one number: no axes to put back
        g = xp.reshape(g, shape=keepdims_shape(shape, axis))
    return xp.broadcast_to(g, shape=shape)


def max_vjp(xp: Any, g: Any, out: Any, x: Any, axis: Any) -> Any:
    """g to the positions of the maximum; tied maxima share it equally."""
    shape = keepdims_shape(x.shape, axis)
    is_max = xp.equal(x, xp.reshape(out, shape=shape))  # ties: every maximum is marked
    share = (is_max / is_max.sum(axis=axis, keepdims=True)).astype(x.dtype)  # split g
    return xp.reshape(g, shape=shape) * share


def mixture_vjp(xp: Any, g: Any, out: Any, w: Any, pi: float, sigma1: float, sigma2: float):
    """d out/dw = -w (r1/s1^2 + r2/s2^2) with the shares r1 = e^(a - out), r2 = e^(b - out).

    Each share is computed from out, not as 1 - the other: no cancellation near 1, which
    1/s2^2 ~ 10^5 would magnify. The 1/s^2 go into the exponents; on large tensors these
    are floored at ``kernels.log_tiny`` (the other share is then of order one).
    """
    c1, h1, c2, h2, log_k1, log_k2 = kernels.mixture_terms(pi, sigma1, sigma2)
    w2 = w * w
    wide = (c1 + log_k1) - h1 * w2 - out  # ln(r1 / s1^2)
    narrow = (c2 + log_k2) - h2 * w2 - out  # ln(r2 / s2^2)
    if w.size >= kernels.SMALL:
        floor = kernels.log_tiny(w.dtype)
        wide, narrow = xp.clip(wide, low=floor, high=None), xp.clip(narrow, low=floor, high=None)
    return -g * w * (xp.exp(wide) + xp.exp(narrow))


def concatenate_vjp(i: int, xp: Any, g: Any, axis: int, bounds: tuple) -> Any:
    """The slice of g that input i filled: ``bounds[i]:bounds[i + 1]`` along ``axis`` (the
    bounds are computed once, when recording, so each input's VJP costs the same)."""
    index = (slice(None),) * (axis % g.ndim) + (slice(bounds[i], bounds[i + 1]),)
    return xp.getitem(g, index=index)


def larger_share(x: Any, y: Any) -> np.ndarray:
    """1 where x > y, 1/2 where x == y (a tie: both inputs share g), else 0; a constant
    mask in the inputs' dtype (a float64 mask would upcast float32 gradients)."""
    x, y = data(x), data(y)
    return ((x > y) + 0.5 * (x == y)).astype(np.result_type(x, y))


def zero(xp: Any, g: Any) -> Any:
    """0 in g's shape and dtype, also where g is inf or NaN (``0 * g`` would be NaN there)."""
    return xp.where(0.0, g, cond=True)


def others_product(xp: Any, x: Any, axis: Any) -> Any:
    """For every entry of x, the product of the other entries reduced with it over ``axis``.

    The reduced axes are moved last and flattened into one of length n; the product of the
    others is (product of those before) * (product of those after), two scans. Nothing is
    divided, so zeros need no special case: one zero gives the others' product there and
    0 elsewhere, two zeros give 0 everywhere. Only mul, add, getitem, scatter_add, reshape
    and transpose are used, so second derivatives are right too, zeros included.
    """
    axes = tuple(range(x.ndim)) if axis is None else normalized_axes(x.ndim, axis)
    order = tuple(i for i in range(x.ndim) if i not in axes) + axes
    moved = xp.transpose(x, axes=order) if order != tuple(range(x.ndim)) else x
    lead = moved.shape[: x.ndim - len(axes)]
    rows = xp.reshape(moved, shape=lead + (math.prod(moved.shape[len(lead) :]),))
    after = reverse_last(exclusive_products(xp, reverse_last(rows)))
    both = xp.reshape(exclusive_products(xp, rows) * after, shape=moved.shape)
    return xp.transpose(both, axes=inverse_permutation(order, x.ndim)) if moved is not x else both


def normalized_axes(ndim: int, axis: Any) -> tuple:
    """``axis`` (an int or a tuple) as sorted non-negative axes."""
    return tuple(sorted({a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))}))


def reverse_last(a: Any) -> Any:
    """``a`` with its last axis reversed."""
    return a[..., ::-1]


def exclusive_products(xp: Any, rows: Any) -> Any:
    """p[..., i] = rows[..., 0] * ... * rows[..., i - 1] (1 for i = 0): the exclusive
    cumulative product along the last axis, as log2(n) shifted products (Hillis-Steele)."""
    p, k = shifted(xp, rows, 1), 1
    while k < rows.shape[-1]:  # now p[i] = the product of the k entries before i
        p = p * shifted(xp, p, k)
        k *= 2
    return p


def shifted(xp: Any, a: Any, k: int) -> Any:
    """``a`` moved k places along its last axis, the k places left free filled with 1 (a
    scatter_add of a slice, plus a constant: both exact)."""
    head = np.zeros(a.shape, dtype=a.dtype)
    head[..., :k] = 1
    return xp.scatter_add(a[..., :-k], index=(Ellipsis, slice(k, None)), shape=a.shape) + head


def reverse_cumsum(xp: Any, g: Any, axis: int) -> Any:
    """out[i] = g[i] + g[i + 1] + ... along ``axis``: cumsum of g read backwards."""
    back = (slice(None),) * (axis % g.ndim) + (slice(None, None, -1),)
    return xp.getitem(xp.cumsum(xp.getitem(g, index=back), axis=axis), index=back)


def einsum_vjp(i: int, xp: Any, g: Any, xs: Sequence[Any], subscripts: str) -> Any:
    """The einsum of g with the other inputs, written to input i's letters.

    Two letters of input i need a constant operand: one it repeats (a diagonal: the copy
    becomes a fresh letter, tied to the first by an identity matrix) and one that only input
    i has (summed away in the forward: a vector of ones spreads g along it).
    """
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    x, others = xs[i], [t for j, t in enumerate(terms) if j != i]
    parts, operands = [output, *others], [g, *(a for j, a in enumerate(xs) if j != i)]
    known, target = set(output).union(*others), ""
    fresh = iter(sorted(set(string.ascii_letters) - set(subscripts)))
    for letter, n in zip(terms[i], x.shape, strict=True):
        if letter in target:  # x[..., j, ..., j, ...]: only the diagonal was read
            new = next(fresh)
            parts.append(letter + new)
            operands.append(np.eye(n, dtype=x.dtype))
            letter = new
        elif letter not in known:  # summed over in x alone: every entry gets the same g
            parts.append(letter)
            operands.append(np.ones(n, dtype=x.dtype))
            known.add(letter)
        target += letter
    return xp.einsum(*operands, subscripts=",".join(parts) + "->" + target)


# --- the namespaces a VJP runs with (``xp``) --------------------------------------------------

# Not differentiable, so they need no VJP: they return constant arrays in both namespaces.
CONSTANT_HELPERS = {
    "sign": lambda a: np.sign(data(a)),
    "equal": lambda a, b: np.equal(data(a), data(b)),
}
# ``sign`` is also a table entry (mb.sign, gradient 0); inside VJPs the constant helper stands
# in for it: the same values, and nothing recorded for a derivative that is 0 anyway.
NUMPY = SimpleNamespace(**({op.name: op.forward for op in PRIMITIVES} | CONSTANT_HELPERS))
GRAPH = SimpleNamespace(**({op.name: op for op in PRIMITIVES} | CONSTANT_HELPERS))


# --- public functions on top of the table -----------------------------------------------------


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` is true, else ``y`` (gradients flow to the chosen one).
    The record keeps the condition for backward: see ``frozen``."""
    cond = frozen(np.asarray(data(condition), dtype=bool))
    return _where(x, y, cond=cond)


def getitem(x: Any, index: Any) -> Tensor:
    """``x[index]``: ints, slices, None, Ellipsis and integer or boolean numpy arrays (lists
    become arrays; the record keeps them for backward: see ``frozen``). A Tensor is
    refused as an index: it holds floats, so it would be ambiguous as mask or positions."""
    if isinstance(index, tuple):
        parts = tuple(_index_part(i) for i in index)
    else:
        parts = _index_part(index)
    return _getitem(x, index=parts)


def _index_part(index: Any) -> Any:
    if isinstance(index, Tensor):
        raise TypeError(
            "index with ints, slices or numpy arrays (integer or boolean), not a Tensor:"
            " tensors hold floats, so a boolean mask or an integer index would be ambiguous."
            " Use index.data.astype(int) for integer positions."
        )
    return frozen(np.asarray(index)) if isinstance(index, (list, np.ndarray)) else index


def frozen(array: np.ndarray) -> np.ndarray:
    """An array a record may keep: a read-only one as it is (it changes only through
    ``saved.writing``, which backward sees), else a read-only copy (so a later change to
    the caller's array cannot reach the record)."""
    if not array.flags.writeable:
        return array
    array = array.copy()
    array.setflags(write=False)
    return array


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    ndim = np.ndim(data(tensors[0]))
    axis = axis % ndim if ndim else axis
    sizes = [np.shape(data(t))[axis] if np.ndim(data(t)) > axis else 0 for t in tensors]
    return _concatenate(*tensors, axis=axis, bounds=tuple(itertools.accumulate(sizes, initial=0)))


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors of equal shape along a new axis."""
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shape = np.shape(data(tensors[0]))
    axis = axis % (len(shape) + 1)
    new_shape = shape[:axis] + (1,) + shape[axis:]

    def with_new_axis(t: Any) -> Any:
        return reshape(t, shape=new_shape) if isinstance(t, Tensor) else np.reshape(t, new_shape)

    return concatenate([with_new_axis(t) for t in tensors], axis=axis)
