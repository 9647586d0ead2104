"""How the gradients of mu and rho flow, on a network small enough to draw.

A Bayes by Backprop network with 2 inputs, 3 hidden units and 1 output, one training step:

1. the loss f = log q(w | theta) - log P(w) - log P(D | w) and its parts;
2. the drawing of its graph (SVG and PNG), values and gradients on nodes and edges, the
   prior and posterior densities collapsed into boxes so it reads on one screen, and the
   full graph as SVG;
3. the forward and reverse evaluation traces (in ``tape.txt``; a short excerpt printed);
4. per layer, the paper's decomposition read off the graph,
   grad_mu = df/dw + df/dmu and grad_rho = df/dw * eps * sigmoid(rho) + df/drho,
   next to the same terms derived by hand (``microbbb.bbb.by_hand``) and torch's gradients
   of the same model with the same eps, and whether they agree;
5. one SGD step.

Run: ``python demos/gradient_flow.py --out out/gradient_flow`` or
``microbbb demo gradient-flow --out out/gradient_flow``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from ..bbb import BayesianMLP, Gaussian, by_hand
from ..optim import SGD
from ..viz import bbb_split, draw, save, trace_table

PARTS = ("weight_mu", "bias_mu", "weight_rho", "bias_rho")


def _show(a: np.ndarray) -> str:
    return np.array2string(
        np.asarray(a).ravel(), precision=4, suppress_small=True, max_line_width=60
    )


def _torch_gradients(model: BayesianMLP, x: np.ndarray, y: np.ndarray, eps: list) -> Any:
    try:
        from ..bbb import to_torch
    except ImportError:  # pragma: no cover - torch is optional for this demo
        return None
    try:
        twin = to_torch(model)
    except ImportError:
        return None
    f, _ = twin.loss(x, y, n_samples=1, eps=eps)
    f.backward()
    return twin


def run(out: str = "out/gradient_flow", seed: int = 0, echo: Any = print) -> dict[str, Any]:
    """Run the demo, write its files into ``out``, and return the numbers it reports."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 2))
    y = x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.standard_normal(8)
    model = BayesianMLP([2, 3, 1], likelihood=Gaussian(0.5), seed=seed, rho_init=-3.0)
    optimizer = SGD(model.parameters(), lr=1e-3)
    report: list[str] = []

    def say(text: str = "") -> None:
        report.append(text)
        echo(text)

    say("Bayes by Backprop, one step, on a 2-3-1 network (8 data points, 1 weight sample)")
    say("=" * 80)
    optimizer.zero_grad()
    loss = model.loss(x, y, n_samples=1)
    for layer in model.layers:
        layer.weight.retain_grad()  # keep df/dw, the total derivative through w
        layer.bias.retain_grad()
    loss.backward()
    say(f"f = log q - log P(w) - log P(D|w) = {loss.log_q.item():.4f}"
        f" - ({loss.log_prior.item():.4f}) - ({loss.log_likelihood.item():.4f})"
        f" = {loss.item():.4f}")  # fmt: skip

    compact = draw(loss, collapse=[f"layer{i}/log_prior" for i in (1, 2)]
                   + [f"layer{i}/log_q" for i in (1, 2)] + ["likelihood", "loss"])  # fmt: skip
    files = [save(compact, os.path.join(out, f"gradient_flow.{fmt}")) for fmt in ("svg", "png")]
    files.append(save(draw(loss), os.path.join(out, "gradient_flow_full.svg")))
    say("\nDrawings: " + ", ".join(files))

    table = trace_table(loss)
    with open(os.path.join(out, "tape.txt"), "w", encoding="utf-8") as file:
        file.write(str(table) + "\n")
    say(f"\nThe tape: {len(table.forward)} forward rows, {len(table.reverse)} adjoint updates"
        f" (all in {os.path.join(out, 'tape.txt')}). Its first forward rows:")  # fmt: skip
    for line in str(table).splitlines()[1:12]:
        say("    " + line)

    hand = by_hand.for_model(model, x, y, loss.eps)
    twin = _torch_gradients(model, x, y, loss.eps)
    say("\nThe paper's decomposition, per layer (read off the graph | by hand | torch):")
    worst = 0.0
    for i, layer in enumerate(model.layers):
        split = bbb_split(loss, layer)
        for name in PARTS:
            kind = name.split("_")[0]
            terms = hand.terms[i][kind]
            ours = split[name]
            if name.endswith("mu"):
                rows = [("df/dw  (through w)", ours["through_w"], terms["df_dw"]),
                        ("df/dmu (direct, log q)", ours["direct"], terms["df_dmu"])]  # fmt: skip
            else:
                rows = [("df/dw * eps * sigmoid(rho)", ours["through_w"], terms["pathwise_rho"]),
                        ("df/drho (direct, log q)", ours["direct"], terms["df_drho"])]  # fmt: skip
            reference = None
            if twin is not None:
                reference = getattr(twin.layers[i], name).grad.numpy()
            rows.append(("grad = sum", ours["total"], hand.grads[i][name]))
            say(f"\n  layer{i + 1}.{name}")
            for label, from_graph, from_hand in rows:
                worst = max(worst, _relative(from_graph, from_hand))
                say(f"    {label:28s} {_show(from_graph)}")
                say(f"    {'':28s} {_show(from_hand)}  (by hand)")
            if reference is not None:
                worst = max(worst, _relative(ours["total"], reference))
                say(f"    {'':28s} {_show(reference)}  (torch)")
        dw = layer.weight.grad
        check = dw * model.layers[i].weight_eps / (1 + np.exp(-layer.weight_rho.data))
        worst = max(worst, _relative(check, split["weight_rho"]["through_w"]))

    agree = worst < 1e-9
    say(f"\nLargest relative difference between the three: {worst:.2e} ->"
        f" {'they agree' if agree else 'THEY DISAGREE'} (bound 1e-9)")  # fmt: skip
    if twin is None:
        say("(torch is not installed: pip install torch to compare with it too)")
    optimizer.step()
    after = model.loss(x, y, n_samples=1, eps=loss.eps).item()
    say(f"After one SGD step (lr 1e-3), the same eps gives f = {after:.4f}"
        f" (was {loss.item():.4f})")  # fmt: skip
    with open(os.path.join(out, "report.txt"), "w", encoding="utf-8") as file:
        file.write("\n".join(report) + "\n")
    return {"loss": loss.item(), "loss_after": after, "worst": worst, "agree": agree,
            "files": files, "torch": twin is not None}  # fmt: skip


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.abs(b).max()), 1e-300)
    return float(np.abs(a - b).max() / scale)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/gradient_flow", help="folder for the files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(args.out, args.seed)
    if not result["agree"]:
        raise SystemExit(1)
