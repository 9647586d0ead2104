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
