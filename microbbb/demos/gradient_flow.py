"""How the gradients of mu and rho flow, on a network small enough to draw.

A Bayes by Backprop network with 2 inputs, 3 hidden units and 1 output, one training step:

1. the loss f = log q(w | theta) - log P(w) - log P(D | w) and its parts;
2. the drawing of its graph (SVG and PNG), values and gradients in the boxes (a box that
   feeds several ops lists the part of its gradient from each), layer 1, the likelihood
   and layer 2's prior and posterior densities collapsed into boxes so it reads on one
   screen; and the full graph as SVG;
3. the forward and reverse evaluation traces (in ``tape.txt``; a short excerpt printed);
4. per layer, the paper's decomposition read off the graph,
   grad_mu = df/dw + df/dmu and grad_rho = df/dw * eps * sigmoid(rho) + df/drho,
   next to the same terms derived by hand (``microbbb.bbb.by_hand``) and torch's gradients
   of the same model with the same eps, and whether they agree;
5. one SGD step.

The code is in three parts: ``compute`` returns every number as plain data, ``save_files``
makes the drawings and tape.txt from them, and ``report_text`` fills the report's words,
which are in ``templates/gradient_flow.txt``.

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
from ..viz import bbb_split, draw, explore, save, trace_table
from .common import Report, Template

PARTS = ("weight_mu", "bias_mu", "weight_rho", "bias_rho")
# The compact drawing (gradient_flow.png, sized for a screen) folds these groups into boxes:
# all of layer 1, the prior and posterior densities of layer 2 and the likelihood. Layer 2
# stays open (mu, rho, eps -> sigma -> w, and the direct path into log q), and so does f =
# log_q - log_prior - log_likelihood. gradient_flow_full.svg draws every op.
COLLAPSE = ["layer1", "layer2/log_q", "layer2/log_prior", "likelihood"]


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


def compute(seed: int = 0) -> dict[str, Any]:
    """One training step: the loss and its parts, its graph and tape, and the paper's split."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 2))
    y = x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.standard_normal(8)
    model = BayesianMLP([2, 3, 1], likelihood=Gaussian(0.5), seed=seed, rho_init=-3.0)
    optimizer = SGD(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    loss = model.loss(x, y, n_samples=1)
    for layer in model.layers:
        layer.weight.retain_grad()  # keep df/dw, the total derivative through w
        layer.bias.retain_grad()
    loss.backward()
    table = trace_table(loss)
    compact = draw(loss, collapse=COLLAPSE, edge_labels="node")
    compact.graph_attr["ranksep"] = "0.2"  # shorter edges: 1273 px high instead of 1380
    numbers = {
        "loss": loss.item(),
        "log_q": loss.log_q.item(),
        "log_prior": loss.log_prior.item(),
        "log_likelihood": loss.log_likelihood.item(),
        "graphs": {  # what the drawings show, recorded before the step changes mu and rho
            "gradient_flow": compact,
            "gradient_flow_full": draw(loss, edge_labels="node"),
        },
        "explorer": explore(loss, title="one BBB step, 2-3-1 network"),  # also before the step
        "tape": str(table),
        "forward_rows": len(table.forward),
        "reverse_rows": len(table.reverse),
        **_decomposition(model, x, y, loss),
    }
    optimizer.step()
    numbers["loss_after"] = model.loss(x, y, n_samples=1, eps=loss.eps).item()
    return numbers


def _decomposition(model: BayesianMLP, x: np.ndarray, y: np.ndarray, loss: Any) -> dict:
    """Each parameter's gradient split as in the paper: read off the graph, by hand, torch."""
    hand = by_hand.for_model(model, x, y, loss.eps)
    twin = _torch_gradients(model, x, y, loss.eps)
    parameters, worst = [], 0.0
    for i, layer in enumerate(model.layers):
        split = bbb_split(loss, layer)
        for name in PARTS:
            kind = name.split("_")[1]  # the hand-derived terms of a mu, or of a rho
            terms, ours = hand.terms[i][name.split("_")[0]], split[name]
            by_hand_terms = ("df_dw", "df_dmu") if kind == "mu" else ("pathwise_rho", "df_drho")
            parameter = {
                "name": f"layer{i + 1}.{name}",
                "kind": kind,
                "through_w": (ours["through_w"], terms[by_hand_terms[0]]),
                "direct": (ours["direct"], terms[by_hand_terms[1]]),
                "grad": (ours["total"], hand.grads[i][name]),
                "torch": None if twin is None else getattr(twin.layers[i], name).grad.numpy(),
            }
            for term in ("through_w", "direct", "grad"):
                worst = max(worst, _relative(*parameter[term]))
            if parameter["torch"] is not None:
                worst = max(worst, _relative(ours["total"], parameter["torch"]))
            parameters.append(parameter)
        check = layer.weight.grad * layer.weight_eps / (1 + np.exp(-layer.weight_rho.data))
        worst = max(worst, _relative(check, split["weight_rho"]["through_w"]))
    return {
        "parameters": parameters,
        "worst": worst,
        "agree": worst < 1e-9,
        "torch": twin is not None,
    }


def save_files(numbers: dict[str, Any], out: str) -> dict[str, Any]:
    """Render the drawings (SVG, PNG, full SVG) and write tape.txt; return their paths."""
    compact, full = numbers["graphs"]["gradient_flow"], numbers["graphs"]["gradient_flow_full"]
    drawings = [save(compact, os.path.join(out, f"gradient_flow.{fmt}")) for fmt in ("svg", "png")]
    drawings.append(save(full, os.path.join(out, "gradient_flow_full.svg")))
    tape = os.path.join(out, "tape.txt")
    with open(tape, "w", encoding="utf-8") as file:
        file.write(numbers["tape"] + "\n")
    explorer = numbers["explorer"].save(os.path.join(out, "explorer.html"))
    return {"drawings": drawings, "tape": tape, "explorer": explorer}


def report_text(numbers: dict[str, Any], files: dict[str, Any], template: Template) -> str:
    """The report: templates/gradient_flow.txt filled with the numbers."""
    names = ("log_q", "log_prior", "log_likelihood", "loss", "forward_rows", "reverse_rows")
    values = {name: numbers[name] for name in names + ("worst", "loss_after")}
    values["drawings"] = ", ".join(files["drawings"])
    values["tape"] = files["tape"]
    values["explorer"] = files["explorer"]
    values["tape_start"] = "\n".join(numbers["tape"].splitlines()[1:12])
    values["parameters"] = "\n".join(_parameter_text(p, template) for p in numbers["parameters"])
    values["verdict"] = template.fill("agree" if numbers["agree"] else "disagree", {})
    values["without_torch"] = "" if numbers["torch"] else template.fill("without_torch", {})
    return template.fill("report", values)


def _parameter_text(parameter: dict[str, Any], template: Template) -> str:
    values = {"name": parameter["name"]}
    for term in ("through_w", "direct", "grad"):
        values[term], values[f"{term}_by_hand"] = (_show(a) for a in parameter[term])
    reference = parameter["torch"]
    values["torch"] = (
        "" if reference is None else template.fill("torch", {"grad": _show(reference)})
    )
    return template.fill(parameter["kind"], values)


def run(out: str = "out/gradient_flow", seed: int = 0, echo: Any = print) -> dict[str, Any]:
    """Run the demo, write its files into ``out``, and return the numbers it reports."""
    say = Report(out, echo)
    numbers = compute(seed)
    files = save_files(numbers, out)
    say(report_text(numbers, files, Template.of("gradient_flow")))
    say.save(timed=False)
    figures = {k: numbers[k] for k in ("loss", "loss_after", "worst", "agree")}
    return figures | {"files": files["drawings"], "torch": numbers["torch"]}


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
