"""Tensor, tape and backward semantics (microbbb/engine: tensor.py, tape.py, sweep.py and
gradients.py).

Reference values are closed-form derivatives or torch 2.13 in float64; they agree with ours
to rounding, so rtol=1e-12 unless a comment says otherwise.
"""

import gc
import math
import tracemalloc
import weakref

import numpy as np
import pytest
import torch

import microbbb as mb
from microbbb import Primitive, ShapeError, Tensor

torch.set_default_dtype(torch.float64)
RTOL = 1e-12


def close(a, b, rtol=RTOL, atol=1e-14):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# --- construction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, dtype, expected",
    [
        ([1.0, 2.0], None, np.float64),
        ([1, 2], None, np.float64),
        ([True, False], None, np.float64),
        (np.ones(3, np.float32), None, np.float32),
        (np.ones(3, np.int32), None, np.float64),
        ([1.0, 2.0], "float32", np.float32),
        (np.ones(3, np.float32), np.float64, np.float64),
    ],
)
def test_tensor_dtype(data, dtype, expected):
    t = mb.tensor(data, dtype=dtype)
    assert isinstance(t, Tensor) and t.dtype == expected and isinstance(t.data, np.ndarray)


@pytest.mark.parametrize(
    "data, word",
    [
        (np.array([1 + 2j]), "complex128"),
        (np.array(["a", "b"]), "<U1"),
        (np.array([object()], dtype=object), "object"),
        (np.ones(2, np.float16), "float16"),
    ],
)
def test_tensor_refuses_unsupported_dtypes(data, word):
    with pytest.raises(TypeError, match=f"float32 or float64.*{word}|{word}.*float32"):
        mb.tensor(data)


def test_tensor_refuses_integer_dtype_argument():
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        mb.tensor([1.0], dtype=np.int64)


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = mb.tensor(a)
    a[0] = 99.0
    assert t.data[0] == 1.0


def test_attributes_and_repr():
    t = mb.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True, name="w")
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.dtype == np.float64
    assert t.T.shape == (3, 2) and np.array_equal(t.T.data, t.data.T)
    assert t.numpy() is t.data
    assert t.is_leaf and (t * 2).is_leaf is False
    assert mb.tensor(3.5).item() == 3.5
    text = repr(t)
    assert "name='w'" in text and "requires_grad=True" in text
    assert "op=mul" in repr(t * 2)


# --- operators with numbers and arrays on either side -------------------------------------


X0 = np.array([0.5, 1.5, 2.0])


@pytest.mark.parametrize(
    "fn, value, derivative",
    [
        (lambda x: x + 2, X0 + 2, np.ones(3)),
        (lambda x: 2 + x, X0 + 2, np.ones(3)),
        (lambda x: x - 2, X0 - 2, np.ones(3)),
        (lambda x: 2 - x, 2 - X0, -np.ones(3)),
        (lambda x: x * 3, X0 * 3, 3 * np.ones(3)),
        (lambda x: 3 * x, X0 * 3, 3 * np.ones(3)),
        (lambda x: x / 4, X0 / 4, np.full(3, 0.25)),
        (lambda x: 4 / x, 4 / X0, -4 / X0**2),
        (lambda x: x**3, X0**3, 3 * X0**2),
        (lambda x: 2**x, 2**X0, 2**X0 * math.log(2)),
        (lambda x: -x, -X0, -np.ones(3)),
        (lambda x: np.array([1.0, 2.0, 3.0]) * x, X0 * [1, 2, 3], np.array([1.0, 2, 3])),
        (lambda x: x * np.array([1.0, 2.0, 3.0]), X0 * [1, 2, 3], np.array([1.0, 2, 3])),
        (lambda x: np.array([1.0, 2.0, 3.0]) - x, [1, 2, 3] - X0, -np.ones(3)),
        (lambda x: x @ np.array([1.0, 2.0, 3.0]), X0 @ [1, 2, 3], np.array([1.0, 2, 3])),
        (lambda x: np.array([1.0, 2.0, 3.0]) @ x, X0 @ [1, 2, 3], np.array([1.0, 2, 3])),
    ],
)
def test_operators(fn, value, derivative):
    x = mb.tensor(X0, requires_grad=True)
    y = fn(x)
    assert isinstance(y, Tensor)
    close(y.data, value)
    y.sum().backward()
    close(x.grad, derivative)


def test_comparisons_return_plain_boolean_arrays():
    x = mb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert isinstance(mask, np.ndarray) and mask.dtype == bool
    assert mask.tolist() == [False, True, True]
    assert (x <= 2).tolist() == [True, True, False]


def test_tensors_are_hashable_by_identity():
    a, b = mb.tensor(1.0), mb.tensor(1.0)
    assert len({a: 1, b: 2}) == 2 and a in [a] and b not in [a]


# --- accumulation, retain_grad, non-scalar outputs, second backward -----------------------


def test_gradients_accumulate_until_reset():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * x).sum().backward()
    close(x.grad, 2 * (2 * x.data))
    x.grad = None
    (x * x).sum().backward()
    close(x.grad, 2 * x.data)


def test_backward_twice_on_the_same_graph_adds_twice():
    # our choice: the graph is not freed by backward (documented in Tensor.backward)
    x = mb.tensor([1.0, -2.0], requires_grad=True)
    loss = (mb.exp(x) * x).sum()
    loss.backward()
    first = x.grad.copy()
    loss.backward()
    close(x.grad, 2 * first)
    close(first, np.exp(x.data) * (1 + x.data))


def test_intermediate_gradients_are_kept_only_when_asked():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 3
    kept = (x * 5).retain_grad()
    (hidden * kept).sum().backward()
    assert hidden.grad is None
    close(kept.grad, hidden.data)
    close(x.grad, 2 * 15 * x.data)


def test_leaf_grad_does_not_share_memory_with_other_gradients():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    y = mb.tensor([3.0, 4.0], requires_grad=True)
    (x + y).sum().backward()  # add passes the same adjoint array to both inputs
    x.grad += 10
    close(y.grad, [1.0, 1.0])
    v = np.array([1.0, 2.0])
    z = mb.tensor([0.0, 0.0], requires_grad=True)
    (z + 0.0).backward(v)  # the user's adjoint passes straight through to z
    v[0] = 99.0
    close(z.grad, [1.0, 2.0])


def test_non_scalar_backward_needs_an_explicit_gradient():
    x = mb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    with pytest.raises(RuntimeError, match=r"shape \(3,\) needs grad="):
        y.backward()
    v = np.array([1.0, -1.0, 0.5])
    y.backward(v)
    close(x.grad, 2 * x.data * v)
    with pytest.raises(ShapeError, match=r"grad has shape \(2,\).*\(3,\)"):
        y.backward(np.ones(2))


def test_backward_on_a_tensor_without_grad_says_so():
    x = mb.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward()


def test_backward_visits_records_in_reverse_order_of_recording():
    visited = []

    def spy(label):
        return Primitive(
            f"spy_{label}",
            lambda x: x.copy(),
            [lambda xp, g, out, x: visited.append(label) or g],
            rules=["g"],
        )

    x = mb.tensor(1.0, requires_grad=True)
    a = spy("a")(x)
    b = spy("b")(x)  # recorded after a, but independent of it
    c = spy("c")(a * b)
    c.backward()
    assert visited == ["c", "b", "a"]
    assert [r.op.name for r in mb.tape(c)] == ["spy_a", "spy_b", "mul", "spy_c"]
    indices = [r.index for r in mb.tape(c)]
    assert indices == sorted(indices)


def test_tape_of_the_classic_trace_example():
    # f(x1, x2) = ln(x1) + x1 x2 - sin(x2), the evaluation-trace example of the AD literature
    x1 = mb.tensor(2.0, requires_grad=True)
    x2 = mb.tensor(5.0, requires_grad=True)
    f = mb.log(x1) + x1 * x2 - mb.sin(x2)
    assert [r.op.name for r in mb.tape(f)] == ["log", "mul", "add", "sin", "sub"]
    f.backward()
    close(f.item(), math.log(2) + 10 - math.sin(5))
    close(x1.grad, 1 / 2 + 5)
    close(x2.grad, 2 - math.cos(5))


# --- no_grad, detach, scope -------------------------------------------------------------


def test_no_grad_records_nothing():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    with mb.no_grad():
        assert not mb.is_grad_enabled()
        y = x * 2
        with mb.enable_grad():
            z = x * 2
    assert mb.is_grad_enabled()
    assert not y.requires_grad and y.record is None
    assert z.requires_grad and z.record is not None


def test_detach_cuts_the_flow():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    (x.detach() * x).sum().backward()
    close(x.grad, x.data)  # only the second factor passes a gradient
    assert not x.detach().requires_grad and x.detach().data is x.data


def test_scope_names_records():
    x = mb.tensor(1.0, requires_grad=True)
    with mb.scope("layer1"):
        a = x * 2
        with mb.scope("prior"):
            b = a + 1
    c = b * 3
    assert [r.scope for r in mb.tape(c)] == ["layer1", "layer1/prior", None]


# --- indexing ----------------------------------------------------------------------------


def test_indexing_scatter_adds_repeated_indices():
    x = mb.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    (x[[0, 0, 3]] * mb.tensor([1.0, 2.0, 3.0])).sum().backward()
    close(x.grad, [3.0, 0.0, 0.0, 3.0])
    m = mb.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    m[1].sum().backward()
    m[:, 2].sum().backward()
    m[np.array([2, 2]), np.array([0, 0])].sum().backward()
    m[np.array([True, False, True])].sum().backward()  # a boolean mask
    expected = np.zeros((3, 4))
    expected[1] += 1
    expected[:, 2] += 1
    expected[2, 0] += 2
    expected[[0, 2]] += 1
    close(m.grad, expected)
    with pytest.raises(TypeError, match="not a Tensor"):
        m[mb.tensor([1.0, 0.0, 1.0])]  # a bool mask or positions 1, 0, 1? refuse to guess


# --- error texts -------------------------------------------------------------------------


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ShapeError, match=r"add: inputs of shapes \(3,\) and \(4,\) do not fit"):
        mb.tensor(np.ones(3)) + mb.tensor(np.ones(4))
    with pytest.raises(ShapeError, match=r"mul: .*\(2, 3\) and \(2,\).*from the right"):
        mb.tensor(np.ones((2, 3))) * np.ones(2)


def test_matmul_error_names_both_shapes():
    with pytest.raises(ShapeError, match=r"matmul: shapes \(100, 3\) @ \(4, 32\) do not fit"):
        mb.tensor(np.ones((100, 3))) @ mb.tensor(np.ones((4, 32)))


def test_reshape_error_names_the_op():
    with pytest.raises(ShapeError, match=r"reshape: .*\(2, 3\).*shape=\(4,\)"):
        mb.tensor(np.ones((2, 3))).reshape(4)


# --- deep graphs and memory ---------------------------------------------------------------


def test_a_chain_of_100000_ops_backpropagates_without_recursion():
    x = mb.tensor(0.3, requires_grad=True)
    y = x
    n = 100_000
    for _ in range(n // 2):
        y = mb.sin(y) + 0.0  # two records per iteration
    y.backward()
    # reference: the same chain rule product in plain floats
    value, derivative = 0.3, 1.0
    for _ in range(n // 2):
        derivative *= math.cos(value)
        value = math.sin(value)
    close(y.item(), value)
    close(x.grad, derivative, rtol=1e-9)
    del y  # freeing the 100 000-deep graph must not overflow the C stack either
    gc.collect()


def _mlp_step(params, x, y, lr=1e-3):
    w1, b1, w2, b2 = params
    hidden = mb.relu(x @ w1 + b1)
    pred = hidden @ w2 + b2
    loss = ((pred - y) ** 2).mean()
    loss.backward()
    for p in params:
        p.data -= lr * p.grad
        p.grad = None
    return loss


def test_memory_stays_flat_over_10000_training_steps():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    params = [
        mb.tensor(rng.standard_normal((3, 8)) * 0.5, requires_grad=True),
        mb.tensor(np.zeros(8), requires_grad=True),
        mb.tensor(rng.standard_normal((8, 1)) * 0.5, requires_grad=True),
        mb.tensor(np.zeros(1), requires_grad=True),
    ]
    dead = []
    for _ in range(500):  # warm up caches before measuring
        _mlp_step(params, x, y)
    tracemalloc.start()
    try:
        for step in range(10_000):
            loss = _mlp_step(params, x, y)
            if step == 1000:
                early = tracemalloc.get_traced_memory()[0]
            if step % 1000 == 0:
                dead.append(weakref.ref(loss.record.inputs[0]))  # an intermediate
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert all(ref() is None for ref in dead[:-1]), "old graphs are still alive"
    assert late - early < 50_000, f"memory grew by {late - early} bytes over 9000 steps"


# --- float32 end to end -------------------------------------------------------------------


def test_float32_stays_float32_through_forward_and_backward():
    rng = np.random.default_rng(1)
    w = mb.tensor(rng.standard_normal((3, 4)), dtype=np.float32, requires_grad=True)
    rho = mb.tensor(rng.standard_normal(4), dtype=np.float32, requires_grad=True)
    x = rng.standard_normal((5, 3))  # float64 data is converted to the tensor's dtype
    h = mb.tanh(x @ w) * mb.softplus(rho) + 0.5
    loss = (mb.normal_log_prob(h, 0.0, 1.0) + mb.log_softmax(h, axis=1)).sum() / 3
    loss.backward()
    dtypes = {r.out.dtype for r in mb.tape(loss)}
    assert dtypes == {np.dtype(np.float32)}, dtypes
    assert w.grad.dtype == np.float32 and rho.grad.dtype == np.float32


# --- gradients of gradients --------------------------------------------------------------


def test_grad_returns_tuple_and_leaves_dot_grad_alone():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    unused = mb.tensor([3.0], requires_grad=True)
    hidden = x * x
    y = (hidden * 3).sum()
    gx, gu, gh = mb.grad(y, [x, unused, hidden])
    close(gx.data, 6 * x.data)
    close(gu.data, [0.0])
    close(gh.data, [3.0, 3.0])
    assert x.grad is None and unused.grad is None


def test_backward_with_create_graph_gives_differentiable_gradients():
    x = mb.tensor([0.5, -1.0, 2.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    first = x.grad
    assert isinstance(first, Tensor) and first.requires_grad
    close(first.data, 3 * x.data**2)
    x.grad = None
    first.sum().backward()
    close(x.grad, 6 * x.data)


def _mlp_loss(w1, b1, w2, b2, x, y, lib):
    if lib is torch:
        hidden = torch.tanh(x @ w1 + b1)
        logits = hidden @ w2 + b2
        return (torch.logsumexp(logits, 1) - logits[torch.arange(len(y)), y]).mean()
    hidden = mb.tanh(x @ w1 + b1)
    logits = hidden @ w2 + b2
    return mb.functional.categorical_nll(logits, y, reduction="mean")


def test_hessian_vector_product_of_an_mlp_matches_torch():
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(s) for s in [(4, 6), (6,), (6, 3), (3,)]]
    vs = [rng.standard_normal(a.shape) for a in arrays]
    x, y = rng.standard_normal((10, 4)), rng.integers(0, 3, 10)

    ours = [mb.tensor(a, requires_grad=True) for a in arrays]
    grads = mb.grad(_mlp_loss(*ours, x, y, mb), ours, create_graph=True)
    dot = mb.sum(mb.stack([(g * v).sum() for g, v in zip(grads, vs, strict=True)]))
    hvp = mb.grad(dot, ours)

    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    loss = _mlp_loss(*theirs, torch.tensor(x), torch.tensor(y), torch)
    tgrads = torch.autograd.grad(loss, theirs, create_graph=True)
    tdot = sum((g * torch.tensor(v)).sum() for g, v in zip(tgrads, vs, strict=True))
    thvp = torch.autograd.grad(tdot, theirs)
    for ours_h, their_h in zip(hvp, thvp, strict=True):
        close(ours_h.data, their_h.numpy(), rtol=1e-9, atol=1e-12)  # sums in another order
    assert np.abs(hvp[0].data).max() > 1e-3  # a zero HVP would match a zero HVP
