"""Classification with Bayes by Backprop against MC dropout and a deep ensemble: error,
likelihood, calibration, out-of-distribution detection, and SNR pruning.

Two scikit-learn data sets that ship with the library (nothing is downloaded):

- Digits: 1797 8x8 images of handwritten digits, 10 classes, pixels scaled to [0, 1]; a
  fixed stratified split (random_state 0, whatever --seed) of 1297 training and 500 test
  images; every network [64, 100, 10], 800 epochs of 13 minibatches of 100, Adam 3e-3.
- Breast cancer: 569 tumours, 30 features standardised with the training split's mean and
  std, a fixed stratified split of 400 / 169; every network [30, 32, 1] (one logit), 200
  epochs of 4 minibatches of 100.

Five models on each, with the same network and budget:

- BBB, T = 0.1 (recommended): a BayesianMLP with the paper's scale-mixture prior
  (pi = 1/2, sigma1 = 1, sigma2 = e^-6), rho_init = -5, trained by ``fit`` with the
  complexity cost times a posterior temperature T = 0.1 (``--temperature``);
- BBB, T = 1: the same, with the paper's objective;
- the plain network (``microbbb.nn.MLP``, maximum likelihood);
- MC dropout: the plain network with dropout p = 0.2 on the hidden units, in training and
  at test time, 100 masks averaged;
- a deep ensemble of 5 plain networks (different seeds), their probabilities averaged.

BBB averages its predictive probabilities over 100 weight samples. Every score comes
from ``microbbb.metrics``: test error, NLL (mean per example), ECE (10 equal-width bins of
the confidence), Brier score; the OOD experiment trains every model again on the digits
0-4 and scores how well predictive entropy and mutual information tell the test digits
5-9 from 0-4 (AUROC).

Why T = 0.1. With the paper's objective (T = 1) the complexity cost dominates on this
small training set (1297 images for 7510 weights): about 8 600 nats against 280 for
-log P(D|w) at the end (seed 0), the posterior stays wide and the averaged predictions
are less confident than they are right (mean confidence 0.90 for an accuracy of 0.97):
worse NLL and ECE than the plain network (seeds 0-2: NLL 0.145, 0.135, 0.148 against
0.102, 0.105, 0.115). ``diagnose`` says so (the complexity cost is about 30 times the
data term). With T = 0.1 (measured, seeds 0-2, 800 epochs):

  digits          test error %        NLL                    ECE
  BBB, T = 0.1    2.2 / 1.8 / 2.4     0.067 / 0.064 / 0.075  0.012 / 0.015 / 0.012
  BBB, T = 1      3.4 / 2.8 / 2.6     0.145 / 0.135 / 0.148  0.063 / 0.059 / 0.074
  plain           2.8 / 2.6 / 3.4     0.102 / 0.105 / 0.115  0.023 / 0.018 / 0.028
  MC dropout      2.2 / 2.0 / 2.8     0.067 / 0.057 / 0.075  0.013 / 0.009 / 0.016
  ensemble of 5   3.0 / 2.6 / 3.0     0.088 / 0.062 / 0.071  0.019 / 0.014 / 0.018

  breast cancer
  BBB, T = 0.1    4.7 / 4.7 / 4.7     0.122 / 0.115 / 0.125  0.030 / 0.031 / 0.034
  BBB, T = 1      3.6 / 4.1 / 5.3     0.104 / 0.092 / 0.108  0.024 / 0.018 / 0.031
  plain           3.6 / 4.7 / 4.7     0.134 / 0.135 / 0.152  0.035 / 0.038 / 0.041
  MC dropout      4.7 / 4.7 / 4.7     0.124 / 0.139 / 0.135  0.036 / 0.034 / 0.036
  ensemble of 5   4.7 / 4.7 / 4.7     0.147 / 0.139 / 0.153  0.035 / 0.037 / 0.038

On digits BBB with T = 0.1 beats the plain network on every score and seed; MC dropout
and the ensemble are its equals (NLL within about 0.02 either way). On breast cancer
(169 test tumours: one tumour is 0.6 points) it has a lower NLL and ECE than the plain
network on every seed and the same error on seeds 1 and 2, two tumours more on seed 0
(4.7 % against 3.6 %); there the paper's T = 1 is better still on NLL and ECE: the plain
network overfits, and the full complexity cost is a good regulariser when it does not
dwarf the data term. T = 0.3 was no better: on digits (seed 0) its ECE was 0.025, above
the plain network's. OOD (digits 5-9 after training on 0-4): every model tells them
apart with an entropy AUROC of 0.92-0.95 (seeds 0-2), the plain network lowest on seeds
1 and 2 (0.918, 0.926); mutual information does as well as entropy here, not better.

The pruning curve (section 5.1 of the paper) removes the weights of lowest
signal-to-noise ratio |mu| / sigma from the T = 0.1 network and measures the test error
of the network with the mean weights w = mu (no sampling). Seed 0: 2.4 % unpruned, 2.0 %
with 75 % removed, 4.4 % at 90 %, then fast growth (16.8 % at 95 %). About 40 % of the
weights sit in the prior's narrow component (sigma ~ sigma2 = e^-6 = 0.0025).

The complexity cost is spread uniformly over the minibatches (``kl_scheme="uniform"``,
pi_i = 1/M; ``--kl-scheme blundell`` for the paper's pi_i = 2^(M - i) / (2^M - 1), which
with Adam moves the posterior towards the prior much more slowly).

The code is in three parts: ``compute`` returns every number as plain data,
``draw_pictures`` makes the pictures from them, and ``report_text`` fills the report's
words, which are in ``templates/classification.txt``.

Run: ``microbbb demo classification --out out/classification``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from .. import functional as F
from .. import metrics
from ..bbb import BayesianMLP, Bernoulli, Categorical, ScaleMixturePrior, fit, prune, snr
from ..engine import no_grad
from ..nn import MLP
from .common import (
    Report,
    Template,
    matplotlib_pyplot,
    save_figure,
    stage,
    train_deterministic,
)

DIGITS_SIZES = [64, 100, 10]
CANCER_SIZES = [30, 32, 1]
PRUNE_FRACTIONS = (0.0, 0.5, 0.75, 0.9, 0.95, 0.98)
N_BINS = 10
N_SAMPLES = 100  # weight samples (dropout masks) averaged for BBB's (MC dropout's) predictions
SPLIT_SEED = 0  # the train/test splits are the same for every --seed
TEMPERATURE = 0.1  # the recommended BBB: the complexity cost times 0.1 (fit's temperature)
DROPOUT = 0.2  # MC dropout: the share of hidden units dropped, in training and prediction
ENSEMBLE = 5  # plain networks in the deep ensemble
OOD_CLASSES = 5  # the OOD experiment trains on digits 0-4; 5-9 are out of distribution
METHODS = ("bbb", "bbb_paper", "mlp", "dropout", "ensemble")


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
    temperature: float = TEMPERATURE,
) -> dict[str, Any]:
    """Train, score and prune every model; return the numbers and arrays (no printing)."""
    settings = {"epochs": epochs, "cancer_epochs": cancer_epochs, "kl_scheme": kl_scheme}
    settings |= {"temperature": temperature, "seed": seed}
    x_train, x_test, y_train, y_test = digits_data()
    stage(f"digits: BBB (T = {temperature:g} and T = 1) and the plain networks", progress)
    digits_task = {"sizes": DIGITS_SIZES, "likelihood": Categorical, "nll": F.categorical_nll}
    runs = _train_all(digits_task, (x_train, y_train, x_test), settings, epochs, progress)
    digits = scored(runs, y_test)
    model = runs["bbb"]["model"]
    digits |= _bbb_costs(runs["bbb"]["history"]) | {"n_train": len(x_train)}
    stage("digits: pruning by signal-to-noise ratio", progress)
    digits["pruning"] = _pruning(model, x_test, y_test)
    digits["weights"] = _weights(model)
    stage(f"digits: trained on 0-{OOD_CLASSES - 1}, shown 5-9 (OOD)", progress)
    ood = _ood(digits_task, (x_train, x_test, y_train, y_test), settings, epochs, progress)
    stage(f"breast cancer: every network, {cancer_epochs} epochs", progress)
    return {"settings": settings, "digits": digits, "ood": ood, "cancer": _cancer(settings)}


def _train_all(
    task: dict[str, Any], data: tuple, settings: dict[str, Any], epochs: int, progress: bool
) -> dict[str, dict[str, Any]]:
    """Every method trained on (x_train, y_train) with the same budget; for each, the class
    probabilities of every sample (weight sample, dropout mask or ensemble member) on
    x_test, shape (S, N, C) or (S, N), and the training time."""
    x_train, y_train, x_test = data
    seed = settings["seed"]
    budget = {"epochs": epochs, "batch_size": 100, "lr": 3e-3, "seed": seed}
    sizes, likelihood = task["sizes"], task["likelihood"]
    runs = {}
    for name, temperature in (("bbb", settings["temperature"]), ("bbb_paper", 1.0)):
        begin = time.monotonic()
        model = BayesianMLP(sizes, prior=ScaleMixturePrior(), likelihood=likelihood(), seed=seed)
        history = fit(
            model, x_train, y_train, kl_scheme=settings["kl_scheme"], progress=progress,
            temperature=temperature, **budget,
        )  # fmt: skip
        probs = _samples(model.forward, x_test)
        runs[name] = {"probs": probs, "model": model, "history": history}
        runs[name]["seconds"] = time.monotonic() - begin
    labels = y_train.reshape(-1, 1).astype(np.float64) if sizes[-1] == 1 else y_train
    return runs | train_plain(sizes, task["nll"], (x_train, labels, x_test), budget)


def train_plain(
    sizes: list[int],
    nll: Any,
    data: tuple,
    budget: dict[str, Any],
    n_samples: int = N_SAMPLES,
    dtype: Any = np.float64,
) -> dict[str, dict[str, Any]]:
    """The plain network, MC dropout (p = DROPOUT, ``n_samples`` masks) and the deep ensemble
    of ENSEMBLE plain networks (seeds budget["seed"] + 1000 k), every network an MLP of
    ``sizes`` trained by ``train_deterministic`` on (x_train, y_train) = ``data[:2]`` with
    ``budget`` (epochs, batch_size, lr, seed) and the summed-NLL function ``nll``.

    For each method, "probs": the class probabilities of every sample (dropout mask or
    ensemble member) on x_test = ``data[2]``, shape (S, N, C) or (S, N); "seconds": its
    training time, test predictions included; "train_nll": the last epoch's mean training
    NLL of its first network. The mnist demo uses it too."""
    x_train, y_train, x_test = data
    seed = budget["seed"]
    plain = {"mlp": [(seed, 0.0)], "dropout": [(seed, DROPOUT)]}
    plain["ensemble"] = [(seed + 1000 * k, 0.0) for k in range(ENSEMBLE)]
    runs = {}
    for name, members in plain.items():
        begin, probs, nlls = time.monotonic(), [], []
        for member_seed, dropout in members:
            net = MLP(sizes, seed=member_seed, dtype=dtype, dropout=dropout)
            history = train_deterministic(
                net, x_train, y_train, nll, **budget | {"seed": member_seed}
            )
            probs.append(_samples(net.forward, x_test, n_samples if dropout else 1))
            nlls.append(history[-1])
        runs[name] = {"probs": np.concatenate(probs), "seconds": time.monotonic() - begin}
        runs[name]["train_nll"] = nlls[0]
    return runs


def _samples(forward: Any, x: np.ndarray, n: int = N_SAMPLES) -> np.ndarray:
    """Class probabilities of n calls of a network: (n, N, C), or (n, N) of P(y = 1)."""
    with no_grad():
        return metrics.probabilities(np.stack([forward(x).data for _ in range(n)]))


def scored(runs: dict[str, dict[str, Any]], labels: np.ndarray) -> dict[str, Any]:
    """Each method's scores (metrics.classification_scores of its averaged probabilities),
    its averaged probabilities and its training time, from ``runs`` ({method: {"probs": (S,
    N, C) or (S, N), "seconds": ...}}). The mnist demo uses it too."""
    result: dict[str, Any] = {"labels": labels, "n_test": len(labels)}
    for name, run in runs.items():
        probs = run["probs"].mean(axis=0)
        result[name] = metrics.classification_scores(probs, labels, N_BINS)
        result[f"{name}_probs"], result[f"{name}_seconds"] = probs, run["seconds"]
    return result


def _bbb_costs(history: Any) -> dict[str, float]:
    """The last epoch of the recommended BBB: complexity cost (with the temperature, as
    trained), -log P(D|w) and training accuracy; History sums an epoch's minibatches."""
    return {
        "complexity": history.complexity_weight[-1] * history.complexity[-1],
        "train_nll": history.nll[-1],
        "train_accuracy": history.accuracy[-1],
    }


def _ood(
    task: dict[str, Any], data: tuple, settings: dict[str, Any], epochs: int, progress: bool
) -> dict[str, Any]:
    """Every method trained on the digits 0-4 only; how well its predictive entropy and its
    mutual information tell the test digits 5-9 from the test digits 0-4 (AUROC)."""
    x_train, x_test, y_train, y_test = data
    keep = y_train < OOD_CLASSES
    task = task | {"sizes": [DIGITS_SIZES[0], DIGITS_SIZES[1], OOD_CLASSES]}
    inside = y_test < OOD_CLASSES
    runs = _train_all(task, (x_train[keep], y_train[keep], x_test), settings, epochs, progress)
    result: dict[str, Any] = {"n_train": int(keep.sum()), "n_in": int(inside.sum())}
    result["n_out"] = int((~inside).sum())
    for name, run in runs.items():
        probs = run["probs"]
        entropy, information = metrics.predictive_entropy(probs), metrics.mutual_information(probs)
        result[name] = {
            "entropy_auroc": metrics.ood_auroc(entropy[inside], entropy[~inside]),
            "mi_auroc": metrics.ood_auroc(information[inside], information[~inside]),
            "error_in": metrics.error_rate(probs[:, inside].mean(axis=0), y_test[inside]),
            "entropy_in": entropy[inside],
            "entropy_out": entropy[~inside],
            "single": len(probs) == 1,  # one prediction: no mutual information to speak of
        }
    return result


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
        row["error"] = metrics.error_rate(pruned.predict(x_test, mode="mean").probs, y_test)
        rows.append(row)
    # The unpruned network with w = mu, computed without prune() as a check of the 0 % row.
    # (After the pruning loop: prune() of a model whose last pass used mode="mean" used to fail.)
    mean_error = metrics.error_rate(model.predict(x_test, mode="mean").probs, y_test)
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


def _cancer(settings: dict[str, Any]) -> dict[str, Any]:
    """Every method on breast cancer: their scores and training times."""
    x_train, x_test, y_train, y_test = cancer_data()
    task = {"sizes": CANCER_SIZES, "likelihood": Bernoulli, "nll": F.bernoulli_nll}
    data = (x_train, y_train, x_test)
    runs = _train_all(task, data, settings, settings["cancer_epochs"], progress=False)
    return scored(runs, y_test) | {"n_train": len(x_train)}


NAMES = {
    "bbb": "BBB, T = {temperature:g}",
    "bbb_paper": "BBB, T = 1",
    "mlp": "plain network",
    "dropout": "MC dropout",
    "ensemble": "ensemble of 5",
}


def figures(numbers: dict[str, Any]) -> dict[str, Any]:
    """The figures the demo returns: scores, training costs, OOD AUROCs, pruning curve."""
    digits, pruning, ood = numbers["digits"], numbers["digits"]["pruning"], numbers["ood"]
    result = {
        "digits_bbb_complexity": digits["complexity"],
        "digits_bbb_train_nll": digits["train_nll"],
        **_scores_by_name("digits", digits),
        "pruning": [(row["fraction"], row["error"]) for row in pruning["rows"]],
        "digits_bbb_error_mean_weights": pruning["mean_weights_error"],
    }
    for name in METHODS:
        result |= {f"ood_{name}_{key}": ood[name][key] for key in ("entropy_auroc", "mi_auroc")}
    return result | _scores_by_name("cancer", numbers["cancer"])


def _scores_by_name(data: str, scored: dict[str, Any]) -> dict[str, float]:
    """{"digits_bbb_error": ..., "digits_mlp_nll": ...}: the scores of every method."""
    return {
        f"{data}_{model}_{key}": value for model in METHODS for key, value in scored[model].items()
    }


def report_text(numbers: dict[str, Any], pictures: list[str], template: Template) -> str:
    """The report: templates/classification.txt filled with the numbers."""
    settings, digits, cancer = numbers["settings"], numbers["digits"], numbers["cancer"]
    pruning, ood = digits["pruning"], numbers["ood"]
    values = {
        **settings,
        "sizes": DIGITS_SIZES,
        "n_samples": N_SAMPLES,
        "n_bins": N_BINS,
        "dropout": DROPOUT,
        "ensemble": ENSEMBLE,
        "n_train": digits["n_train"],
        "n_test": digits["n_test"],
        "seconds": _seconds_text(digits, settings),
        "train_accuracy": 100 * digits["train_accuracy"],
        "complexity": digits["complexity"],
        "train_nll": digits["train_nll"],
        "digits_scores": _scores_text(digits, _names(settings), template),
        "below_sigma": 100 * pruning["below_sigma"],
        "narrow": 100 * pruning["narrow"],
        "n_weights": pruning["n_weights"],
        "sigma2": pruning["sigma2"],
        "pruning_rows": "\n".join(_pruning_row(row, template) for row in pruning["rows"]),
        "mean_weights_error": 100 * pruning["mean_weights_error"],
        "bbb_error": 100 * digits["bbb"]["error"],
        "ood_n_train": ood["n_train"],
        "ood_n_in": ood["n_in"],
        "ood_n_out": ood["n_out"],
        "ood_rows": "\n".join(_ood_row(ood, name, settings, template) for name in METHODS),
        "cancer_sizes": CANCER_SIZES,
        "cancer_n_train": cancer["n_train"],
        "cancer_n_test": cancer["n_test"],
        "cancer_seconds": _seconds_text(cancer, settings),
        "cancer_scores": _scores_text(cancer, _names(settings), template),
        "pictures": "\n".join(pictures),
    }
    return template.fill("report", values)


def _name(method: str, settings: dict[str, Any]) -> str:
    return NAMES[method].format(temperature=settings["temperature"])


def _names(settings: dict[str, Any]) -> dict[str, str]:
    """{method: its name in the report and the pictures}, for every method, in order."""
    return {method: _name(method, settings) for method in METHODS}


def _seconds_text(scored: dict[str, Any], settings: dict[str, Any]) -> str:
    return ", ".join(f"{_name(m, settings)} {scored[f'{m}_seconds']:.1f} s" for m in METHODS)


def _scores_text(scored: dict[str, Any], names: dict[str, str], template: Template) -> str:
    """The [scores] section: a [scores_row] for each method of ``names`` ({method: name}),
    from ``scored[method]`` (metrics.classification_scores). The mnist demo uses it too."""
    rows = []
    for method, label in names.items():
        s = scored[method]
        values = {"name": label, "error": 100 * s["error"]}
        values |= {key: s[key] for key in ("nll", "ece", "brier", "confidence")}
        rows.append(template.fill("scores_row", values))
    return template.fill("scores", {"rows": "\n".join(rows)})


def _ood_row(ood: dict[str, Any], name: str, settings: dict[str, Any], template: Template) -> str:
    row = ood[name]
    information = "-" if row["single"] else f"{row['mi_auroc']:.3f}"
    values = {"name": _name(name, settings), "entropy_auroc": row["entropy_auroc"]}
    values |= {"mi_auroc": information, "error_in": 100 * row["error_in"]}
    return template.fill("ood_row", values)


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
    temperature: float = TEMPERATURE,
) -> dict[str, Any]:
    """Train BBB and the plain networks on digits and breast cancer, prune, draw; return the
    figures."""
    _need_sklearn()
    plt = matplotlib_pyplot()
    say = Report(out, echo)
    numbers = compute(epochs, cancer_epochs, seed, kl_scheme, progress, temperature)
    pictures = draw_pictures(plt, numbers, out)
    say(report_text(numbers, pictures, Template.of("classification")))
    say.save()
    return figures(numbers)


# --- pictures --------------------------------------------------------------------------------


def draw_pictures(plt: Any, numbers: dict[str, Any], out: str) -> list[str]:
    """Draw the pruning curve, the weight histograms, the reliability diagrams and the
    entropy histograms of the OOD experiment."""
    digits, settings = numbers["digits"], numbers["settings"]
    curve = [(row["fraction"], row["error"]) for row in digits["pruning"]["rows"]]
    return [
        _draw_pruning(
            plt,
            os.path.join(out, "classification_pruning.png"),
            curve,
            digits["mlp"]["error"],
            _name("bbb", settings),
        ),
        _draw_weights(
            plt,
            os.path.join(out, "classification_weights.png"),
            digits["weights"],
            _name("bbb", settings),
        ),
        _draw_calibration(
            plt, os.path.join(out, "classification_calibration.png"), digits, _names(settings)
        ),
        _draw_ood(plt, os.path.join(out, "classification_ood.png"), numbers["ood"], settings),
    ]


def _draw_pruning(
    plt: Any,
    path: str,
    curve: list,
    plain_error: float,
    name: str,
    data: str = "Digits",
    plain_name: str = "plain network",
) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    removed = np.array([100 * f for f, _ in curve])
    kept = 100 - removed  # plotted on a log scale, so that 90, 95, 98 % are spread out
    errors = np.array([100 * e for _, e in curve])
    ax.plot(kept, errors, "o-", color="tab:blue", label=f"{name}, lowest-SNR weights removed")
    for k, e in zip(kept, errors, strict=True):
        ax.annotate(
            f"{e:.1f} %", (k, e), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8
        )
    label = f"{plain_name}, unpruned"
    ax.axhline(100 * plain_error, color="tab:red", linestyle="--", label=label)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks(kept)
    ax.set_xticklabels([f"{r:g}" for r in removed])
    ax.minorticks_off()
    ax.set_xlabel("weights removed (%), axis spaced by the log of the weights kept")
    ax.set_ylabel("test error (%), mean weights w = mu")
    ax.set_ylim(0, errors.max() * 1.15 + 1)
    ax.set_title(f"{data}: pruning the {name} network by signal-to-noise ratio")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return save_figure(plt, fig, path, dpi=110)


def _draw_weights(
    plt: Any, path: str, weights: dict[str, Any], name: str = "BBB", data: str = "Digits"
) -> str:
    return save_figure(plt, _weights_figure(plt, weights, name, data), path)


def _weights_figure(
    plt: Any, weights: dict[str, Any], name: str = "BBB", data: str = "Digits"
) -> Any:
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
        f"{data}: the {every_mu.size} weights of the trained {name} network"
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


COLORS = {
    "bbb": "tab:blue",
    "bbb_paper": "tab:cyan",
    "mlp": "tab:red",
    "dropout": "tab:orange",
    "ensemble": "tab:green",
}


def _draw_calibration(
    plt: Any,
    path: str,
    scored: dict[str, Any],
    names: dict[str, str],
    data: str = "Digits",
    n_samples: int = N_SAMPLES,
) -> str:
    """One reliability diagram (and its bin counts) for each method of ``names``
    ({method: name}), from ``scored[f"{method}_probs"]``, ``scored[method]["ece"]`` and
    ``scored["labels"]``; the mnist demo draws its four models with it."""
    grid = {"height_ratios": [3, 1.2]}
    columns = len(names)
    size = (max(4.2 * columns, 11), 6.5)  # at least as wide as the title
    fig, axes = plt.subplots(2, columns, figsize=size, sharex=True, gridspec_kw=grid, squeeze=False)
    labels = scored["labels"]
    for column, (method, label) in enumerate(names.items()):
        table = metrics.reliability(scored[f"{method}_probs"], labels, N_BINS)
        title = f"{label}: ECE {scored[method]['ece']:.3f}"
        _draw_reliability(axes[0, column], table, title, COLORS[method])
        _draw_bin_counts(axes[1, column], table, len(labels), COLORS[method])
        if column:
            axes[0, column].set_ylabel("")
            axes[1, column].set_ylabel("")
    averages = {
        "bbb": f"{n_samples} weight samples for BBB",
        "dropout": f"{n_samples} masks for MC dropout",
        "ensemble": f"{ENSEMBLE} networks for the ensemble",
    }
    parts = ", ".join(text for method, text in averages.items() if method in names)
    averaged = f"\npredictions averaged over {parts}" if parts else ""  # a line of its own
    fig.suptitle(
        f"{data}: reliability diagrams on the {len(labels)} test images,"
        f" {N_BINS} equal-width confidence bins{averaged}"
    )
    return save_figure(plt, fig, path)


def _draw_ood(plt: Any, path: str, ood: dict[str, Any], settings: dict[str, Any]) -> str:
    columns = len(METHODS)
    fig, axes = plt.subplots(1, columns, figsize=(4.2 * columns, 3.8), sharey=True)
    top = max(max(ood[n]["entropy_in"].max(), ood[n]["entropy_out"].max()) for n in METHODS)
    bins = np.linspace(0, max(top, np.log(OOD_CLASSES), 1e-3), 30)
    for ax, name in zip(axes, METHODS, strict=True):
        row = ood[name]
        ax.hist(row["entropy_in"], bins=bins, color="tab:gray", alpha=0.45, label="digits 0-4")
        style = {"histtype": "step", "linewidth": 1.8, "color": COLORS[name]}
        ax.hist(row["entropy_out"], bins=bins, label="digits 5-9 (OOD)", **style)
        ax.axvline(np.log(OOD_CLASSES), color="black", linestyle=":", label="log 5 (uniform)")
        ax.set_yscale("log")
        ax.set_title(f"{_name(name, settings)}: entropy AUROC {row['entropy_auroc']:.3f}")
        ax.set_xlabel("predictive entropy (nats)")
        ax.legend(fontsize=8, loc="upper right")
    axes[0].set_ylabel("test images (log)")
    fig.suptitle(
        f"Trained on digits 0-4 only: predictive entropy on {ood['n_in']} test images of 0-4"
        f" and {ood['n_out']} of 5-9 (never seen); the AUROC tells them apart"
    )
    return save_figure(plt, fig, path)


def _draw_reliability(ax: Any, table: metrics.Reliability, title: str, color: str) -> None:
    width, left, used = 1 / N_BINS, table.edges[:-1], table.count > 0
    accuracy = np.where(used, table.accuracy, 0.0)
    style = {"width": width, "align": "edge", "color": color, "alpha": 0.75, "edgecolor": "black"}
    ax.bar(left, accuracy, label="accuracy in the bin", **style)
    confidence = table.confidence[used]
    ax.plot(confidence, confidence, "kx", label="mean confidence in the bin")
    ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfect calibration")
    for x, n in zip(left[used], table.count[used], strict=True):  # counts at the foot
        ax.text(x + width / 2, 0.015, f"n={n}", ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.38)  # headroom above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)


def _draw_bin_counts(ax: Any, table: metrics.Reliability, n_examples: int, color: str) -> None:
    style = {"width": 1 / N_BINS, "align": "edge", "color": color, "alpha": 0.75}
    ax.bar(table.edges[:-1], table.count, edgecolor="black", **style)
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
    parser.add_argument(
        "--temperature",
        type=float,
        default=TEMPERATURE,
        help="posterior temperature of the recommended BBB (1: the paper's objective)",
    )
    args = parser.parse_args(argv)
    run(
        args.out,
        epochs=args.epochs,
        cancer_epochs=args.cancer_epochs,
        seed=args.seed,
        kl_scheme=args.kl_scheme,
        temperature=args.temperature,
    )
