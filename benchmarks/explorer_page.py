"""The explorer page of the question's network: its size, how long Python takes to make it,
and how long headless Chromium takes to open it (until its script has drawn the graph).

The setting of ``microbbb demo question``: BayesianMLP([3, 32, 1]) on 100 points with a
Bernoulli likelihood, two weight samples. Needs Playwright (pip) and Chromium
(``apt-get install chromium``). ``--screenshots DIR`` also saves the page at four moments
(forward mid-way, backward mid-sweep, the end, a BBB split chosen) and a mid-sweep picture
of the gradient-flow demo's smaller network for the docs.

Run: ``python benchmarks/explorer_page.py [--loads 5] [--screenshots DIR]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from microbbb.bbb import BayesianMLP, Bernoulli
from microbbb.demos import gradient_flow
from microbbb.engine import tape
from microbbb.viz import explore

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def question_loss():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 3)), rng.binomial(1, 0.6, 100)
    model = BayesianMLP([3, 32, 1], likelihood=Bernoulli(), seed=0)
    loss = model.loss(x, y, n_samples=2)
    loss.backward()
    return loss


def open_seconds(browser, path: str) -> float:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    start = time.perf_counter()
    page.goto(f"file://{path}")
    page.wait_for_selector("body[data-ready=yes]")
    seconds = time.perf_counter() - start
    page.close()
    return seconds


def shoot(browser, path: str, out: str, keys: list[str], select: str | None = None) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(f"file://{path}")
    page.wait_for_selector("body[data-ready=yes]")
    for key in keys:
        page.keyboard.press(key)
    if select:
        page.select_option("#bbb-param", label=select)
    page.screenshot(path=out)
    page.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5, help="times to open the page")
    parser.add_argument("--screenshots", default=None, help="folder for the pictures")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    loss = question_loss()
    start = time.perf_counter()
    page = explore(loss, title="the question's 3-32-1 network, 100 points, 2 samples")
    build = time.perf_counter() - start
    folder = tempfile.mkdtemp()
    path = page.save(os.path.join(folder, "question_explorer.html"))
    size = os.path.getsize(path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        seconds = [open_seconds(browser, path) for _ in range(args.loads)]
        if args.screenshots:
            os.makedirs(args.screenshots, exist_ok=True)
            steps = len(tape(loss))  # records: the forward steps
            out = args.screenshots
            shoot(browser, path, f"{out}/forward_mid.png", ["ArrowRight"] * (steps // 2))
            shoot(browser, path, f"{out}/backward_mid.png", ["End"] + ["ArrowLeft"] * 40)
            shoot(browser, path, f"{out}/end.png", ["End"])
            shoot(browser, path, f"{out}/bbb_split.png", ["End"], "layer1.weight_rho")
            demo = gradient_flow.compute(seed=0)["explorer"]
            small = demo.save(os.path.join(folder, "gradient_flow_explorer.html"))
            shoot(browser, small, f"{out}/explorer.png", ["End"] + ["ArrowLeft"] * 6)
        browser.close()
    print(f"file: {size / 1e6:.3f} MB ({size} bytes; bound 2 MB = {2 * 1024 * 1024} bytes)")
    print(f"made by Python in {build:.2f} s (layouts by dot included)")
    print(f"opened in headless Chromium, {args.loads} loads: median "
          f"{statistics.median(seconds):.3f} s, max {max(seconds):.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
