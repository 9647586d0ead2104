"""diagnose: the usual reasons a BBB network does not learn, found with their numbers."""

import numpy as np
import pytest

from microbbb.bbb import (
    BayesianMLP,
    Categorical,
    Gaussian,
    GaussianPrior,
    ScaleMixturePrior,
    diagnose,
    fit,
)
from microbbb.bbb.train import History
from microbbb.engine import tensor


def _data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    return x, x @ np.array([0.2, -1.3, -0.5]) + rng.standard_normal(n)


def _model(prior=None, seed=0):
    prior = prior or GaussianPrior(1.0)
    return BayesianMLP([3, 32, 1], likelihood=Gaussian(1.0), prior=prior, seed=seed)


def _checks(diagnosis):
    return {finding.check for finding in diagnosis.findings}


def _history(complexity, nll, weight=1.0, mu_change=0.1, rho_change=0.1):
    history = History()
    history.complexity, history.nll = list(complexity), list(nll)
    history.complexity_weight = [weight] * len(nll)
    history.loss = [weight * c + n for c, n in zip(complexity, nll, strict=True)]
    history.mu_change, history.rho_change = [mu_change] * len(nll), [rho_change] * len(nll)
    history.settings = {"lr": 1e-3, "steps_per_epoch": 1}
    return history


def test_a_healthy_run_has_no_findings():
    x, y = _data()
    model = _model()
    diagnosis = diagnose(
        model, fit(model, x, y, epochs=600, lr=1e-2, n_samples=2, progress=False), x
    )
    assert diagnosis.ok, str(diagnosis)
    assert "constant_prediction" in diagnosis.passed and "noise" in diagnosis.passed


def test_the_questions_learning_rate_moves_nothing():
    x, y = _data()
    model = _model()
    history = fit(model, x, y, epochs=300, lr=1e-11, n_samples=2, progress=False)
    diagnosis = diagnose(model, history, x)
    assert {"sigma_unmoved", "mu_unmoved", "loss_flat"} <= _checks(diagnosis), str(diagnosis)
    assert "loss_rising" not in _checks(diagnosis)  # the loss moved with the noise alone
    sigma = next(f for f in diagnosis.findings if f.check == "sigma_unmoved")
    assert sigma.numbers["lr"] == 1e-11 and sigma.numbers["steps"] == 300
    assert sigma.numbers["moved"] < 1e-6  # Adam: about lr per step, 300 steps: ~3e-9
    assert "lr = 1e-11" in str(diagnosis)


def test_large_initial_sigmas_drown_the_signal():
    x, y = _data()
    model = _model()
    rng = np.random.default_rng(1)
    for layer in model.layers:  # the question's rho ~ N(0, 1): sigma 0.3 to 1.3
        for name in ("weight_rho", "bias_rho"):
            old = getattr(layer, name)
            setattr(layer, name, tensor(rng.standard_normal(old.shape), requires_grad=True))
    history = fit(model, x, y, epochs=200, lr=1e-2, n_samples=2, progress=False)
    diagnosis = diagnose(model, history, x)
    assert "noise" in _checks(diagnosis), str(diagnosis)
    noise = next(f for f in diagnosis.findings if f.check == "noise")
    assert noise.numbers["across_samples"] > noise.numbers["across_inputs"]
    assert "noise" not in _checks(diagnose(model, history))  # needs x


def test_a_complexity_cost_that_dwarfs_the_data_term():
    model = _model()
    found = diagnose(model, _history([5000.0, 4000.0], [200.0, 100.0]))
    complexity = next(f for f in found.findings if f.check == "complexity")
    assert complexity.numbers["ratio"] == pytest.approx(40.0)
    assert "temperature" in complexity.message
    # the same run at temperature 0.1: 400 against 100 nats, no longer dwarfing
    assert "complexity" not in _checks(diagnose(model, _history([5000, 4000], [200, 100], 0.1)))
    # 100 nats over 10 000 observations: the data are fitted (0.01 nats each), the ratio
    # says that the data term is small, not that the complexity cost is large
    fitted = _history([5000.0, 4000.0], [200.0, 100.0])
    fitted.settings["n_rows"] = 10_000
    assert "complexity" in diagnose(model, fitted).passed
    fitted.settings["n_rows"] = 500  # 0.2 nats each: not fitted, flagged
    assert "0.2 per observation" in str(diagnose(model, fitted))


def test_a_loss_that_rises_again_points_at_the_learning_rate():
    model = _model()
    nll = [1000.0 - 50 * i for i in range(10)] + [600.0 + 40 * i for i in range(10)]
    found = diagnose(model, _history([0.0] * 20, nll))
    rising = next(f for f in found.findings if f.check == "loss_rising")
    assert rising.numbers["window"] == 2 and rising.numbers["epoch"] == 9  # (575+550)/2 lowest
    falling = [1000.0 - 10 * i for i in range(20)]
    assert not {"loss_rising", "loss_flat"} & _checks(
        diagnose(model, _history([0.0] * 20, falling))
    )
    assert "loss_flat" in _checks(diagnose(model, _history([0.0] * 3, [100.0, 99.8, 99.5])))


def test_a_prior_far_narrower_or_wider_than_the_weights():
    # mu starts ~ N(0, 1/sqrt(n_in)): root mean square about 0.2-0.6
    narrow = diagnose(_model(GaussianPrior(1e-3)), _history([1.0], [1.0]))
    assert "times narrower" in next(f.message for f in narrow.findings if f.check == "prior")
    wide = diagnose(_model(GaussianPrior(1e3)), _history([1.0], [1.0]))
    assert "times wider" in next(f.message for f in wide.findings if f.check == "prior")
    mixture = diagnose(_model(ScaleMixturePrior()), _history([1.0], [1.0]))
    assert "prior" in mixture.passed  # std sqrt(0.5 * 1 + 0.5 * e^-12) = 0.71


def test_a_prediction_that_ignores_the_inputs():
    model = BayesianMLP([3, 8, 4], likelihood=Categorical(), seed=0)
    for layer in model.layers:  # every weight exactly 0: the output is the biases only
        layer.weight_mu = tensor(np.zeros(layer.weight_mu.shape), requires_grad=True)
        layer.weight_rho = tensor(np.full(layer.weight_rho.shape, -30.0), requires_grad=True)
    x, _ = _data()
    found = diagnose(model, _history([1.0], [1.0]), x)
    assert "constant_prediction" in _checks(found), str(found)


def test_the_report_prints_and_fit_can_print_it(capsys):
    x, y = _data()
    model = _model()
    fit(model, x, y, epochs=5, lr=1e-11, progress=False, diagnose=True)
    printed = capsys.readouterr().out
    assert printed.startswith("diagnose: ") and "[mu_unmoved]" in printed
    assert "checks that found nothing:" in printed
    with pytest.raises(ValueError, match="History that fit returned"):
        diagnose(model, History())
