"""Scores of a classifier's predicted probabilities: plain numpy, for any model.

Every function takes class probabilities, never logits (``probabilities`` turns logits
into them), in one of two shapes:

- ``probs`` of one prediction per example: (N, C) with rows summing to 1, or (N,) read as
  P(y = 1) of a binary task (as ``Bernoulli`` predicts);
- ``sample_probs`` of S Monte-Carlo weight samples (or ensemble members, or dropout
  masks): (S, N, C), or (S, N) of P(y = 1).

``labels`` are integer classes 0..C-1, shape (N,). Bad input raises ``ValueError`` (or
``TypeError``) naming the argument; no number is computed from probabilities that are not
probabilities.

What each score says (all in nats where they are information):

- ``error_rate``: the share of examples whose most probable class is not the label.
- ``nll``: -mean_n log p_n[y_n], the held-out negative log-likelihood (lower is better).
- ``brier_score``: mean_n sum_c (p_nc - [y_n = c])^2 for (N, C) (Brier 1950, between 0
  and 2); for (N,) the binary (p_n - y_n)^2 (between 0 and 1, scikit-learn's
  ``brier_score_loss``): the same binary task given as (N, 2) scores twice as much.
- ``reliability`` / ``expected_calibration_error``: confidence = probability of the
  predicted class, in ``n_bins`` equal-width bins; ECE = sum_b (n_b / N) |acc_b - conf_b|.
- ``predictive_entropy`` H[mean_s p_s] (total uncertainty), ``expected_entropy``
  mean_s H[p_s] (aleatoric), ``mutual_information`` = their difference (epistemic: how
  much the samples disagree; 0 for a single sample or identical samples).
- ``auroc`` / ``ood_auroc``: the area under the ROC curve of a score that should be higher
  on one group (out-of-distribution inputs) than on the other; 0.5 is chance, 1 perfect.
  Ties count one half (the Mann-Whitney statistic), as scikit-learn's ``roc_auc_score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TOLERANCE = 1e-6  # how far from 1 a row of probabilities may sum (float32 softmax: ~1e-7)


# --- checking ----------------------------------------------------------------------------------


def _array(value: Any, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be an array of numbers, got {type(value).__name__}"
        ) from error
    if array.size and not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values: probabilities must be finite")
    return array


def _check_probabilities(array: np.ndarray, name: str) -> None:
    if array.size == 0:
        raise ValueError(f"{name} is empty: there is nothing to score")
    if array.min() < 0 or array.max() > 1:
        raise ValueError(
            f"{name} must lie in [0, 1], got values from {array.min():.6g} to"
            f" {array.max():.6g}: pass probabilities (probabilities(logits) converts logits)"
        )


def as_class_probabilities(probs: Any, name: str = "probs") -> np.ndarray:
    """Checked probabilities as an (N, C) array; (N,) is read as P(y = 1) of a binary task."""
    probs = _array(probs, name)
    if probs.ndim == 1:
        _check_probabilities(probs, name)
        return np.stack([1.0 - probs, probs], axis=1)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (N, C) with C >= 2 classes, or (N,) of P(y = 1);"
            f" got {probs.shape}"
        )
    _check_probabilities(probs, name)
    _check_sums(probs, name)
    return probs


def as_sample_probabilities(sample_probs: Any, name: str = "sample_probs") -> np.ndarray:
    """Checked samples of probabilities as (S, N, C); (S, N) is read as P(y = 1)."""
    probs = _array(sample_probs, name)
    if probs.ndim == 2:
        _check_probabilities(probs, name)
        return np.stack([1.0 - probs, probs], axis=2)
    if probs.ndim != 3 or probs.shape[2] < 2:
        raise ValueError(
            f"{name} must have shape (S, N, C): S samples of N examples' C >= 2 class"
            f" probabilities, or (S, N) of P(y = 1); got {probs.shape}. One prediction"
            " per example is (1, N, C)."
        )
    _check_probabilities(probs, name)
    _check_sums(probs, name)
    return probs


def _check_sums(probs: np.ndarray, name: str) -> None:
    worst = np.abs(probs.sum(axis=-1) - 1).max()
    if worst > TOLERANCE:
        raise ValueError(
            f"{name}: each example's class probabilities must sum to 1; one sums to"
            f" {1 + worst:.6g} or {1 - worst:.6g} (off by {worst:.3g}). Pass probabilities"
            " (probabilities(logits) applies the softmax), not logits or scores."
        )


def _check_labels(labels: Any, probs: np.ndarray, name: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind == "f" and labels.size and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)  # whole numbers stored as floats, e.g. 0.0 / 1.0
    if labels.dtype.kind not in "iub":
        raise TypeError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    if labels.shape != probs.shape[:1]:
        raise ValueError(
            f"{name} has shape {labels.shape}, the probabilities are for {len(probs)} examples"
            f" (shape ({len(probs)},) needed)"
        )
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(
            f"{name} must lie in 0..{probs.shape[1] - 1} ({probs.shape[1]} classes), got"
            f" values from {labels.min()} to {labels.max()}"
        )
    return labels


# --- from logits -------------------------------------------------------------------------------


def probabilities(logits: Any) -> np.ndarray:
    """Class probabilities from logits: the softmax over the last axis, or for a last axis
    of size 1 (a Bernoulli network's single output) the sigmoid, dropping that axis."""
    logits = _array(logits, "logits")
    if logits.ndim == 0:
        raise ValueError("logits must have at least one axis (the classes)")
    if logits.shape[-1] == 1:
        z = logits[..., 0]
        return np.exp(-np.logaddexp(0.0, -z))  # sigmoid without overflow
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=-1, keepdims=True)


# --- scores of one prediction per example ------------------------------------------------------


def error_rate(probs: Any, labels: Any) -> float:
    """The share of examples whose most probable class is not the label."""
    probs = as_class_probabilities(probs)
    return float(np.mean(probs.argmax(axis=1) != _check_labels(labels, probs)))


def nll(probs: Any, labels: Any) -> float:
    """-mean_n log p_n[y_n] in nats (probabilities floored at 1e-300, so never infinite)."""
    probs = as_class_probabilities(probs)
    picked = probs[np.arange(len(probs)), _check_labels(labels, probs)]
    return float(-np.mean(np.log(np.maximum(picked, 1e-300))))


def brier_score(probs: Any, labels: Any) -> float:
    """mean_n sum_c (p_nc - [y_n = c])^2 for (N, C); (p_n - y_n)^2 for (N,) of P(y = 1)."""
    binary = np.ndim(probs) == 1
    probs = as_class_probabilities(probs)
    labels = _check_labels(labels, probs)
    if binary:
        return float(np.mean((probs[:, 1] - labels) ** 2))
    one_hot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))


@dataclass
class Reliability:
    """A reliability diagram's numbers: for each of the equal-width confidence bins
    ``edges[b] < confidence <= edges[b + 1]`` (the first bin also holds 0), the number of
    examples, their accuracy and mean confidence (NaN for empty bins)."""

    edges: np.ndarray
    count: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def ece(self) -> float:
        """sum_b (n_b / N) |accuracy_b - confidence_b| over the non-empty bins."""
        used = self.count > 0
        share = self.count[used] / self.count.sum()
        return float(np.sum(share * np.abs(self.accuracy[used] - self.confidence[used])))


def reliability(probs: Any, labels: Any, n_bins: int = 10) -> Reliability:
    """Per-bin counts, accuracies and mean confidences (see ``Reliability``)."""
    probs = as_class_probabilities(probs)
    labels = _check_labels(labels, probs)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1 (the number of bins), got {n_bins!r}")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right=True: bin b holds edges[b] < c <= edges[b + 1]; c = 0 falls in bin 0
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
        mean_confidence = np.bincount(which, weights=confidence, minlength=n_bins) / count
    return Reliability(edges, count, accuracy, mean_confidence)


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 10) -> float:
    """ECE = sum over bins b of (n_b / N) |accuracy_b - mean confidence_b| (0: calibrated)."""
    return reliability(probs, labels, n_bins).ece


def classification_scores(probs: Any, labels: Any, n_bins: int = 10) -> dict[str, float]:
    """error, nll, ece, brier and mean confidence (probability of the predicted class)."""
    return {
        "error": error_rate(probs, labels),
        "nll": nll(probs, labels),
        "ece": expected_calibration_error(probs, labels, n_bins),
        "brier": brier_score(probs, labels),
        "confidence": float(as_class_probabilities(probs).max(axis=1).mean()),
    }


# --- uncertainty from samples ------------------------------------------------------------------


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis, with 0 log 0 = 0."""
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def predictive_entropy(sample_probs: Any) -> np.ndarray:
    """H[mean_s p_s] per example (N,), nats: all the uncertainty of the averaged prediction."""
    return _entropy(as_sample_probabilities(sample_probs).mean(axis=0))


def expected_entropy(sample_probs: Any) -> np.ndarray:
    """mean_s H[p_s] per example (N,), nats: the uncertainty each sample has on its own."""
    return _entropy(as_sample_probabilities(sample_probs)).mean(axis=0)


def mutual_information(sample_probs: Any) -> np.ndarray:
    """H[mean_s p_s] - mean_s H[p_s] per example (N,), nats, >= 0: the samples'
    disagreement (the information the label would give about the weights)."""
    probs = as_sample_probabilities(sample_probs)
    # entropy is concave, so this is >= 0; rounding can leave -1e-17, which is 0
    return np.maximum(_entropy(probs.mean(axis=0)) - _entropy(probs).mean(axis=0), 0.0)


# --- detection ---------------------------------------------------------------------------------


def auroc(scores: Any, positive: Any) -> float:
    """Area under the ROC curve of ``scores`` for telling the ``positive`` examples (True)
    from the others: the probability that a random positive scores higher than a random
    negative, ties counting one half."""
    scores = _array(scores, "scores")
    positive = np.asarray(positive)
    if positive.dtype != bool:
        raise TypeError(f"positive must be a boolean array, got dtype {positive.dtype}")
    if scores.ndim != 1 or positive.shape != scores.shape:
        raise ValueError(
            f"scores and positive must be 1-D of one length, got {scores.shape} and"
            f" {positive.shape}"
        )
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"auroc needs positive and negative examples, got {n_pos} and {n_neg}")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    sorted_scores = scores[order]  # ties get the mean of their ranks
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, n in zip(first[counts > 1], counts[counts > 1], strict=True):
        ranks[order[start : start + n]] = start + (n + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def ood_auroc(in_distribution: Any, out_of_distribution: Any) -> float:
    """AUROC of an uncertainty score (e.g. ``predictive_entropy``, ``mutual_information``)
    for telling out-of-distribution inputs from in-distribution ones: 1 when every OOD
    input scores higher, 0.5 when the score cannot tell them apart."""
    inside = _array(in_distribution, "in_distribution").ravel()
    outside = _array(out_of_distribution, "out_of_distribution").ravel()
    scores = np.concatenate([inside, outside])
    positive = np.concatenate([np.zeros(len(inside), bool), np.ones(len(outside), bool)])
    return auroc(scores, positive)


__all__ = [
    "Reliability",
    "as_class_probabilities",
    "as_sample_probabilities",
    "auroc",
    "brier_score",
    "classification_scores",
    "error_rate",
    "expected_calibration_error",
    "expected_entropy",
    "mutual_information",
    "nll",
    "ood_auroc",
    "predictive_entropy",
    "probabilities",
    "reliability",
]
