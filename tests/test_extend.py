"""microbbb.engine.extend: a primitive defined outside microbbb works with every part of it
(backward, create_graph, gradcheck, drawings, trace tables, node checks, TapeProgram),
using only the names extend exports."""

import os
import shutil

import numpy as np
import pytest

import microbbb as mb
from microbbb.engine import extend
from microbbb.viz import check_graph, draw, save, trace_table

# a user's op: x * softplus(x), with an xp-generic VJP (so second derivatives work)
softplus_times_x = extend.Primitive(
    "softplus_times_x",
    lambda x: x * np.logaddexp(0.0, x),
    [lambda xp, g, out, x: g * (xp.softplus(x) + x * xp.sigmoid(x))],
    rules=["g * (softplus(x) + x * sigmoid(x))"],
)
# a user's binary op that broadcasts: its VJPs return the broadcast shape
scaled_difference = extend.Primitive(
    "scaled_difference",
    lambda x, y: 2.0 * (x - y),
    [lambda xp, g, out, x, y: 2.0 * g, lambda xp, g, out, x, y: -2.0 * g],
    rules=["2 * g", "-2 * g"],
)


def reference(x):  # the same function from built-in ops
    return x * mb.softplus(x)


def test_backward_and_create_graph_match_the_same_function_from_builtin_ops():
    rng = np.random.default_rng(0)
    x = mb.tensor(rng.standard_normal(6), requires_grad=True)
    (g,) = mb.grad(softplus_times_x(x).sum(), x, create_graph=True)
    (h,) = mb.grad((g * g).sum(), x)
    (g_ref,) = mb.grad(reference(x).sum(), x, create_graph=True)
    (h_ref,) = mb.grad((g_ref * g_ref).sum(), x)
    np.testing.assert_allclose(g.data, g_ref.data, rtol=1e-13)
    np.testing.assert_allclose(h.data, h_ref.data, rtol=1e-13)
    softplus_times_x(x).sum().backward()
    np.testing.assert_allclose(x.grad, g_ref.data, rtol=1e-13)


def test_gradcheck_and_gradgradcheck_pass_and_catch_a_wrong_vjp():
    x = mb.tensor(np.linspace(-2, 2, 5), requires_grad=True)
    y = mb.tensor(np.linspace(0, 1, 3).reshape(3, 1), requires_grad=True)
    assert mb.gradcheck(softplus_times_x, x) and mb.gradgradcheck(softplus_times_x, x)
    assert mb.gradcheck(scaled_difference, x, y)  # broadcast (5,) against (3, 1)
    wrong = extend.Primitive(
        "wrong", softplus_times_x.forward, [lambda xp, g, out, x: g * xp.sigmoid(x)], ["?"]
    )
    with pytest.raises(mb.GradcheckError):
        mb.gradcheck(wrong, x)


def test_pull_back_sums_a_broadcast_share_and_the_sweep_marks_it():
    x = mb.tensor(np.ones(4), requires_grad=True)
    y = mb.tensor(np.ones((3, 1)), requires_grad=True)
    out = scaled_difference(x, y)
    share, summed = extend.pull_back(out.record, 1, np.ones((3, 4)), out.data, [x.data, y.data])
    assert summed and share.shape == (3, 1) and np.all(share == -8.0)
    edges = mb.engine.adjoint_flow(out.sum())
    assert [e.summed for e in edges if e.record.op is scaled_difference] == [True, True]


def test_drawings_tables_and_node_checks_show_the_op():
    x = mb.tensor([0.5, -1.0], requires_grad=True, name="x")
    loss = (softplus_times_x(x) * 3.0).sum()
    graph = draw(loss)
    assert "softplus_times_x" in graph.source
    assert "x̄ += g * (softplus(x) + x * sigmoid(x))" in graph.source
    assert "softplus_times_x(l1)" in str(trace_table(loss))
    assert check_graph(loss).ok


# Without dot this is skipped on a laptop, never in CI (CI=true installs dot).
@pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
    reason="Graphviz's dot is not installed (CI installs it)",
)
def test_the_drawing_renders_through_dot(tmp_path):
    x = mb.tensor([0.5, -1.0], requires_grad=True, name="x")
    path = save(draw(softplus_times_x(x).sum()), tmp_path / "custom.svg")
    assert "softplus_times_x" in open(path, encoding="utf-8").read()


def test_tape_program_runs_the_op_again_bit_for_bit():
    rng = np.random.default_rng(1)
    x = mb.tensor(rng.standard_normal(4), requires_grad=True)
    y = mb.tensor(rng.standard_normal((2, 1)), requires_grad=True)
    loss = (scaled_difference(softplus_times_x(x), y) ** 2).sum()
    program = mb.TapeProgram(loss)
    x.data = x.data + 0.25
    program.run()
    got = loss.item(), x.grad.copy(), y.grad.copy()
    x.grad = y.grad = None
    eager = (scaled_difference(softplus_times_x(x), y) ** 2).sum()
    eager.backward()
    assert got[0] == eager.item()
    assert np.array_equal(got[1], x.grad) and np.array_equal(got[2], y.grad)


def test_wrap_and_from_numpy_share_memory_without_a_copy():
    array = np.zeros(3)
    constant = extend.from_numpy(array, name="eps")
    array[1] = 7.0
    assert constant.data is array and constant.data[1] == 7.0
    assert not constant.requires_grad and constant.name == "eps"
    with pytest.raises(TypeError, match="float32 or float64"):
        extend.from_numpy(np.arange(3))
    record = softplus_times_x(mb.tensor([1.0], requires_grad=True)).record
    view = extend.Tensor.wrap(record.out, record)
    assert view.requires_grad and view.record is record and view.data is record.out
