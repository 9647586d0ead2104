"""Classification with Bayes by Backprop: error, likelihood, calibration, and SNR pruning.

Two scikit-learn data sets that ship with the library (nothing is downloaded):

- Digits: 1797 8x8 images of handwritten digits, 10 classes, pixels scaled to [0, 1]; a
  fixed stratified split (random_state 0, whatever --seed) of 1297 training and 500 test
  images. A BayesianMLP [64, 100, 10] with the paper's scale-mixture prior
  (``ScaleMixturePrior()``: pi = 1/2, sigma1 = 1, sigma2 = e^-6) and a Categorical
  likelihood, against the same MLP trained deterministically (maximum likelihood, no
  prior) on the engine with the same budget: 800 epochs of 13 minibatches of 100, Adam
  3e-3.
- Breast cancer: 569 tumours, 30 features standardised with the training split's mean and
  std, a fixed stratified split of 400 / 169; BayesianMLP [30, 32, 1] with a Bernoulli
  likelihood against the same deterministic MLP, 200 epochs of 4 minibatches of 100.

For every model the report gives the test error, the test negative log-likelihood (mean
per example; BBB uses its predictive probabilities averaged over 100 weight samples) and
the expected calibration error (``expected_calibration_error``: 10 equal-width bins of the
confidence, the mean |accuracy - confidence| weighted by the bins' share of examples).

The complexity cost is spread uniformly over the minibatches (``kl_scheme="uniform"``,
pi_i = 1/M; ``--kl-scheme blundell`` for the other). The paper's scheme ``"blundell"``
(pi_i = 2^(M - i) / (2^M - 1)) puts half of each epoch's complexity cost on the first of
the 13 minibatches and almost none on the last ten; with Adam, which rescales every step,
the posterior then moves towards the prior much more slowly. Both schemes minimise the
same expected loss f over an epoch, and uniform gets much further with the same budget:
after 800 epochs (seed 0) f was about 8 900 nats against 15 400 (complexity cost 8 600
against 15 200, -log P(D|w) 280 against 180). blundell's closer fit to the data gave a
lower test error and NLL (2.0 % and 0.130 against 3.4 % and 0.145; ECE 0.067 against
0.063), but its SNRs told the useful weights apart far less well: removing 90 % of the
weights by SNR gave 11.8 % test error against 5.6 % (seed 1: 23.2 % against 4.2 %).
The pruning curve is part of this demo, so "uniform" is used.

What to expect (seeds 0-2, see report.txt): on digits both networks err on 2.6-3.4 % of
the test images. On this small training set (1297 images for 7510 weights) the complexity cost
dominates f (about 30 times -log P(D|w)), the posterior stays wide, and BBB's averaged
predictions are less confident than they are accurate (mean confidence about 0.91 for
an accuracy of 0.97): its NLL and ECE are worse than the plain MLP's, which is already
well calibrated on digits. On breast cancer the plain MLP overfits and is overconfident,
and BBB has the lower NLL and ECE. Most of BBB's weights can be removed: the pruning
curve (section 5.1 of the paper) removes the weights of lowest signal-to-noise ratio
|mu| / sigma and measures the test error of the network with the mean weights w = mu (no
sampling; unpruned, it differs from the 100-sample average by about a point). The error
moves by at most a point up to 75 % removed, is 4-6 % at 90 % (seeds 0-2), and grows fast
from 95 % on. The histograms show why: about half of the weights have been pulled into
the prior's narrow component (|mu| ~ 0.001, sigma ~ sigma2 = e^-6 = 0.0025), and three
quarters have |mu| < sigma.

The code is in three parts: ``compute`` returns every number as plain data, ``draw_pictures``
makes the pictures from them, and ``report_text`` fills the report's words,
which are in ``templates/classification.txt``.

Run: ``microbbb demo classification --out out/classification``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from .. import functional as F
from ..bbb import BayesianMLP, Bernoulli, Categorical, ScaleMixturePrior, fit, prune, snr
from ..nn import MLP
from .common import (
    Report,
    Template,
    matplotlib_pyplot,
    predict_deterministic,
    stage,
    train_deterministic,
)

DIGITS_SIZES = [64, 100, 10]
CANCER_SIZES = [30, 32, 1]
PRUNE_FRACTIONS = (0.0, 0.5, 0.75, 0.9, 0.95, 0.98)
N_BINS = 10
N_SAMPLES = 100  # weight samples averaged for BBB's predictive probabilities
SPLIT_SEED = 0  # the train/test splits are the same for every --seed


# --- metrics -----------------------------------------------------------------------------------


def as_class_probabilities(probs: np.ndarray) -> np.ndarray:
    """Probabilities as an (N, C) array; a 1-D array is read as P(y = 1) of a binary task."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        return np.stack([1.0 - probs, probs], axis=1)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must have shape (N,) or (N, C), got {probs.shape}")
    return probs


def error_rate(probs: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of examples whose most probable class is not the label."""
    probs = as_class_probabilities(probs)
    return float(np.mean(probs.argmax(axis=1) != np.asarray(labels)))


def mean_nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """-mean_n log p_n[y_n] in nats (probabilities floored at 1e-300, so never infinite)."""
    probs = as_class_probabilities(probs)
    picked = probs[np.arange(len(probs)), np.asarray(labels)]
    return float(-np.mean(np.log(np.maximum(picked, 1e-300))))


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> dict[str, Any]:
    """Per-bin counts, accuracies and mean confidences of a classifier's predictions.

    The confidence of a prediction is the probability of the predicted (most probable)
    class. Bin b of ``n_bins`` equal-width bins holds the confidences in
    (b / n_bins, (b + 1) / n_bins]; the first bin also holds 0. Empty bins have count 0
    and NaN accuracy and confidence.
    """
    probs = as_class_probabilities(probs)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right=True: bin i holds edges[i] < c <= edges[i + 1]; c = 0 falls in bin 0
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / count
    return {"edges": edges, "count": count, "accuracy": accuracy, "confidence": mean_confidence}


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS
) -> float:
    """ECE = sum over bins b of (n_b / N) * |accuracy_b - mean confidence_b|.

    ``probs``: (N, C) class probabilities, or (N,) probabilities of class 1 for a binary
    task. The bins are the ``n_bins`` equal-width bins of ``reliability`` (confidence =
    probability of the predicted class); empty bins contribute nothing. 0 is perfect
    calibration: in every bin the predictions are right as often as they claim.
    """
    table = reliability(probs, labels, n_bins)
    used = table["count"] > 0
    share = table["count"][used] / table["count"].sum()
    gaps = np.abs(table["accuracy"][used] - table["confidence"][used])
    return float(np.sum(share * gaps))


def scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Test error, mean NLL and ECE of predicted probabilities, plus the mean confidence."""
    return {
        "error": error_rate(probs, labels),
        "nll": mean_nll(probs, labels),
        "ece": expected_calibration_error(probs, labels),
        "confidence": float(as_class_probabilities(probs).max(axis=1).mean()),
    }


# --- data ------------------------------------------------------------------------------------


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits in [0, 1], split 1297 / 500 (stratified, fixed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data / 16.0
    return tuple(
        train_test_split(
            x, data.target, test_size=500, stratify=data.target, random_state=SPLIT_SEED
        )
    )


def cancer_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's breast cancer set, split 400 / 169, standardised by the training split."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=169, stratify=data.target, random_state=SPLIT_SEED
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


# --- the run ---------------------------------------------------------------------------------


def _need_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            "the classification demo reads scikit-learn's bundled data sets:"
            " pip install 'microbbb[demo]' (or scikit-learn)"
        ) from error


def compute(
    epochs: int = 800,
    cancer_epochs: int = 200,
    seed: int = 0,
    kl_scheme: str = "uniform",
    progress: bool = True,
) -> dict[str, Any]:
    """Train, score and prune every model; return the numbers and arrays (no printing)."""
    x_train, x_test, y_train, y_test = digits_data()
    stage(f"digits: Bayes by Backprop and the plain MLP, {epochs} epochs each", progress)
    model, digits = _digits(x_train, x_test, y_train, y_test, epochs, seed, kl_scheme, progress)
    stage("digits: pruning by signal-to-noise ratio", progress)
    digits["pruning"] = _pruning(model, x_test, y_test)
    digits["weights"] = _weights(model)
    settings = {"epochs": epochs, "cancer_epochs": cancer_epochs, "kl_scheme": kl_scheme}
    stage(f"breast cancer: both networks, {cancer_epochs} epochs each", progress)
    return {
        "settings": settings,
        "digits": digits,
        "cancer": _cancer(cancer_epochs, seed, progress),
    }


def _digits(
    x_train: np.ndarray,
    x_test: np.ndarray,
    y_train: np.ndarray,
    y_test: np.ndarray,
    epochs: int,
    seed: int,
    kl_scheme: str,
    progress: bool,
) -> tuple[BayesianMLP, dict[str, Any]]:
    """BBB and the plain MLP on digits: their scores, predictions and training times."""
    budget = {"epochs": epochs, "batch_size": 100, "lr": 3e-3, "seed": seed}  # the same for both
    begin = time.monotonic()
    model = BayesianMLP(
        DIGITS_SIZES, prior=ScaleMixturePrior(), likelihood=Categorical(), seed=seed
    )
    history = fit(model, x_train, y_train, kl_scheme=kl_scheme, progress=progress, **budget)
    bbb_probs = model.predict(x_test, n_samples=N_SAMPLES).probs
    bbb = scores(bbb_probs, y_test)
    bbb_seconds = time.monotonic() - begin
    begin = time.monotonic()
    plain = MLP(DIGITS_SIZES, seed=seed)
    train_deterministic(plain, x_train, y_train, F.categorical_nll, **budget)
    plain_probs = Categorical().predictive(predict_deterministic(plain, x_test)[None]).probs
    mlp = scores(plain_probs, y_test)
    return model, {
        "n_train": len(x_train),
        "n_test": len(x_test),
        "bbb": bbb,
        "mlp": mlp,
        "bbb_seconds": bbb_seconds,
        "mlp_seconds": time.monotonic() - begin,
        # History sums an epoch's minibatches: complexity = sum_i pi_i (log q - log P(w))
        "complexity": history.complexity[-1],
        "train_nll": history.nll[-1],
        "train_accuracy": history.accuracy[-1],
        "bbb_probs": bbb_probs,
        "mlp_probs": plain_probs,
        "labels": y_test,
    }


def _pruning(model: BayesianMLP, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """The test error with the lowest-SNR weights removed, for each of PRUNE_FRACTIONS."""
    ratios = np.sort(np.concatenate([r.ravel() for r in snr(model)]))
    sigmas = np.concatenate([layer.weight_sigma().ravel() for layer in model.layers])
    rows = []
    for fraction in PRUNE_FRACTIONS:
        pruned = prune(model, fraction)
        n_removed = int(round(fraction * ratios.size))
        row = {"fraction": fraction, "weights_left": ratios.size - n_removed}
        row["largest_snr"] = ratios[n_removed - 1] if n_removed else None  # of those removed
        row["error"] = error_rate(pruned.predict(x_test, mode="mean").probs, y_test)
        rows.append(row)
    # The unpruned network with w = mu, computed without prune() as a check of the 0 % row.
    # (After the pruning loop: prune() of a model whose last pass used mode="mean" used to fail.)
    mean_error = error_rate(model.predict(x_test, mode="mean").probs, y_test)
    return {
        "n_weights": ratios.size,
        "below_sigma": np.mean(ratios < 1),  # the share of weights with |mu| < sigma
        "narrow": np.mean(sigmas < 2 * model.prior.sigma2),
        "sigma2": model.prior.sigma2,
        "rows": rows,
        "mean_weights_error": mean_error,
    }


def _weights(model: BayesianMLP) -> dict[str, Any]:
    """Every layer's weight means and standard deviations, for the histograms."""
    return {
        "mu": [layer.weight_mu.data.ravel() for layer in model.layers],
        "sigma": [layer.weight_sigma().ravel() for layer in model.layers],
        "shapes": [(layer.in_features, layer.out_features) for layer in model.layers],
        "sizes": model.sizes,
        "sigma2": model.prior.sigma2,
    }


def _cancer(epochs: int, seed: int, progress: bool) -> dict[str, Any]:
    """BBB and the plain MLP on breast cancer: their scores and training time."""
    x_train, x_test, y_train, y_test = cancer_data()
    budget = {"epochs": epochs, "batch_size": 100, "lr": 3e-3, "seed": seed}  # the same for both
    begin = time.monotonic()
    model = BayesianMLP(CANCER_SIZES, prior=ScaleMixturePrior(), likelihood=Bernoulli(), seed=seed)
    fit(model, x_train, y_train, kl_scheme="uniform", progress=progress, **budget)
    bbb = scores(model.predict(x_test, n_samples=N_SAMPLES).probs, y_test)
    plain = MLP(CANCER_SIZES, seed=seed)
    labels = y_train.reshape(-1, 1).astype(np.float64)
    train_deterministic(plain, x_train, labels, F.bernoulli_nll, **budget)
    logits = predict_deterministic(plain, x_test)
    mlp = scores(Bernoulli().predictive(logits[None]).probs, y_test)
    return {
        "n_train": len(x_train),
        "n_test": len(x_test),
        "bbb": bbb,
        "mlp": mlp,
        "seconds": time.monotonic() - begin,
    }


def figures(numbers: dict[str, Any]) -> dict[str, Any]:
    """The figures the demo returns: scores, training costs and the pruning curve."""
    digits, pruning = numbers["digits"], numbers["digits"]["pruning"]
    result = {
        "digits_bbb_complexity": digits["complexity"],
        "digits_bbb_train_nll": digits["train_nll"],
        **_scores_by_name("digits", digits),
        "pruning": [(row["fraction"], row["error"]) for row in pruning["rows"]],
        "digits_bbb_error_mean_weights": pruning["mean_weights_error"],
    }
    return result | _scores_by_name("cancer", numbers["cancer"])


def _scores_by_name(data: str, scored: dict[str, Any]) -> dict[str, float]:
    """{"digits_bbb_error": ..., "digits_mlp_nll": ...}: the scores of both models."""
    return {
        f"{data}_{model}_{key}": value
        for model in ("bbb", "mlp")
        for key, value in scored[model].items()
    }


def report_text(numbers: dict[str, Any], pictures: list[str], template: Template) -> str:
    """The report: templates/classification.txt filled with the numbers."""
    settings, digits, cancer = numbers["settings"], numbers["digits"], numbers["cancer"]
    pruning = digits["pruning"]
    values = {
        **settings,
        "sizes": DIGITS_SIZES,
        "n_samples": N_SAMPLES,
        "n_bins": N_BINS,
        "n_train": digits["n_train"],
        "n_test": digits["n_test"],
        "bbb_seconds": digits["bbb_seconds"],
        "mlp_seconds": digits["mlp_seconds"],
        "train_accuracy": 100 * digits["train_accuracy"],
        "complexity": digits["complexity"],
        "train_nll": digits["train_nll"],
        "digits_scores": _scores_text(digits, template),
        "below_sigma": 100 * pruning["below_sigma"],
        "narrow": 100 * pruning["narrow"],
        "n_weights": pruning["n_weights"],
        "sigma2": pruning["sigma2"],
        "pruning_rows": "\n".join(_pruning_row(row, template) for row in pruning["rows"]),
        "mean_weights_error": 100 * pruning["mean_weights_error"],
        "bbb_error": 100 * digits["bbb"]["error"],
        "cancer_sizes": CANCER_SIZES,
        "cancer_n_train": cancer["n_train"],
        "cancer_n_test": cancer["n_test"],
        "cancer_seconds": cancer["seconds"],
        "cancer_scores": _scores_text(cancer, template),
        "pictures": "\n".join(pictures),
    }
    return template.fill("report", values)


def _scores_text(scored: dict[str, Any], template: Template) -> str:
    values = {}
    for name in ("bbb", "mlp"):
        s = scored[name]
        values |= {f"{name}_error": 100 * s["error"], f"{name}_accuracy": 1 - s["error"]}
        values |= {f"{name}_{key}": s[key] for key in ("nll", "ece", "confidence")}
    return template.fill("scores", values)


def _pruning_row(row: dict[str, Any], template: Template) -> str:
    largest = row["largest_snr"]
    values = {"removed": 100 * row["fraction"], "weights_left": row["weights_left"]}
    values["largest_snr"] = "-" if largest is None else f"{largest:.3g}"
    return template.fill("pruning_row", values | {"error": 100 * row["error"]})


def run(
    out: str = "out/classification",
    epochs: int = 800,
    cancer_epochs: int = 200,
    seed: int = 0,
    kl_scheme: str = "uniform",
    echo: Any = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Train BBB and plain MLPs on digits and breast cancer, prune, draw; return the figures."""
    _need_sklearn()
    plt = matplotlib_pyplot()
    say = Report(out, echo)
    numbers = compute(epochs, cancer_epochs, seed, kl_scheme, progress)
    pictures = draw_pictures(plt, numbers, out)
    say(report_text(numbers, pictures, Template.of("classification")))
    say.save()
    return figures(numbers)


# --- pictures --------------------------------------------------------------------------------


def draw_pictures(plt: Any, numbers: dict[str, Any], out: str) -> list[str]:
    """Draw the pruning curve, the weight histograms and the reliability diagrams."""
    digits = numbers["digits"]
    curve = [(row["fraction"], row["error"]) for row in digits["pruning"]["rows"]]
    return [
        _draw_pruning(
            plt, os.path.join(out, "classification_pruning.png"), curve, digits["mlp"]["error"]
        ),
        _draw_weights(plt, os.path.join(out, "classification_weights.png"), digits["weights"]),
        _draw_calibration(
            plt,
            os.path.join(out, "classification_calibration.png"),
            digits["bbb_probs"],
            digits["mlp_probs"],
            digits["labels"],
            digits["bbb"]["ece"],
            digits["mlp"]["ece"],
        ),
    ]


def _draw_pruning(
    plt: Any, path: str, curve: list, plain_error: float, data: str = "Digits"
) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    removed = np.array([100 * f for f, _ in curve])
    kept = 100 - removed  # plotted on a log scale, so that 90, 95, 98 % are spread out
    errors = np.array([100 * e for _, e in curve])
    ax.plot(kept, errors, "o-", color="tab:blue", label="BBB, lowest-SNR weights removed")
    for k, e in zip(kept, errors, strict=True):
        ax.annotate(
            f"{e:.1f} %", (k, e), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8
        )
    ax.axhline(100 * plain_error, color="tab:red", linestyle="--", label="plain MLP, unpruned")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks(kept)
    ax.set_xticklabels([f"{r:g}" for r in removed])
    ax.minorticks_off()
    ax.set_xlabel("weights removed (%), axis spaced by the log of the weights kept")
    ax.set_ylabel("test error (%), mean weights w = mu")
    ax.set_ylim(0, errors.max() * 1.15 + 1)
    ax.set_title(f"{data}: pruning the BBB network by signal-to-noise ratio")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_weights(plt: Any, path: str, weights: dict[str, Any], data: str = "Digits") -> str:
    fig = _weights_figure(plt, weights, data)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _weights_figure(plt: Any, weights: dict[str, Any], data: str = "Digits") -> Any:
    """Histograms of mu, sigma and |mu| / sigma; each legend where it hides no bar."""
    mus, sigmas = weights["mu"], weights["sigma"]
    ratios = [np.abs(m) / s for m, s in zip(mus, sigmas, strict=True)]
    names = [f"layer {i + 1} ({n}x{m})" for i, (n, m) in enumerate(weights["shapes"])]
    every_mu, every_sigma = np.concatenate(mus), np.concatenate(sigmas)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    bins = np.linspace(every_mu.min(), every_mu.max(), 80)
    axes[0].hist(mus, bins=bins, stacked=True, label=names)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("mu")
    axes[0].set_ylabel("number of weights (log scale)")
    axes[0].set_title("posterior means mu")
    bins = np.geomspace(every_sigma.min(), every_sigma.max(), 60)
    axes[1].hist(sigmas, bins=bins, stacked=True, label=names)
    axes[1].set_xscale("log")
    sigma2 = weights["sigma2"]
    label = f"prior's narrow sigma2 = {sigma2:.4f}"
    axes[1].axvline(sigma2, color="gray", linestyle=":", label=label)
    axes[1].set_xlabel("sigma = softplus(rho) (log scale)")
    axes[1].set_ylabel("number of weights")
    axes[1].set_title("posterior standard deviations sigma")
    _draw_snr(axes[2], ratios, names)
    for ax in axes:  # "best": the place that covers the fewest bars (sigma: beside its spike)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"{data}: the {every_mu.size} weights of the trained BBB network"
        f" {weights['sizes']} (biases not shown)"
    )
    fig.tight_layout()
    return fig


def _draw_snr(ax: Any, ratios: list[np.ndarray], names: list[str]) -> None:
    every_ratio = np.concatenate(ratios)
    low = max(every_ratio.min(), 1e-4)
    bins = np.geomspace(low, every_ratio.max(), 60)
    ax.hist([np.maximum(r, low) for r in ratios], bins=bins, stacked=True, label=names)
    ax.set_xscale("log")
    for fraction, style in ((0.5, ":"), (0.9, "--"), (0.98, "-.")):
        label = f"{100 * fraction:g} % of the weights below"
        ax.axvline(np.quantile(every_ratio, fraction), color="black", linestyle=style, label=label)
    ax.set_xlabel("SNR = |mu| / sigma (log scale)")
    ax.set_ylabel("number of weights")
    ax.set_title("signal-to-noise ratios (pruning removes the lowest)")


def _draw_calibration(
    plt: Any,
    path: str,
    bbb_probs: np.ndarray,
    plain_probs: np.ndarray,
    labels: np.ndarray,
    bbb_ece: float,
    plain_ece: float,
    data: str = "Digits",
) -> str:
    grid = {"height_ratios": [3, 1.2]}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, gridspec_kw=grid)
    models = (
        (bbb_probs, "BBB (100 weight samples averaged)", bbb_ece, "tab:blue"),
        (plain_probs, "plain MLP", plain_ece, "tab:red"),
    )
    for column, (probs, name, ece, color) in enumerate(models):
        table = reliability(probs, labels)
        _draw_reliability(axes[0, column], table, f"{name}: ECE {ece:.3f}", color)
        _draw_bin_counts(axes[1, column], table, len(labels), color)
    fig.suptitle(
        f"{data}: reliability diagrams on the {len(labels)} test images,"
        f" {N_BINS} equal-width confidence bins"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _draw_reliability(ax: Any, table: dict[str, Any], title: str, color: str) -> None:
    width, left, used = 1 / N_BINS, table["edges"][:-1], table["count"] > 0
    accuracy = np.where(used, table["accuracy"], 0.0)
    style = {"width": width, "align": "edge", "color": color, "alpha": 0.75, "edgecolor": "black"}
    ax.bar(left, accuracy, label="accuracy in the bin", **style)
    confidence = table["confidence"][used]
    ax.plot(confidence, confidence, "kx", label="mean confidence in the bin")
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfect calibration")
    for x, n in zip(left[used], table["count"][used], strict=True):  # counts at the foot
        ax.text(x + width / 2, 0.015, f"n={n}", ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.38)  # headroom above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)


def _draw_bin_counts(ax: Any, table: dict[str, Any], n_examples: int, color: str) -> None:
    style = {"width": 1 / N_BINS, "align": "edge", "color": color, "alpha": 0.75}
    ax.bar(table["edges"][:-1], table["count"], edgecolor="black", **style)
    ax.set_yscale("log")
    ax.set_ylim(0.5, n_examples * 2)
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("test images (log)")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/classification")
    parser.add_argument("--epochs", type=int, default=800, help="digits epochs")
    parser.add_argument("--cancer-epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kl-scheme",
        choices=["uniform", "blundell"],
        default="uniform",
        help="complexity weights of the digits minibatches",
    )
    args = parser.parse_args(argv)
    run(
        args.out,
        epochs=args.epochs,
        cancer_epochs=args.cancer_epochs,
        seed=args.seed,
        kl_scheme=args.kl_scheme,
    )
