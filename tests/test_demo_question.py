"""The question demo: trains the question's setting, checks its gradients by hand, and shows
that microbbb catches (or, for one legal broadcast, shows) each mistake of the question."""

import struct

import numpy as np
import pytest

from microbbb.demos import question

EXPECTED_CAUGHT = {
    "softmax_one_output": "ValueError",
    "categorical_nll_one_column": "ValueError",
    "label_shape_broadcast": "ValueError",
    "label_shape_broadcast_gaussian": "ValueError",
    "bias_rho_wrong_shape": "ShapeError",
    "bias_eps_wrong_shape": "ValueError",
    "bias_rho_assigned_wrong_shape": "ValueError",
    "exp_overflow": "AnomalyError",
    "log_softmax_underflow": "AnomalyError",
    "lr_too_large": "TrainingDiverged",
    "lr_too_small": "warning",
    "wrong_signs": "BBBLoss parts",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo with its own settings (2000 steps, ~10-20 s), run once for these tests."""
    out = tmp_path_factory.mktemp("question")
    lines = []
    figures = question.run(str(out), seed=0, echo=lines.append, progress=False)
    return figures, lines, out


def test_every_mistake_is_caught_with_the_named_exception(demo):
    figures, _, _ = demo
    assert figures["caught"] == EXPECTED_CAUGHT
    assert figures["anomaly_ops"] == ["exp", "log"]
    assert figures["diverged"].startswith("training stopped at epoch ")


def test_the_one_silent_mistake_is_reported_as_such(demo):
    figures, _, _ = demo
    assert figures["not_caught"] == [
        "bias rho of shape (1,) for 32 hidden units (a legal broadcast)"
    ]
    # adjoint_flow shows the shared sigma: a (1,) input whose gradient had shape (32,)
    assert ("mul", (1,), (32,)) in figures["silent_broadcast_edges"]


def test_what_the_mistakes_compute(demo):
    figures, _, _ = demo
    assert figures["log_softmax_one_output"] == (0.0, 0.0)  # log softmax of one column: 0
    assert figures["numpy_broadcast_shape"] == (100, 100)
    assert figures["small_lr_change_percent"] < 1e-3
    assert abs(figures["wrong_loss"] - figures["right_loss"]) > 1.0
    rows = figures["wrong_training"]
    assert len(rows) >= 5
    first, last = rows[0], rows[-1]
    assert last[1] < first[1]  # the learner's loss decreases...
    assert last[3] < 100 * first[3] < 0  # ...while log P(D|w) becomes 100 times worse
    assert last[2] < 0 < first[2]  # after log q changed sign


def test_diagnose_names_the_questions_own_settings(demo):
    figures, lines, _ = demo
    # lr 1e-11: nothing moves; rho ~ N(0, 1): each sampled network is mostly noise
    assert {"sigma_unmoved", "mu_unmoved", "loss_flat"} <= set(figures["diagnosis_small_lr"])
    assert "loss_rising" not in figures["diagnosis_small_lr"]
    assert figures["diagnosis_wide_sigmas"] == ["noise"]
    text = "\n".join(lines)
    assert "[sigma_unmoved]" in text and "[noise]" in text and "(g) the question" in text


def test_hand_derived_gradients_match_autodiff(demo):
    figures, _, _ = demo
    assert figures["max_hand_vs_autodiff"] < 1e-9


def test_training_reaches_what_the_data_allow(demo):
    figures, _, _ = demo
    assert 0.5 <= figures["r2"] < figures["r2_best"] + 0.02
    assert 0.6 < figures["r2_best"] < 0.72  # the noise limits R^2 to about 2 / 3
    entropy = -(0.6 * np.log(0.6) + 0.4 * np.log(0.4))
    assert entropy - 0.02 < figures["heldout_nll_bernoulli"] < entropy + 0.05
    for name in ("bernoulli", "gaussian"):
        final = figures["final"][name]
        assert all(np.isfinite(v) for v in final.values())
        parts = final["log_q"] - final["log_prior"] - final["log_likelihood"]
        assert final["f"] == pytest.approx(parts, rel=1e-9)
    assert figures["final"]["gaussian"]["f"] < 400  # it starts near 960


def test_picture_is_a_png_of_the_expected_size(demo):
    figures, _, out = demo
    png = (out / "question_training.png").read_bytes()
    assert figures["picture"] == str(out / "question_training.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1300, 950)


def test_report_holds_the_key_messages(demo):
    figures, lines, out = demo
    text = (out / "report.txt").read_text()
    assert figures["report"] == str(out / "report.txt")
    assert "\n".join(lines) in text  # what was printed is what was written
    for message in [
        "held-out R^2 on 2000 new points",
        "Largest relative difference between hand and autodiff",
        "df/dw*eps/(1+e^-rho)",
        "one eps per weight per monte-carlo sample",
        "ValueError: Categorical likelihood over a single output",
        "categorical_nll: logits have a single class column",
        "would silently broadcast to (100, 100)",
        "ShapeError: mul: inputs of shapes (3,) and (32,)",
        "eps must have the shapes of mu",
        "AnomalyError: forward of op 'exp'",
        "AnomalyError: forward of op 'log'",
        "TrainingDiverged: training stopped at epoch",
        "Replaying that step in anomaly mode",
        "nothing is learning",
        "BBBLoss(",
        "log_q",
        "log_prior",
        "log_likelihood",
        "my_loss is not f",
        "docs/question.md",
        "(ran in",
    ]:
        assert message.lower() in " ".join(text.lower().split()), message


def test_command_line_entry_point_with_few_steps(tmp_path, capsys):
    question.main(["--out", str(tmp_path), "--seed", "1", "--steps", "40"])
    printed = capsys.readouterr().out
    assert "Summary: what microbbb said about each mistake" in printed
    assert (tmp_path / "question_training.png").stat().st_size > 20_000
    assert "TrainingDiverged" in (tmp_path / "report.txt").read_text()
