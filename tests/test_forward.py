"""Forward mode (mb.jvp) and the tangent trace (microbbb.viz.tangent_trace).

Every primitive runs on the cases of tests/test_primitives.py (its SPECS table: the same
inputs, domains and op parameters as the torch sweep there), with random tangents u and
cotangents v, against:

- torch.func.jvp in float64 (an independent forward mode): RTOL = 1e-10, ATOL = 1e-12, as in
  test_primitives. mb.jvp differentiates the VJP graph once more, so its J u is a sum of the
  same products in another order: a few ulps (~1e-15 relative) off torch's, five orders of
  magnitude inside RTOL, while a wrong rule is off by O(1). ATOL covers results that are
  zero up to cancellation;
- central finite differences along u, (f(x + h u) - f(x - h u)) / 2h with h = 1e-6:
  truncation O(h^2 |f'''|) ~ 1e-12 and rounding ~ eps |f| / h ~ 1e-10, so RTOL_FD = ATOL_FD =
  1e-6 leaves a wide margin (the domains keep x +- h u away from kinks and jumps);
- the transpose identity <v, J u> = <J^T v, u>, with J^T v from backward (see the test);
- float32: the result stays float32 and matches float64 to RTOL32 = ATOL32 = 1e-5, as in
  test_primitives (~100 float32 ulps: one more differentiation adds a few roundings).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_primitives import ALL_CASES, SPECS, Case

import microbbb as mb
from microbbb.viz import tangent_trace, trace_table

RTOL, ATOL = 1e-10, 1e-12
RTOL_FD, ATOL_FD, H = 1e-6, 1e-6, 1e-6
RTOL32, ATOL32 = 1e-5, 1e-5


def close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


def setup(name: str, case: Case):
    """The spec's function with its parameters bound, its inputs, tangents u and a
    cotangent seed (drawn from their own generators, so the inputs are test_primitives')."""
    spec = SPECS[name]
    arrays = spec.inputs(np.random.default_rng(0), case)
    rng = np.random.default_rng(2)
    tangents = [rng.standard_normal(a.shape) for a in arrays]
    return (lambda *xs: spec.mb(*xs, **case.params)), arrays, tangents, rng


def torch_func_jvp(fn, primals, tangents):
    """torch.func.jvp, quiet about torch's own "torch.jit.script is deprecated" (torch 2.13
    scripts a helper inside it on first use): only that warning, only here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning
        )
        return torch.func.jvp(fn, primals, tangents)


def torch_jvp(name: str, case: Case, arrays, tangents):
    """torch.func.jvp of the spec's torch function, in float64."""
    fn = SPECS[name].torch
    primals = tuple(torch.tensor(a, dtype=torch.float64) for a in arrays)
    directions = tuple(torch.tensor(u, dtype=torch.float64) for u in tangents)
    out, dot = torch_func_jvp(lambda *ts: fn(*ts, **case.params), primals, directions)
    return out.numpy(), dot.numpy()


# --- every primitive -----------------------------------------------------------------------


@pytest.mark.parametrize("name, case", ALL_CASES)
def test_jvp_matches_torch_func_jvp(name, case):
    fn, arrays, tangents, _ = setup(name, case)
    out, dot = mb.jvp(fn, tuple(arrays), tuple(tangents))
    expected_out, expected_dot = torch_jvp(name, case, arrays, tangents)
    assert dot.shape == out.shape == expected_out.shape
    assert dot.dtype == np.float64
    close(out.data, expected_out)
    close(dot.data, expected_dot)


@pytest.mark.parametrize("name, case", ALL_CASES)
def test_jvp_matches_central_differences(name, case):
    fn, arrays, tangents, _ = setup(name, case)
    _, dot = mb.jvp(fn, tuple(arrays), tuple(tangents))
    plus = fn(*(mb.tensor(a + H * u) for a, u in zip(arrays, tangents, strict=True))).data
    minus = fn(*(mb.tensor(a - H * u) for a, u in zip(arrays, tangents, strict=True))).data
    close(dot.data, (plus - minus) / (2 * H), RTOL_FD, ATOL_FD)


def transpose_gap(left: np.ndarray, right: np.ndarray, v, u) -> tuple[float, float]:
    """|<v, Ju> - <J^T v, u>| and the rounding scale of the two sums: each side is the
    same bilinear form v^T J u summed in a different order, so they may differ by
    n eps times the sum of the absolute terms, never by more."""
    lhs = sum(float(np.sum(vi * li)) for vi, li in zip(v, left, strict=True))
    rhs = sum(float(np.sum(ri * ui)) for ri, ui in zip(right, u, strict=True))
    scale = sum(float(np.sum(np.abs(vi * li))) for vi, li in zip(v, left, strict=True))
    scale += sum(float(np.sum(np.abs(ri * ui))) for ri, ui in zip(right, u, strict=True))
    return abs(lhs - rhs), scale


# <v, J u> = <J^T v, u>, with J u from forward mode and J^T v from backward. mb.jvp is built
# from the VJPs, so a VJP that is wrong but linear in g (B^T g instead of J^T g) passes the
# first check: it gives B u, and <v, B u> = <B^T v, u>. What that check catches is a VJP
# that forward mode cannot be built from: not linear in g, or cut from g under create_graph
# (a numpy call on g.data), or a graph path (xp = microbbb) that computes something else
# than the numpy path backward uses. The second check takes J u from torch.func.jvp, a
# forward mode independent of microbbb: it checks each of microbbb's VJPs itself.
@pytest.mark.parametrize("name, case", ALL_CASES)
def test_transpose_identity_links_forward_and_reverse(name, case):
    fn, arrays, tangents, rng = setup(name, case)
    _, dot = mb.jvp(fn, tuple(arrays), tuple(tangents))
    v = rng.standard_normal(dot.shape)
    xs = [mb.tensor(a, requires_grad=True) for a in arrays]
    fn(*xs).backward(v)
    grads = [x.grad for x in xs]
    gap, scale = transpose_gap([dot.data], grads, [v], tangents)
    assert gap <= 1e-12 * scale + 1e-14, (gap, scale)
    _, torch_dot = torch_jvp(name, case, arrays, tangents)
    gap, scale = transpose_gap([torch_dot], grads, [v], tangents)
    assert gap <= 1e-12 * scale + 1e-14, (gap, scale)


@pytest.mark.parametrize("name, case", ALL_CASES)
def test_float32_stays_float32(name, case):
    fn, arrays, tangents, _ = setup(name, case)
    out, dot = mb.jvp(fn, tuple(a.astype(np.float32) for a in arrays),
                      tuple(u.astype(np.float32) for u in tangents))  # fmt: skip
    assert out.dtype == dot.dtype == np.float32
    _, dot64 = mb.jvp(fn, tuple(arrays), tuple(tangents))
    close(dot.data, dot64.data, RTOL32, ATOL32)


# --- the tests above can fail -------------------------------------------------------------


def wrong_sin():
    """sin with the VJP g * sin(x) (should be g * cos(x)): wrong, but linear in g."""
    sin = SPECS["sin"]
    table = {p.name: p for p in mb.PRIMITIVES}["sin"]
    bad = mb.Primitive("sin", table.forward, [lambda xp, g, out, x: g * xp.sin(x)], ("g*sin",))
    return sin, bad


def test_a_wrong_vjp_is_caught_by_torch_and_finite_differences():
    _, bad = wrong_sin()
    x, u = np.array([0.3, 1.2, -0.7]), np.array([1.0, -0.5, 2.0])
    _, dot = mb.jvp(bad, (x,), (u,))
    _, expected = torch_func_jvp(torch.sin, (torch.tensor(x),), (torch.tensor(u),))
    with pytest.raises(AssertionError):
        close(dot.data, expected.numpy())
    fd = (np.sin(x + H * u) - np.sin(x - H * u)) / (2 * H)
    with pytest.raises(AssertionError):
        close(dot.data, fd, RTOL_FD, ATOL_FD)
    # and by the transpose identity with torch's J u (mb.jvp's own J u agrees with it)
    x_t = mb.tensor(x, requires_grad=True)
    v = np.array([0.5, 1.0, -1.0])
    bad(x_t).backward(v)
    gap, scale = transpose_gap([expected.numpy()], [x_t.grad], [v], [u])
    assert gap > 1e-3 * scale
    gap, scale = transpose_gap([dot.data], [x_t.grad], [v], [u])
    assert gap <= 1e-12 * scale + 1e-14


def test_a_vjp_cut_from_g_is_caught_by_the_transpose_identity():
    # right numbers in backward, but under create_graph it reads g's array: the VJP graph no
    # longer depends on g, so forward mode built from it gives 0
    table = {p.name: p for p in mb.PRIMITIVES}["sin"]

    def cut(xp, g, out, x):
        values = np.asarray(g) * np.cos(np.asarray(x))
        return values if isinstance(g, np.ndarray) else mb.engine.extend.Tensor.wrap(values)

    bad = mb.Primitive("sin", table.forward, [cut], ("g * cos(x)",))
    x, u, v = np.array([0.3, 1.2]), np.array([1.0, 2.0]), np.array([0.5, -1.0])
    _, dot = mb.jvp(bad, (x,), (u,))
    x_t = mb.tensor(x, requires_grad=True)
    bad(x_t).backward(v)
    close(x_t.grad, v * np.cos(x))  # backward alone sees nothing wrong
    gap, scale = transpose_gap([dot.data], [x_t.grad], [v], [u])
    assert gap > 1e-3 * scale


# --- the API: structure, zeros, dtypes, errors ---------------------------------------------


def f(x1, x2):
    return mb.log(x1) + x1 * x2 - mb.sin(x2)


def test_the_survey_example_by_hand():
    # Baydin et al. 2018, Table 2: f(2, 5) = 11.652, df/dx1 = 1/x1 + x2, df/dx2 = x1 - cos x2
    out, d1 = mb.jvp(f, (2.0, 5.0), (1.0, 0.0))
    _, d2 = mb.jvp(f, [2.0, 5.0], [0.0, 1.0])
    assert out.item() == pytest.approx(math.log(2) + 10 - math.sin(5), rel=1e-15)
    assert d1.item() == pytest.approx(0.5 + 5, rel=1e-15)
    assert d2.item() == pytest.approx(2 - math.cos(5), rel=1e-15)
    _, both = mb.jvp(f, (2.0, 5.0), (3.0, -2.0))  # linear in u
    assert both.item() == pytest.approx(3 * d1.item() - 2 * d2.item(), rel=1e-14)


def test_a_network_matches_torch():
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s) for s in [(4, 3), (3, 2), (2,)]]
    tangents = [rng.standard_normal(a.shape) for a in arrays]

    def net(x, w, b, lib):
        return lib.tanh(x @ w + b).sum(axis=0) if lib is mb else torch.tanh(x @ w + b).sum(0)

    out, dot = mb.jvp(lambda *xs: net(*xs, mb), tuple(arrays), tuple(tangents))
    ts = tuple(torch.tensor(a) for a in arrays)
    us = tuple(torch.tensor(u) for u in tangents)
    expected_out, expected = torch_func_jvp(lambda *xs: net(*xs, torch), ts, us)
    close(out.data, expected_out.numpy())
    close(dot.data, expected.numpy())


def test_several_outputs_and_outputs_that_do_not_depend_on_the_inputs():
    x, y = np.array([1.0, 2.0]), np.array(3.0)
    outs, dots = mb.jvp(lambda a, b: (a * b, mb.tensor([7.0, 8.0, 9.0]), a * 2), (x, y),
                        (np.array([1.0, -1.0]), 0.5))  # fmt: skip
    assert isinstance(outs, tuple) and isinstance(dots, tuple) and len(dots) == 3
    close(dots[0].data, np.array([1.0, -1.0]) * 3 + x * 0.5)  # product rule
    close(dots[1].data, np.zeros(3), rtol=0, atol=0)  # a constant: tangent zeros
    close(dots[2].data, [2.0, -2.0])
    _, only_y = mb.jvp(lambda a, b: a * 2, (x, y), (np.zeros(2), 1.0))  # b unused
    close(only_y.data, np.zeros(2), rtol=0, atol=0)


def test_a_single_primal_and_primals_given_as_tensors():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3  # a graph behind the primal: jvp takes its value only
    out, dot = mb.jvp(lambda t: t**2, y, [1.0, 0.0])
    close(out.data, [9.0, 36.0])
    close(dot.data, [6.0, 0.0])
    assert x.grad is None and y.grad is None  # no .grad written
    with mb.no_grad():  # jvp records what it needs even here
        close(mb.jvp(lambda t: t**2, 3.0, 1.0)[1].data, 6.0)


def test_float32_primals_keep_float32_and_numbers_as_tangents_take_it():
    x = np.array([0.5, 1.5], dtype=np.float32)
    out, dot = mb.jvp(lambda t: mb.exp(t).sum(), (x,), ([1, 1],))
    assert out.dtype == dot.dtype == np.float32
    close(dot.data, np.exp(x.astype(np.float64)).sum(), RTOL32, ATOL32)
    _, dot = mb.jvp(lambda t: t * 2, np.float32(1.0), 1.0)
    assert dot.dtype == np.float32


@pytest.mark.parametrize(
    "primals, tangents, error, message",
    [
        ((1.0, 2.0), (1.0,), TypeError, r"one tangent per primal \(2\), got tuple of length 1"),
        ((1.0, 2.0), 1.0, TypeError, r"tuple or list with one tangent per primal"),
        ((1.0, np.ones(3)), (1.0, np.ones(2)), ValueError,
         r"tangents\[1\] has shape \(2,\) but primals\[1\] has shape \(3,\)"),
        (np.ones(3), 1.0, ValueError, r"tangents has shape \(\) but primals has shape \(3,\)"),
        ((np.ones(2, np.float32),), (np.ones(2),), TypeError,
         r"tangents\[0\] has dtype float64 but primals\[0\] is float32"),
        ((np.ones(2),), (mb.tensor(np.ones(2), dtype=np.float32),), TypeError,
         r"tangents\[0\] has dtype float32 but primals\[0\] is float64"),
        ((1.0,), (True,), TypeError, r"tangents\[0\] must hold real numbers, got dtype bool"),
        ((1.0, "a"), (1.0, 1.0), TypeError, r"primals\[1\] must be a tensor"),
        ((), (), ValueError, "primals is empty"),
    ],
)  # fmt: skip
def test_errors_name_the_argument(primals, tangents, error, message):
    with pytest.raises(error, match=message):
        mb.jvp(lambda *xs: xs[0] * 1.0, primals, tangents)


def test_f_must_return_tensors():
    with pytest.raises(TypeError, match="f must return a tensor or a tuple of tensors, got float"):
        mb.jvp(lambda x: 3.0, 1.0, 1.0)
    with pytest.raises(TypeError, match="got list"):
        mb.jvp(lambda x: [x, 2.0], 1.0, 1.0)


# --- the tangent trace -----------------------------------------------------------------------

# Baydin et al. 2018, Table 2, computed here from the math; microbbb records sin before the
# add (the survey's v3 and v4 are swapped), and the survey's inputs v-1, v0 are the leaves
# l1 = x1, l2 = x2: v1 = ln l1, v2 = l1 l2, v3 = v1 + v2, v4 = sin l2, v5 = v3 - v4.
# Columns: (x1̇, x2̇) = (1, 0) and (0, 1).
SURVEY = {
    "l1": (2.0, 1.0, 0.0),
    "l2": (5.0, 0.0, 1.0),
    "v1": (math.log(2), 1 / 2, 0.0),
    "v2": (10.0, 5.0, 2.0),
    "v3": (math.log(2) + 10, 1 / 2 + 5, 2.0),
    "v4": (math.sin(5), 0.0, math.cos(5)),
    "v5": (math.log(2) + 10 - math.sin(5), 5.5, 2 - math.cos(5)),
}


def survey_f():
    x1 = mb.tensor(2.0, requires_grad=True, name="x1")
    x2 = mb.tensor(5.0, requires_grad=True, name="x2")
    return f(x1, x2), x1, x2


def test_tangent_trace_has_the_survey_values():
    out, _, _ = survey_f()
    table = tangent_trace(out)
    assert table.columns == ["x1̇ = 1", "x2̇ = 1"]
    rows = {r.primal.variable: r for r in table.rows}
    assert list(rows) == list(SURVEY)
    for variable, (value, d1, d2) in SURVEY.items():
        r = rows[variable]
        assert float(r.primal.value) == pytest.approx(value, rel=1e-15, abs=1e-15), variable
        assert float(r.values[0]) == pytest.approx(d1, rel=1e-15, abs=1e-15), variable
        assert float(r.values[1]) == pytest.approx(d2, rel=1e-15, abs=1e-15), variable
    # the survey's rounded numbers
    last = rows["v5"]
    assert (round(float(last.primal.value), 3), round(float(last.values[0]), 3),
            round(float(last.values[1]), 3)) == (11.652, 5.5, 1.716)  # fmt: skip
    text = str(table)
    for formula in ["l1̇ / l1", "l1̇ * l2 + l2̇ * l1", "v1̇ + v2̇", "l2̇ * cos(l2)", "v3̇ - v4̇"]:
        assert formula in text, formula
    assert "<table>" in table._repr_html_()


def test_tangent_trace_ends_where_the_adjoint_trace_ends():
    # forward mode, one column per input, and reverse mode give the same gradient
    out, _, _ = survey_f()
    last = tangent_trace(out).rows[-1].values
    adjoints = {r.variable.replace(" +=", ""): float(r.after) for r in trace_table(out).reverse}
    assert float(last[0]) == pytest.approx(adjoints["l1̄"], rel=1e-15)
    assert float(last[1]) == pytest.approx(adjoints["l2̄"], rel=1e-15)


def test_tangent_trace_with_given_seeds_and_arrays():
    out, x1, x2 = survey_f()
    one = tangent_trace(out, {x1: 3.0, x2: -2.0})
    assert one.columns == ["u"]
    expected = 3 * 5.5 - 2 * (2 - math.cos(5))
    assert float(one.rows[-1].values[0]) == pytest.approx(expected, rel=1e-14)
    two = tangent_trace(out, [{x1: 1.0}, {x2: 1.0}])
    assert two.columns == ["u1", "u2"]
    # arrays: a constant data matrix (tangent 0), the chain rule written out, jvp's values
    x = mb.tensor(np.arange(6.0).reshape(2, 3) / 6, name="X")
    w = mb.tensor([0.5, -1.0, 2.0], requires_grad=True, name="w")
    u = np.array([1.0, 2.0, -1.0])
    table = tangent_trace(mb.tanh(x @ w).sum(), {w: u})
    _, dot = mb.jvp(lambda w_: mb.tanh(x @ w_).sum(), w.data, u)
    assert float(table.rows[-1].values[0]) == pytest.approx(dot.item(), rel=1e-15)
    text = str(table)
    assert "0 (constant)" in text and "∂v1/∂l2·l2̇" in text


def test_tangent_trace_errors():
    out, x1, _ = survey_f()
    other = mb.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match="must be an input tensor of the output"):
        tangent_trace(out, {other: 1.0})
    with pytest.raises(ValueError, match=r"tangent of x1 has shape \(2,\)"):
        tangent_trace(out, {x1: [1.0, 2.0]})
    with pytest.raises(TypeError, match="a dict {input tensor: tangent}"):
        tangent_trace(out, 1.0)
    with pytest.raises(ValueError, match="computed by recorded ops"):
        tangent_trace(x1)


# a row of docs/derivatives.md's tangent table: | $\dot v_{-1}$ | ... | 1.0000 | 0.0000 |
DOC_ROW = re.compile(
    r"^\| \$\\dot v_\{?(-?\d+)\}?\$ \|.*\| (-?\d+\.\d{4}) \| (-?\d+\.\d{4}) \|$", re.M
)


def test_the_documented_tangent_table():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "derivatives.md").read_text()
    rows = {int(i): (float(a), float(b)) for i, a, b in DOC_ROW.findall(doc)}
    assert sorted(rows) == [-1, 0, 1, 2, 3, 4, 5]

    def trace(x1, x2):  # the page's numbering (the survey's): v3 = sin v0, v4 = v1 + v2
        v = {-1: x1, 0: x2, 1: mb.log(x1), 2: x1 * x2, 3: mb.sin(x2)}
        v[4] = v[1] + v[2]
        v[5] = v[4] - v[3]
        return tuple(v[k] for k in sorted(v))

    _, first = mb.jvp(trace, (2.0, 5.0), (1.0, 0.0))
    _, second = mb.jvp(trace, (2.0, 5.0), (0.0, 1.0))
    for k, a, b in zip(sorted(rows), first, second, strict=True):
        assert rows[k] == (round(a.item(), 4), round(b.item(), 4)), k
