"""fit's complexity weight schedule: constant, linear warm-up, temperature, with the
paper's minibatch weights; recorded in the history and checked on entry."""

import numpy as np
import pytest

from microbbb.bbb import BayesianMLP, Bernoulli, Gaussian, GaussianPrior, fit


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    return x, x @ np.array([0.2, -1.3, -0.5]) + rng.standard_normal(n)


def _model(seed=0):
    return BayesianMLP([3, 8, 1], likelihood=Gaussian(1.0), prior=GaussianPrior(1.0), seed=seed)


def _assert_loss_is_weighted(history):
    # loss comes from the engine's f; complexity and nll from its separate parts: they add
    # up only if the schedule's weight really multiplied the complexity cost in the graph
    expected = np.array(history.complexity_weight) * history.complexity + np.array(history.nll)
    np.testing.assert_allclose(history.loss, expected, rtol=1e-10)


def test_linear_warm_up_times_temperature_is_recorded_and_applied():
    x, y = _data()
    history = fit(_model(), x, y, epochs=6, kl_warmup=4, temperature=0.5, progress=False)
    assert history.complexity_weight == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.5, 0.5])
    _assert_loss_is_weighted(history)
    assert history.settings["kl_warmup"] == 4 and history.settings["temperature"] == 0.5


def test_a_weight_of_one_then_another_re_records_the_loss():
    # full batch, T = 2, K = 2: epoch 1 has weight 1 (no multiplication recorded), epoch 2
    # has 2: fit must record the loss again (the first recording cannot take a weight)
    x, y = _data()
    history = fit(_model(), x, y, epochs=3, kl_warmup=2, temperature=2.0, progress=False)
    assert history.complexity_weight == [1.0, 2.0, 2.0]
    _assert_loss_is_weighted(history)


def test_blundell_minibatch_weights_with_a_temperature():
    x, y = _data(n=90)
    history = fit(
        _model(), x, y, epochs=3, batch_size=20, kl_scheme="blundell", temperature=0.1,
        progress=False,
    )  # fmt: skip
    assert history.complexity_weight == [0.1, 0.1, 0.1]
    _assert_loss_is_weighted(history)  # sum_i 0.1 pi_i KL_i against 0.1 sum_i pi_i KL_i


def test_the_default_is_the_papers_objective():
    x, y = _data()
    history = fit(_model(), x, y, epochs=3, progress=False)
    assert history.complexity_weight == [1.0, 1.0, 1.0]
    _assert_loss_is_weighted(history)
    assert len(history.mu_change) == 3 and min(history.mu_change) > 0


def test_a_cold_posterior_fits_the_data_more_closely():
    x, y = _data()
    y = (y > 0).astype(int)
    nll = {}
    for temperature in (1.0, 0.01):
        model = BayesianMLP([3, 8, 1], likelihood=Bernoulli(), seed=0)
        history = fit(model, x, y, epochs=300, lr=1e-2, temperature=temperature, progress=False)
        nll[temperature] = np.mean(history.nll[-20:])
    assert nll[0.01] < 0.8 * nll[1.0], nll


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"kl_warmup": -1}, ValueError, "kl_warmup must be an integer >= 0"),
        ({"kl_warmup": 2.5}, TypeError, "kl_warmup must be an integer >= 0"),
        ({"kl_warmup": True}, TypeError, "kl_warmup"),
        ({"temperature": 0.0}, ValueError, "temperature must be a positive finite number"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": -1}, ValueError, "temperature"),
        ({"temperature": "0.1"}, TypeError, "temperature"),
    ],
)
def test_bad_schedules_are_refused_before_training(arguments, error, message):
    x, y = _data()
    model = _model()
    before = model.layers[0].weight_mu.data.copy()
    with pytest.raises(error, match=message):
        fit(model, x, y, epochs=2, progress=False, **arguments)
    np.testing.assert_array_equal(model.layers[0].weight_mu.data, before)
