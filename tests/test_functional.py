"""microbbb.functional: stable composites and negative log-likelihoods.

References are torch 2.13 in float64 (torch.nn.functional, torch.distributions.Normal) and,
for the extreme inputs, closed-form values written out with the math module.

Tolerances: RTOL = 1e-10, ATOL = 1e-12 against torch. Both sides evaluate the same formulas
in IEEE double; they differ by the rounding of differently ordered operations (a few ulps,
~1e-15 relative, a little more after a sum), so 1e-10 has ample headroom while a wrong
formula is off by O(1). ATOL covers values that are zero up to rounding (e.g. a log-softmax
entry of the largest logit). The stability cases use the same tolerances against closed
forms; there, finite values and gradients are required first.
"""

import builtins
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import microbbb as mb
from microbbb import functional as F

RTOL, ATOL = 1e-10, 1e-12


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


def compare_with_torch(mb_fn, torch_fn, arrays, wrt=None):
    """Values and d sum(out * v) / d input, for the inputs listed in ``wrt`` (default: all)."""
    wrt = range(len(arrays)) if wrt is None else wrt
    xs = [mb.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    ts = [
        torch.tensor(a, dtype=torch.float64, requires_grad=i in wrt) for i, a in enumerate(arrays)
    ]
    out, expected = mb_fn(*xs), torch_fn(*ts)
    v = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(v)
    (expected * torch.from_numpy(v)).sum().backward()
    assert out.shape == tuple(expected.shape)
    close(out.data, expected.detach().numpy())
    for x, t_ in zip(xs, ts, strict=True):
        assert x.grad.shape == x.shape
        close(x.grad, t_.grad.numpy())


def logits(shape, scale=5.0, seed=0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


def positive(shape, seed=2):
    return np.random.default_rng(seed).uniform(0.3, 3.0, shape)


# --- composites against torch -------------------------------------------------------------


def _all(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


COMPOSITES = [
    pytest.param(F.log_sigmoid, TF.logsigmoid, [logits((2, 5))], id="log_sigmoid"),
    pytest.param(F.softplus, TF.softplus, [logits((2, 5), scale=3)], id="softplus"),
    *[
        pytest.param(
            lambda x, a=axis: F.log_softmax(x, axis=a),
            lambda t, a=axis: torch.log_softmax(t, dim=a),
            [logits(shape)],
            id=f"log_softmax-{'x'.join(map(str, shape))}-axis={axis}",
        )
        for shape, axis in [((3, 4), -1), ((3, 4), 0), ((3, 4), 1), ((2, 3, 4), 1), ((5,), 0)]
    ],
    *[
        pytest.param(
            lambda x, a=axis: F.softmax(x, axis=a),
            lambda t, a=axis: torch.softmax(t, dim=a),
            [logits(shape)],
            id=f"softmax-{'x'.join(map(str, shape))}-axis={axis}",
        )
        for shape, axis in [((3, 4), -1), ((3, 4), 0), ((2, 3, 4), 1)]
    ],
    *[
        pytest.param(
            lambda x, a=axis, k=keepdims: F.logsumexp(x, axis=a, keepdims=k),
            lambda t, a=axis, k=keepdims: torch.logsumexp(t, dim=_all(a, t.ndim), keepdim=k),
            [logits((3, 4))],
            id=f"logsumexp-axis={axis}-keepdims={keepdims}",
        )
        for axis in (None, 0, -1, (0, 1))
        for keepdims in (False, True)
    ],
    pytest.param(F.logaddexp, torch.logaddexp, [logits(3), logits(3, seed=1)], id="logaddexp"),
    pytest.param(
        F.logaddexp, torch.logaddexp, [logits((2, 1)), logits(3, seed=1)], id="logaddexp-bcast"
    ),
    pytest.param(
        F.normal_log_prob,
        lambda x, mu, s: torch.distributions.Normal(mu, s).log_prob(x),
        [logits((2, 3), 1.0), logits(3, 1.0, seed=1), positive((2, 1))],
        id="normal_log_prob",
    ),
]


@pytest.mark.parametrize("mb_fn, torch_fn, arrays", COMPOSITES)
def test_composite_matches_torch(mb_fn, torch_fn, arrays):
    compare_with_torch(mb_fn, torch_fn, arrays)


@pytest.mark.parametrize("mb_fn, torch_fn, arrays", COMPOSITES)
def test_composite_gradcheck(mb_fn, torch_fn, arrays):
    assert mb.gradcheck(mb_fn, *[mb.tensor(a, requires_grad=True) for a in arrays])


def test_softmax_rows_sum_to_one():
    p = F.softmax(mb.tensor(logits((4, 5), scale=20)), axis=1)
    close(p.data.sum(axis=1), np.ones(4))


# --- negative log-likelihoods against torch -----------------------------------------------

REDUCTIONS = ["sum", "mean"]


def _reduce(t, reduction):
    return t.sum() if reduction == "sum" else t.mean()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sigma_kind", ["number", "scalar-tensor", "tensor"])
def test_gaussian_nll_matches_torch_normal(reduction, sigma_kind):
    y, mean = logits((2, 3), 1.0, seed=3), logits((2, 3), 1.0)

    def reference(m, s):  # -log N(y; m, s^2), reduced
        return _reduce(-torch.distributions.Normal(m, s).log_prob(torch.from_numpy(y)), reduction)

    if sigma_kind == "number":
        compare_with_torch(
            lambda m: F.gaussian_nll(y, m, 0.7, reduction), lambda m: reference(m, 0.7), [mean]
        )
    else:
        sigma = np.array(0.7) if sigma_kind == "scalar-tensor" else positive((2, 3))
        compare_with_torch(
            lambda m, s: F.gaussian_nll(y, m, s, reduction), reference, [mean, sigma]
        )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
@pytest.mark.parametrize("label_dtype", [np.float64, np.int64, bool])
def test_bernoulli_nll_matches_torch(reduction, shape, label_dtype):
    y = np.random.default_rng(4).integers(0, 2, shape)
    y[(0,) * len(shape)], y[(-1,) * len(shape)] = 0, 1  # both classes present
    compare_with_torch(
        lambda z: F.bernoulli_nll(z, y.astype(label_dtype), reduction),
        lambda z: TF.binary_cross_entropy_with_logits(
            z, torch.from_numpy(y.astype(np.float64)), reduction=reduction
        ),
        [logits(shape, scale=10)],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n_classes", [2, 4])
def test_categorical_nll_matches_torch(reduction, n_classes):
    y = np.array([0, n_classes - 1, 1, n_classes - 1, 0, 1])
    compare_with_torch(
        lambda z: F.categorical_nll(z, y, reduction),
        lambda z: TF.cross_entropy(z, torch.from_numpy(y), reduction=reduction),
        [logits((6, n_classes), scale=5)],
    )


def test_the_suggested_fix_for_a_column_of_logits_works():
    # bernoulli_nll refuses logits (N, 1) with y (N,); its message suggests logits.reshape(-1)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    compare_with_torch(
        lambda z: F.bernoulli_nll(z.reshape(-1), y),
        lambda z: TF.binary_cross_entropy_with_logits(
            z.reshape(-1), torch.from_numpy(y), reduction="sum"
        ),
        [logits((4, 1))],
    )


# --- stability: extreme inputs give finite, correct values and gradients --------------------


def sigmoid(x):  # closed form, evaluated on the side where exp cannot overflow
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def log_softmax_reference(logits_):
    """Closed form: l_i - lse with lse = max + log(sum exp(l - max)); and softmax."""
    m = max(logits_)
    lse = m + math.log(sum(math.exp(v - m) for v in logits_))
    return [v - lse for v in logits_], [math.exp(v - lse) for v in logits_]


def check_finite_and_close(fn, inputs, value, grads, upstream=None):
    """fn(*tensors) must be finite with finite gradients, equal to the closed forms."""
    xs = [mb.tensor(x, requires_grad=True) for x in inputs]
    out = fn(*xs)
    out.backward(np.ones(out.shape) if upstream is None else upstream)
    assert np.isfinite(out.data).all(), f"value not finite: {out.data}"
    for x in xs:
        assert np.isfinite(x.grad).all(), f"gradient not finite: {x.grad}"
    close(out.data, value)
    for x, g in zip(xs, grads, strict=True):
        close(x.grad, g)


V2, V3 = np.array([0.3, -1.2]), np.array([0.3, -1.2, 0.5])
LS_2 = log_softmax_reference([0.0, 1e4])
LS_3 = log_softmax_reference([1e4, 0.0, -1e4])
E = math.exp(-1000.0)  # 0.0 in double precision
STABLE = {  # name: (function, inputs, value, gradients, upstream adjoint)
    "softplus(1000)": (F.softplus, [1000.0], 1000.0 + math.log1p(E), [sigmoid(1000.0)], None),
    "softplus(-1000)": (F.softplus, [-1000.0], math.log1p(E), [sigmoid(-1000.0)], None),
    "log_sigmoid(1000)": (F.log_sigmoid, [1000.0], -math.log1p(E), [sigmoid(-1000.0)], None),
    "log_sigmoid(-1000)": (F.log_sigmoid, [-1000.0], -1000.0 - math.log1p(E), [1.0], None),
    "log_softmax([0, 1e4])": (
        F.log_softmax,
        [[0.0, 1e4]],
        LS_2[0],
        [V2 - np.array(LS_2[1]) * V2.sum()],
        V2,
    ),
    "log_softmax([1e4, 0, -1e4])": (
        F.log_softmax,
        [[1e4, 0.0, -1e4]],
        LS_3[0],
        [V3 - np.array(LS_3[1]) * V3.sum()],
        V3,
    ),
    "softmax([1e4, 0, -1e4])": (
        F.softmax,
        [[1e4, 0.0, -1e4]],
        LS_3[1],
        [np.array(LS_3[1]) * (V3 - np.dot(LS_3[1], V3))],
        V3,
    ),
    "logaddexp(-1e4, -1e4 + 1)": (
        F.logaddexp,
        [-1e4, -1e4 + 1],
        -1e4 + 1 + math.log1p(math.exp(-1.0)),
        [sigmoid(-1.0), sigmoid(1.0)],
        None,
    ),
    "logsumexp([-1e4, -1e4])": (
        F.logsumexp,
        [[-1e4, -1e4]],
        -1e4 + math.log(2.0),
        [[0.5, 0.5]],
        None,
    ),
    "bernoulli_nll(+-1000, wrong labels)": (
        lambda z: F.bernoulli_nll(z, np.array([0.0, 1.0])),
        [[1000.0, -1000.0]],
        2000.0,
        [[sigmoid(1000.0) - 0.0, sigmoid(-1000.0) - 1.0]],
        None,
    ),
    "categorical_nll([[0, 1e4]], 0)": (
        lambda z: F.categorical_nll(z, np.array([0])),
        [[[0.0, 1e4]]],
        -LS_2[0][0],
        [[[LS_2[1][0] - 1.0, LS_2[1][1]]]],
        None,
    ),
}
NAIVE = {  # the textbook formula for the same quantity, which over- or underflows
    "log_sigmoid(-1000)": lambda x: mb.log(mb.sigmoid(x)),
    "softplus(1000)": lambda x: mb.log(1 + mb.exp(x)),
    "log_softmax([0, 1e4])": lambda x: x - mb.log(mb.sum(mb.exp(x))),
    "logaddexp(-1e4, -1e4 + 1)": lambda x, y: mb.log(mb.exp(x) + mb.exp(y)),
    "logsumexp([-1e4, -1e4])": lambda x: mb.log(mb.sum(mb.exp(x))),
}


@pytest.mark.parametrize("name", list(STABLE))
def test_stable_for_extreme_inputs(name):
    fn, inputs, value, grads, upstream = STABLE[name]
    check_finite_and_close(fn, inputs, value, grads, upstream)


@pytest.mark.parametrize("name", list(NAIVE))
def test_the_naive_formula_fails_the_same_check(name):
    # proves check_finite_and_close can tell a stable formula from an unstable one
    _, inputs, value, grads, upstream = STABLE[name]
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match="not finite"):
        check_finite_and_close(NAIVE[name], inputs, value, grads, upstream)


# --- errors: refuse inputs that would silently give a wrong loss ---------------------------

N = 4
Y_BINARY = np.array([0.0, 1.0, 1.0, 0.0])
Y_CLASSES = np.array([0, 2, 1, 2])


def t(shape):
    return mb.tensor(logits(shape), requires_grad=True)


ERRORS = [
    pytest.param(
        lambda: F.categorical_nll(t((N, 1)), np.zeros(N, dtype=int)),
        r"(?s)single class column.*softmax over one output.*bernoulli_nll",
        id="categorical-one-column",
    ),
    pytest.param(
        lambda: F.categorical_nll(t((N, 3)), Y_CLASSES.astype(float)),
        r"integer class indices.*float64",
        id="categorical-float-labels",
    ),
    pytest.param(
        lambda: F.categorical_nll(t((N, 3)), np.array([0.0, np.nan, 1.0, 2.0])),
        r"integer class indices",
        id="categorical-nan-labels",
    ),
    pytest.param(
        lambda: F.categorical_nll(t((N, 3)), np.array([0, 3, 1, 2])),
        r"labels must lie in 0\.\.2; got values from 0 to 3",
        id="categorical-label-too-large",
    ),
    pytest.param(
        lambda: F.categorical_nll(t((N, 3)), np.array([0, -1, 1, 2])),
        r"labels must lie in 0\.\.2; got values from -1 to 2",
        id="categorical-negative-label",
    ),
    pytest.param(
        lambda: F.categorical_nll(t((N, 3)), Y_CLASSES.reshape(N, 1)),
        r"labels y must have shape \(4,\)",
        id="categorical-label-shape",
    ),
    pytest.param(
        lambda: F.categorical_nll(t((N,)), Y_CLASSES),
        r"logits must have shape \(N, C\)",
        id="categorical-1d-logits",
    ),
    pytest.param(
        lambda: F.bernoulli_nll(t((N,)), np.array([0.0, 2.0, 1.0, 0.0])),
        r"labels y must be 0 or 1; got values such as \[2\.0\]",
        id="bernoulli-label-2",
    ),
    pytest.param(
        lambda: F.bernoulli_nll(t((N,)), np.array([0.0, 0.5, 1.0, 0.0])),
        r"labels y must be 0 or 1",
        id="bernoulli-label-half",
    ),
    pytest.param(
        lambda: F.bernoulli_nll(t((N, 1)), Y_BINARY),
        r"\(4, 1\).*\(4,\).*silently broadcast to \(4, 4\)",
        id="bernoulli-column-logits",
    ),
    pytest.param(
        lambda: F.bernoulli_nll(t((N,)), np.array([0.0, np.nan, 1.0, 0.0])),
        r"labels y contain NaN or inf",
        id="bernoulli-nan-labels",
    ),
    pytest.param(
        lambda: F.gaussian_nll(logits(5), t((N,)), 1.0),
        r"mean has shape \(4,\) but labels y have shape \(5,\)",
        id="gaussian-shape-mismatch",
    ),
    pytest.param(
        lambda: F.gaussian_nll(logits(N), t((N, 1)), 1.0),
        r"silently broadcast to \(4, 4\)",
        id="gaussian-column-mean",
    ),
    pytest.param(
        lambda: F.gaussian_nll(np.array([0.0, np.nan, 1.0, 2.0]), t((N,)), 1.0),
        r"labels y contain NaN or inf",
        id="gaussian-nan-labels",
    ),
    pytest.param(
        lambda: F.gaussian_nll(np.array([0.0, np.inf, 1.0, 2.0]), t((N,)), 1.0),
        r"labels y contain NaN or inf",
        id="gaussian-inf-labels",
    ),
    *[
        pytest.param(call, r"reduction must be 'sum' or 'mean', got 'max'", id=f"{name}-reduction")
        for name, call in [
            ("gaussian", lambda: F.gaussian_nll(logits(N), t((N,)), 1.0, reduction="max")),
            ("bernoulli", lambda: F.bernoulli_nll(t((N,)), Y_BINARY, reduction="max")),
            ("categorical", lambda: F.categorical_nll(t((N, 3)), Y_CLASSES, reduction="max")),
        ]
    ],
]


@pytest.mark.parametrize("call, match", ERRORS)
def test_nll_refuses_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- the ops learners reach for: against torch, numpy and finite differences ----------------
# numpy's names, arguments and defaults (microbbb.functional's module docstring says which are
# composites and which are table entries; the table entries are also swept in
# test_primitives.py). Values and gradients against torch in float64 at RTOL/ATOL above, for
# the same reason: both sides evaluate the same formulas or move the same numbers. Values
# also against numpy, whose semantics these functions copy: bit for bit where nothing is
# computed in a different order (shape ops, min, var and std, which follow numpy's own
# two-pass formula), else at rtol = atol = 1e-14 (tan = sin / cos and dot through matmul
# round a few ulps differently; results are of order one). Finite differences, first and
# second order, at gradcheck's documented defaults.


def real(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _torch_expand_dims(t, axes):
    ndim = t.ndim + len(axes)
    for a in sorted(a % ndim for a in axes):
        t = t.unsqueeze(a)
    return t


def _torch_dot(a, b):  # numpy's dot: the last axis of a against the second-to-last of b
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return torch.tensordot(a, b, dims=([a.ndim - 1], [builtins.max(b.ndim - 2, 0)]))


def _weighted(pieces, axis, cat):
    """The pieces of a split, each times its own number, joined again: a gradient sent to the
    wrong piece shows."""
    return cat([p * (k + 1.0) for k, p in enumerate(pieces)], axis)


def learner(id_, mb_fn, torch_fn, np_fn, arrays, exact=True):
    return pytest.param(mb_fn, torch_fn, np_fn, arrays, exact, id=id_)


X = real((2, 3, 4))
TIED = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, 5.0, 5.0]])
FLAT_ROWS = np.array([[1.5, 1.5, 1.5], [0.3, -1.0, 2.0]])  # the first row has std 0
SQUARE = real((3, 3), seed=4)
LEARNER_OPS = [
    *[
        learner(
            f"min-axis={axis}-keepdims={keepdims}",
            lambda x, a=axis, k=keepdims: F.min(x, axis=a, keepdims=k),
            lambda t, a=axis, k=keepdims: torch.amin(t, dim=_all(a, t.ndim), keepdim=k),
            lambda x, a=axis, k=keepdims: np.min(x, axis=a, keepdims=k),
            [X],
        )
        for axis, keepdims in [(None, False), (1, True), (-1, False), ((0, 2), False)]
    ],
    learner(
        "min-ties",  # torch.amin splits the gradient between tied minima, as microbbb
        lambda x: F.min(x, axis=1),
        lambda t: torch.amin(t, dim=1),
        lambda x: np.min(x, axis=1),
        [-TIED],
    ),
    *[
        learner(
            f"{name}-axis={axis}-ddof={ddof}-keepdims={keepdims}",
            lambda x, f=name, a=axis, d=ddof, k=keepdims: getattr(F, f)(x, a, ddof=d, keepdims=k),
            lambda t, f=name, a=axis, d=ddof, k=keepdims: getattr(torch, f)(
                t, dim=_all(a, t.ndim), correction=d, keepdim=k
            ),
            lambda x, f=name, a=axis, d=ddof, k=keepdims: getattr(np, f)(
                x, tuple(a) if isinstance(a, list) else a, ddof=d, keepdims=k
            ),
            [X],
        )
        for name in ("var", "std")
        for axis, ddof, keepdims in [
            (None, 0, False),
            (1, 1, False),
            ((0, 2), 0, True),
            (-1, 2, False),
            ([0, 1], 1, False),
        ]
    ],
    *[
        learner(  # a row of equal values: std has a kink at 0; torch and microbbb give 0
            f"{name}-equal-values",
            lambda x, f=name: getattr(F, f)(x, axis=1),
            lambda t, f=name: getattr(torch, f)(t, dim=1, correction=0),
            lambda x, f=name: getattr(np, f)(x, axis=1),
            [FLAT_ROWS],
        )
        for name in ("var", "std")
    ],
    learner("square", F.square, torch.square, np.square, [X]),
    learner("tan", F.tan, torch.tan, np.tan, [X], exact=False),
    *[
        learner(
            f"squeeze-axis={axis}",
            lambda x, a=axis: F.squeeze(x, a),
            lambda t, a=axis: torch.squeeze(t) if a is None else torch.squeeze(t, a),
            lambda x, a=axis: np.squeeze(x, a),
            [real((2, 1, 3, 1))],
        )
        for axis in (None, 1, -1, (3, 1))
    ],
    *[
        learner(
            f"expand_dims-axis={axis}",
            lambda x, a=axis: F.expand_dims(x, a),
            lambda t, a=axis: _torch_expand_dims(t, a if isinstance(a, tuple) else (a,)),
            lambda x, a=axis: np.expand_dims(x, a),
            [real((2, 3))],
        )
        for axis in (0, -1, 1, (0, 3), (-1, 1))
    ],
    learner(
        "unsqueeze",
        lambda x: F.unsqueeze(x, -2),
        lambda t: t.unsqueeze(-2),
        lambda x: np.expand_dims(x, -2),
        [real((2, 3))],
    ),  # fmt: skip
    *[
        learner(
            f"swapaxes-{a1},{a2}",
            lambda x, a=a1, b=a2: F.swapaxes(x, a, b),
            lambda t, a=a1, b=a2: torch.swapaxes(t, a, b),
            lambda x, a=a1, b=a2: np.swapaxes(x, a, b),
            [X],
        )
        for a1, a2 in [(0, 1), (0, -1), (2, 2)]
    ],
    *[
        learner(
            f"moveaxis-{src}-{dst}",
            lambda x, s=src, d=dst: F.moveaxis(x, s, d),
            lambda t, s=src, d=dst: torch.movedim(t, s, d),
            lambda x, s=src, d=dst: np.moveaxis(x, s, d),
            [X],
        )
        for src, dst in [(0, -1), (-1, 0), ((0, 1), (-1, 0)), ([2, 0], [0, 1])]
    ],
    learner("ravel", F.ravel, torch.ravel, np.ravel, [X]),
    learner("ravel-scalar", F.ravel, torch.ravel, np.ravel, [np.array(1.5)]),
    *[
        learner(
            f"flatten-{start},{end}",
            lambda x, s=start, e=end: F.flatten(x, s, e),
            lambda t, s=start, e=end: torch.flatten(t, s, e),
            lambda x, s=start, e=end: x.reshape(x.shape[:s] + (-1,) + x.shape[e % x.ndim + 1 :]),
            [X],
        )
        for start, end in [(0, -1), (1, -1), (0, 1), (1, 1), (-2, -1)]
    ],
    *[
        learner(
            f"repeat-{repeats}-axis={axis}",
            lambda x, r=repeats, a=axis: F.repeat(x, r, axis=a),
            lambda t, r=repeats, a=axis: torch.repeat_interleave(
                t, torch.tensor(r) if isinstance(r, list) else r, dim=a
            ),
            lambda x, r=repeats, a=axis: np.repeat(x, r, axis=a),
            [X],
        )
        for repeats, axis in [(2, None), (3, 1), (2, -1), ([1, 0, 2], 1), ([2], 0), (0, 2)]
    ],
    *[
        learner(
            f"tile-{reps}",
            lambda x, r=reps: F.tile(x, r),
            lambda t, r=reps: torch.tile(t, r if isinstance(r, tuple) else (r,)),
            lambda x, r=reps: np.tile(x, r),
            [real((2, 3))],
        )
        for reps in (2, (2, 1), (1, 3), (2, 1, 2), (3,))
    ],
    *[
        learner(
            f"flip-axis={axis}",
            lambda x, a=axis: F.flip(x, a),
            lambda t, a=axis: torch.flip(t, _all(a, t.ndim) if not isinstance(a, int) else (a,)),
            lambda x, a=axis: np.flip(x, a),
            [X],
        )
        for axis in (None, 0, -1, (0, 2))
    ],
    *[
        learner(
            f"roll-{shift}-axis={axis}",
            lambda x, s=shift, a=axis: F.roll(x, s, a),
            lambda t, s=shift, a=axis: torch.roll(t, s, a),
            lambda x, s=shift, a=axis: np.roll(x, s, a),
            [X],
        )
        for shift, axis in [
            (5, None),
            (1, 0),
            (-2, -1),
            ((1, -2), (0, 2)),
            (7, 1),
            ((1, 1), (2, 2)),
        ]
    ],
    *[
        learner(
            f"split-{parts}-axis={axis}",
            lambda x, p=parts, a=axis: _weighted(F.split(x, p, a), a, F.concatenate),
            lambda t, p=parts, a=axis: _weighted(torch.tensor_split(t, p, a), a, torch.cat),
            lambda x, p=parts, a=axis: _weighted(np.split(x, p, a), a, np.concatenate),
            [real((4, 6))],
        )
        for parts, axis in [(3, 1), (2, 0), ([1, 3], -1), ([2, 10], 0), (1, 1)]
    ],
    *[
        learner(
            f"pad-{width}-value={value}",
            lambda x, w=width, v=value: F.pad(x, w, constant_values=v),
            lambda t, w=width, v=value: TF.pad(t, _torch_pad(w, t.ndim), value=v),
            lambda x, w=width, v=value: np.pad(x, w, constant_values=v),
            [real((2, 3))],
        )
        for width, value in [(1, 0), ((1, 2), 0), (((1, 0), (0, 2)), 2.5), (((0, 0), (3, 1)), -1)]
    ],
    *[
        learner(
            f"diagonal-offset={offset}-axes={a1},{a2}",
            lambda x, o=offset, a=a1, b=a2: F.diagonal(x, o, a, b),
            lambda t, o=offset, a=a1, b=a2: torch.diagonal(t, o, a, b),
            lambda x, o=offset, a=a1, b=a2: np.diagonal(x, o, a, b),
            [X],
        )
        for offset, a1, a2 in [(0, 0, 1), (1, 1, 2), (-1, 2, 1), (2, -1, 0), (5, 1, 2)]
    ],
    *[
        learner(
            f"trace-offset={offset}-axes={a1},{a2}",
            lambda x, o=offset, a=a1, b=a2: F.trace(x, o, a, b),
            lambda t, o=offset, a=a1, b=a2: torch.diagonal(t, o, a, b).sum(-1),
            lambda x, o=offset, a=a1, b=a2: np.trace(x, o, a, b),
            [X],
        )
        for offset, a1, a2 in [(0, 0, 1), (1, 1, 2), (-1, 2, 1)]
    ],
    learner("trace-matrix", F.trace, torch.trace, np.trace, [SQUARE]),
    *[
        learner(
            f"{name}-k={k}-{'x'.join(map(str, shape))}",
            lambda x, f=name, k=k: getattr(F, f)(x, k),
            lambda t, f=name, k=k: getattr(torch, f)(
                t.expand(t.shape[0], -1) if t.ndim == 1 else t, k
            ),
            lambda x, f=name, k=k: getattr(np, f)(x, k),
            [real(shape)],
        )
        for name in ("tril", "triu")
        for k, shape in [(0, (3, 4)), (1, (4, 3)), (-1, (2, 3, 4)), (0, (3,))]
    ],
    *[
        learner(
            f"dot-{'x'.join(map(str, sa)) or 'scalar'}-{'x'.join(map(str, sb)) or 'scalar'}",
            F.dot,
            _torch_dot,
            np.dot,
            [real(sa), real(sb, seed=1)],
            exact=False,
        )
        for sa, sb in [
            ((4,), (4,)),
            ((3, 4), (4, 5)),
            ((3, 4), (4,)),
            ((4,), (4, 5)),
            ((2, 3, 4), (4,)),
            ((2, 3, 4), (4, 5)),
            ((2, 3, 4), (2, 4, 5)),
            ((4,), (2, 4, 5)),
            ((), (2, 3)),
        ]
    ],
    learner(
        "outer",
        F.outer,
        lambda a, b: torch.outer(a.flatten(), b.flatten()),
        np.outer,
        [real((3,)), real((2, 2), seed=1)],
    ),  # fmt: skip
]


def _torch_pad(width, ndim):
    """numpy's pad_width as torch.nn.functional.pad's flat list, last axis first."""
    pairs = np.broadcast_to(np.asarray(width), (ndim, 2))
    return [int(v) for pair in pairs[::-1] for v in pair]


@pytest.mark.parametrize("mb_fn, torch_fn, np_fn, arrays, exact", LEARNER_OPS)
def test_learner_op_matches_torch(mb_fn, torch_fn, np_fn, arrays, exact):
    compare_with_torch(mb_fn, torch_fn, arrays)


@pytest.mark.parametrize("mb_fn, torch_fn, np_fn, arrays, exact", LEARNER_OPS)
def test_learner_op_value_is_numpys(mb_fn, torch_fn, np_fn, arrays, exact):
    out = mb_fn(*[mb.tensor(a) for a in arrays])
    expected = np_fn(*arrays)
    assert isinstance(out, mb.Tensor) and out.shape == np.shape(expected)
    if exact:
        assert np.array_equal(out.data, expected)
    else:
        close(out.data, expected, rtol=1e-14, atol=1e-14)


# Not at kinks: there finite differences straddle two slopes. The gradients microbbb picks at
# those two cases (ties of min, std of equal values) are torch's, compared above.
KINKS = {"min-ties", "std-equal-values"}


@pytest.mark.parametrize(
    "mb_fn, torch_fn, np_fn, arrays, exact", [p for p in LEARNER_OPS if p.id not in KINKS]
)
def test_learner_op_gradcheck_and_gradgradcheck(mb_fn, torch_fn, np_fn, arrays, exact):
    xs = [mb.tensor(a, requires_grad=True) for a in arrays]
    assert mb.gradcheck(mb_fn, *xs)
    assert mb.gradgradcheck(mb_fn, *xs)


@pytest.mark.parametrize("mb_fn, torch_fn, np_fn, arrays, exact", LEARNER_OPS)
def test_learner_op_keeps_float32(mb_fn, torch_fn, np_fn, arrays, exact):
    xs = [mb.tensor(a, dtype=np.float32, requires_grad=True) for a in arrays]
    out = mb_fn(*xs)
    grads = mb.grad(out, xs, np.ones(out.shape, np.float32), create_graph=True)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)


def test_the_learner_ops_are_exported_under_numpys_names():
    names = {
        "maximum", "minimum", "min", "prod", "var", "std", "square", "expm1", "log2", "log10",
        "tan", "arctan", "sinh", "cosh", "sign", "floor", "ceil", "squeeze", "expand_dims",
        "unsqueeze", "swapaxes", "moveaxis", "ravel", "flatten", "repeat", "tile", "flip",
        "roll", "dot", "outer", "einsum", "cumsum", "tril", "triu", "diagonal", "trace",
        "split", "pad",
    }  # fmt: skip
    assert names <= set(F.__all__) and names <= set(mb.__all__)
    for name in names:
        fn = getattr(mb, name)
        assert fn is getattr(F, name) and fn.__doc__, name


# --- the learner ops: stability, and what numpy's semantics mean here -------------------------


def test_var_keeps_its_digits_under_a_large_offset():
    # two passes, as numpy: the mean first. The one-pass E[x^2] - E[x]^2 loses every digit.
    x = 1e8 + np.array([1.0, 2.0, 3.0, 4.0])
    t = mb.tensor(x, requires_grad=True)
    out = F.var(t)
    out.backward()
    close(out.data, 1.25)
    close(t.grad, 2 * (x - x.mean()) / 4)
    naive = F.mean(mb.tensor(x) ** 2) - F.mean(mb.tensor(x)) ** 2
    assert abs(naive.item() - 1.25) > 0.1


def test_std_is_nan_for_nan_data_and_0_for_equal_values():
    # the mask that keeps 0 / 0 out of std's gradient must not hide a NaN
    x = mb.tensor([[1.0, np.nan, 2.0], [3.0, 3.0, 3.0]], requires_grad=True)
    out = F.std(x, axis=1)
    out.backward(np.ones(2))
    assert np.isnan(out.data[0]) and out.data[1] == 0.0
    close(x.grad[1], np.zeros(3), rtol=0, atol=0)


def test_tan_near_its_poles():
    # sin / cos: both factors are accurate near pi/2, so the quotient is too
    x = np.pi / 2 - np.array([1e-3, 1e-8, -1e-6])
    t = mb.tensor(x, requires_grad=True)
    out = F.tan(t)
    out.backward(np.ones(3))
    close(out.data, np.tan(x), rtol=1e-14)
    close(t.grad, 1 / np.cos(x) ** 2, rtol=1e-12)


def test_split_and_repeat_return_what_numpy_returns():
    x = np.arange(12.0).reshape(3, 4)
    pieces = F.split(mb.tensor(x), [1, 3], axis=1)
    assert [p.shape for p in pieces] == [(3, 1), (3, 2), (3, 1)]
    assert all(
        np.array_equal(p.data, q) for p, q in zip(pieces, np.split(x, [1, 3], 1), strict=True)
    )
    # numpy's repeat copies entries; torch's Tensor.repeat is numpy's tile
    assert F.repeat(mb.tensor([1.0, 2.0]), 2).data.tolist() == [1.0, 1.0, 2.0, 2.0]
    assert F.tile(mb.tensor([1.0, 2.0]), 2).data.tolist() == [1.0, 2.0, 1.0, 2.0]


def test_repeated_copies_add_their_gradients():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    (F.repeat(x, [3, 1]) * mb.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    close(x.grad, [111.0, 1000.0], rtol=0, atol=0)


EINSUM_FORMS = [
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),  # batch axes (2, 1) and (5,) broadcast
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),  # implicit output: "..." first, then ik
    ("ij...,jk...->ik...", [(3, 4, 2), (4, 5, 2)]),
    ("bij,jk", [(2, 3, 4), (4, 5)]),
    ("ba", [(2, 3)]),  # implicit output in alphabetical order: a transpose
    ("Ba,aB", [(3, 4), (4, 3)]),  # every letter twice: a scalar
    ("i...i", [(3, 2, 3)]),  # a diagonal under a broadcast axis
    ("i j , j k -> i k", [(3, 4), (4, 5)]),  # spaces are ignored
]


@pytest.mark.parametrize("subscripts, shapes", EINSUM_FORMS, ids=[f[0] for f in EINSUM_FORMS])
def test_einsum_spells_out_ellipsis_and_implicit_output_as_numpy(subscripts, shapes):
    arrays = [real(shape, seed=k) for k, shape in enumerate(shapes)]
    xs = [mb.tensor(a, requires_grad=True) for a in arrays]
    out = F.einsum(subscripts, *xs)
    close(out.data, np.einsum(subscripts, *arrays), rtol=1e-14, atol=1e-14)
    compare_with_torch(lambda *ts: F.einsum(subscripts, *ts),
                       lambda *ts: torch.einsum(subscripts, *ts), arrays)  # fmt: skip
    assert mb.gradcheck(lambda *ts: F.einsum(subscripts, *ts), *xs)


# --- the learner ops: errors say what was wrong and how to fix it ------------------------------

M2 = mb.tensor(real((2, 3)), requires_grad=True)
LEARNER_ERRORS = [
    pytest.param(
        lambda: F.split(mb.tensor(real(7)), 3),
        ValueError,
        r"axis 0 has length 7, which 3 equal sections cannot divide; pass the split points"
        r" instead, for example split\(x, \[3, 5\], axis=0\)",
        id="split-uneven",
    ),
    pytest.param(lambda: F.split(M2, 0, axis=1), ValueError, r"at least 1, got 0", id="split-0"),
    pytest.param(
        lambda: F.pad(M2, 1, mode="reflect"),
        ValueError,
        r"only mode='constant' is supported, got mode='reflect'.*concatenate",
        id="pad-mode",
    ),
    pytest.param(
        lambda: F.pad(M2, 1, constant_values=(0, 1)),
        ValueError,
        r"constant_values must be a single number",
        id="pad-values",
    ),
    pytest.param(
        lambda: F.pad(M2, ((1, 1), (1, 1), (1, 1))),
        ValueError,
        r"does not fit x's 2 axes; give an int, a \(before, after\) pair, or one pair per axis",
        id="pad-pairs",
    ),
    pytest.param(lambda: F.pad(M2, -1), ValueError, r"must not be negative", id="pad-negative"),
    pytest.param(lambda: F.pad(M2, 1.5), ValueError, r"must hold ints", id="pad-float"),
    pytest.param(
        lambda: F.squeeze(M2, 1),
        ValueError,
        r"axis 1 of x \(shape \(2, 3\)\) has size 3, not 1; only axes of size 1 can be removed",
        id="squeeze-size",
    ),
    pytest.param(
        lambda: F.var(M2, axis=1, ddof=3),
        ValueError,
        r"ddof=3 leaves n - ddof = 0 degrees of freedom for the 3 value\(s\).*smaller ddof",
        id="var-ddof",
    ),
    pytest.param(
        lambda: F.std(M2, ddof=6), ValueError, r"ddof=6 leaves n - ddof = 0", id="std-ddof"
    ),
    pytest.param(
        lambda: F.repeat(M2, [1, 2], axis=1),
        ValueError,
        r"2 repeat counts for axis 1 of length 3; give one count per entry",
        id="repeat-counts",
    ),
    pytest.param(
        lambda: F.repeat(M2, -1), ValueError, r"repeats must be a non-negative int", id="repeat-neg"
    ),
    pytest.param(
        lambda: F.tile(M2, (2, -1)), ValueError, r"reps must be a non-negative", id="tile"
    ),
    pytest.param(
        lambda: F.swapaxes(M2, 0, 2),
        ValueError,
        r"axis 2 is out of range for a tensor with 2 axes \(valid: from -2 to 1\)",
        id="axis-range",
    ),
    pytest.param(
        lambda: F.cumsum(mb.tensor(1.0), 0),
        ValueError,
        r"out of range for a tensor with 0 axes \(valid: none: a 0-d tensor has no axes\)",
        id="axis-0d",
    ),
    pytest.param(lambda: F.flip(M2, 1.0), TypeError, r"axis must be an int", id="axis-float"),
    pytest.param(
        lambda: F.expand_dims(M2, (0, -4)),  # both the first of 4 axes
        ValueError,
        r"names the same axis twice",
        id="expand_dims-twice",
    ),
    pytest.param(
        lambda: F.moveaxis(M2, (0, 1), 0),
        ValueError,
        r"2 source axes but 1 destinations",
        id="moveaxis",
    ),
    pytest.param(
        lambda: F.flatten(mb.tensor(X), 2, 1),
        ValueError,
        r"start_dim 2 comes after end_dim 1",
        id="flatten",
    ),
    pytest.param(
        lambda: F.roll(M2, (1, 2, 3), (0, 1)),
        ValueError,
        r"do not pair up; give one shift per axis",
        id="roll-pairs",
    ),
    pytest.param(lambda: F.roll(M2, 1.5, 0), TypeError, r"shift must be an int", id="roll-float"),
    pytest.param(
        lambda: F.diagonal(mb.tensor(real(3))),
        ValueError,
        r"a diagonal needs at least 2 axes",
        id="diagonal-1d",
    ),
    pytest.param(
        lambda: F.diagonal(M2, 0, 1, -1), ValueError, r"both axis 1", id="diagonal-same-axes"
    ),
    pytest.param(lambda: F.tril(mb.tensor(1.0)), ValueError, r"x is 0-d", id="tril-0d"),
    pytest.param(
        lambda: F.dot(M2, mb.tensor(real((2, 3)))),
        mb.ShapeError,
        r"dot: shapes \(2, 3\) and \(2, 3\) do not fit: the last axis of a \(3\) must equal the"
        r" second-to-last axis of b \(2\)",
        id="dot-shapes",
    ),
    pytest.param(
        lambda: F.einsum("ij,jk->ik", M2),
        ValueError,
        r"name 2 operand\(s\), but 1 were given",
        id="einsum-count",
    ),
    pytest.param(
        lambda: F.einsum("ijk->i", M2),
        ValueError,
        r"operand 0 has 2 axes but its term 'ijk' names 3; give one letter per axis",
        id="einsum-letters",
    ),
    pytest.param(
        lambda: F.einsum("i1->i", M2), ValueError, r"only letters", id="einsum-characters"
    ),
    pytest.param(
        lambda: F.einsum("...j->j", mb.tensor(X)),
        ValueError,
        r"use '\.\.\.' but the output does not",
        id="einsum-ellipsis",
    ),
    pytest.param(
        lambda: F.einsum("ij->ii", M2),
        ValueError,
        r"must name each letter once, and only letters of the inputs",
        id="einsum-output",
    ),
    pytest.param(lambda: F.einsum("ij"), ValueError, r"no operands", id="einsum-none"),
    pytest.param(lambda: F.einsum(M2, [0, 1]), TypeError, r"subscripts string", id="einsum-form"),
]


@pytest.mark.parametrize("call, error, match", LEARNER_ERRORS)
def test_learner_ops_refuse_bad_input_and_say_how_to_fix_it(call, error, match):
    with pytest.raises(error, match=match):
        call()
