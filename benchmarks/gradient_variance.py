"""The numbers of docs/gradient_variance.md: how noisy the gradients of mu and rho are with
each estimator, on the question's setting.

The setting is the question demo's variant (a) (microbbb/demos/question.py): a 3-32-1 ReLU
network, 100 points with x ~ N(0, 1), labels ~ Bernoulli(0.6), a Bernoulli likelihood, a
N(0, 1) prior, the library's rho_init = -5. ``gradient_variance`` measures each estimator
("reparam", "local", "flipout") with S = 1 and 4 samples and both complexity costs (MC,
closed form), twice: at the start (seed 0), and after the demo's training (Adam, lr 1e-2,
S = 2, full batch, --steps steps with the plain estimator).

Prints, for each point, a Markdown table of the mean variance of each parameter tensor's
gradient with the plain estimator and the ratios of the two tricks to it, the median SNRs,
and then the library's own printed table; ``--plot`` saves the figure of the trained point.

Run:  python benchmarks/gradient_variance.py [--draws 1000] [--steps 2000] [--plot FILE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from microbbb.bbb import Bernoulli, GradientVariance, Setting, gradient_variance
from microbbb.demos.question import make_data, make_model, train


def markdown(result: GradientVariance, n_samples: int) -> str:
    """Per parameter tensor: the plain estimator's mean variance (MC), the ratios of local
    and flipout to it (MC and closed form), and the three median SNRs (MC), for S samples."""
    head = (
        "| parameter | reparam var | local / reparam | flipout / reparam | local / reparam"
        " (closed KL) | flipout / reparam (closed KL) | SNR reparam | SNR local | SNR flipout |"
    )
    lines = [head, "|---|" + "---:|" * 8]
    for name in result.names:
        variance = {s: float(v[name].mean()) for s, v in result.variance.items()}

        def mean_variance(estimator: str, kl: str, variance: dict = variance) -> float:
            return variance[Setting(estimator, n_samples, kl)]

        def snr(estimator: str, name: str = name) -> float:
            return float(np.nanmedian(result.snr(Setting(estimator, n_samples, "mc"), name)))

        cells = [f"{mean_variance('reparam', 'mc'):.3g}"]
        for kl in ("mc", "closed_form"):
            for estimator in ("local", "flipout"):
                ratio = mean_variance(estimator, kl) / mean_variance("reparam", kl)
                cells.append(f"{ratio:.3g}")
        cells += [f"{snr(e):.3g}" for e in ("reparam", "local", "flipout")]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(title: str, result: GradientVariance) -> None:
    print(f"## {title}\n")
    for s in (1, 4):
        print(f"S = {s}:\n\n{markdown(result, s)}\n")
    print("```text")
    print(result.table())
    print("```\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="gradient draws per setting")
    parser.add_argument("--steps", type=int, default=2000, help="training steps before the 2nd")
    parser.add_argument("--plot", default=None, help="save the trained point's figure here")
    args = parser.parse_args()
    x, labels, _ = make_data(100, np.random.default_rng(0))
    model = make_model(Bernoulli(), seed=0)
    options = {"n_samples": (1, 4), "draws": args.draws}
    start = time.perf_counter()
    report("At the start (rho = -5)", gradient_variance(model, x, labels, **options))
    train(model, x, labels, args.steps)
    sigma = np.concatenate([layer.weight_sigma().ravel() for layer in model.layers])
    title = f"After {args.steps} steps (weight sigma: median {np.median(sigma):.3g})"
    trained = gradient_variance(model, x, labels, **options)
    report(title, trained)
    if args.plot:
        trained.plot(args.plot, f"The question's 3-32-1 setting, {title.lower()}:"
                     f" variance over {args.draws} draws")  # fmt: skip
    print(f"({args.draws} draws per setting, {time.perf_counter() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
