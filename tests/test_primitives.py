"""Every primitive of the derivative table (microbbb.PRIMITIVES) against torch 2.13.

One table, SPECS, holds per primitive: the microbbb call, the equivalent torch call, one input
generator per input (a domain where the op is smooth: positive for log/sqrt/pow bases, away
from the kinks of relu/abs/clip, no ties for max) and the cases (input shapes and op
parameters) to run. The main tests (torch, gradcheck, gradgradcheck, float32) are
parametrised over that table.

Tolerances. Against torch in float64: RTOL = 1e-10, ATOL = 1e-12. Both libraries evaluate
the same formulas in IEEE double, so op by op they differ only by the rounding of differently
ordered operations (a few ulps, ~1e-15 relative; sums over broadcast axes add at most a few
more). 1e-10 leaves five orders of magnitude of headroom for that, while a wrong rule (a
sign, a factor, a missing term, a gradient summed to the wrong axis) is off by O(1). ATOL
covers results that are zero up to cancellation (e.g. sin near 0). gradcheck and
gradgradcheck keep their documented defaults (atol=1e-5, rtol=1e-3; see
microbbb/engine/check.py): finite differences are only good to ~1e-9. Float32 results are
compared with the float64 ones at rtol = atol = 1e-5 (about 100 float32 ulps: one op's
rounding plus a few more for sums over broadcast axes).
"""

from __future__ import annotations

import inspect
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import microbbb as mb
from microbbb import functional as F
from microbbb.testing import assert_same_gradients

RTOL, ATOL = 1e-10, 1e-12
RTOL32, ATOL32 = 1e-5, 1e-5
PRIM = {p.name: p for p in mb.PRIMITIVES}


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


# --- input domains: (rng, shape) -> float64 array -----------------------------------------


def real(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def nonzero(rng, shape):  # away from 0: the kink of abs/relu, the pole of 1/y
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)


def above_minus_one(rng, shape):  # log1p's domain, away from the pole at -1
    return rng.uniform(-0.7, 2.0, shape)


CLIP_LOW, CLIP_HIGH = -0.5, 0.5


def off_clip_bounds(rng, shape):  # inside, below and above [-0.5, 0.5], never within 0.1
    bands = np.array([[-2.0, -0.6], [-0.4, 0.4], [0.6, 2.0]])
    band = bands[rng.integers(0, 3, shape)]
    return rng.uniform(band[..., 0], band[..., 1])


def off_integers(rng, shape):  # away from the jumps of floor and ceil
    return rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.9, shape)


def distinct(rng, shape):  # no ties, gaps >= 0.2: argmax does not move under eps = 1e-6
    n = math.prod(shape)
    return ((rng.permutation(n) + rng.uniform(-0.3, 0.3, n)) * 0.5).reshape(shape)


# --- the spec table -----------------------------------------------------------------------


@dataclass
class Case:
    shapes: tuple  # one shape per tensor input
    params: dict = field(default_factory=dict)  # the op's keyword parameters
    label: str = ""

    @property
    def id(self) -> str:
        text = ",".join("x".join(map(str, s)) or "scalar" for s in self.shapes)
        label = self.label or "-".join(  # default: the shape/axes parameters
            f"{k}=({','.join(map(str, v))})" for k, v in self.params.items() if type(v) is tuple
        )
        return f"{text}-{label}" if label else text


@dataclass
class Spec:
    mb: Callable  # (*tensors, **params) -> microbbb Tensor
    torch: Callable  # (*torch tensors, **params) -> torch tensor
    domains: tuple  # one per input; the last one repeats (concatenate takes any number)
    cases: list

    def inputs(self, rng, case: Case) -> list[np.ndarray]:
        return [
            np.asarray(self.domains[min(i, len(self.domains) - 1)](rng, s), dtype=np.float64)
            for i, s in enumerate(case.shapes)
        ]


UNARY_SHAPES = [(), (5,), (2, 3), (2, 1, 4)]
BROADCAST_PAIRS = [
    ((), ()),
    ((2, 3), (2, 3)),
    ((), (3,)),
    ((4, 1), (1, 5)),
    ((2, 3, 4), (4,)),
    ((2, 1, 4), (3, 1)),
    ((3,), ()),
]
BROADCAST_TRIPLES = [
    ((), (), ()),
    ((2, 3), (2, 3), (2, 3)),
    ((), (3,), ()),
    ((4, 1), (1, 5), (4, 1)),
    ((2, 3, 4), (4,), (3, 1)),
    ((2, 1, 4), (3, 1), ()),
    ((3,), (), (3,)),
]
MATMUL_PAIRS = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((1, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 5)),
]
REDUCTION_CASES = [
    Case(((2, 3, 4),), {"axis": axis, "keepdims": keepdims}, f"axis={axis}-keepdims={keepdims}")
    for axis in (None, 0, -1, (0, 2))
    for keepdims in (False, True)
]

M = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, True]])
GETITEM_CASES = [
    Case(((3, 4),), {"index": 1}, "int"),
    Case(((3, 4),), {"index": -1}, "negative-int"),
    Case(((3, 4),), {"index": slice(1, 3)}, "slice"),
    Case(((3, 4),), {"index": slice(None, None, 2)}, "step-slice"),
    Case(((3, 4),), {"index": (1, slice(0, 3))}, "int-slice"),
    Case(((3, 4),), {"index": (slice(None), 2)}, "slice-int"),
    Case(((3, 4),), {"index": (2, 3)}, "int-int"),
    Case(((3, 4),), {"index": (None, Ellipsis, 1)}, "newaxis-ellipsis"),
    Case(((4,),), {"index": np.array([0, 0, 2])}, "repeated-ints"),
    Case(((3, 4),), {"index": np.array([2, 0, 2])}, "repeated-rows"),
    Case(((3, 4),), {"index": (np.array([0, 0, 2, 2]), np.array([1, 1, 3, 1]))}, "int-arrays"),
    Case(((3, 4),), {"index": (slice(None), np.array([3, 0, 3]))}, "slice-int-array"),
    Case(((3, 4),), {"index": M}, "bool-mask"),
    Case(((3, 4),), {"index": np.array([True, False, True])}, "bool-rows"),
]
SCATTER_CASES = [
    Case(((3,),), {"index": np.array([0, 0, 2]), "shape": (4,)}, "repeated-ints"),
    Case(((3,),), {"index": (np.array([0, 1, 0]), np.array([2, 2, 2])), "shape": (2, 3)}, "pairs"),
    Case(((2, 2),), {"index": slice(1, 3), "shape": (4, 2)}, "slice"),
    Case(((2,),), {"index": 1, "shape": (3, 2)}, "int"),
    Case(((3,),), {"index": M[:2, :3], "shape": (2, 3)}, "bool-mask"),
]
CONCAT_CASES = [
    Case(((2,), (3,)), {"axis": 0}, "axis=0"),
    Case(((2, 3), (1, 3)), {"axis": 0}, "axis=0"),
    Case(((2, 3), (1, 3), (3, 3)), {"axis": 0}, "axis=0"),
    Case(((2, 1), (2, 3)), {"axis": 1}, "axis=1"),
    Case(((2, 1), (2, 3), (2, 2)), {"axis": 1}, "axis=1"),
    Case(((2, 3, 1), (2, 3, 2)), {"axis": -1}, "axis=-1"),
    Case(((2, 3, 1), (2, 3, 2), (2, 3, 1)), {"axis": -1}, "axis=-1"),
]
WHERE_CASES = [
    Case(((2, 3), (2, 3)), {"cond": np.array([[True, False, True], [False, False, True]])}),
    Case(((2, 3), (2, 3)), {"cond": np.array([True, False, True])}, "cond-3"),
    Case(((2, 3), ()), {"cond": np.array([[True], [False]])}, "cond-2x1"),
    Case(((3,), (2, 1)), {"cond": np.array([[True, False, False], [False, True, True]])}),
    Case(((3,), (3,)), {"cond": np.array(True)}, "cond-scalar"),
]
CLIP_CASES = [
    Case((shape,), {"low": low, "high": high}, f"low={low}-high={high}")
    for shape in ((2, 3), (7,))
    for low, high in ((CLIP_LOW, None), (None, CLIP_HIGH), (CLIP_LOW, CLIP_HIGH))
]
TRANSPOSE_CASES = [
    Case(((2, 3),), {"axes": (1, 0)}),
    Case(((2, 3, 4),), {"axes": (2, 0, 1)}),
    Case(((2, 3, 4),), {"axes": (0, 2, 1)}),
    Case(((2, 3, 4),), {"axes": (1, 0, 2)}),
    Case(((2, 3),), {"axes": (-1, 0)}, "negative-axes"),
    Case(((2, 3, 4),), {"axes": (-1, 0, 1)}, "negative-axes"),
]
RESHAPE_CASES = [
    Case(((2, 3),), {"shape": (3, 2)}),
    Case(((2, 3),), {"shape": (6,)}),
    Case(((2, 3, 4),), {"shape": (6, -1)}),
    Case(((4,),), {"shape": (2, 1, 2)}),
    Case(((),), {"shape": (1, 1)}),
]
BROADCAST_TO_CASES = [
    Case(((3,),), {"shape": (2, 3)}),
    Case(((2, 1),), {"shape": (2, 4)}),
    Case(((),), {"shape": (2, 2)}),
    Case(((1, 3, 1),), {"shape": (2, 3, 4)}),
    Case(((3,),), {"shape": (3,)}, "same"),
]
CUMSUM_CASES = [
    Case(((5,),), {"axis": 0}, "axis=0"),
    Case(((2, 3),), {"axis": 0}, "axis=0"),
    Case(((2, 3),), {"axis": -1}, "axis=-1"),
    Case(((2, 3, 4),), {"axis": 1}, "axis=1"),
    Case(((2, 3, 4),), {"axis": -3}, "axis=-3"),
    Case(((2, 3),), {"axis": None}, "axis=None"),  # numpy flattens first
]
EINSUM_CASES = [
    Case(shapes, {"subscripts": subscripts}, label)
    for shapes, subscripts, label in [
        (((3, 4), (4, 5)), "ij,jk->ik", "matmul"),
        (((3, 4), (4, 5)), "ij,jk", "implicit-output"),
        (((4,), (4,)), "i,i->", "dot"),
        (((3,), (4,)), "i,j->ij", "outer"),
        (((3, 4), (3, 4)), "ij,ij->ij", "elementwise"),
        (((3, 4),), "ij->ji", "transpose"),
        (((3, 4),), "ij->j", "sum-axis-0"),
        (((3, 4),), "ij->", "sum-all"),
        (((3, 3),), "ii->i", "diagonal"),
        (((3, 3),), "ii->", "trace"),
        (((2, 2, 3),), "iij->ji", "repeated-letter"),
        (((3,), ()), "i,->i", "scalar-operand"),
        (((2, 3, 4), (2, 4, 5)), "bij,bjk->bik", "batch"),
        (((2, 1, 3, 4), (3, 4, 5)), "...ij,...jk->...ik", "ellipsis-broadcast"),
        (((2, 3), (3, 4), (4, 5)), "ij,jk,kl->il", "three-operands"),
        (((2, 3), (3, 4), (2,)), "ij,jk,i->k", "three-operands-vector"),
    ]
]
SUM_TO_CASES = [
    Case(((2, 3, 4),), {"shape": (3, 1)}),
    Case(((2, 3, 4),), {"shape": (4,)}),
    Case(((2, 3),), {"shape": ()}),
    Case(((2, 3),), {"shape": (1, 3)}),
    Case(((2, 3),), {"shape": (2, 3)}, "same"),
]


def _dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


def _torch_index(index):
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    return index


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) for i in parts)


def torch_scatter_add(x, index, shape):
    out = torch.zeros(shape, dtype=x.dtype)
    if _is_advanced(index):  # index_put with accumulate=True: repeated positions add up
        parts = index if isinstance(index, tuple) else (index,)
        return out.index_put(_torch_index(parts), x, accumulate=True)
    out[index] = x
    return out


def torch_scale_mixture_log_prob(w, pi, sigma1, sigma2):
    wide = math.log(pi) + torch_normal_log_prob(w, 0.0, torch.tensor(sigma1, dtype=w.dtype))
    narrow = math.log(1 - pi) + torch_normal_log_prob(w, 0.0, torch.tensor(sigma2, dtype=w.dtype))
    return torch.logaddexp(wide, narrow)


def torch_prod(x, axis, keepdims):
    """torch.prod takes one dim: reduce the axes one by one (the last first)."""
    if axis is None:
        out = torch.prod(x)
        return out.reshape((1,) * x.ndim) if keepdims else out
    for dim in sorted((a % x.ndim for a in (axis if isinstance(axis, tuple) else (axis,))),
                      reverse=True):  # fmt: skip
        x = torch.prod(x, dim=dim, keepdim=keepdims)
    return x


def torch_cumsum(x, axis):
    return torch.cumsum(x.flatten(), dim=0) if axis is None else torch.cumsum(x, dim=axis)


def torch_normal_log_prob(x, mu, sigma):
    return torch.distributions.Normal(mu, sigma, validate_args=False).log_prob(x)


def unary(mb_fn, torch_fn, domain=real):
    return Spec(mb_fn, torch_fn, (domain,), [Case((s,)) for s in UNARY_SHAPES])


def binary(mb_fn, torch_fn, domains=(real, real)):
    return Spec(mb_fn, torch_fn, domains, [Case(pair) for pair in BROADCAST_PAIRS])


def reduction(mb_fn, torch_fn, domain=real):
    return Spec(mb_fn, torch_fn, (domain,), REDUCTION_CASES)


SPECS: dict[str, Spec] = {
    # elementwise, two inputs (three for normal_log_prob), broadcasting
    "add": binary(lambda x, y: x + y, torch.add),
    "sub": binary(lambda x, y: x - y, torch.sub),
    "mul": binary(lambda x, y: x * y, torch.mul),
    "div": binary(lambda x, y: x / y, torch.div, (real, nonzero)),
    "pow": binary(lambda x, y: x**y, torch.pow, (positive, real)),
    "logaddexp": binary(mb.logaddexp, torch.logaddexp),
    "maximum": binary(mb.maximum, torch.maximum),  # ties: test_maximum_and_minimum_ties_...
    "minimum": binary(mb.minimum, torch.minimum),
    "matmul": Spec(lambda x, y: x @ y, torch.matmul, (real,), [Case(p) for p in MATMUL_PAIRS]),
    "einsum": Spec(
        lambda *xs, subscripts: mb.einsum(subscripts, *xs),
        lambda *xs, subscripts: torch.einsum(subscripts, *xs),
        (real,),
        EINSUM_CASES,
    ),
    "normal_log_prob": Spec(
        mb.normal_log_prob,
        torch_normal_log_prob,
        (real, real, positive),
        [Case(t) for t in BROADCAST_TRIPLES],
    ),
    "scale_mixture_log_prob": Spec(
        F.scale_mixture_log_prob,
        torch_scale_mixture_log_prob,
        (real,),
        [
            Case(((3, 4),), {"pi": 0.5, "sigma1": 1.0, "sigma2": math.exp(-6)}, "paper"),
            Case(((7,),), {"pi": 0.25, "sigma1": math.exp(-1), "sigma2": math.exp(-7)}),
            Case(((),), {"pi": 0.75, "sigma1": 1.0, "sigma2": 0.1}),
        ],
    ),
    "reparameterize": Spec(
        mb.functional.reparameterize,
        lambda mu, sigma, eps: mu + sigma * eps,
        (real, positive, real),
        [Case(t) for t in BROADCAST_TRIPLES],
    ),
    # elementwise, one input
    "neg": unary(lambda x: -x, torch.neg),
    "exp": unary(mb.exp, torch.exp),
    "expm1": unary(mb.expm1, torch.expm1),
    "log": unary(mb.log, torch.log, positive),
    "log2": unary(mb.log2, torch.log2, positive),
    "log10": unary(mb.log10, torch.log10, positive),
    "log1p": unary(mb.log1p, torch.log1p, above_minus_one),
    "sqrt": unary(mb.sqrt, torch.sqrt, positive),
    "abs": unary(mb.abs, torch.abs, nonzero),
    "sign": unary(mb.sign, torch.sign, nonzero),
    "floor": unary(mb.floor, torch.floor, off_integers),
    "ceil": unary(mb.ceil, torch.ceil, off_integers),
    "sin": unary(mb.sin, torch.sin),
    "cos": unary(mb.cos, torch.cos),
    "arctan": unary(mb.arctan, torch.arctan),
    "sinh": unary(mb.sinh, torch.sinh),
    "cosh": unary(mb.cosh, torch.cosh),
    "tanh": unary(mb.tanh, torch.tanh),
    "sigmoid": unary(mb.sigmoid, torch.sigmoid),
    "softplus": unary(mb.softplus, torch.nn.functional.softplus),
    "relu": unary(F.relu, torch.relu, nonzero),
    "clip": Spec(
        lambda x, low, high: mb.clip(x, low, high),
        lambda x, low, high: torch.clamp(x, min=low, max=high),
        (off_clip_bounds,),
        CLIP_CASES,
    ),
    "where": Spec(
        lambda x, y, cond: mb.where(cond, x, y),
        lambda x, y, cond: torch.where(torch.from_numpy(cond), x, y),
        (real,),
        WHERE_CASES,
    ),
    # reductions
    "sum": reduction(
        lambda x, axis, keepdims: mb.sum(x, axis=axis, keepdims=keepdims),
        lambda x, axis, keepdims: torch.sum(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
    ),
    "mean": reduction(
        lambda x, axis, keepdims: mb.mean(x, axis=axis, keepdims=keepdims),
        lambda x, axis, keepdims: torch.mean(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
    ),
    "max": reduction(
        lambda x, axis, keepdims: mb.max(x, axis=axis, keepdims=keepdims),
        lambda x, axis, keepdims: torch.amax(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
        distinct,
    ),
    "prod": reduction(
        lambda x, axis, keepdims: mb.prod(x, axis=axis, keepdims=keepdims),
        torch_prod,
        nonzero,  # zeros: test_prod_with_zeros_...
    ),
    "logsumexp": reduction(
        lambda x, axis, keepdims: mb.logsumexp(x, axis=axis, keepdims=keepdims),
        lambda x, axis, keepdims: torch.logsumexp(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
    ),
    "cumsum": Spec(lambda x, axis: mb.cumsum(x, axis), torch_cumsum, (real,), CUMSUM_CASES),
    # shapes and indexing
    "reshape": Spec(
        lambda x, shape: mb.reshape(x, shape),
        lambda x, shape: x.reshape(shape),
        (real,),
        RESHAPE_CASES,
    ),
    "transpose": Spec(
        lambda x, axes: mb.transpose(x, axes),
        lambda x, axes: x.permute(axes),
        (real,),
        TRANSPOSE_CASES,
    ),
    "broadcast_to": Spec(
        lambda x, shape: F.broadcast_to(x, shape=shape),
        lambda x, shape: torch.broadcast_to(x, shape),
        (real,),
        BROADCAST_TO_CASES,
    ),
    "sum_to": Spec(
        lambda x, shape: PRIM["sum_to"](x, shape=shape),
        lambda x, shape: x.sum_to_size(shape),
        (real,),
        SUM_TO_CASES,
    ),
    "getitem": Spec(
        lambda x, index: x[index],
        lambda x, index: x[_torch_index(index)],
        (real,),
        GETITEM_CASES,
    ),
    "scatter_add": Spec(
        lambda x, index, shape: PRIM["scatter_add"](x, index=index, shape=shape),
        torch_scatter_add,
        (real,),
        SCATTER_CASES,
    ),
    "astype": Spec(  # the sweep runs one dtype at a time: a cast to the same dtype here;
        # float32 <-> float64 in test_astype_changes_precision_and_casts_the_gradient_back
        lambda x, dtype: PRIM["astype"](x, dtype=x.dtype),
        lambda x, dtype: x.to(x.dtype),
        (real,),
        [Case((s,), {"dtype": np.float64}, "same") for s in UNARY_SHAPES],
    ),
    "concatenate": Spec(
        lambda *xs, axis: mb.concatenate(list(xs), axis=axis),
        lambda *xs, axis: torch.cat(xs, dim=axis),
        (real,),
        CONCAT_CASES,
    ),
}

UNARY = [
    "neg", "exp", "log", "log1p", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "softplus",
    "relu", "expm1", "log2", "log10", "sign", "floor", "ceil", "arctan", "sinh", "cosh",
]  # fmt: skip
BINARY = ["add", "sub", "mul", "div", "pow", "logaddexp", "normal_log_prob", "maximum", "minimum"]


def params_for(names):
    """(name, case) parameters for the given primitives."""
    return [
        pytest.param(name, case, id=f"{name}-{case.id}")
        for name in names
        for case in SPECS[name].cases
    ]


ALL_CASES = params_for(SPECS)


def test_spec_table_covers_every_primitive():
    names = [p.name for p in mb.PRIMITIVES]
    assert len(names) == len(set(names)), "two primitives share a name"
    assert set(SPECS) == set(names)
    assert set(UNARY + BINARY) <= set(SPECS)


# --- forward values and gradients against torch -----------------------------------------


def run_microbbb(fn, arrays, params, upstream, dtype=np.float64):
    """Forward, then backward with the adjoint ``upstream(out.shape)``."""
    xs = [mb.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    out = fn(*xs, **params)
    v = upstream(out.shape)
    out.backward(v.astype(dtype))
    return out, xs, v


def run_torch(fn, arrays, params, v):
    """The same in torch: d sum(out * v) / d inputs."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*ts, **params)
    (out * torch.from_numpy(v)).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


def compare_with_torch(mb_fn, torch_fn, arrays, params=None, name=None):
    params = params or {}
    rng = np.random.default_rng(1)
    out, xs, v = run_microbbb(mb_fn, arrays, params, rng.standard_normal)
    if name is not None:  # the spec really exercises the primitive it is filed under
        assert out.record is not None and out.record.op.name == name
    expected, expected_grads = run_torch(torch_fn, arrays, params, v)
    assert out.dtype == np.float64
    assert out.shape == expected.shape
    close(out.data, expected)
    for x, g in zip(xs, expected_grads, strict=True):
        assert x.grad.shape == x.shape  # summed back to the input's own shape
        close(x.grad, g)
    # the same VJPs run on tensors (create_graph=True, the path of second derivatives)
    graph_grads = mb.grad(mb_fn(*xs, **params), xs, grad_outputs=v, create_graph=True)
    for x, g in zip(xs, graph_grads, strict=True):
        assert g.shape == x.shape
        close(g.data, x.grad)


@pytest.mark.parametrize("name, case", ALL_CASES)
def test_value_and_grad_match_torch(name, case):
    spec = SPECS[name]
    arrays = spec.inputs(np.random.default_rng(0), case)
    compare_with_torch(spec.mb, spec.torch, arrays, case.params, name=name)


# --- finite differences: first and second order -------------------------------------------


def _tensors(spec, case):
    arrays = spec.inputs(np.random.default_rng(0), case)
    return [mb.tensor(a, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("name, case", ALL_CASES)
def test_gradcheck(name, case):
    spec = SPECS[name]
    assert mb.gradcheck(lambda *xs: spec.mb(*xs, **case.params), *_tensors(spec, case))


# For a linear op (reshape, getitem, ...) the first derivative does not depend on x, so this
# only checks that its VJP runs on tensors; whether that gradient is right is checked
# against torch above. (So the transpose bug, wrong in the first derivative, passes here.)
@pytest.mark.parametrize("name, case", params_for(SPECS))
def test_gradgradcheck(name, case):
    spec = SPECS[name]
    assert mb.gradgradcheck(lambda *xs: spec.mb(*xs, **case.params), *_tensors(spec, case))


# --- rules that need a closed-form check --------------------------------------------------


def test_max_ties_share_the_gradient_equally():
    x = mb.tensor([1.0, 3.0, 3.0], requires_grad=True)
    mb.max(x).backward()
    close(x.grad, [0.0, 0.5, 0.5], rtol=0, atol=0)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_ties_match_torch_amax(axis, keepdims):
    # torch.amax also splits the gradient evenly between tied maxima (torch.max does not)
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, 5.0, 5.0]])
    compare_with_torch(
        lambda x: mb.max(x, axis=axis, keepdims=keepdims),
        lambda x: torch.amax(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
        [data],
        name="max",
    )


def test_getitem_with_repeated_indices_adds_up():
    x = mb.tensor([10.0, 20.0, 30.0], requires_grad=True)
    x[[0, 0, 2]].sum().backward()
    close(x.grad, [2.0, 0.0, 1.0], rtol=0, atol=0)


def test_maximum_and_minimum_ties_share_the_gradient_equally():
    x = mb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = mb.tensor([2.0, 2.0, 2.0], requires_grad=True)
    mb.maximum(x, y).sum().backward()
    close(x.grad, [0.0, 0.5, 1.0], rtol=0, atol=0)
    close(y.grad, [1.0, 0.5, 0.0], rtol=0, atol=0)
    x.grad = y.grad = None
    mb.minimum(x, y).sum().backward()
    close(x.grad, [1.0, 0.5, 0.0], rtol=0, atol=0)
    close(y.grad, [0.0, 0.5, 1.0], rtol=0, atol=0)


@pytest.mark.parametrize("shapes", [((6,), (6,)), ((2, 3), (3,)), ((3, 1), (1, 4)), ((3,), ())])
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_and_minimum_ties_match_torch(name, shapes):
    # torch.maximum/minimum give each input half of g where they are equal; values drawn from
    # {-1, 0, 1} make many ties, and broadcasting adds the halves of a broadcast input up
    rng = np.random.default_rng(3)
    arrays = [rng.integers(-1, 2, s).astype(float) for s in shapes]
    compare_with_torch(SPECS[name].mb, SPECS[name].torch, arrays, name=name)


PROD_WITH_ZEROS = [
    np.array([2.0, 0.0, 3.0, -1.5]),  # one zero
    np.array([0.0, 2.0, 0.0, 3.0]),  # two zeros
    np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.5, 2.0, -3.0], [0.0, 4.0, 2.0]]),
    np.zeros((2, 3)),
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1])
@pytest.mark.parametrize("x", PROD_WITH_ZEROS, ids=["one-zero", "two-zeros", "mixed", "all-zero"])
def test_prod_with_zeros_matches_torch(x, axis, keepdims):
    with np.errstate(all="raise"):  # nothing is divided: x / 0 or 0 / 0 would raise here
        compare_with_torch(
            lambda t: mb.prod(t, axis=axis, keepdims=keepdims),
            lambda t: torch_prod(t, axis, keepdims),
            [x],
            name="prod",
        )


def test_prod_gradient_with_zeros_is_the_product_of_the_others():
    x = mb.tensor([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.5, 2.0, 4.0]], requires_grad=True)
    mb.prod(x, axis=1).sum().backward()
    # one zero: the others' product there, 0 elsewhere; two zeros: 0; none: prod / x
    close(x.grad, [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0], [8.0, 6.0, 3.0]], rtol=0, atol=0)


def hessian(fn, x):
    """d^2 fn / dx^2 of a scalar function of a 1-d tensor, one row per reverse sweep."""
    (dx,) = mb.grad(fn(x), x, create_graph=True)
    return np.stack([mb.grad(dx[i], x)[0].data for i in range(x.shape[0])])


@pytest.mark.parametrize("x", PROD_WITH_ZEROS[:2] + [np.array([0.0, 0.0, 0.0, 2.0])])
def test_prod_second_derivatives_with_zeros_match_torch(x):
    # d^2 prod / dx_i dx_j = the product of the entries other than i and j: nonzero between
    # the two zeros of a product with exactly two (its gradient is 0, its Hessian is not)
    expected = torch.autograd.functional.hessian(torch.prod, torch.tensor(x)).numpy()
    with np.errstate(all="raise"):
        close(hessian(mb.prod, mb.tensor(x, requires_grad=True)), expected)
        assert mb.gradgradcheck(mb.prod, mb.tensor(x, requires_grad=True))


def test_expm1_keeps_the_digits_that_exp_minus_one_loses():
    x = np.array([1e-10, -1e-12, 1e-300, -50.0, 2.0])
    t = mb.tensor(x, requires_grad=True)
    out = mb.expm1(t)
    out.backward(np.ones(5))
    close(out.data, np.expm1(x), rtol=0, atol=0)
    # exp(x), not out + 1: at x = -50, out + 1 is exactly 0 (torch's rule gives 0 there)
    close(t.grad, np.exp(x), rtol=0, atol=0)
    naive = (mb.exp(mb.tensor(x[:3])) - 1).data
    assert np.all(np.abs(naive - np.expm1(x[:3])) > 1e-8 * np.abs(x[:3]))  # digits gone


def test_log2_and_log10_are_numpys_exactly_at_powers():
    k2, k10 = np.arange(-60.0, 61.0), np.arange(-20.0, 21.0)
    assert np.array_equal(mb.log2(mb.tensor(2.0**k2)).data, k2)
    assert np.array_equal(mb.log10(mb.tensor(10.0**k10)).data, np.log10(10.0**k10))
    # why they are table entries: log(x) / log(b) misses some of these by an ulp
    assert (mb.log(mb.tensor(2.0**k2)).data / math.log(2) != k2).any()
    assert (mb.log(mb.tensor(10.0**k10)).data / math.log(10) != np.log10(10.0**k10)).any()


def test_sinh_and_cosh_are_accurate_near_zero_and_finite_up_to_710():
    x = np.array([1e-10, -1e-8, 710.0, -710.0])
    for fn, np_fn, d_fn in [(mb.sinh, np.sinh, np.cosh), (mb.cosh, np.cosh, np.sinh)]:
        t = mb.tensor(x, requires_grad=True)
        out = fn(t)
        out.backward(np.ones(4))
        assert np.isfinite(out.data).all() and np.isfinite(t.grad).all()
        close(out.data, np_fn(x), rtol=0, atol=0)
        close(t.grad, d_fn(x), rtol=0, atol=0)
    with np.errstate(over="ignore"):  # the composite from exp overflows at 710 ...
        naive = ((mb.exp(mb.tensor(x)) - mb.exp(-mb.tensor(x))) / 2).data
    assert not np.isfinite(naive[2:]).any()
    assert abs(naive[0] - 1e-10) > 1e-8 * 1e-10  # ... and cancels near 0


@pytest.mark.parametrize("name", ["sign", "floor", "ceil"])
def test_piecewise_constant_ops_give_zero_gradient_even_for_inf_adjoints(name):
    # at the jumps too (x = 0, 1, -2), as torch; and 0, not 0 * inf = NaN
    x = mb.tensor([0.0, 1.0, -2.0, 0.3], requires_grad=True)
    getattr(mb, name)(x).backward(np.array([np.inf, -np.inf, np.nan, 1.0]))
    close(x.grad, np.zeros(4), rtol=0, atol=0)


def test_einsum_vjp_is_the_einsum_of_the_others():
    # the prose rule, written out for a batch of matrix products
    rng = np.random.default_rng(0)
    x, y = mb.tensor(rng.standard_normal((2, 3, 4))), mb.tensor(rng.standard_normal((2, 4, 5)))
    x.requires_grad = y.requires_grad = True
    g = rng.standard_normal((2, 3, 5))
    mb.einsum("bij,bjk->bik", x, y).backward(g)
    close(x.grad, np.einsum("bik,bjk->bij", g, y.data))
    close(y.grad, np.einsum("bik,bij->bjk", g, x.data))


def test_pow_polynomial_features_at_zero():
    # d/dx x**k = k * x**(k-1): at x = 0 that is [0, 1, 0, 0] for k = 0..3, as in torch
    k = np.arange(4.0)
    with np.errstate(all="ignore"):
        compare_with_torch(lambda x: x**k, lambda t: t ** torch.from_numpy(k), [np.zeros(4)])


def test_pow_gradient_of_the_exponent_at_base_zero():
    # 0**y = 0 for every y > 0, so d/dy is 0 there, as in torch
    base = np.zeros(4)
    with np.errstate(all="ignore"):
        compare_with_torch(
            lambda y: mb.tensor(base) ** y,
            lambda y: torch.from_numpy(base) ** y,
            [np.array([0.5, 1.0, 2.0, 3.0])],
        )


def test_astype_changes_precision_and_casts_the_gradient_back():
    x = mb.tensor([1.0, 1.0 + 2**-30], requires_grad=True)  # the second rounds to 1 in float32
    y = PRIM["astype"](x, dtype=np.float32)
    assert y.dtype == np.float32 and y.data.tolist() == [1.0, 1.0]
    (y * mb.tensor([2.0, 3.0], dtype=np.float32)).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [2.0, 3.0]


def test_pow_second_derivatives_at_zero_are_finite_and_right():
    # x**0 = 1 for every x: every derivative is 0, also at x = 0 (the masked branch must
    # not compute 0**-1); 0**y = 0 for y > 0: d/dy and d2/dy2 are 0 there (not 0 * log 0)
    x = mb.tensor([0.0, 2.0], requires_grad=True)
    (g,) = mb.grad((x**0.0).sum(), x, create_graph=True)
    (h,) = mb.grad(g.sum(), x)
    assert g.data.tolist() == [0.0, 0.0] and h.data.tolist() == [0.0, 0.0]
    y = mb.tensor([0.5, 2.0, 3.0], requires_grad=True)
    (g,) = mb.grad((mb.tensor(np.zeros(3)) ** y).sum(), y, create_graph=True)
    (h,) = mb.grad(g.sum(), y)
    assert g.data.tolist() == [0.0, 0.0, 0.0] and h.data.tolist() == [0.0, 0.0, 0.0]
    # and where the derivatives are not 0, they stay torch's: d2/dx2 x**3 = 6x
    x = mb.tensor([0.0, 1.5], requires_grad=True)
    (g,) = mb.grad((x**3.0).sum(), x, create_graph=True)
    (h,) = mb.grad(g.sum(), x)
    close(h.data, [0.0, 9.0])


@pytest.mark.parametrize(
    ("shape", "axis"), [((0, 3), 1), ((0, 3), 0), ((0, 3), None), ((2, 0), 1), ((2, 0), 0)]
)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_reductions_over_empty_axes_match_numpy(name, shape, axis):
    # numpy's semantics: a sum over nothing is 0, a mean over nothing NaN, an empty result
    # stays empty; the gradient has the input's (empty or not) shape
    x = mb.tensor(np.ones(shape), requires_grad=True)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = getattr(np, name)(np.ones(shape), axis=axis)
        out = getattr(mb, name)(x, axis=axis)
    np.testing.assert_array_equal(out.data, expected)
    out.sum().backward()
    assert x.grad.shape == shape


def test_concatenate_vjp_sees_only_its_own_input():
    # the VJP of input i gets that input alone and its slice's bounds, recorded once: so a
    # backward through n inputs is linear in n (it was quadratic: every VJP received all
    # n inputs and summed the shapes of those before it)
    xs = [mb.tensor(np.full(k + 1, float(k)), requires_grad=True) for k in range(5)]
    out = mb.concatenate(xs)
    g = np.arange(out.size, dtype=float)
    each = out.record.op.vjps
    share = each.vjp(3, mb.engine.extend.NUMPY, g, out.data, xs[3].data, **out.record.params)
    np.testing.assert_array_equal(share, g[6:10])
    share, summed = mb.engine.extend.pull_back(out.record, 3, g, out.data, [x.data for x in xs])
    np.testing.assert_array_equal(share, g[6:10])
    assert not summed


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_matches_torch(axis, n):
    arrays = [np.random.default_rng(k).standard_normal((2, 3)) for k in range(n)]
    mb_stack = lambda *xs: mb.stack(list(xs), axis=axis)  # noqa: E731
    compare_with_torch(mb_stack, lambda *ts: torch.stack(ts, dim=axis), arrays)
    assert mb_stack(*[mb.tensor(a) for a in arrays]).shape == np.stack(arrays, axis=axis).shape
    assert mb.gradcheck(mb_stack, *[mb.tensor(a, requires_grad=True) for a in arrays])


# --- property tests (hypothesis) ----------------------------------------------------------


def floats(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


NONZERO = st.one_of(floats(-10, -0.1), floats(0.1, 10))
UNARY_VALUES = {  # the op's domain, and values torch and we compute the same way
    "neg": floats(-10, 10),
    "exp": floats(-10, 10),
    "log": floats(0.01, 100),
    "log1p": floats(-0.99, 100),
    "sqrt": floats(0.01, 100),
    "abs": floats(-10, 10),  # 0 included: both give gradient sign(0) = 0
    "sin": floats(-10, 10),
    "cos": floats(-10, 10),
    "tanh": floats(-10, 10),
    "sigmoid": floats(-20, 20),
    "softplus": floats(-15, 15),  # torch returns x itself above its threshold of 20
    "relu": floats(-10, 10),  # 0 included: both give gradient 0
    "expm1": floats(-10, 10),
    "log2": floats(0.01, 100),
    "log10": floats(0.01, 100),
    "sign": floats(-10, 10),  # 0 included: both give 0 and gradient 0
    "floor": st.one_of(floats(-10, 10), st.integers(-5, 5).map(float)),  # jumps: gradient 0
    "ceil": st.one_of(floats(-10, 10), st.integers(-5, 5).map(float)),
    "arctan": floats(-100, 100),
    "sinh": floats(-10, 10),
    "cosh": floats(-10, 10),
}
TIES = st.one_of(floats(-3, 3), st.sampled_from([-1.0, 0.0, 1.0]))  # equal values are common
BINARY_VALUES = {
    "add": (floats(-10, 10), floats(-10, 10)),
    "sub": (floats(-10, 10), floats(-10, 10)),
    "mul": (floats(-10, 10), floats(-10, 10)),
    "div": (floats(-10, 10), NONZERO),
    "pow": (floats(0.1, 5), floats(-3, 3)),
    "logaddexp": (floats(-20, 20), floats(-20, 20)),
    "normal_log_prob": (floats(-5, 5), floats(-5, 5), floats(0.1, 5)),
    "maximum": (TIES, TIES),  # ties included: both split the gradient in half
    "minimum": (TIES, TIES),
}
PROPERTY = settings(max_examples=25, deadline=None)


def test_property_tables_cover_the_elementwise_ops():
    assert set(UNARY_VALUES) == set(UNARY) and set(BINARY_VALUES) == set(BINARY)


@pytest.mark.parametrize("name", sorted(UNARY_VALUES))
@PROPERTY
@given(data=st.data())
def test_unary_property_matches_torch(name, data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=UNARY_VALUES[name]), label="x")
    compare_with_torch(SPECS[name].mb, SPECS[name].torch, [x], name=name)


@pytest.mark.parametrize("name", sorted(BINARY_VALUES))
@PROPERTY
@given(data=st.data())
def test_broadcasting_property_matches_torch(name, data):
    values = BINARY_VALUES[name]
    shapes = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=len(values), max_dims=3, max_side=4),
        label="shapes",
    )
    arrays = [
        data.draw(hnp.arrays(np.float64, shape, elements=elements), label=f"input {i}")
        for i, (shape, elements) in enumerate(zip(shapes.input_shapes, values, strict=True))
    ]
    compare_with_torch(SPECS[name].mb, SPECS[name].torch, arrays, name=name)


@PROPERTY
@given(data=st.data())
def test_clip_property_matches_torch(data):
    # values may sit exactly on a bound: both libraries pass the gradient there
    bounds = st.tuples(
        st.one_of(st.none(), st.sampled_from([-1.0, -0.5, 0.0])),
        st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0])),
    ).filter(lambda b: b != (None, None))  # torch.clamp needs at least one bound
    low, high = data.draw(bounds, label="low, high")
    elements = st.one_of(floats(-3, 3), st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0]))
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=4), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=elements), label="x")
    compare_with_torch(SPECS["clip"].mb, SPECS["clip"].torch, [x], {"low": low, "high": high})


@PROPERTY
@given(data=st.data())
def test_where_property_matches_torch(data):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4))
    cond_shape, x_shape, y_shape = shapes.input_shapes
    cond = data.draw(hnp.arrays(bool, cond_shape), label="cond")
    x = data.draw(hnp.arrays(np.float64, x_shape, elements=floats(-10, 10)), label="x")
    y = data.draw(hnp.arrays(np.float64, y_shape, elements=floats(-10, 10)), label="y")
    compare_with_torch(SPECS["where"].mb, SPECS["where"].torch, [x, y], {"cond": cond})


# --- float32 stays float32 ----------------------------------------------------------------


# Every primitive, not only the elementwise ones and matmul: a reduction or an index op that
# upcasts would break float32 models just as well. (The known transpose bug is the same in
# both precisions, so it does not show here.)
@pytest.mark.parametrize("name, case", params_for(SPECS))
def test_float32_in_float32_out(name, case):
    spec = SPECS[name]
    arrays = spec.inputs(np.random.default_rng(0), case)
    upstream = np.random.default_rng(1).standard_normal
    out, xs, v = run_microbbb(spec.mb, arrays, case.params, upstream, dtype=np.float32)
    assert out.dtype == np.float32
    assert all(x.grad.dtype == np.float32 for x in xs)
    # under create_graph nothing casts the VJP results back: an upcast would show here
    xs = [mb.tensor(a, dtype=np.float32, requires_grad=True) for a in arrays]
    grads = mb.grad(spec.mb(*xs, **case.params), xs, v.astype(np.float32), create_graph=True)
    assert all(g.dtype == np.float32 for g in grads)
    # and they are the float64 results, to float32 precision
    out64, xs64, _ = run_microbbb(spec.mb, arrays, case.params, lambda shape: v)
    close(out.data, out64.data, RTOL32, ATOL32)
    for g, x64 in zip(grads, xs64, strict=True):
        close(g.data, x64.grad, RTOL32, ATOL32)


# --- the large-tensor code paths ------------------------------------------------------------

# Above SMALL elements, softplus, sigmoid and the scale mixture switch to in-place code with
# fewer passes over memory (and the mixture floors exponents at the smallest normal number).
# Every other test uses small tensors, so here both paths see the same values, extremes
# included: they must agree to a few ulps (rtol 1e-13 in float64, 1e-6 in float32), and the
# large path must match torch as the small one does. Gradients get an absolute slack of a
# few ulps of max|g| as well: sigmoid's VJP g * out * (1 - out) subtracts from 1 where
# out ~ 1, so any two correctly rounded forwards give gradients that differ by ~eps there.
LARGE_X = np.concatenate(
    [
        np.linspace(-40.0, 40.0, mb.engine.kernels.SMALL),
        np.linspace(-0.05, 0.05, 501),  # where the mixture's two components trade places
        [-800.0, -50.0, -1e-8, 0.0, 1e-8, 50.0, 800.0],
    ]
)
LARGE_OPS = {
    # torch's softplus returns x itself above 20 (off by 2e-9 at x = 20); logaddexp is exact
    "softplus": (mb.softplus, lambda x: torch.logaddexp(torch.zeros_like(x), x)),
    "sigmoid": (mb.sigmoid, torch.sigmoid),
    "scale_mixture_log_prob": (
        lambda w: F.scale_mixture_log_prob(w, 0.5, 1.0, math.exp(-6)),
        lambda w: torch_scale_mixture_log_prob(w, 0.5, 1.0, math.exp(-6)),
    ),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(LARGE_OPS))
def test_large_tensor_path_agrees_with_small_path_and_torch(name, dtype):
    fn, torch_fn = LARGE_OPS[name]
    x = LARGE_X.astype(dtype)
    g = np.random.default_rng(0).uniform(0.5, 2.0, x.shape).astype(dtype)
    assert x.size >= mb.engine.kernels.SMALL
    large = mb.tensor(x, requires_grad=True)
    out = fn(large)
    out.backward(g)
    chunks = [mb.tensor(c, requires_grad=True) for c in np.array_split(x, 50)]  # small path
    small_out = [fn(c) for c in chunks]
    for o, gc in zip(small_out, np.array_split(g, 50), strict=True):
        o.backward(gc)
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    tiny = np.finfo(dtype).tiny
    assert out.dtype == dtype and large.grad.dtype == dtype
    close(out.data, np.concatenate([o.data for o in small_out]), rtol, tiny)
    ulps = 8 * np.finfo(dtype).eps * float(g.max())
    close(large.grad, np.concatenate([c.grad for c in chunks]), rtol, ulps)
    if dtype == np.float64:
        xt = torch.tensor(x, requires_grad=True)
        expected = torch_fn(xt)
        expected.backward(torch.tensor(g))
        close(out.data, expected.detach().numpy())
        close(large.grad, xt.grad.numpy())


# --- the rules= strings say what the VJPs compute --------------------------------------------
# Each rule that is a formula is evaluated with numpy on the spec inputs and compared with its
# VJP (before unbroadcasting: both give the broadcast shape). A trailing remark in
# parentheses, "(= ...)" or "(0 where ...)", is prose. The rules that are prose as a whole are
# listed, so a formula that stops evaluating (a typo, a renamed input) fails instead of
# quietly turning into prose. Same formulas in the same precision: rtol 1e-12.
PROSE_RULES = {
    "scale_mixture_log_prob": "-g * w * (r1/sigma1**2 + r2/sigma2**2), r_k = share of component k",
    "sum": "broadcast g back to x.shape",
    "mean": "broadcast g back to x.shape, / n",
    "max": "g to the maxima of x (ties share equally)",
    "transpose": "transpose(g, inverse of axes)",
    "concatenate": "g[the slice of input i]",
    # any number of inputs, like concatenate; test_einsum_vjp_is_the_einsum_of_the_others
    "einsum": "einsum(g, the other inputs -> the letters of input i)",
}
REMARK = re.compile(r"^(.*?)\s+\((?:= |0 where ).*\)$")
FORMULA_FUNCTIONS = {
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "sign": np.sign,
    "where": np.where,
    "reshape": np.reshape,
    "broadcast_to": np.broadcast_to,
    "sum_to": mb.engine.kernels.sum_to,
    "scatter_add": mb.engine.kernels.scatter_add,
    "astype": lambda a, dtype: np.asarray(a).astype(dtype),
    "sinh": np.sinh,
    "cosh": np.cosh,
    "flip": np.flip,
    "cumsum": np.cumsum,
}


def formula(rule: str) -> str:
    match = REMARK.match(rule)
    return match[1] if match else rule


def rule_applies(name: str, shapes: tuple, params: dict) -> bool:
    """The formulas are written for the general case: n-d matmul operands (numpy promotes
    1-d ones), g and out with the reduced axes kept, both bounds of a clip."""
    if name == "matmul":
        return all(len(s) >= 2 for s in shapes)
    if name in ("logsumexp", "prod"):
        return params["keepdims"] or params["axis"] is None
    if name == "cumsum":  # the primitive gets an int axis (mb.cumsum flattens for None)
        return params["axis"] is not None
    return True


def check_rules(op, name: str, case: Case) -> None:
    """Evaluate each formula rule of ``op`` on the inputs of ``name``'s spec; compare."""
    rng = np.random.default_rng(0)
    inputs = SPECS[name].inputs(rng, case)
    out = np.asarray(op.forward(*inputs, **case.params))
    g = rng.standard_normal(out.shape)
    names = list(inspect.signature(op.vjps[0]).parameters)[3 : 3 + len(inputs)]
    values = dict(zip(names, inputs, strict=True), g=g, out=out, **case.params)
    if "low" in case.params:  # a missing bound is no bound
        values["low"] = -np.inf if case.params["low"] is None else case.params["low"]
        values["high"] = np.inf if case.params["high"] is None else case.params["high"]
    for i, rule in enumerate(op.rules):
        expected = op.vjps[i](mb.engine.extend.NUMPY, g, out, *inputs, **case.params)
        got = eval(compile(formula(rule), rule, "eval"), {**FORMULA_FUNCTIONS, **values})
        close(np.broadcast_to(got, np.shape(expected)), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name, case", ALL_CASES)
def test_formula_rules_compute_what_the_vjps_compute(name, case):
    if name not in PROSE_RULES and rule_applies(name, case.shapes, case.params):
        check_rules(PRIM[name], name, case)


def test_prose_rules_are_exactly_the_listed_ones():
    """Every rule that is not in PROSE_RULES compiles as a formula over known names."""
    for op in mb.PRIMITIVES:
        for rule in op.rules:
            if op.name in PROSE_RULES:
                assert rule == PROSE_RULES[op.name]
                continue
            code = compile(formula(rule), rule, "eval")
            inputs = list(inspect.signature(op.vjps[0]).parameters)[3:]
            known = {"g", "out", *inputs, *FORMULA_FUNCTIONS, "mT", "shape"}  # (and attributes)
            unknown = set(code.co_names) - known
            assert not unknown, f"{op.name}: rule {rule!r} uses unknown names {unknown}"


def test_a_wrong_rule_string_is_caught():
    mul = PRIM["mul"]
    swapped = mb.Primitive("mul", mul.forward, mul.vjps, rules=(mul.rules[1], mul.rules[0]))
    with pytest.raises(AssertionError):
        check_rules(swapped, "mul", Case(((2, 3), (2, 3))))


# --- second derivatives against torch: Hessian-vector products ------------------------------


def torch_scale_mixture_by_logsumexp(w, pi, sigma1, sigma2):
    """The mixture through torch.logsumexp: torch.logaddexp's second derivative is NaN
    wherever exp(narrow - wide) underflows (seen with torch 2.13 at sigma2 = e^-6), so its
    Hessian-vector products cannot be the reference."""
    wide = math.log(pi) + torch_normal_log_prob(w, 0.0, torch.tensor(sigma1, dtype=w.dtype))
    narrow = math.log(1 - pi) + torch_normal_log_prob(w, 0.0, torch.tensor(sigma2, dtype=w.dtype))
    return torch.logsumexp(torch.stack([wide, narrow]), dim=0)


HVP_TWINS = {"scale_mixture_log_prob": torch_scale_mixture_by_logsumexp}


@pytest.mark.parametrize("name, case", ALL_CASES)
def test_hessian_vector_products_match_torch(name, case):
    # the VJPs run again on recorded gradients (create_graph=True), then differentiated:
    # gradgradcheck above checks them against finite differences, this against torch
    spec = SPECS[name]
    arrays = spec.inputs(np.random.default_rng(0), case)
    twin = HVP_TWINS.get(name, spec.torch)
    assert_same_gradients(
        lambda *xs: spec.mb(*xs, **case.params),
        lambda *ts: twin(*ts, **case.params),
        *arrays,
        order=2,
        rtol=RTOL,
        atol=ATOL,
    )
