"""Seeing the gradients (microbbb/viz): drawings, rendering through the real `dot`, trace
tables, replay, attribution and per-node checks."""

import math
import os
import re
import shutil
import struct

import numpy as np
import pytest

import microbbb as mb
from microbbb import Primitive
from microbbb.bbb import BayesianMLP, Categorical, Gaussian, by_hand
from microbbb.viz import attribute, bbb_split, check_graph, draw, replay, save, trace_table

# Without dot these are skipped on a laptop, never in CI (CI=true installs dot: there a
# missing dot must fail the run, not hide it).
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI", "").lower() not in ("1", "true", "yes"),
    reason="Graphviz's dot is not installed (CI installs it)",
)


def classic():
    """f(x1, x2) = ln(x1) + x1 x2 - sin(x2) at (2, 5), the AD literature's trace example."""
    x1 = mb.tensor(2.0, requires_grad=True, name="x1")
    x2 = mb.tensor(5.0, requires_grad=True, name="x2")
    return mb.log(x1) + x1 * x2 - mb.sin(x2), x1, x2


def small_bbb(n_samples=1, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal(5)
    model = BayesianMLP([2, 3, 1], likelihood=Gaussian(0.5), seed=seed, rho_init=-2.0)
    return model, x, y, model.loss(x, y, n_samples=n_samples)


# --- DOT source ---------------------------------------------------------------------------------


def test_dot_source_has_names_rules_gradients_and_legend():
    f, _, _ = classic()
    source = draw(f).source
    for text in ["x1", "x2", "log", "sin", "legend", "x̄ += g * y", "grad 5.5", "grad 1.72"]:
        assert text in source, text
    assert "ḡ = 0.5" in source and "ḡ = 5" in source  # the two paths into x1
    assert "ḡ = -0.2837" in source  # sin's contribution to x2: -cos(5)


def test_broadcast_and_cut_marks_are_in_the_source():
    w = mb.tensor(np.ones((3, 1)), requires_grad=True, name="w")
    b = mb.tensor(0.5, requires_grad=True, name="b")  # broadcast over (2, 1)
    h = mb.tensor(np.arange(6.0).reshape(2, 3), name="x") @ w + b
    with mb.no_grad():
        frozen = h * 2
    loss = (h * h.detach() + frozen).sum()
    source = draw(loss).source
    assert "Σ broadcast" in source
    assert "cut: detach" in source and "cut: no_grad (mul)" in source
    assert source.count("style=dashed") >= 2  # the cut tensors and the cut edges


def _legend(source):
    return next(s for s in source.split("\n\t") if s.startswith("legend ["))


def test_the_legend_lists_only_what_is_drawn():
    f, _, _ = classic()  # parameters, ops, intermediates, the output; no data, noise, cut
    legend = _legend(draw(f).source)
    for row in ["parameter", "op: backward rules", "intermediate", "output", "gradient flowing"]:
        assert row in legend, row
    for row in ["noise", "data", "constant", "cut", "broadcast", "collapsed", "grey edge"]:
        assert row not in legend, row
    w = mb.tensor(np.ones((3, 1)), requires_grad=True, name="w")
    h = mb.tensor(np.arange(6.0).reshape(2, 3), name="x") @ w + mb.tensor(0.5, requires_grad=True)
    legend = _legend(draw((h * h.detach()).sum()).source)
    for row in ["data", "broadcasting summed", "gradient path cut", "grey edge"]:
        assert row in legend, row
    _, _, _, loss = small_bbb()
    legend = _legend(draw(loss, collapse=["layer1"]).source)
    assert "noise (eps)" in legend and "collapsed group" in legend
    assert "constant" not in legend and "cut" not in legend


def test_labels_use_symbols_that_common_fonts_draw():
    # the scissors of an earlier version rendered as an empty box in cairo's fallback font
    w = mb.tensor(np.ones((3, 1)), requires_grad=True, name="w")
    h = mb.tensor(np.arange(6.0).reshape(2, 3), name="x") @ w
    with mb.no_grad():
        frozen = h * 2
    _, _, _, loss = small_bbb()
    for graph in [draw((h * h.detach() + frozen).sum()), draw(loss, edge_labels="node"),
                  draw(loss, collapse=["layer1", "likelihood"])]:  # fmt: skip
        unusual = {c for c in graph.source if ord(c) > 127}
        assert unusual <= {"Σ", "‖", "ḡ", "\u0304"}, unusual  # \u0304: the bar of x̄


def test_edge_labels_node_writes_the_parts_in_the_box():
    f, _, _ = classic()
    source = draw(f, edge_labels="node").source
    # x1 feeds log and mul: d/dx1 ln(x1) = 1/2, d/dx1 (x1 x2) = x2 = 5; they sum to grad 5.5
    assert "grad 5.5\nto log (x): ḡ = 0.5\nto mul (x): ḡ = 5" in source
    assert "to sin (x): ḡ = -0.2837" in source  # -cos(5)
    edges = [s for s in source.split("\n\t") if " -> " in s.split("[")[0]]
    assert len(edges) == 13 and not any("label=" in e for e in edges)  # 5 op outputs, 8 inputs
    split = draw(f, edge_labels="split").source
    assert "x: ḡ = 0.5" in split and "ḡ = 1" not in split  # one consumer: the box says it


def test_draw_rejects_bad_arguments():
    f, _, _ = classic()
    with pytest.raises(ValueError, match="edge_labels must be"):
        draw(f, edge_labels="some")
    with pytest.raises(TypeError, match=r"write collapse=\['layer1'\]"):
        draw(f, collapse="layer1")


def test_a_collapsed_group_folds_the_leaves_only_it_uses_and_names_its_outputs():
    _, _, _, loss = small_bbb()
    source = draw(loss, collapse=["layer1", "likelihood"]).source
    # layer 1's mu, rho and eps of its weight and of its bias (6 leaves) and the data x
    assert "with 7 leaves" in source and 'label="layer1.weight_eps' not in source
    assert 'label="x\ndata' not in source and "with y" in source  # y: only the likelihood
    assert "out: log_likelihood = " in source  # the named result the loss uses
    assert 'label="layer2.weight_eps\nnoise' in source  # the open layer keeps its leaves


def test_nan_is_marked_red():
    x = mb.tensor([1.0, -1.0], requires_grad=True, name="x")
    with np.errstate(invalid="ignore"):
        y = mb.log(x).sum()
    statements = draw(y).source.split("\n\t")  # a label may span lines; statements may not
    red = [s for s in statements if 'fontcolor="#d62728"' in s and "->" not in s]
    assert red and all("nan" in s for s in red)  # log(x) and the sum: NaN values, red
    assert any("shape (2,)\nvalue [0, nan]" in s for s in red)


def test_collapse_folds_a_group_into_one_box():
    _, _, _, loss = small_bbb()
    full = draw(loss).source
    folded = draw(loss, collapse=["layer1/log_q", "layer1/log_prior"]).source
    assert "layer1/log_q\n(" in folded and "ops, collapsed)" in folded
    assert folded.count("normal_log_prob") < full.count("normal_log_prob")
    assert "layer1.weight_mu" in folded  # parameters stay visible


def test_scopes_become_clusters_and_kinds_are_styled():
    _, _, _, loss = small_bbb()
    source = draw(loss).source
    assert "subgraph cluster_group_layer1 {" in source
    assert "cluster_group_layer1_log_q" in source and "cluster_group_likelihood" in source
    # a parameter (blue), noise eps (orange) and data (grey) are told apart
    assert 'label="layer1.weight_mu\nparam, shape (2, 3)' in source
    assert 'label="layer1.weight_eps\nnoise, shape (2, 3)' in source
    assert 'label="x\ndata, shape (5, 2)' in source and 'label="y\ndata, shape (5, 1)' in source


def test_tooltips_hold_the_full_values():
    x = mb.tensor(np.arange(10.0), requires_grad=True, name="big")
    source = draw((x * x).sum()).source
    assert "tooltip=" in source and "[0. 1. 2. 3. 4. 5. 6. 7. 8. 9.]" in source


# --- rendering through dot ----------------------------------------------------------------------


@needs_dot
def test_svg_and_png_render_through_dot(tmp_path):
    _, _, _, loss = small_bbb()
    graph = draw(loss, collapse=["layer1/log_prior", "layer2/log_prior"], color_by_grad=True)
    svg = (tmp_path / "graph.svg").read_text() if save(graph, tmp_path / "graph.svg") else ""
    assert svg.startswith("<?xml") and "<svg" in svg
    for text in ["layer1.weight_mu", "layer2.bias_rho", "legend", "ḡ = "]:
        assert text in svg, text
    assert "<title>" in svg and "xlink:title" in svg  # hover tooltips
    save(graph, tmp_path / "graph.png")
    png = (tmp_path / "graph.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert 500 < width < 20000 and 200 < height < 20000, (width, height)
    save(graph, tmp_path / "graph.pdf")
    assert (tmp_path / "graph.pdf").read_bytes()[:5] == b"%PDF-"


def test_without_dot_the_source_still_works_and_rendering_says_how_to_install(
    tmp_path, monkeypatch
):
    f, _, _ = classic()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on this PATH
    graph = draw(f)
    assert graph.source.startswith("digraph")
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        save(graph, tmp_path / "graph.svg")


def test_jupyter_display_hooks():
    f, _, _ = classic()
    assert hasattr(draw(f), "_repr_mimebundle_")
    assert "<table>" in trace_table(f)._repr_html_() and "<table>" in replay(f)._repr_html_()


# --- trace tables and replay ---------------------------------------------------------------------

# Griewank and Walther's example: primal values and adjoints, computed here from the math
PRIMAL = {
    "l1": 2.0,
    "l2": 5.0,
    "log(l1)": math.log(2),
    "l1 * l2": 10.0,
    "v1 + v2": math.log(2) + 10,
    "sin(l2)": math.sin(5),
    "v3 - v4": math.log(2) + 10 - math.sin(5),
}


def test_trace_table_lists_the_known_primal_and_adjoint_values():
    f, _, _ = classic()
    table = trace_table(f)
    rows = {r.expression if r.variable.startswith("v") else r.variable: float(r.value)
            for r in table.forward}  # fmt: skip
    assert [r.expression for r in table.forward[:2]] == ["x1", "x2"]  # leaves: l1, l2
    for expression, value in PRIMAL.items():
        assert rows[expression] == pytest.approx(value, rel=1e-12), expression
    final = {}
    for r in table.reverse:
        final[r.variable.replace(" +=", "")] = float(r.after)
    assert final["l1̄"] == pytest.approx(1 / 2 + 5, rel=1e-12)  # df/dx1
    assert final["l2̄"] == pytest.approx(2 - math.cos(5), rel=1e-12)  # df/dx2
    assert final["v4̄"] == -1.0 and final["v3̄"] == 1.0
    text = str(table)
    assert "forward (primal) trace" in text and "v2̄ * l2" in text and "v4̄ * cos(l2)" in text


def test_no_trace_name_reads_as_arithmetic():
    # a BBB loss has many leaves (mu, rho, eps, data): each is l<k>, each record v<k>; the
    # literature's v-13 reads as "v minus 13" on a slide
    x, y = np.random.default_rng(0).standard_normal((5, 2)), np.array([0, 1, 2, 0, 1])
    loss = BayesianMLP([2, 3, 3], likelihood=Categorical(), seed=0).loss(x, y, n_samples=2)
    loss.backward()
    table = trace_table(loss)
    names = [r.variable for r in table.forward]
    leaves = [n for n in names if n.startswith("l")]
    assert len(leaves) >= 12 and leaves == [f"l{k}" for k in range(1, len(leaves) + 1)]
    assert all(re.fullmatch(r"[lv][1-9][0-9]*", n) for n in names), names
    text = str(table)
    assert not re.search(r"v-[0-9]", text), "a v-minus name is shown"


def test_replay_shows_each_adjoint_before_and_after():
    f, _, _ = classic()
    steps = list(replay(f))
    assert [s.record.op.name for s in steps] == ["sub", "sin", "add", "mul", "log"]
    mul = steps[3]
    target, rule, contribution, before, after = mul.updates[1]  # x2's second contribution
    assert target == "l2̄" and rule == "v2̄ * l1"
    assert float(before) == pytest.approx(-math.cos(5)) and float(contribution) == 2.0
    assert float(after) == pytest.approx(2 - math.cos(5))
    assert "0 (first contribution)" in str(replay(f))


# --- attribution ---------------------------------------------------------------------------------


def _graphs():
    rng = np.random.default_rng(3)
    x = mb.tensor(rng.standard_normal((4, 3)), requires_grad=True, name="x")
    w = mb.tensor(rng.standard_normal(3), requires_grad=True, name="w")

    def reuse():
        return (mb.tanh(x * w) + x * x - mb.exp(w)).sum()  # x and w used twice

    def broadcasting():
        return ((x + w) * w).sum()  # w broadcast over 4 rows, twice

    def with_detach():
        return (x * x.detach() + mb.sin(x) * w).sum()

    return [reuse, broadcasting, with_detach], (x, w)


USES = [{"x": 2, "w": 2}, {"x": 1, "w": 2}, {"x": 2, "w": 1}]  # read off the three graphs


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("by", ["consumer", "op", "scope"])
def test_attribution_parts_sum_to_the_gradient(case, by):
    graphs, params = _graphs()
    output = graphs[case]()
    output.backward()
    for p in params:
        split = attribute(output, p, by=by)
        total = sum(split.parts.values())
        np.testing.assert_allclose(total, p.grad, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(split.total, p.grad, rtol=1e-12, atol=1e-14)
        if by == "consumer":  # really split: one part per use of the tensor
            assert len(split.parts) == USES[case][p.name], split.parts


@pytest.mark.parametrize("n_samples", [1, 3])
def test_bbb_split_equals_the_hand_derived_terms(n_samples):
    model, x, y, loss = small_bbb(n_samples=n_samples)
    loss.backward()
    hand = by_hand.for_model(model, x, y, loss.eps)
    for i, layer in enumerate(model.layers):
        split = bbb_split(loss, layer)
        for name in ("weight_mu", "bias_mu", "weight_rho", "bias_rho"):
            terms = hand.terms[i][name.split("_")[0]]
            through, direct = ("df_dw", "df_dmu") if "mu" in name else ("pathwise_rho", "df_drho")
            scale = np.abs(getattr(layer, name).grad).max()
            np.testing.assert_allclose(split[name]["through_w"], terms[through],
                                       rtol=1e-9, atol=1e-12 * scale)  # fmt: skip
            np.testing.assert_allclose(split[name]["direct"], terms[direct],
                                       rtol=1e-9, atol=1e-12 * scale)  # fmt: skip
            np.testing.assert_allclose(
                split[name]["through_w"] + split[name]["direct"], getattr(layer, name).grad,
                rtol=1e-12, atol=1e-12 * scale,
            )  # fmt: skip


def test_attribution_names_the_chain_for_rho():
    model, _, _, loss = small_bbb()
    split = attribute(loss, model.layers[0].weight_rho, by="op")
    assert split.chain == ["softplus"]
    assert set(split.parts) == {"reparameterize in layer1", "normal_log_prob in layer1/log_q"}


# --- per-node checks ------------------------------------------------------------------------------

WRONG_SQUARE = Primitive(
    "wrong_square", lambda x: x * x, [lambda xp, g, out, x: g * x], rules=["g * x"]
)  # the VJP of x^2 is 2 g x: this one forgot the 2


def test_check_graph_passes_a_whole_bbb_loss():
    model = BayesianMLP([3, 4, 3], likelihood=Categorical(), seed=0, rho_init=-2.0)
    rng = np.random.default_rng(0)
    report = check_graph(model.loss(rng.standard_normal((6, 3)), rng.integers(0, 3, 6), 2))
    assert report.ok, str(report)
    assert len(report.checks) > 50


def test_check_graph_points_at_the_wrong_vjp():
    x = mb.tensor([0.5, -1.0, 2.0], requires_grad=True, name="x")
    y = (mb.exp(x) * WRONG_SQUARE(mb.sin(x))).sum()
    report = check_graph(y)
    assert not report.ok
    assert [c.record.op.name for c in report.failures] == ["wrong_square"]
    assert report.failures[0].position == 3  # exp, sin, then the wrong op
    assert "BAD #3 wrong_square" in str(report)


def test_bbb_split_with_the_closed_form_kl():
    from microbbb.bbb import GaussianPrior

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal(5)
    model = BayesianMLP([2, 3, 1], likelihood=Gaussian(0.5), prior=GaussianPrior(1.0), seed=0,
                        rho_init=-3.0)  # fmt: skip
    loss = model.loss(x, y, kl="closed_form")
    loss.backward()
    hand = by_hand.for_model(model, x, y, loss.eps, kl="closed_form")
    split = bbb_split(loss, model.layers[0])
    np.testing.assert_allclose(split["weight_mu"]["direct"], hand.terms[0]["weight"]["df_dmu"],
                               rtol=1e-10)  # fmt: skip
    np.testing.assert_allclose(split["weight_rho"]["direct"], hand.terms[0]["weight"]["df_drho"],
                               rtol=1e-10)  # fmt: skip
    assert np.abs(split["weight_mu"]["direct"]).max() > 0
