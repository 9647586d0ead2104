"""The ``microbbb`` command: ``microbbb demo NAME --out DIR``.

Each demo prints its progress and writes its pictures and a ``report.txt`` into DIR.
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
    )
    demo.add_argument("name", choices=list(DEMOS), help="which demo")
    demo.add_argument("--out", default=None, help="folder for the pictures and the report")
    demo.add_argument("--seed", type=int, default=0)
    parser.epilog = "demos: " + ", ".join(DEMOS) + "  (microbbb demo NAME --out DIR)"
    args = parser.parse_args(argv)
    if args.command != "demo":
        parser.print_help()
        return 0
    module = importlib.import_module(f"microbbb.demos.{DEMOS[args.name][0]}")
    out = args.out or f"out/{args.name}"
    module.main(["--out", out, "--seed", str(args.seed)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
