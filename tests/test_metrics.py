"""microbbb.metrics against hand computations and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from microbbb import metrics


def test_brier_score_on_hand_made_examples():
    # (N, C): example 1 p = (0.7, 0.2, 0.1), label 0: 0.09 + 0.04 + 0.01 = 0.14
    #         example 2 p = (0.5, 0.5, 0.0), label 2: 0.25 + 0.25 + 1    = 1.5
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    assert metrics.brier_score(probs, np.array([0, 2])) == pytest.approx((0.14 + 1.5) / 2)
    # sure and right: 0; sure and wrong: 2 (the largest a multi-class Brier score can be)
    assert metrics.brier_score(np.eye(3), np.arange(3)) == 0.0
    assert metrics.brier_score(np.eye(3), np.array([1, 2, 0])) == 2.0
    # binary as P(y = 1): (0.9 - 1)^2 = 0.01, (0.3 - 0)^2 = 0.09, (0.6 - 0)^2 = 0.36
    p_one, labels = np.array([0.9, 0.3, 0.6]), np.array([1, 0, 0])
    assert metrics.brier_score(p_one, labels) == pytest.approx((0.01 + 0.09 + 0.36) / 3)
    assert metrics.brier_score(p_one, labels) == pytest.approx(brier_score_loss(labels, p_one))


def test_nll_and_error_rate_against_direct_computation():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    labels = rng.integers(0, 4, size=50)
    assert metrics.nll(probs, labels) == pytest.approx(log_loss(labels, probs, labels=range(4)))
    # 2 of 3 right: the most probable classes are 0, 1, 1
    three = np.array([[0.6, 0.4], [0.1, 0.9], [0.3, 0.7]])
    assert metrics.error_rate(three, np.array([0, 1, 0])) == pytest.approx(1 / 3)
    assert metrics.nll(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(np.log(2))
    assert np.isfinite(metrics.nll(np.array([[1.0, 0.0]]), np.array([1])))  # floored, not inf


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.95, 0.05], [0.08, 0.92], [0.35, 0.65], [0.62, 0.38], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1, 0])
    # confidences 0.95 (right), 0.92 (wrong), 0.65 (right), 0.62 (wrong), 0.55 (right)
    # bin (0.9, 1]:   2 examples, accuracy 1/2, mean confidence 0.935 -> gap 0.435
    # bin (0.6, 0.7]: 2 examples, accuracy 1/2, mean confidence 0.635 -> gap 0.135
    # bin (0.5, 0.6]: 1 example,  accuracy 1,   mean confidence 0.55  -> gap 0.45
    # ECE = 2/5 * 0.435 + 2/5 * 0.135 + 1/5 * 0.45 = 0.174 + 0.054 + 0.09 = 0.318
    assert metrics.expected_calibration_error(probs, labels) == pytest.approx(0.318, abs=1e-12)
    table = metrics.reliability(probs, labels)
    assert table.count.tolist() == [0, 0, 0, 0, 0, 1, 2, 0, 0, 2]
    assert table.accuracy[9] == 0.5 and table.confidence[9] == pytest.approx(0.935)
    assert np.isnan(table.accuracy[0])  # empty bins: NaN, not 0
    # binary, given as P(y = 1): confidences 0.78 (right), 0.75 (wrong), 0.95 (right)
    # bin (0.7, 0.8]: accuracy 1/2, mean confidence 0.765 -> gap 0.265; bin (0.9, 1]: gap 0.05
    p_one = np.array([0.22, 0.75, 0.95])
    expected = (2 * 0.265 + 1 * 0.05) / 3
    assert metrics.expected_calibration_error(p_one, np.array([0, 0, 1])) == pytest.approx(expected)
    # 3 right out of 4 at confidence 0.75: perfectly calibrated
    four = np.array([[0.75, 0.25]] * 4)
    assert metrics.expected_calibration_error(four, np.array([0, 0, 0, 1])) == pytest.approx(0)
    # sure and wrong: confidence 1 lands in the last bin, gap 1
    assert metrics.expected_calibration_error(np.array([[1.0, 0.0]]), np.array([1])) == 1.0
    # one bin: |accuracy - mean confidence| = |3/5 - mean of the five confidences|
    mean_confidence = (0.95 + 0.92 + 0.65 + 0.62 + 0.55) / 5
    one_bin = metrics.expected_calibration_error(probs, labels, n_bins=1)
    assert one_bin == pytest.approx(abs(0.6 - mean_confidence))


def test_entropy_and_mutual_information_on_known_cases():
    # two samples that are each sure, of different classes: each has entropy 0, their
    # average (1/2, 1/2) has log 2: all of it is disagreement (mutual information log 2)
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert metrics.predictive_entropy(disagree) == pytest.approx([np.log(2)])
    assert metrics.expected_entropy(disagree) == pytest.approx([0.0])
    assert metrics.mutual_information(disagree) == pytest.approx([np.log(2)])
    # two samples that agree on (1/2, 1/2): the same entropy, none of it disagreement
    agree = np.full((2, 1, 2), 0.5)
    assert metrics.predictive_entropy(agree) == pytest.approx([np.log(2)])
    assert metrics.mutual_information(agree) == pytest.approx([0.0])
    # a uniform prediction over 4 classes: log 4; the binary (S, N) form gives the same
    # numbers as (S, N, 2)
    assert metrics.predictive_entropy(np.full((1, 3, 4), 0.25)) == pytest.approx([np.log(4)] * 3)
    rng = np.random.default_rng(1)
    p_one = rng.uniform(size=(7, 5))
    two = np.stack([1 - p_one, p_one], axis=2)
    assert metrics.mutual_information(p_one) == pytest.approx(metrics.mutual_information(two))
    # direct: H[mean] - mean H, written out for three classes
    samples = rng.dirichlet(np.ones(3), size=(6, 4))
    mean = samples.mean(axis=0)
    h_mean = -(mean * np.log(mean)).sum(axis=1)
    mean_h = -(samples * np.log(samples)).sum(axis=2).mean(axis=0)
    assert metrics.mutual_information(samples) == pytest.approx(h_mean - mean_h)
    assert (metrics.mutual_information(samples) > 0).all()


def test_auroc_against_scikit_learn_with_and_without_ties():
    rng = np.random.default_rng(2)
    for scores in (rng.normal(size=200), rng.integers(0, 5, size=200).astype(float)):
        positive = rng.uniform(size=200) < 0.3
        scores = scores + positive  # some signal
        expected = roc_auc_score(positive, scores)
        assert metrics.auroc(scores, positive) == pytest.approx(expected, abs=1e-12)
    # by hand: in 0.1, 0.4; out 0.35, 0.8: pairs (out > in) 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3/4
    assert metrics.ood_auroc([0.1, 0.4], [0.35, 0.8]) == pytest.approx(0.75)
    assert metrics.ood_auroc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert metrics.ood_auroc([0.5, 0.5], [0.5, 0.5]) == 0.5  # ties count one half


def test_classification_scores_and_probabilities_from_logits():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    probs = metrics.probabilities(logits)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert probs == pytest.approx(expected)
    sigmoid = metrics.probabilities(np.array([[0.0], [800.0], [-800.0]]))  # no overflow
    assert sigmoid.tolist() == [0.5, 1.0, 0.0]
    scored = metrics.classification_scores(probs, np.array([0, 1]))
    assert set(scored) == {"error", "nll", "ece", "brier", "confidence"}
    # row 1 picks class 0 (right); row 2 ties at 1/3 and argmax picks class 0 (wrong)
    assert scored["error"] == 0.5
    assert scored["nll"] == pytest.approx(-(np.log(probs[0, 0]) + np.log(1 / 3)) / 2)
    assert scored["confidence"] == pytest.approx((probs[0, 0] + 1 / 3) / 2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.nll(np.array([[0.5, 0.6]]), [0]), "sum to 1"),
        (lambda: metrics.nll(np.array([[2.0, -1.0]]), [0]), r"in \[0, 1\]"),
        (lambda: metrics.nll(np.array([[np.nan, 1.0]]), [0]), "NaN"),
        (lambda: metrics.nll(np.array([[0.5, 0.5]]), [2]), "labels must lie in 0..1"),
        (lambda: metrics.nll(np.array([[0.5, 0.5]]), [0, 1]), "labels has shape"),
        (lambda: metrics.brier_score(np.ones((2, 1)), [0, 0]), "C >= 2"),
        (lambda: metrics.mutual_information(np.full((3, 4, 5, 2), 0.5)), r"\(S, N, C\)"),
        (lambda: metrics.reliability(np.array([0.5]), [1], n_bins=0), "n_bins"),
        (lambda: metrics.ood_auroc([], [0.3]), "positive and negative"),
        (lambda: metrics.nll(np.empty((0, 2)), np.empty(0, int)), "empty"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_labels_of_the_wrong_type_are_refused():
    with pytest.raises(TypeError, match="labels must be integer"):
        metrics.nll(np.array([[0.5, 0.5]]), np.array([0.5]))
    with pytest.raises(TypeError, match="positive must be a boolean"):
        metrics.auroc([0.1, 0.2], [0, 1])
