"""TapeProgram (a recorded tape run again) and LossProgram (the BBB loss as one).

A program calls the same forward functions and VJPs as eager mode, in the same order, on
the same values, so everything is compared for exact equality (np.array_equal), not within
a tolerance: any difference means the program computed something else.
"""

from __future__ import annotations

import numpy as np
import pytest

import microbbb as mb
from microbbb import functional as F
from microbbb.bbb import (
    BayesianMLP,
    Categorical,
    Gaussian,
    GaussianPrior,
    LossProgram,
    fit,
)
from microbbb.optim import SGD


def mlp_loss(W, b, V, x, labels):
    """A graph with broadcasting (the bias), reuse (W twice), a constant (x), reductions
    over an axis and advanced indexing (the NLL)."""
    h = F.tanh(x @ W + b)
    logits = h @ V
    nll = -F.log_softmax(logits, axis=1)[np.arange(len(labels)), labels].sum()
    return nll + 0.1 * (W * W).sum() + (h.mean(axis=0) ** 2).sum()


def make_leaves(rng, dtype=np.float64):
    W = mb.tensor(rng.standard_normal((4, 5)), requires_grad=True, name="W", dtype=dtype)
    b = mb.tensor(rng.standard_normal(5), requires_grad=True, name="b", dtype=dtype)
    V = mb.tensor(rng.standard_normal((5, 3)), requires_grad=True, name="V", dtype=dtype)
    x = mb.tensor(rng.standard_normal((6, 4)), name="x", dtype=dtype)
    return W, b, V, x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_program_gives_eager_values_and_gradients_on_new_leaf_values(dtype):
    rng = np.random.default_rng(0)
    W, b, V, x = make_leaves(rng, dtype)
    labels = np.array([0, 2, 1, 1, 0, 2])
    program = mb.TapeProgram(mlp_loss(W, b, V, x, labels))
    loss = program.output
    for _ in range(3):  # new parameters (replaced and changed in place) and new data
        W.data = W.data + rng.standard_normal(W.shape).astype(dtype)
        with mb.no_grad():
            b -= 0.5  # in place, through the engine
        x.data = rng.standard_normal(x.shape).astype(dtype)
        for p in (W, b, V):
            p.grad = None
        program.run()
        got = [loss.data.copy()] + [p.grad.copy() for p in (W, b, V)]
        for p in (W, b, V):
            p.grad = None
        eager = mlp_loss(W, b, V, x, labels)
        eager.backward()
        expected = [eager.data] + [p.grad for p in (W, b, V)]
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == dtype
            assert np.array_equal(g, e)


def test_program_source_is_the_trace_as_code():
    """One line per forward op, one call per VJP (an edge of the reverse sweep), and x1,
    used twice, receives two contributions."""
    x1 = mb.tensor(2.0, requires_grad=True, name="x1")
    x2 = mb.tensor(5.0, requires_grad=True, name="x2")
    f = mb.log(x1) + x1 * x2 - mb.sin(x2)
    program = mb.TapeProgram(f)
    lines = program.source.splitlines()
    start, end = lines.index("    # forward"), lines.index("    # backward, newest record first")
    forward = [line.strip() for line in lines[start + 1 : end] if "(" in line]  # not write-backs
    assert forward == [
        "v0 = np.asarray(log_0(l0))",
        "v1 = np.asarray(mul_1(l0, l1))",
        "v2 = np.asarray(add_2(v0, v1))",
        "v3 = np.asarray(sin_3(l1))",
        "v4 = np.asarray(sub_4(v2, v3))",
    ]
    shares = [line for line in lines if "_bar = " in line and "np.ones_like" not in line]
    assert len(shares) == len(mb.engine.adjoint_flow(f))  # one line per edge of the sweep
    assert sum(line.strip().startswith("l0_bar = l0_bar + ") for line in lines) == 1
    assert "l0 = L0.data  # x1" in program.source
    # each VJP line shows its formula: sub's VJP for its second input is -g
    assert [line for line in shares if line.strip().startswith("v3_bar")] == [
        "    v3_bar = sub_4_vjp1(v4_bar, v4, v2, v3)  # -g"
    ]
    rules = [rule for r in program.records[::-1] for rule in r.op.rules]
    assert [line.split("  # ")[1] for line in shares] == rules


def test_program_pulls_broadcast_and_reduced_inputs_back_like_eager_mode():
    """Where pull_back would sum a broadcast share, the program sums over the axes found
    when it was written (here the rows of x @ w, for the bias b), as the sweep does."""
    w = mb.tensor(np.ones((3, 2)), requires_grad=True)
    b = mb.tensor(np.zeros(2), requires_grad=True)
    x = mb.tensor(np.arange(12.0).reshape(4, 3))
    program = mb.TapeProgram((x @ w + b).sum())
    assert "l2_bar = unbroadcast_1_1(add_1_vjp1(v1_bar, v1, v0, l2))  # g" in program.source
    program.run()
    got = w.grad.copy(), b.grad.copy()
    w.grad = b.grad = None
    (x @ w + b).sum().backward()
    assert np.array_equal(got[0], w.grad) and np.array_equal(got[1], b.grad)


@pytest.mark.parametrize("shape", [(1, 3, 1), (3, 1), (4,), (), (2, 1, 4)])
def test_program_sums_every_kind_of_broadcast_like_eager_mode(shape):
    """Leading axes, axes of length 1 and a 0-d input, summed back bit for bit as eager."""
    rng = np.random.default_rng(4)
    a = mb.tensor(rng.standard_normal(shape), requires_grad=True)
    x = mb.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    loss = (mb.exp(a * x) * x).sum()
    program = mb.TapeProgram(loss)
    program.run()
    got = a.grad.copy(), x.grad.copy()
    a.grad = x.grad = None
    loss.backward()
    assert got[0].shape == shape and np.array_equal(got[0], a.grad)
    assert np.array_equal(got[1], x.grad)


def test_a_leaf_given_another_shape_after_recording_is_refused():
    """The program's shapes and summing decisions are the recorded ones: a leaf whose
    array was replaced by one of another shape (t.data = ...) would get a gradient of the
    wrong shape, so recording such a tape is refused."""
    w = mb.tensor(np.ones(3), requires_grad=True, name="w")
    b = mb.tensor(np.ones(3), requires_grad=True)
    loss = (w * b).sum()
    w.data = np.ones((2, 3))
    with pytest.raises(
        mb.ShapeError, match=r"leaf w has shape \(2, 3\) and dtype float64 now.*\(3,\)"
    ):
        mb.TapeProgram(loss)
    w.data = np.ones(3, dtype=np.float32)
    with pytest.raises(mb.ShapeError, match=r"dtype float32 now.*\(3,\) and float64"):
        mb.TapeProgram(loss)
    w.data = np.full(3, 2.0)  # same shape, new values: fine, the program uses them
    mb.TapeProgram(loss).run()
    assert np.array_equal(b.grad, [2.0, 2.0, 2.0])


def test_program_casts_back_like_eager_mode_when_dtypes_mix():
    rng = np.random.default_rng(3)
    a = mb.tensor(rng.standard_normal(4), requires_grad=True, dtype=np.float32)
    b = mb.tensor(rng.standard_normal(4), requires_grad=True)  # float64
    program = mb.TapeProgram((a * b).sum())
    assert "l0_bar = pull_back(R0, 0, v0_bar, v0, (l0, l1))[0]" in program.source  # a cast
    program.run()
    got = a.grad.copy(), b.grad.copy()
    a.grad = b.grad = None
    (a * b).sum().backward()
    assert got[0].dtype == np.float32 and np.array_equal(got[0], a.grad)
    assert np.array_equal(got[1], b.grad)


def test_program_updates_every_tensor_of_the_graph():
    rng = np.random.default_rng(1)
    a = mb.tensor(rng.standard_normal(3), requires_grad=True)
    h = a.exp()
    loss = (h * 2.0).sum()
    program = mb.TapeProgram(loss)
    a.data = a.data + 1.0
    program.run()
    assert np.array_equal(h.data, np.exp(a.data))
    assert h.record.out is h.data  # so an eager backward afterwards uses the new values
    assert loss.item() == pytest.approx(2 * np.exp(a.data).sum(), rel=1e-15)


def test_program_accumulates_gradients_like_backward():
    a = mb.tensor([1.0, 2.0], requires_grad=True)
    program = mb.TapeProgram((a * a).sum())
    program.run()
    program.run()
    assert np.array_equal(a.grad, 2 * (2 * a.data))


def test_program_refuses_a_leaf_whose_shape_changed():
    x = mb.tensor(np.ones((2, 3)), name="x")
    w = mb.tensor(np.ones(3), requires_grad=True)
    program = mb.TapeProgram((x * w).sum())
    x.data = np.ones((4, 3))
    with pytest.raises(mb.ShapeError, match=r"leaf x now has shape \(4, 3\).*\(2, 3\)"):
        program.run()


@pytest.mark.parametrize(
    "make",
    [
        lambda: mb.tensor([1.0, 2.0], requires_grad=True) * 2.0,  # not a scalar
        lambda: mb.tensor([1.0, 2.0]).sum(),  # nothing requires grad
        lambda: mb.tensor(1.0, requires_grad=True),  # a leaf: nothing recorded
    ],
    ids=["vector", "no-grad", "leaf"],
)
def test_program_refuses_what_is_not_a_recorded_scalar(make):
    with pytest.raises(ValueError, match="TapeProgram needs a recorded scalar .* got a tensor"):
        mb.TapeProgram(make())


# --- LossProgram ----------------------------------------------------------------------------


def regression_data(rng, n=40):
    x = rng.uniform(-1, 1, (n, 2))
    return x, np.sin(3 * x[:, :1]) + 0.1 * rng.standard_normal((n, 1))


CASES = {
    "gaussian-mixture": dict(likelihood=lambda: Gaussian(sigma=0.3), kw={}),
    "gaussian-2-samples": dict(likelihood=lambda: Gaussian(sigma=0.3), kw={"n_samples": 2}),
    "learned-noise": dict(likelihood=lambda: Gaussian(learn_sigma=True), kw={}),
    "closed-form-kl": dict(
        likelihood=lambda: Gaussian(sigma=0.3),
        kw={"kl": "closed_form", "complexity_weight": 0.25},
        prior=GaussianPrior(1.0),
    ),
    "categorical": dict(likelihood=Categorical, kw={}),
    "float32": dict(likelihood=lambda: Gaussian(sigma=0.3), kw={}, dtype=np.float32),
}


def model_and_data(case: dict, seed: int):
    rng = np.random.default_rng(5)
    x, y = regression_data(rng)
    lik = case["likelihood"]()
    out = 1
    if isinstance(lik, Categorical):
        y, out = (y[:, 0] > 0).astype(int) + (y[:, 0] > 0.5), 3
    dtype = case.get("dtype", np.float64)
    model = BayesianMLP(
        [2, 8, out], likelihood=lik, prior=case.get("prior"), seed=seed, dtype=dtype
    )
    return model, x.astype(dtype), y


@pytest.mark.parametrize("name", list(CASES))
def test_loss_program_steps_equal_eager_steps_from_the_same_seed(name):
    case = CASES[name]
    runs = []
    for use_program in (False, True):
        model, x, y = model_and_data(case, seed=3)
        opt = SGD(model.parameters(), lr=1e-3)
        program = model.loss_program(x, y, **case["kw"]) if use_program else None
        trace = []
        for _ in range(4):
            opt.zero_grad()
            if program is None:
                loss = model.loss(x, y, **case["kw"])
                loss.backward()
            else:
                loss = program()
            parts = (loss.complexity, loss.log_likelihood, loss.output)
            trace.append([loss.data.copy()] + [t.data.copy() for t in parts])
            trace.append([p.grad.copy() for p in model.parameters()])
            opt.step()
        runs.append((trace, [p.data.copy() for p in model.parameters()]))
    (trace_eager, params_eager), (trace_program, params_program) = runs
    for got, expected in zip(trace_program, trace_eager, strict=True):
        assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
    assert all(np.array_equal(g, e) for g, e in zip(params_program, params_eager, strict=True))


def test_loss_program_draws_fresh_eps_into_the_graph():
    model, x, y = model_and_data(CASES["gaussian-mixture"], seed=0)
    program = model.loss_program(x, y)
    layer = model.layers[0]
    seen = []
    for _ in range(3):
        model.zero_grad()
        loss = program()
        seen.append(layer.weight_eps.copy())
        sigma = np.logaddexp(0.0, layer.weight_rho.data)
        assert np.array_equal(layer.weight.data, layer.weight_mu.data + sigma * layer.weight_eps)
        assert loss.eps[0][0][0] is layer.weight_eps
    assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])


def test_loss_program_with_given_eps_equals_the_eager_loss():
    model, x, y = model_and_data(CASES["gaussian-mixture"], seed=0)
    rng = np.random.default_rng(9)
    eps = [(rng.standard_normal(la.weight_mu.shape), rng.standard_normal(la.bias_mu.shape))
           for la in model.layers]  # fmt: skip
    program = LossProgram(model, x, y)
    model.zero_grad()
    got = program(eps=[eps]).item(), [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    eager = model.loss(x, y, eps=[eps])
    eager.backward()
    assert got[0] == eager.item()
    assert all(np.array_equal(g, p.grad) for g, p in zip(got[1], model.parameters(), strict=True))
    with pytest.raises(ValueError, match=r"eps\[0\]\[1\]: shape \(3,\), the layer needs \(1,\)"):
        program(eps=[[eps[0], (eps[1][0], np.zeros(3))]])


def test_fit_on_one_batch_equals_eager_training():
    """fit uses a LossProgram when the data is one batch: the parameters after training are
    those of the plain eager loop with the same optimiser."""
    model, x, y = model_and_data(CASES["gaussian-mixture"], seed=4)
    history = fit(model, x, y, epochs=5, lr=1e-2, progress=False)
    twin, _, _ = model_and_data(CASES["gaussian-mixture"], seed=4)
    opt = mb.optim.Adam(twin.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = twin.loss(x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert history.loss == losses
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)


def test_loss_program_refuses_a_network_changed_under_it():
    model, x, y = model_and_data(CASES["gaussian-mixture"], seed=0)
    program = model.loss_program(x, y)
    program()
    model.layers[0].weight_mask = np.ones((2, 8))  # as pruning does; the recording has none
    with pytest.raises(ValueError, match="parameter tensor or a pruning mask .* replaced"):
        program()
    model.zero_grad()
    model.loss_program(x, y)()  # recorded again, it runs
    model.layers[0].bias_mu = mb.tensor(np.zeros(8), requires_grad=True)
    with pytest.raises(ValueError, match="Record a new one"):
        program()


def test_loss_program_keeps_its_own_copy_of_the_data():
    model, x, y = model_and_data(CASES["gaussian-mixture"], seed=0)
    program = model.loss_program(x, y)
    first = program()
    output, eps = first.output.data.copy(), [[(w.copy(), b.copy()) for w, b in first.eps[0]]]
    x[:] = 100.0  # the caller reuses its arrays
    y[:] = -100.0
    model.zero_grad()
    again = program(eps=eps)  # the same noise and parameters: the same output
    np.testing.assert_array_equal(again.output.data, output)


@pytest.mark.parametrize("name", ["gaussian-mixture", "categorical", "float32"])
def test_fed_program_equals_the_eager_loss_on_the_new_batch(name):
    """feed() puts a new batch (and complexity weight) where the recording holds the data:
    x in leaves, y in "y" leaves or in Categorical's index parameter."""
    model, x, y = model_and_data(CASES[name], seed=2)
    program = model.loss_program(x[:20], y[:20], complexity_weight=0.5)
    program()
    eps = [[(w.copy(), b.copy()) for w, b in program.loss.eps[0]]]
    program.feed(x[20:], y[20:], complexity_weight=0.25)
    model.zero_grad()
    got = program(eps=eps)
    got = [got.data.copy(), got.log_likelihood.data.copy()] + [
        p.grad.copy() for p in model.parameters()
    ]
    model.zero_grad()
    eager = model.loss(x[20:], y[20:], complexity_weight=0.25, eps=eps)
    eager.backward()
    expected = [eager.data, eager.log_likelihood.data] + [p.grad for p in model.parameters()]
    assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
    assert program.loss.complexity_weight == 0.25


def test_feed_refuses_what_the_recording_cannot_take():
    model, x, y = model_and_data(CASES["categorical"], seed=2)
    program = model.loss_program(x[:20], y[:20], complexity_weight=0.5)
    with pytest.raises(
        mb.ShapeError, match="a batch of 19 rows, but the loss was recorded with 20"
    ):
        program.feed(x[:19], y[:19])
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        program.feed(x[:20], np.full(20, 7))
    unweighted = model.loss_program(x[:20], y[:20])  # weight 1: no multiplication recorded
    with pytest.raises(ValueError, match="recorded with complexity_weight 1"):
        unweighted.feed(x[20:], y[20:], complexity_weight=0.5)


def test_fit_on_minibatches_equals_eager_training():
    """fit records one program per batch size (40 rows in batches of 16: sizes 16 and 8)
    and feeds it: the parameters are those of the plain eager loop that fit's docstring
    describes, with the same shuffling and the paper's minibatch weights."""
    model, x, y = model_and_data(CASES["categorical"], seed=4)
    history = fit(
        model, x, y, epochs=3, batch_size=16, lr=1e-2, n_samples=2, kl_scheme="blundell",
        seed=7, progress=False,
    )  # fmt: skip
    twin, _, _ = model_and_data(CASES["categorical"], seed=4)
    opt = mb.optim.Adam(twin.parameters(), lr=1e-2)
    shuffle = np.random.default_rng(7)
    weights = mb.bbb.minibatch_weights(3, "blundell")
    epoch_losses = []
    for _ in range(3):
        order, total = shuffle.permutation(len(x)), 0.0
        for step in range(3):
            rows = order[step * 16 : (step + 1) * 16]
            opt.zero_grad()
            loss = twin.loss(x[rows], y[rows], n_samples=2, complexity_weight=weights[step])
            loss.backward()
            opt.step()
            total += loss.item()
        epoch_losses.append(total)
    assert history.loss == epoch_losses
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert np.array_equal(p.data, q.data)
