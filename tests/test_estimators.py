"""The three gradient estimators of ``BayesianLinear`` / ``BayesianMLP``: "reparam" (one w per
sample), "local" (the local reparameterisation trick) and "flipout".

Checked here:

- their gradients of mu and rho are unbiased estimates of the same expectation: over D = 2000
  draws on a 2-3-1 network with a large posterior spread (sigma = softplus(-1) = 0.31, so the
  estimators' noise differs a lot), the mean gradient of "local" and of "flipout" agrees with
  the mean of "reparam" elementwise within 5 standard errors, the standard error of a
  difference of two independent means being sqrt(var_a / D + var_b / D) (var from the draws,
  ddof 1). Under the null each of the 26 comparisons per estimator exceeds 5 with probability
  6e-7; a biased estimator (a missing sign flip, a sqrt forgotten) misses by hundreds;
- with sigma -> 0 (rho = -40, sigma = 4e-18) each reduces to the deterministic network: the
  same outputs and the same gradient of mu (data term and closed-form KL) as w = mu, to rtol
  1e-10 (the differences are of order sigma * |x|, far below);
- for a fixed noise draw, the engine's gradients equal central finite differences in float64
  (h = 1e-6: truncation ~h^2 = 1e-12, rounding ~1e-16 * |f| / h ~ 1e-9; tolerance 1e-6
  absolute plus 1e-6 relative) and an independent torch float64 implementation of both
  tricks written below (rtol 1e-9, as tests/test_bbb_gradients.py);
- the noise each draws, eager passes against ``LossProgram`` bit for bit, save/load, masks,
  and the clear errors (bad names, what ``by_hand``, ``bbb_split``, ``to_torch`` refuse).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from microbbb.bbb import (
    BayesianLinear,
    BayesianMLP,
    Bernoulli,
    Gaussian,
    GaussianPrior,
    ScaleMixturePrior,
    by_hand,
    fit,
    to_torch,
)
from microbbb.engine.extend import writing
from microbbb.viz import bbb_split

ESTIMATORS = ("reparam", "local", "flipout")
PARAMS = ("weight_mu", "weight_rho", "bias_mu", "bias_rho")


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    return x, np.sin(x[:, 0]) - 0.5 * x[:, 1]


def model(estimator, prior=None, rho_init=-1.0, seed=3, sizes=(2, 3, 1)):
    return BayesianMLP(
        list(sizes),
        likelihood=Gaussian(0.5),
        prior=prior or GaussianPrior(1.0),
        seed=seed,
        rho_init=rho_init,
        estimator=estimator,
    )


def gradients(m):
    return np.concatenate([getattr(layer, n).grad.ravel() for layer in m.layers for n in PARAMS])


# --- names, noise, errors -----------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: BayesianLinear(2, 3, estimator="locale"),
    lambda: model("Flipout"),
    lambda: setattr(model("reparam"), "estimator", "lrt"),
])  # fmt: skip
def test_a_bad_estimator_name_lists_the_choices(make):
    with pytest.raises(ValueError, match=r"estimator must be one of \('reparam', 'local', 'flip"):
        make()


def test_each_estimator_draws_its_noise_and_takes_it_back():
    x, y = data()
    shapes = {
        "reparam": [(2, 3), (3,)],
        "local": [(2, 3), (3,), (12, 3)],
        "flipout": [(2, 3), (3,), (12, 2), (12, 3)],
    }
    for estimator in ESTIMATORS:
        m = model(estimator)
        loss = m.loss(x, y, n_samples=2)
        assert [a.shape for a in loss.eps[1][0]] == shapes[estimator]
        if estimator == "flipout":
            signs = np.concatenate([loss.eps[0][0][2].ravel(), loss.eps[0][0][3].ravel()])
            assert set(np.unique(signs)) == {-1.0, 1.0}
        again = m.loss(x, y, n_samples=2, eps=loss.eps)
        assert again.item() == loss.item()
        short = [[pair[:2] for pair in sample] for sample in loss.eps]
        if estimator != "reparam":
            with pytest.raises(ValueError, match=f"the estimator '{estimator}' takes"):
                m.loss(x, y, n_samples=2, eps=short)


def test_local_evaluates_the_complexity_cost_at_a_separate_sample():
    x, y = data()
    m = model("local")
    loss = m.loss(x, y)
    layer = m.layers[0]
    sigma = np.logaddexp(0, layer.weight_rho.data)
    w = layer.weight_mu.data + sigma * layer.weight_eps
    assert layer.weight.name == "layer1.weight_kl_sample"
    np.testing.assert_array_equal(layer.weight.data, w)
    assert "at a separate w sample" in repr(loss)
    # the output does not use that sample: replacing weight_eps leaves the likelihood alone
    eps = [
        [
            tuple(np.zeros_like(a) if i < 2 else a for i, a in enumerate(pair))
            for pair in loss.eps[0]
        ]
    ]
    other = m.loss(x, y, eps=eps)
    assert other.log_likelihood.item() == loss.log_likelihood.item()
    assert other.log_q.item() != loss.log_q.item()


def test_what_by_hand_bbb_split_and_to_torch_refuse():
    x, y = data()
    for estimator in ("local", "flipout"):
        m = model(estimator)
        loss = m.loss(x, y)
        with pytest.raises(ValueError, match=f"by_hand derives .* 'reparam'; .* {estimator!r}"):
            by_hand.for_model(m, x, y, loss.eps)
        layers = [{n: getattr(lay, n).data for n in PARAMS} for lay in m.layers]
        with pytest.raises(ValueError, match=r"must be \(weight_eps, bias_eps\)"):
            by_hand.loss_and_gradients(layers, x, y, loss.eps, m.prior, m.likelihood)
        with pytest.raises(ValueError, match=f"layer1 uses {estimator!r}.*attribute"):
            bbb_split(loss, m.layers[0])
        with pytest.raises(ValueError, match=f"this model uses {estimator!r}"):
            to_torch(m)


def test_save_and_load_keep_the_estimator(tmp_path):
    x, _ = data()
    for estimator in ESTIMATORS:
        m = model(estimator)
        m.save(tmp_path / "m.npz")
        back = BayesianMLP.load(tmp_path / "m.npz")
        assert back.estimator == estimator
        assert all(layer.estimator == estimator for layer in back.layers)
        np.testing.assert_array_equal(back(x).data, m(x).data)  # same rng state, same noise


def same_step(eager, recorded, program, x, y):
    """One eager step of ``eager`` and one call of ``recorded``'s program: equal, bit for bit."""
    eager.zero_grad()
    recorded.zero_grad()
    loss = eager.loss(x, y, n_samples=2)
    loss.backward()
    assert program().item() == loss.item()
    np.testing.assert_array_equal(gradients(recorded), gradients(eager))


def test_a_program_refuses_a_changed_estimator_and_equals_eager_steps():
    x, y = data()
    for estimator in ("local", "flipout"):
        eager, recorded = model(estimator), model(estimator)
        program = recorded.loss_program(x, y, n_samples=2, kl="mc")
        for _ in range(3):
            same_step(eager, recorded, program, x, y)
        # the next batch of the same size, fed into the recording (x and noise both new)
        x2, y2 = data(seed=7)
        program.feed(x2, y2)
        same_step(eager, recorded, program, x2, y2)
        recorded.estimator = "reparam"
        with pytest.raises(ValueError, match=f"recorded with the estimator {estimator!r}"):
            program()


def test_a_pruned_weight_leaves_every_estimator_s_output_alone():
    x, _ = data()
    for estimator in ESTIMATORS:
        m = model(estimator)
        layer = m.layers[0]
        layer.weight_mask = np.ones((2, 3))
        layer.weight_mask[1, 2] = 0.0
        out = m(x).data
        eps = [lay.noise() for lay in m.layers]
        with writing(layer.weight_mu, layer.weight_rho):
            layer.weight_mu.data[1, 2] += 5.0
            layer.weight_rho.data[1, 2] += 3.0
        np.testing.assert_array_equal(m(x, eps=eps).data, out)


def test_fit_trains_with_each_estimator():
    x, y = data(40)
    for estimator in ESTIMATORS:
        m = model(estimator, rho_init=-4.0)
        history = fit(m, x, y, epochs=30, batch_size=20, lr=0.02)
        assert history.loss[-1] < history.loss[0], estimator


# --- unbiased, and the deterministic limit ----------------------------------------------------


@pytest.mark.parametrize("kl", ["mc", "closed_form"])
def test_the_estimators_mean_gradients_agree_within_monte_carlo_error(kl):
    x, y = data()
    draws, stats = 2000, {}
    for estimator in ESTIMATORS:
        m = model(estimator)
        program = m.loss_program(x, y, kl=kl)
        g = np.empty((draws, len(gradients_size(m))))
        for d in range(draws):
            m.zero_grad()
            program()
            g[d] = gradients(m)
        stats[estimator] = g.mean(axis=0), g.var(axis=0, ddof=1)
    mean_ref, var_ref = stats["reparam"]
    for estimator in ("local", "flipout"):
        mean, var = stats[estimator]
        z = (mean - mean_ref) / np.sqrt(var / draws + var_ref / draws)
        assert np.abs(z).max() < 5, (estimator, np.abs(z).max())
    # the test can fail: a gradient of another expectation (rho 0.5 higher) is caught
    shifted = model("reparam", rho_init=-0.5)
    program = shifted.loss_program(x, y, kl=kl)
    g = np.empty((draws, len(mean_ref)))
    for d in range(draws):
        shifted.zero_grad()
        program()
        g[d] = gradients(shifted)
    z = (g.mean(axis=0) - mean_ref) / np.sqrt(g.var(axis=0, ddof=1) / draws + var_ref / draws)
    assert np.abs(z).max() > 5


def gradients_size(m):
    return np.zeros(sum(getattr(layer, n).size for layer in m.layers for n in PARAMS))


def test_with_sigma_near_zero_every_estimator_is_the_deterministic_network():
    x, y = data()
    reference = model("reparam", rho_init=-40.0)
    out = reference(x, mode="mean")
    prepared = reference.likelihood.prepare(y, len(x), 1)
    targets = reference.likelihood.as_targets(prepared, reference.dtype)
    (-reference.likelihood.log_likelihood(out, targets)).backward()
    data_grad = [layer.weight_mu.grad.copy() for layer in reference.layers]
    for estimator in ESTIMATORS:
        m = model(estimator, rho_init=-40.0)
        np.testing.assert_allclose(m(x).data, out.data, rtol=1e-10, atol=1e-14)
        loss = m.loss(x, y, kl="closed_form")
        (-loss.log_likelihood).backward()
        for layer, expected in zip(m.layers, data_grad, strict=True):
            np.testing.assert_allclose(layer.weight_mu.grad, expected, rtol=1e-10, atol=1e-14)
        m.zero_grad()
        loss.backward()  # the closed-form KL adds mu / s^2 = mu (s = 1)
        for layer, expected in zip(m.layers, data_grad, strict=True):
            wanted = expected + layer.weight_mu.data
            np.testing.assert_allclose(layer.weight_mu.grad, wanted, rtol=1e-10, atol=1e-14)


# --- finite differences and torch, for a fixed noise draw -----------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kl", ["mc", "closed_form"])
def test_gradients_equal_finite_differences_for_fixed_noise(estimator, kl):
    x, y = data()
    m = model(estimator, prior=ScaleMixturePrior() if kl == "mc" else None)
    loss = m.loss(x, y, n_samples=2, kl=kl)
    loss.backward()
    h = 1e-6
    for layer in m.layers:
        for name in PARAMS:
            p = getattr(layer, name)
            numeric = np.empty(p.shape)
            for i in np.ndindex(p.shape):
                values = []
                for step in (h, -h):
                    with writing(p):
                        p.data[i] += step
                    values.append(m.loss(x, y, n_samples=2, kl=kl, eps=loss.eps).item())
                    with writing(p):
                        p.data[i] -= step
                numeric[i] = (values[0] - values[1]) / (2 * h)
            np.testing.assert_allclose(p.grad, numeric, rtol=1e-6, atol=1e-6)


def torch_loss(params, x, y, eps, estimator, kl, noise_sigma=0.5):
    """The loss of a ReLU MLP with a Gaussian likelihood and a N(0, 1) prior, written in
    torch from the papers' formulas (one sample), independently of microbbb."""
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    h, complexity = t(x), 0.0
    normal = torch.distributions.Normal
    for i, ((wm, wr, bm, br), noise) in enumerate(zip(params, eps, strict=True)):
        ws, bs = torch.nn.functional.softplus(wr), torch.nn.functional.softplus(br)
        w, b = wm + ws * t(noise[0]), bm + bs * t(noise[1])
        if estimator == "reparam":
            a = h @ w + b
        elif estimator == "local":
            a = h @ wm + bm + torch.sqrt(h**2 @ ws**2 + bs**2) * t(noise[2])
        else:
            a = h @ wm + ((h * t(noise[2])) @ (ws * t(noise[0]))) * t(noise[3]) + b
        h = torch.relu(a) if i < len(params) - 1 else a
        for value, mu, sigma in ((w, wm, ws), (b, bm, bs)):
            if kl == "mc":
                complexity = (
                    complexity
                    + (normal(mu, sigma).log_prob(value) - normal(0.0, 1.0).log_prob(value)).sum()
                )
            else:
                complexity = complexity + (-torch.log(sigma) + (sigma**2 + mu**2) / 2 - 0.5).sum()
    log_likelihood = normal(h[:, 0], noise_sigma).log_prob(t(y)).sum()
    return complexity - log_likelihood


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kl", ["mc", "closed_form"])
def test_gradients_equal_an_independent_torch_implementation(estimator, kl):
    x, y = data()
    m = model(estimator)
    loss = m.loss(x, y, kl=kl)
    loss.backward()
    params = [
        [torch.tensor(getattr(layer, n).data, requires_grad=True) for n in PARAMS]
        for layer in m.layers
    ]
    f = torch_loss(params, x, y, loss.eps[0], estimator, kl)
    f.backward()
    np.testing.assert_allclose(loss.item(), f.item(), rtol=1e-12)
    for layer, tensors in zip(m.layers, params, strict=True):
        for name, p in zip(PARAMS, tensors, strict=True):
            expected = p.grad.numpy()  # atol: where log q's d/dw and d/dmu cancel (see top)
            atol = 1e-12 * np.abs(expected).max()
            np.testing.assert_allclose(getattr(layer, name).grad, expected, rtol=1e-9, atol=atol)


def test_a_layer_refuses_inputs_without_rows_for_per_row_noise():
    layer = BayesianLinear(1, 2, estimator="local", prior=GaussianPrior(1.0))
    with pytest.raises(ValueError, match=r"draws noise per row, so x must have shape \(N, 1\)"):
        layer(np.ones(1))
    layer(np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"mode='fixed' needs a previous sample .*\(3 rows\)"):
        layer(np.ones((3, 1)), mode="fixed")


def test_bernoulli_question_setting_runs_with_every_estimator():
    rng = np.random.default_rng(1)
    x, labels = rng.standard_normal((30, 3)), rng.binomial(1, 0.6, 30)
    for estimator in ESTIMATORS:
        m = BayesianMLP([3, 8, 1], likelihood=Bernoulli(), seed=0, estimator=estimator)
        loss = m.loss(x, labels, n_samples=2)
        loss.backward()
        assert np.isfinite(loss.item())
