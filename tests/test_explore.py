"""The explorer page (microbbb.viz.explore), opened in a real browser: headless Chromium
driven by Playwright. The tests press the keys and read the numbers off the page.

Tolerance: the page writes full arrays with 6 significant digits (JavaScript's
``toPrecision(6)``), so a shown number is within 5e-6 of the true one, relative; the tests
compare with rtol=1e-5 (and atol=1e-12 for entries that are exactly 0 or tiny next to it).

Chromium comes from the system (``apt-get install chromium``; .ci/run installs it) and
Playwright from pip (the ``test`` extra). Without them these tests are skipped on a laptop,
never in CI (CI=true: a skipped test fails the run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import numpy as np
import pytest

import microbbb as mb
from microbbb.bbb import BayesianMLP, Bernoulli, Gaussian
from microbbb.viz import bbb_split, explore

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None
needs_browser = pytest.mark.skipif(
    not IN_CI and (sync_playwright is None or not os.path.exists(CHROMIUM)),
    reason="needs Playwright (pip) and Chromium (apt-get install chromium); CI installs both",
)
RTOL, ATOL = 1e-5, 1e-12
NUMBER = re.compile(r"-?(?:Infinity|NaN|\d+(?:\.\d*)?(?:e[+-]?\d+)?)")
MB = 1024 * 1024


def numbers(text: str) -> np.ndarray:
    """Every number written in ``text``, in order."""
    return np.array([float(s) for s in NUMBER.findall(text)])


def shown(page, selector: str) -> np.ndarray:
    return numbers(page.inner_text(selector))


def assert_shown_equals(page, selector: str, expected) -> None:
    got, expected = shown(page, selector), np.asarray(expected, dtype=float).ravel()
    assert got.shape == expected.shape, (selector, page.inner_text(selector))
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL * max(1, abs(expected).max()))


# --- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        pytest.fail("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


class Opened:
    """A page opened from a file, with every console message, page error and request."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1600, "height": 900})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        start = time.perf_counter()
        self.page.goto(f"file://{path}")
        self.page.wait_for_selector("body[data-ready=yes]")
        self.seconds = time.perf_counter() - start

    def press(self, key: str, times: int = 1) -> None:
        for _ in range(times):
            self.page.keyboard.press(key)

    def check_clean(self) -> None:
        assert self.problems == []
        others = [u for u in self.requests if not u.startswith(("file://", "data:"))]
        assert others == [], "the page must not touch the network"


@pytest.fixture
def opened(browser, tmp_path):
    pages = []

    def open_(output, **kwargs) -> Opened:
        path = tmp_path / f"page{len(pages)}.html"
        explore(output, path, **kwargs)
        pages.append(Opened(browser, path))
        return pages[-1]

    yield open_
    for p in pages:
        p.check_clean()
        p.page.close()


def small_expression():
    x1 = mb.tensor(2.0, requires_grad=True, name="x1")
    x2 = mb.tensor(5.0, requires_grad=True, name="x2")
    f = mb.log(x1) + x1 * x2 - mb.sin(x2)
    f.backward()
    return f, x1, x2


def small_network():
    """A 2-3-1 layer by hand: matmul, a broadcast bias, tanh, a mean squared error."""
    rng = np.random.default_rng(1)
    w = mb.tensor(rng.standard_normal((2, 3)), requires_grad=True, name="w")
    b = mb.tensor(rng.standard_normal(3), requires_grad=True, name="b")
    v = mb.tensor(rng.standard_normal((3, 1)), requires_grad=True, name="v")
    x = mb.tensor(rng.standard_normal((4, 2)), name="x")
    y = mb.tensor(rng.standard_normal((4, 1)), name="y")
    with mb.scope("hidden"):
        h = mb.tanh(x @ w + b)
    with mb.scope("loss"):
        loss = ((h @ v - y) ** 2).mean()
    loss.backward()
    return loss, [w, b, v], x


def bbb_loss(sizes=(2, 3, 1), n=8, n_samples=1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sizes[0]))
    y = x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.standard_normal(n)
    model = BayesianMLP(list(sizes), likelihood=Gaussian(0.5), seed=seed, rho_init=-3.0)
    loss = model.loss(x, y, n_samples=n_samples)
    loss.backward()
    return loss, model


def leaf_gradient_shown(opened_page: Opened, name: str) -> str:
    page = opened_page.page
    page.click(f"#leaves tr:has(td:text-is('{name}'))")
    return page.inner_text("#detail-grad")


# --- the tests -----------------------------------------------------------------------------------


@needs_browser
def test_stepping_to_the_end_shows_every_leaf_gradient(opened):
    f, x1, x2 = small_expression()
    p = opened(f)
    steps = int(p.page.get_attribute("#slider", "max"))
    assert steps == 5 + 1 + 5  # 5 records forward, the seed, 5 records backward
    p.press("ArrowRight", steps)
    assert "Done" in p.page.inner_text("#step-body")
    # by hand: df/dx1 = 1/x1 + x2 = 5.5, df/dx2 = x1 - cos(x2); the table of leaves writes
    # 4 significant digits (within 5e-4, relative), the selected leaf's panel 6
    for name, by_hand in (("x1", 5.5), ("x2", 2 - np.cos(5.0))):
        table = shown(p.page, f"#leaves tr:has(td:text-is('{name}')) .leaf-adjoint")
        np.testing.assert_allclose(table, [by_hand], rtol=5e-4)
    for leaf in (x1, x2):
        assert numbers(leaf_gradient_shown(p, leaf.name)) == pytest.approx(
            leaf.grad.ravel(), rel=RTOL
        )


@needs_browser
def test_array_leaves_show_their_full_grad_after_the_last_step(opened):
    loss, leaves, _ = small_network()
    p = opened(loss)
    p.press("End")
    for leaf in leaves:
        got = numbers(leaf_gradient_shown(p, leaf.name))
        np.testing.assert_allclose(got, leaf.grad.ravel(), rtol=RTOL, atol=ATOL)
    # the broadcast bias: its share was summed over the batch, and the page says so
    p.press("Home")
    text = ""
    for _ in range(int(p.page.get_attribute("#slider", "max"))):
        p.press("ArrowRight")
        text += p.page.inner_text("#step-body")
    assert "Σ over the broadcast axes, to shape (3,)" in text


@needs_browser
def test_the_page_says_whether_each_leaf_grad_holds_its_adjoint(opened):
    loss, leaves, _ = small_network()
    p = opened(loss)
    p.press("End")
    checks = p.page.locator("#leaves tbody td:nth-child(4)").all_inner_texts()
    assert checks == ["= .grad"] * len(leaves)
    loss.backward()  # a second backward: every .grad now holds twice the adjoint
    p = opened(loss)
    p.press("End")
    checks = p.page.locator("#leaves tbody td:nth-child(4)").all_inner_texts()
    assert all(c.startswith(".grad differs") for c in checks), checks


@needs_browser
def test_forward_values_appear_and_the_adjoint_table_grows(opened):
    loss, _, _ = small_network()
    p = opened(loss)
    n_records = len(mb.tape(loss))
    assert p.page.locator("g.node.active").count() == 0  # nothing active at the start
    assert "not computed yet" in p.page.text_content("#graph")
    p.press("ArrowRight")
    assert p.page.locator("g.node.active").count() == 2  # the op and its output
    assert "forward 1 / " in p.page.inner_text("#counter")
    p.press("ArrowRight", n_records - 1)
    assert "not computed yet" not in p.page.text_content("#graph")
    assert p.page.locator("#adjoint-table tbody tr").count() == 0
    counts = []
    for _ in range(4):
        p.press("ArrowRight")
        counts.append(p.page.locator("#adjoint-table tbody tr").count())
    assert counts[0] == 1 and counts == sorted(counts) and counts[-1] > counts[0]
    assert p.page.locator("g.edge.flowing").count() >= 1  # the active step's edges
    p.press("ArrowLeft", 4)
    assert p.page.locator("#adjoint-table tbody tr").count() == 0


@needs_browser
def test_a_rule_is_shown_with_its_numbers(opened):
    f, _, _ = small_expression()
    p = opened(f)
    p.press("ArrowRight", 5 + 1 + 4)  # backward step 4: v2 = l1 * l2, x1̄ += g * y
    body = p.page.inner_text("#step-body")
    assert "l1̄ += v2̄ * l2" in body
    assert "= 1 * 5 = 5" in body  # g = 1, y = x2 = 5


@needs_browser
def test_clicking_a_node_shows_its_value_and_gradient(opened):
    loss, (w, _, _), x = small_network()
    p = opened(loss)
    p.press("End")
    node = p.page.locator("g.node[data-name=x]")
    assert node.count() == 1
    node.click()
    assert_shown_equals(p.page, "#detail-value", x.data)
    assert "none" in p.page.inner_text("#detail-grad")  # data gets no gradient
    p.page.locator("g.node[data-name=w]").click()
    assert_shown_equals(p.page, "#detail-value", w.data)
    assert_shown_equals(p.page, "#detail-grad", w.grad)


@needs_browser
def test_bbb_split_shown_equals_bbb_split(opened):
    loss, model = bbb_loss()
    p = opened(loss)
    options = p.page.locator("#bbb-param option")
    assert options.count() == 1 + 4 * len(model.layers)
    for i, layer in enumerate(model.layers, start=1):
        split = bbb_split(loss, layer)
        for name in ("weight_mu", "bias_mu", "weight_rho", "bias_rho"):
            p.page.select_option("#bbb-param", label=f"layer{i}.{name}")
            for part in ("through_w", "direct", "total"):
                assert_shown_equals(p.page, f"#bbb-{part}", split[name][part])
            assert_shown_equals(p.page, "#bbb-total", getattr(layer, name).grad)
            assert p.page.locator("g.edge.path-w").count() >= 1
            assert p.page.locator("g.edge.path-direct").count() >= 1


@needs_browser
def test_folding_a_group_changes_the_view_and_back(opened):
    loss, _, _ = small_network()
    p = opened(loss)
    before = p.page.locator("g.node").count()
    p.page.locator("g.cluster[data-scope=hidden] text").click()
    folded = p.page.locator("g.node").count()
    assert folded < before and p.page.locator("g.node.group").count() == 1
    p.press("End")  # the last step is the first op, x @ w, inside the folded group
    assert p.page.locator("g.node.group.active").count() == 1
    p.page.locator("g.node.group").click()
    assert p.page.locator("g.node").count() == before


@needs_browser
def test_the_question_network_page_is_small_and_opens_fast(opened, tmp_path):
    """BayesianMLP([3, 32, 1]) on 100 points, Bernoulli, two samples (the question's setting):
    the file stays under 2 MB; it opens (script run, graph drawn) in the browser."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 3)), rng.binomial(1, 0.6, 100)
    model = BayesianMLP([3, 32, 1], likelihood=Bernoulli(), seed=0)
    loss = model.loss(x, y, n_samples=2)
    loss.backward()
    p = opened(loss)
    size = os.path.getsize(tmp_path / "page0.html")
    assert size < 2 * MB, f"{size / MB:.2f} MB"
    p.press("End")
    for layer in model.layers:
        for name in ("weight_mu", "bias_rho"):
            param = getattr(layer, name)
            got = numbers(leaf_gradient_shown(p, param.name))
            np.testing.assert_allclose(got, param.grad.ravel(), rtol=RTOL, atol=ATOL)


# --- without a browser: the file, the errors -----------------------------------------------------


def test_the_file_is_self_contained(tmp_path):
    f, _, _ = small_expression()
    page = explore(f, tmp_path / "f.html").html
    assert "<script src" not in page and '<link rel="stylesheet"' not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_explore_changes_no_grad():
    loss, leaves, _ = small_network()
    before = [leaf.grad.copy() for leaf in leaves]
    explore(loss)
    for leaf, grad in zip(leaves, before, strict=True):
        np.testing.assert_array_equal(leaf.grad, grad)
    x = mb.tensor(3.0, requires_grad=True)
    explore(x * x)
    assert x.grad is None


def test_in_jupyter_it_shows_an_iframe_of_itself():
    f, _, _ = small_expression()
    shown_html = explore(f)._repr_html_()
    assert shown_html.startswith("<iframe srcdoc=")
    assert "&lt;script&gt;" in shown_html and "<script>" not in shown_html


def test_bad_inputs_get_clear_errors(tmp_path):
    f, x1, _ = small_expression()
    with pytest.raises(TypeError, match="output must be a microbbb Tensor"):
        explore(np.ones(3))
    with pytest.raises(ValueError, match="no recorded graph"):
        explore(x1)
    with pytest.raises(ValueError, match=r"pass grad="):
        explore(x1 * mb.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="collapse must be a list of scope names"):
        explore(f, collapse="layer1")
    with pytest.raises(ValueError, match="not in the graph"):
        explore(f, collapse=["nowhere"])
    with pytest.raises(ValueError, match="must end in .html"):
        explore(f).save(tmp_path / "f.png")


def page_data(page: str) -> dict:
    """The numbers a page shows: the JSON that its script reads."""
    text = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    return json.loads(text.group(1).replace("<\\/", "</"))


@pytest.mark.parametrize("estimator", ["reparam", "local", "flipout"])
def test_the_bbb_split_is_shown_only_for_the_estimator_it_describes(tmp_path, estimator):
    # The paper's split (through the sampled w, direct) describes the plain estimator only:
    # with "local" the data term never goes through a sampled w, and with "flipout" part of
    # it goes round w through the per-row signs, so a "through w" column would mislead.

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)), (rng.random(10) < 0.5).astype(int)
    model = BayesianMLP([3, 4, 1], likelihood=Bernoulli(), seed=0, estimator=estimator)
    loss = model.loss(x, y)
    loss.backward()
    shown = page_data(explore(loss, tmp_path / "loss.html").html)["bbb"]
    if estimator == "reparam":
        assert {p["name"] for p in shown} == {f"layer{i}.{n}" for i in (1, 2) for n in (
            "weight_mu", "weight_rho", "bias_mu", "bias_rho")}  # fmt: skip
    else:
        assert shown == []
