"""to_torch (microbbb/bbb/torch_bridge.py): the same model in torch gives the same loss
and gradients for the same eps (float64, rtol 1e-10: the same formulas, rounded in a
different order)."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from microbbb.bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    ScaleMixturePrior,
    fit,
    to_torch,
)

CASES = [
    (Gaussian(0.5), 1, ScaleMixturePrior(), "relu"),
    (Gaussian(0.8, learn_sigma=True), 2, GaussianPrior(0.5), "tanh"),
    (Bernoulli(), 1, ScaleMixturePrior(0.25, 0.5, 1e-3), "relu"),
    (Categorical(), 4, GaussianPrior(1.0), "softplus"),
]


@pytest.mark.parametrize("likelihood, n_out, prior, activation", CASES)
def test_trained_model_in_torch_has_the_same_loss_and_gradients(
    likelihood, n_out, prior, activation
):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3))
    if isinstance(likelihood, Categorical):
        y = rng.integers(0, n_out, 30)
    elif isinstance(likelihood, Bernoulli):
        y = rng.integers(0, 2, 30)
    else:
        y = rng.standard_normal((30, n_out))
    model = BayesianMLP([3, 5, n_out], activation=activation, prior=prior,
                        likelihood=likelihood, seed=1, rho_init=-3.0)  # fmt: skip
    fit(model, x, y, epochs=20, lr=1e-2, progress=False)  # a trained model, not the init
    model.zero_grad()  # fit leaves the last step's gradients, as torch does
    loss = model.loss(x, y, n_samples=2, complexity_weight=0.3)
    loss.backward()
    twin = to_torch(model)
    f, parts = twin.loss(x, y, n_samples=2, complexity_weight=0.3, eps=loss.eps)
    f.backward()
    assert f.item() == pytest.approx(loss.item(), rel=1e-10)
    assert parts["log_q"].item() == pytest.approx(loss.log_q.item(), rel=1e-10)
    for ours, theirs in zip(model.layers, twin.layers, strict=True):
        for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
            g = getattr(ours, name).grad
            np.testing.assert_allclose(getattr(theirs, name).grad.numpy(), g,
                                       rtol=1e-10, atol=1e-12 * np.abs(g).max())  # fmt: skip
    if likelihood.learn_sigma if isinstance(likelihood, Gaussian) else False:
        assert twin.noise_rho.grad.item() == pytest.approx(
            float(model.likelihood.noise_rho.grad), rel=1e-10
        )
    assert sum(p.numel() for p in twin.parameters()) == sum(p.size for p in model.parameters())


def test_the_torch_model_trains_with_torch_tools():
    model = BayesianMLP([2, 4, 1], likelihood=Gaussian(0.3), seed=0)
    twin = to_torch(model)
    optimizer = torch.optim.Adam(twin.parameters(), lr=1e-2)
    x = np.random.default_rng(0).standard_normal((20, 2))
    y = x[:, 0]
    first = None
    for _ in range(200):
        optimizer.zero_grad()
        f, _ = twin.loss(x, y)
        f.backward()
        optimizer.step()
        first = f.item() if first is None else first
    assert f.item() < first


def test_importing_microbbb_does_not_import_torch():
    code = "import sys, microbbb, microbbb.bbb, microbbb.viz; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_a_pruned_model_in_torch_keeps_its_zeros():
    from microbbb.bbb import prune

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 3)), rng.integers(0, 3, 20)
    model = prune(BayesianMLP([3, 6, 3], likelihood=Categorical(), seed=0, rho_init=-2.0), 0.5)
    loss = model.loss(x, y)
    f, _ = to_torch(model).loss(x, y, eps=loss.eps)
    assert f.item() == pytest.approx(loss.item(), rel=1e-10)


def test_the_torch_model_follows_its_parameters_device_and_takes_numpy():
    model = BayesianMLP([3, 4, 1], likelihood=Gaussian(0.5), seed=0)
    twin = to_torch(model)
    x = np.ones((2, 3))
    assert twin(x).shape == (2, 1)  # numpy input
    meta = to_torch(model).to("meta")  # a device other than the CPU, without a GPU
    f, _ = meta.loss(x, np.zeros(2))
    assert f.device.type == "meta"
