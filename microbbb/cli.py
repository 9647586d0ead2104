"""The ``microbbb`` command: ``microbbb demo NAME --out DIR``.

Each demo prints its progress and writes its pictures and a ``report.txt`` into DIR. Other
options go on to the demo's own command line: ``microbbb demo regression --noise-reading
variance``, ``microbbb demo classification --epochs 300``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

DEMOS = {
    "regression": ("regression", "the paper's toy curve: BBB vs a plain MLP, uncertainty band"),
    "classification": (
        "classification",
        "digits and breast cancer: BBB, MC dropout, an ensemble: NLL, calibration, OOD, pruning",
    ),
    "gradient-flow": ("gradient_flow", "a 2-3-1 network drawn with its mu and rho gradients"),
    "question": ("question", "the setting of the question microbbb answers, and what broke"),
    "mnist": ("mnist", "the paper's [784, 400, 400, 10] on 5000 real MNIST images, pruning"),
    "bandit": ("bandit", "Thompson sampling on the UCI mushrooms vs greedy networks, regret"),
}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen demo."""
    parser = argparse.ArgumentParser(
        prog="microbbb",
        description="microbbb: learn reverse-mode autodiff and Bayes by Backprop.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    demo = commands.add_parser(
        "demo",
        help="run a demo that writes pictures and a report",
        description="Run a demo. " + "; ".join(f"{k}: {v[1]}" for k, v in DEMOS.items()),
        epilog="Other options go on to the demo, e.g. microbbb demo regression"
        " --noise-reading variance, microbbb demo classification --epochs 300.",
    )
    demo.add_argument("name", choices=list(DEMOS), help="which demo")
    demo.add_argument("--out", default=None, help="folder for the pictures and the report")
    demo.add_argument("--seed", type=int, default=0)
    parser.epilog = "demos: " + ", ".join(DEMOS) + "  (microbbb demo NAME --out DIR)"
    args, extra = parser.parse_known_args(argv)
    if args.command != "demo":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        parser.print_help()
        return 0
    module = importlib.import_module(f"microbbb.demos.{DEMOS[args.name][0]}")
    out = args.out or f"out/{args.name}"
    module.main(["--out", out, "--seed", str(args.seed), *extra])  # the demo checks extra
    return 0


if __name__ == "__main__":
    sys.exit(main())
