"""Training (microbbb/bbb/train.py): minibatch weights, fit, the question's setting,
divergence, determinism, Ctrl-C and checkpoints."""

import math
import signal

import numpy as np
import pytest

from microbbb.bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    TrainingDiverged,
    fit,
    minibatch_weights,
)
from microbbb.optim import SGD, Adam

# --- minibatch weights -------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 2, 7, 60, 1075, 10_000])
@pytest.mark.parametrize("scheme", ["uniform", "blundell"])
def test_minibatch_weights_sum_to_one_without_overflow(m, scheme):
    pi = minibatch_weights(m, scheme)
    assert pi.shape == (m,) and np.isfinite(pi).all() and (pi >= 0).all()
    assert math.fsum(pi) == pytest.approx(1.0, abs=1e-12)


def test_blundell_weights_are_the_papers_formula():
    m = 10
    exact = [2 ** (m - i) / (2**m - 1) for i in range(1, m + 1)]  # exact in Python integers
    np.testing.assert_allclose(minibatch_weights(m, "blundell"), exact, rtol=1e-15)
    np.testing.assert_allclose(minibatch_weights(m, "uniform"), 0.1)
    with pytest.raises(ValueError, match="'uniform' or 'blundell'"):
        minibatch_weights(3, "linear")


# --- the question's setting --------------------------------------------------------------------


def _question_data(seed=0, n=100):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    y_binary = (rng.random(n) < 0.6).astype(int)
    y_linear = 0.2 * x[:, 0] - 1.3 * x[:, 1] - 0.5 * x[:, 2] + rng.standard_normal(n)
    return x, y_binary, y_linear


def test_question_setting_binary_trains_cleanly():
    x, y, _ = _question_data()
    model = BayesianMLP([3, 32, 1], likelihood=Bernoulli(), seed=0)
    history = fit(model, x, y, epochs=2000, n_samples=2, lr=1e-2, progress=False)
    losses = np.array(history.loss)
    assert np.isfinite(losses).all()
    assert losses[-100:].mean() < 0.5 * losses[:100].mean()  # decreasing, clearly


def test_question_setting_regression_trains_and_generalises():
    x, _, y = _question_data()
    model = BayesianMLP([3, 32, 1], likelihood=Gaussian(1.0), seed=0)
    history = fit(model, x, y, epochs=2000, n_samples=2, lr=3e-3, progress=False)
    assert np.isfinite(history.loss).all()
    assert np.mean(history.loss[-100:]) < 0.6 * np.mean(history.loss[:100])
    rng = np.random.default_rng(99)
    x_test = rng.standard_normal((5000, 3))
    y_test = 0.2 * x_test[:, 0] - 1.3 * x_test[:, 1] - 0.5 * x_test[:, 2]
    y_test = y_test + rng.standard_normal(5000)
    prediction = model.predict(x_test, n_samples=50)
    r2 = 1 - np.mean((prediction.mean - y_test) ** 2) / np.var(y_test)
    assert r2 >= 0.5, r2  # the noise caps it at about 1.94 / 2.94 = 0.66


# --- divergence ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_a_huge_learning_rate_stops_with_a_clear_report():
    x, _, y = _question_data()
    model = BayesianMLP([3, 32, 1], likelihood=Gaussian(1.0), seed=0)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, x, y, epochs=50, optimizer=SGD(model.parameters(), lr=1e8), progress=False)
    text = str(info.value)
    assert "training stopped at epoch" in text and "step 1" in text
    assert "anomaly mode" in text and "op '" in text  # the report names an op
    assert "learning rate" in text


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
@pytest.mark.parametrize(
    "make_optimizer",
    [lambda ps: Adam(ps, lr=1e308), lambda ps: SGD(ps, lr=1e308)],
    ids=["adam", "sgd"],
)
def test_parameters_made_non_finite_by_the_last_step_stop_training(make_optimizer):
    x, _, y = _question_data()
    model = BayesianMLP([3, 32, 1], likelihood=Gaussian(1.0), seed=0)
    with pytest.raises(TrainingDiverged) as info:  # one epoch: only the parameters can tell
        fit(model, x, y, epochs=1, optimizer=make_optimizer(model.parameters()), progress=False)
    text = str(info.value)
    assert text.startswith("training stopped at epoch 1, step 1: after the optimiser step,")
    assert "layers.0.weight_mu" in text and "are not finite" in text
    assert "The loss and the gradients of that step were finite" in text
    assert "The learning rate is 1e+308" in text and "Try a smaller lr" in text


def _seed_setting(seed=0):
    """The question's setting, as its demo makes it: [3, 32, 1], 100 observations."""
    from microbbb.demos.question import make_data, make_model

    x, _, targets = make_data(100, np.random.default_rng(seed))
    return make_model(Gaussian(1.0), seed), x, targets


@pytest.mark.parametrize(
    "make_optimizer, where, lr",
    [
        (lambda ps: Adam(ps, lr=10.0), "epoch 2, step 1", "10"),  # 952 -> 2.3e8 -> ... -> 1.9e5
        (lambda ps: SGD(ps, lr=0.01), "epoch 5, step 1", "0.01"),  # NaN at epoch 6 before
    ],
    ids=["adam", "sgd"],
)
def test_a_loss_that_explodes_stops_training_before_any_nan(make_optimizer, where, lr):
    model, x, y = _seed_setting()
    with pytest.raises(TrainingDiverged) as info:
        fit(model, x, y, epochs=300, optimizer=make_optimizer(model.parameters()), progress=False)
    text = str(info.value)
    assert text.startswith(f"training stopped at {where}: the loss grew to ")
    assert "times the lowest so far (" in text and "at epoch 1, step 1)" in text
    assert "fit stops when it grows more than 1000-fold" in text
    assert "Replaying that step in anomaly mode:\nno op made a NaN or an infinity" in text
    assert f"The learning rate is {lr}" in text and "Try a smaller lr" in text
    assert all(np.isfinite(p.data).all() for p in model.parameters())  # stopped in time


def _negative_loss_setting():
    """A fit so close (y = 2x, noise sigma 0.01, w = mu = 2) that the loss is negative:
    -log P(D | w) is about -3.7 nats per observation."""
    x = np.random.default_rng(0).uniform(-1, 1, (200, 1))
    model = BayesianMLP([1, 1], likelihood=Gaussian(0.01), prior=GaussianPrior(1.0), seed=0,
                        rho_init=-10.0)  # fmt: skip
    model.layers[0].weight_mu.data[...] = 2.0
    return model, x, 2 * x[:, 0]


def test_growth_from_a_negative_loss_is_measured_per_observation():
    model, x, y = _negative_loss_setting()
    assert model.loss(x, y).item() < -700
    history = fit(model, x, y, epochs=30, lr=1e-4, progress=False)  # Adam: stays near -700
    assert history.epochs == 30 and max(history.loss) < 0
    model, x, y = _negative_loss_setting()
    with pytest.raises(TrainingDiverged, match=r"^training stopped at epoch 2, step 1: the loss"
                       r" grew to \S+e\+07 from its lowest so far, -71\d\.\d at epoch 1, step 1:"
                       r" by more than 999 nats per observation\."):  # fmt: skip
        fit(model, x, y, epochs=30, optimizer=SGD(model.parameters(), lr=0.1), progress=False)


def test_the_growth_check_compares_like_with_like(monkeypatch):
    """With the paper's minibatch weights the first minibatch's loss carries half the
    complexity cost and the last almost none: their losses differ 1000-fold and more in a
    healthy run, which must not be taken for divergence. (Each step is compared as an
    estimate of the whole objective.)"""
    from microbbb.bbb.program import LossProgram

    losses = []
    monkeypatch.setattr(LossProgram, "__call__", _recording(LossProgram.__call__, losses))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4))
    y = (x[:, 0] > 0).astype(int)
    model = BayesianMLP([4, 200, 2], likelihood=Categorical(), seed=0)
    history = fit(model, x, y, epochs=3, batch_size=2, kl_scheme="blundell", lr=1e-3,
                  progress=False)  # fmt: skip
    assert history.epochs == 3
    losses = np.array(losses)
    assert losses.max() / losses[losses > 0].min() > 1000  # the naive ratio would stop it


def _recording(run, losses):
    def call(self, eps=None):
        loss = run(self, eps)
        losses.append(loss.item())
        return loss

    return call


# --- determinism, interrupt, checkpoints --------------------------------------------------------


def _small(seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((40, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    return x, y


def _train(epochs, batch_size=16, **kwargs):
    x, y = _small()
    model = BayesianMLP([4, 8, 3], likelihood=Categorical(), seed=1, rho_init=-3.0)
    optimizer = Adam(model.parameters(), lr=1e-2)
    history = fit(
        model, x, y, epochs, batch_size=batch_size, optimizer=optimizer, n_samples=2,
        kl_scheme="blundell", seed=5, progress=False, **kwargs,
    )  # fmt: skip
    return model, history


def test_same_seed_gives_bit_identical_histories():
    _, a = _train(6)
    _, b = _train(6)
    assert a.loss == b.loss and a.accuracy == b.accuracy and len(a.loss) == 6
    assert a.accuracy[-1] > 0.5


def _interrupt_at_epoch_three(epoch, history):
    if epoch == 2:
        signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C


@pytest.fixture
def sigint_handler():
    """Whatever SIGINT's handler is, put back after the test (the suite may have been
    started with SIGINT ignored, as ``nohup`` or ``cmd &`` in a script do)."""
    before = signal.getsignal(signal.SIGINT)
    yield before
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_ends_training_cleanly_keeping_model_and_history(sigint_handler):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive shell
    x, y = _small()
    model = BayesianMLP([4, 8, 3], likelihood=Categorical(), seed=1)
    history = fit(
        model, x, y, epochs=10, batch_size=16, progress=False, callback=_interrupt_at_epoch_three
    )
    assert history.interrupted and history.epochs == 3
    assert all(np.isfinite(p.data).all() for p in model.parameters())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_fit_puts_back_the_handler_it_found(sigint_handler):
    def mine(signum, frame):
        pass

    signal.signal(signal.SIGINT, mine)
    x, y = _small()
    model = BayesianMLP([4, 8, 3], likelihood=Categorical(), seed=1)
    history = fit(model, x, y, epochs=2, batch_size=16, progress=False)
    assert not history.interrupted
    assert signal.getsignal(signal.SIGINT) is mine


def test_an_ignored_ctrl_c_stays_ignored(sigint_handler):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as nohup starts a process
    x, y = _small()
    model = BayesianMLP([4, 8, 3], likelihood=Categorical(), seed=1)
    history = fit(
        model, x, y, epochs=5, batch_size=16, progress=False, callback=_interrupt_at_epoch_three
    )
    assert not history.interrupted and history.epochs == 5  # the signal was ignored
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


# batch_size None: one batch, so fit runs a LossProgram (recorded anew after resuming)
@pytest.mark.parametrize("batch_size", [16, None], ids=["minibatches", "one-batch"])
def test_resumed_training_continues_bit_identically(tmp_path, batch_size):
    path = tmp_path / "run.npz"
    full_model, full = _train(6, batch_size)
    _train(3, batch_size, checkpoint=path, checkpoint_every=3)  # stops after epoch 3, saved
    resumed_model, resumed = _train(6, batch_size, checkpoint=path, resume=True)
    assert resumed.loss == full.loss
    for a, b in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("is_terminal, progress, shown", [(True, True, True), (False, True, False),
                                                          (True, False, False)])  # fmt: skip
def test_progress_bar_only_on_a_terminal_and_when_asked(
    monkeypatch, capsys, is_terminal, progress, shown
):
    monkeypatch.setattr("sys.stderr.isatty", lambda: is_terminal)
    x, y = _small()
    model = BayesianMLP([4, 3], likelihood=Categorical(), seed=0)
    fit(model, x, y, epochs=3, progress=progress)
    err = capsys.readouterr().err
    assert ("epoch 3/3 [" in err and "loss" in err and "acc" in err) == shown
    assert shown or err == ""


def test_history_adds_up_to_the_objective():
    x, y = _small()
    model = BayesianMLP([4, 5, 3], likelihood=Categorical(), seed=0)
    history = fit(model, x, y, epochs=3, batch_size=8, kl_scheme="blundell", progress=False)
    for loss, complexity, nll in zip(history.loss, history.complexity, history.nll, strict=True):
        assert loss == pytest.approx(complexity + nll, rel=1e-12)  # weighted: sum_i pi_i = 1


# --- fit's arguments: checked before training, each error naming the argument --------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"epochs": 2.5}, TypeError, r"epochs must be an integer >= 1 \(the number of passes"
                                     r" over the data.*got 2\.5 \(a float\)"),
        ({"epochs": 0}, ValueError, r"epochs must be an integer >= 1 .*got 0$"),
        ({"epochs": True}, TypeError, r"epochs must be an integer >= 1 .*got True \(a bool\)"),
        ({"batch_size": 2.5}, TypeError, r"batch_size must be an integer >= 1 \(the rows of"
                                         r" a minibatch; None for the whole data set\)"),
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1 .*got 0$"),
        ({"checkpoint_every": 0}, ValueError, r"checkpoint_every must be an integer >= 1"
                                              r" \(save a checkpoint every this many epochs"),
        ({"checkpoint_every": 1.5}, TypeError, r"checkpoint_every must be an integer >= 1"),
        ({"n_samples": 0}, ValueError, r"n_samples must be an integer >= 1"),
        ({"kl_scheme": "paper"}, ValueError, r"kl_scheme must be 'uniform' or 'blundell',"
                                             r" got 'paper'"),
        ({"kl": "exact"}, ValueError, r"kl must be 'mc' or 'closed_form', got 'exact'"),
        ({"lr": 0.0}, ValueError, r"lr must be a positive finite number .*got 0\.0"),
        ({"lr": float("inf")}, ValueError, r"lr must be a positive finite number .*got inf"),
        ({"lr": 0.1, "optimizer": "sgd"}, ValueError, r"fit got lr=0\.1 and an optimizer, .*its"
                                                      r" own learning rate \(1\)"),
        ({"resume": True}, ValueError, r"resume=True needs a checkpoint path"),
    ],
)  # fmt: skip
def test_fit_checks_its_arguments_by_name(kwargs, error, message):
    x, y = _small()
    model = BayesianMLP([4, 3], likelihood=Categorical(), seed=0)
    before = [p.data.copy() for p in model.parameters()]
    if kwargs.get("optimizer") == "sgd":
        kwargs["optimizer"] = SGD(model.parameters(), lr=1.0)
    kwargs.setdefault("epochs", 2)
    with pytest.raises(error, match=message):
        fit(model, x, y, batch_size=kwargs.pop("batch_size", 16), progress=False, **kwargs)
    assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before, strict=True))


def test_minibatch_weights_checks_the_number_of_minibatches():
    with pytest.raises(TypeError, match=r"n_batches must be an integer >= 1 .*got 2\.5"):
        minibatch_weights(2.5)
