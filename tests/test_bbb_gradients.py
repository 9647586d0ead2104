"""The Bayes by Backprop loss and its gradients (microbbb/bbb), checked three ways.

The references are independent of microbbb: a torch 2.13 float64 implementation of the same
loss written below (``torch_bbb_loss``), and closed-form math. For one set of Monte-Carlo
noise draws eps (``loss.eps``), microbbb's autodiff, the hand-derived numpy gradients
(``microbbb.bbb.by_hand``) and torch must give the same loss and the same gradient for every
weight_mu, weight_rho, bias_mu, bias_rho (and a learned noise_rho).

The loss, averaged over S samples eps ~ N(0, I) with w = mu + softplus(rho) * eps:

    f = c * (log q(w | mu, rho) - log P(w)) - log P(D | w)

or, with kl="closed_form" (Gaussian prior), f = c * KL(q || P) - log P(D | w).

Tolerance of the comparisons (``rel_err``): an element passes when

    |a - b| <= 1e-9 * |b| + 1e-12 * max|b|

i.e. rtol 1e-9, plus an absolute floor 1e-12 times the largest magnitude in the same array.
The floor is needed because a few gradient entries are exact zeros or are sums of terms that
cancel (in grad_mu, the d/dw and d/dmu parts of log q cancel exactly: -(w-mu)/sigma^2 +
(w-mu)/sigma^2), and there a relative error means nothing: the three implementations order
their float64 operations differently, so their results differ by rounding, about 1e-16 times
the size of the terms summed, which the floor covers with a margin of ~1e3. A wrong term
(a dropped sigmoid(rho), a wrong sign, a 1/S missing) changes the result at order 1.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from microbbb import no_grad, tensor
from microbbb.bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    ScaleMixturePrior,
    by_hand,
)

DT = torch.float64
RTOL = 1e-9  # relative tolerance of every three-way comparison
FLOOR = 1e-3  # atol = RTOL * FLOOR * max|b| = 1e-12 * max|b|
PARAM_NAMES = ("weight_mu", "weight_rho", "bias_mu", "bias_rho")
N_ROWS = 20


# --- the comparison ---------------------------------------------------------------------------


def rel_err(a, b, scale=None):
    """The largest |a - b| / (|b| + FLOOR * scale) over the elements (scale: max|b| unless
    given). ``rel_err(a, b) <= RTOL`` is ``|a - b| <= RTOL |b| + 1e-12 max|b|`` elementwise."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    scale = np.abs(b).max() if scale is None else scale
    if scale == 0:
        return 0.0 if np.array_equal(a, b) else math.inf
    return float((np.abs(a - b) / (np.abs(b) + FLOOR * scale)).max())


# --- the problems: priors, likelihoods, networks ------------------------------------------------

# name -> the prior's numbers: (sigma,) for a Gaussian, (pi, sigma1, sigma2) for a mixture.
# The torch reference reads these numbers, not the microbbb objects built from them.
PRIORS = {
    "gauss0.7": (0.7,),
    "mix(0.5,1,e-6)": (0.5, 1.0, math.exp(-6)),
    "mix(0.25,e-1,e-7)": (0.25, math.exp(-1), math.exp(-7)),
}
# (prior, kl): the closed-form KL exists for the Gaussian prior only
PRIOR_KL = [(name, "mc") for name in PRIORS] + [("gauss0.7", "closed_form")]
# likelihood kind -> number of outputs
LIKELIHOODS = {"gauss_fixed": 1, "gauss_learned": 2, "bernoulli": 1, "categorical": 3}
NETS = {"two_hidden": [3, 6, 5], "one_hidden": [3, 32]}  # n_out appended per likelihood
FIXED_NOISE_SIGMA = 0.3
LEARNED_NOISE_SIGMA0 = 0.5


def make_prior(name):
    args = PRIORS[name]
    return GaussianPrior(*args) if len(args) == 1 else ScaleMixturePrior(*args)


def make_likelihood(kind):
    """A fresh likelihood object (a learned-sigma Gaussian holds a parameter and its .grad)."""
    if kind == "gauss_fixed":
        return Gaussian(sigma=FIXED_NOISE_SIGMA)
    if kind == "gauss_learned":
        return Gaussian(sigma=LEARNED_NOISE_SIGMA0, learn_sigma=True)
    return Bernoulli() if kind == "bernoulli" else Categorical()


def make_problem(prior_name, lik_kind, hidden, seed):
    """A ReLU BayesianMLP with rho in [-3, -1] and nonzero bias_mu, and N=20 random rows."""
    rng = np.random.default_rng(seed)
    n_out = LIKELIHOODS[lik_kind]
    model = BayesianMLP(
        [*hidden, n_out],
        prior=make_prior(prior_name),
        likelihood=make_likelihood(lik_kind),
        seed=seed,
        rho_init=-2.0,
    )
    for layer in model.layers:  # spread rho (sigma from 0.05 to 0.31) and move the biases
        layer.weight_rho.data = rng.uniform(-3.0, -1.0, layer.weight_rho.shape)
        layer.bias_rho.data = rng.uniform(-3.0, -1.0, layer.bias_rho.shape)
        layer.bias_mu.data = rng.normal(0.0, 0.3, layer.bias_mu.shape)
    x = rng.normal(size=(N_ROWS, hidden[0]))
    if lik_kind == "gauss_fixed":
        y = rng.normal(size=N_ROWS)  # (N,) labels against (N, 1) outputs
    elif lik_kind == "gauss_learned":
        y = rng.normal(size=(N_ROWS, n_out))
    elif lik_kind == "bernoulli":
        y = rng.integers(0, 2, size=N_ROWS)
    else:
        y = rng.integers(0, n_out, size=N_ROWS)
    return model, x, y


# --- the torch reference ------------------------------------------------------------------------


def normal(loc, scale):
    """torch's Normal in float64 (given two Python floats, it would build float32 tensors)."""
    return torch.distributions.Normal(
        torch.as_tensor(loc, dtype=DT), torch.as_tensor(scale, dtype=DT)
    )


def torch_log_prior(w, prior_name):
    """sum log P(w), from the prior's defining numbers (not from microbbb's code)."""
    if len(PRIORS[prior_name]) == 1:
        (s,) = PRIORS[prior_name]
        return normal(0.0, s).log_prob(w).sum()
    pi, s1, s2 = PRIORS[prior_name]
    wide = normal(0.0, s1).log_prob(w) + math.log(pi)
    narrow = normal(0.0, s2).log_prob(w) + math.log(1 - pi)
    return torch.logaddexp(wide, narrow).sum()


def torch_log_likelihood(out, y, lik_kind, noise_rho):
    """log P(D | w) for the network output ``out`` (N, n_out)."""
    if lik_kind == "gauss_fixed":
        y = torch.as_tensor(np.asarray(y, dtype=np.float64)).reshape(out.shape)
        return torch.distributions.Normal(out, FIXED_NOISE_SIGMA).log_prob(y).sum()
    if lik_kind == "gauss_learned":
        y = torch.as_tensor(np.asarray(y, dtype=np.float64))
        return torch.distributions.Normal(out, TF.softplus(noise_rho)).log_prob(y).sum()
    if lik_kind == "bernoulli":
        logit = out[:, 0]
        y = torch.as_tensor(np.asarray(y, dtype=np.float64))
        return (y * TF.logsigmoid(logit) + (1 - y) * TF.logsigmoid(-logit)).sum()
    y = torch.as_tensor(np.asarray(y, dtype=np.int64))
    return torch.log_softmax(out, dim=1).gather(1, y[:, None]).sum()


def torch_bbb_loss(params, eps, x, y, prior_name, lik_kind, c, kl, noise_rho=None):
    """The BBB loss f in torch, from leaf tensors ``params[l][name]`` and noise
    ``eps[s][l] = (weight_eps, bias_eps)``. Returns f and the sampled weights
    ``ws[s][l] = {"weight": w, "bias": b}`` (non-leaf tensors, for retain_grad)."""
    n_samples, n_layers = len(eps), len(params)
    h0 = torch.tensor(np.asarray(x, dtype=np.float64))
    sigmas = [{k: TF.softplus(p[f"{k}_rho"]) for k in ("weight", "bias")} for p in params]
    log_lik, complexity, ws = 0.0, 0.0, []
    for sample in eps:
        h, sample_ws = h0, []
        for i, (p, sg, (w_eps, b_eps)) in enumerate(zip(params, sigmas, sample, strict=True)):
            w = p["weight_mu"] + sg["weight"] * torch.tensor(w_eps, dtype=DT)
            b = p["bias_mu"] + sg["bias"] * torch.tensor(b_eps, dtype=DT)
            sample_ws.append({"weight": w, "bias": b})
            h = h @ w + b
            if i < n_layers - 1:
                h = torch.relu(h)
        ws.append(sample_ws)
        log_lik = log_lik + torch_log_likelihood(h, y, lik_kind, noise_rho) / n_samples
        if kl == "mc":
            for p, sg, sw in zip(params, sigmas, sample_ws, strict=True):
                for k in ("weight", "bias"):
                    q = torch.distributions.Normal(p[f"{k}_mu"], sg[k])
                    log_q_minus_log_p = q.log_prob(sw[k]).sum() - torch_log_prior(sw[k], prior_name)
                    complexity = complexity + log_q_minus_log_p / n_samples
    if kl == "closed_form":
        (s,) = PRIORS[prior_name]
        for p, sg in zip(params, sigmas, strict=True):
            for k in ("weight", "bias"):
                q = torch.distributions.Normal(p[f"{k}_mu"], sg[k])
                p_w = normal(0.0, s)
                complexity = complexity + torch.distributions.kl_divergence(q, p_w).sum()
    return c * complexity - log_lik, ws


def torch_leaves(model):
    """Leaf tensors (requires_grad) holding copies of the model's mu and rho."""
    return [
        {
            name: torch.tensor(getattr(layer, name).data, dtype=DT, requires_grad=True)
            for name in PARAM_NAMES
        }
        for layer in model.layers
    ]


# --- 1, 2: the three-way sweep ------------------------------------------------------------------

SWEEP = [
    (prior_name, kl, lik_kind, n_samples, net, c)
    for prior_name, kl in PRIOR_KL
    for lik_kind in LIKELIHOODS
    for n_samples in (1, 3)
    for net in NETS
    for c in (1.0, 0.25)
]
_measured: dict = {}  # case -> its largest relative error (shared by the sweep and summary)


def three_way_errors(case):
    """Run one case three ways; return {comparison label: relative error}."""
    prior_name, kl, lik_kind, n_samples, net, c = case
    model, x, y = make_problem(prior_name, lik_kind, NETS[net], seed=1000 + SWEEP.index(case))

    loss = model.loss(x, y, n_samples=n_samples, complexity_weight=c, kl=kl)
    loss.backward()
    eps = loss.eps
    assert len(eps) == n_samples and len(eps[0]) == len(model.layers)
    hand = by_hand.for_model(model, x, y, eps, complexity_weight=c, kl=kl)

    params = torch_leaves(model)
    noise_rho = None
    if lik_kind == "gauss_learned":
        noise_rho = torch.tensor(model.likelihood.noise_rho.data, dtype=DT, requires_grad=True)
    f_torch, _ = torch_bbb_loss(params, eps, x, y, prior_name, lik_kind, c, kl, noise_rho)
    f_torch.backward()

    errors = {}

    def three_way(label, ours, hand_value, torch_value):
        errors[f"{label} microbbb/torch"] = rel_err(ours, torch_value)
        errors[f"{label} by_hand/torch"] = rel_err(hand_value, torch_value)
        errors[f"{label} microbbb/by_hand"] = rel_err(ours, hand_value)

    three_way("loss", loss.item(), hand.loss, f_torch.item())
    for i, layer in enumerate(model.layers):
        for name in PARAM_NAMES:
            three_way(
                f"layer{i + 1}.{name}",
                getattr(layer, name).grad,
                hand.grads[i][name],
                params[i][name].grad.numpy(),
            )
    if lik_kind == "gauss_learned":
        three_way(
            "noise_rho",
            model.likelihood.noise_rho.grad,
            hand.noise_rho_grad,
            noise_rho.grad.numpy(),
        )
    else:
        assert model.likelihood.parameters() == []
        assert hand.noise_rho_grad is None
    return errors


def measured(case):
    if case not in _measured:
        _measured[case] = three_way_errors(case)
    return _measured[case]


@pytest.mark.parametrize("case", SWEEP, ids=lambda case: "-".join(map(str, case)))
def test_loss_and_gradients_agree_three_ways(case):
    errors = measured(case)
    worst = max(errors, key=errors.get)
    assert errors[worst] <= RTOL, f"{worst}: relative error {errors[worst]:.3g}"


def test_three_way_sweep_maximum_error():
    """The largest relative error over the whole sweep (runs any case not yet run)."""
    worst_case, worst_label, worst = None, None, 0.0
    per_pair = dict.fromkeys(["microbbb/torch", "by_hand/torch", "microbbb/by_hand"], 0.0)
    for case in SWEEP:
        for label, err in measured(case).items():
            pair = label.split()[-1]
            per_pair[pair] = max(per_pair[pair], err)
            if err >= worst:
                worst_case, worst_label, worst = case, label, err
    print(
        f"\nthree-way sweep: {len(SWEEP)} cases; maximum relative error {worst:.3g}"
        f" ({worst_label}, case {worst_case}); by pair: "
        + ", ".join(f"{pair} {err:.3g}" for pair, err in per_pair.items())
    )
    assert worst <= RTOL


# --- 3: the paper's decomposition ------------------------------------------------------------


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("c", [1.0, 0.25])
@pytest.mark.parametrize("lik_kind", list(LIKELIHOODS))
@pytest.mark.parametrize("prior_name, kl", PRIOR_KL)
def test_gradient_decomposition(prior_name, kl, lik_kind, c):
    """grad_mu = df/dw + df/dmu and grad_rho = df/dw * eps * sigmoid(rho) + df/drho, where
    df/dw is the total derivative through the sampled weights (one sample)."""
    model, x, y = make_problem(prior_name, lik_kind, NETS["two_hidden"], seed=77)
    loss = model.loss(x, y, n_samples=1, complexity_weight=c, kl=kl)
    for layer in model.layers:  # the sampled w of the (only) sample: df/dw lands in .grad
        layer.weight.retain_grad()
        layer.bias.retain_grad()
    loss.backward()
    (eps,) = loss.eps
    hand = by_hand.for_model(model, x, y, loss.eps, complexity_weight=c, kl=kl)

    params = torch_leaves(model)
    noise_rho = None
    if lik_kind == "gauss_learned":
        noise_rho = torch.tensor(model.likelihood.noise_rho.data, dtype=DT, requires_grad=True)
    f_torch, ws = torch_bbb_loss(params, loss.eps, x, y, prior_name, lik_kind, c, kl, noise_rho)
    for sample_w in ws[0]:
        for w in sample_w.values():
            w.retain_grad()
    f_torch.backward()

    for i, layer in enumerate(model.layers):
        for k, kind in enumerate(("weight", "bias")):
            mu = getattr(layer, f"{kind}_mu").data
            rho = getattr(layer, f"{kind}_rho").data
            e = eps[i][k]
            sigma = np.logaddexp(0.0, rho)
            w = mu + sigma * e
            terms = hand.terms[i][kind]
            where = f"layer{i + 1}.{kind}"

            # df/dw three ways: microbbb's retained gradient, by_hand, torch's retained one
            df_dw = getattr(layer, kind).grad
            df_dw_torch = ws[0][i][kind].grad.numpy()
            assert rel_err(df_dw, df_dw_torch) <= RTOL, where
            assert rel_err(terms["df_dw"], df_dw_torch) <= RTOL, where

            # the direct terms, in closed form
            if kl == "mc":  # only log q(w | mu, sigma) depends on mu, sigma other than via w
                df_dmu = c * (w - mu) / sigma**2
                df_drho = c * ((w - mu) ** 2 / sigma**3 - 1 / sigma) * sigmoid(rho)
            else:  # c * KL(N(mu, sigma^2) || N(0, s^2)), which has no w in it
                (s,) = PRIORS[prior_name]
                df_dmu = c * mu / s**2
                df_drho = c * (-1 / sigma + sigma / s**2) * sigmoid(rho)
            assert rel_err(terms["df_dmu"], df_dmu) <= RTOL, where
            assert rel_err(terms["df_drho"], df_drho) <= RTOL, where
            pathwise = df_dw_torch * e * sigmoid(rho)
            assert rel_err(terms["pathwise_rho"], pathwise) <= RTOL, where

            # the total gradients (microbbb's and torch's autodiff) are the sums. The parts
            # can cancel, so the floor is scaled by the larger part, not by the sum.
            for source, grad_mu, grad_rho in [
                ("microbbb", getattr(layer, f"{kind}_mu").grad, getattr(layer, f"{kind}_rho").grad),
                ("torch", params[i][f"{kind}_mu"].grad, params[i][f"{kind}_rho"].grad),
            ]:
                grad_mu, grad_rho = np.asarray(grad_mu), np.asarray(grad_rho)
                for rhs in (terms["df_dw"] + terms["df_dmu"], df_dw + df_dmu):
                    scale = max(np.abs(df_dw).max(), np.abs(df_dmu).max())
                    assert rel_err(grad_mu, rhs, scale) <= RTOL, (source, where)
                for rhs in (
                    terms["pathwise_rho"] + terms["df_drho"],
                    df_dw * e * sigmoid(rho) + df_drho,
                ):
                    scale = max(np.abs(pathwise).max(), np.abs(df_drho).max())
                    assert rel_err(grad_rho, rhs, scale) <= RTOL, (source, where)


# --- 4: the Monte-Carlo complexity cost estimates the closed-form KL ----------------------------


def test_mc_complexity_mean_matches_closed_form_kl():
    """E[log q(w) - log P(w)] over w ~ q is KL(q || P). The mean of 4000 independent
    one-sample estimates must lie within 5 standard errors of the closed form (a 6e-7 chance
    of failing for a correct implementation, were the seed not fixed)."""
    model, x, y = make_problem("gauss0.7", "gauss_fixed", [2, 4], seed=5)
    x, y = x[:1], y[:1]  # the complexity cost does not depend on the data
    with no_grad():
        exact = model.loss(x, y, kl="closed_form").complexity.item()
        draws = np.array(
            [model.loss(x, y, n_samples=1, kl="mc").complexity.item() for _ in range(4000)]
        )
    # the closed form, independently: KL(N(mu, sigma^2) || N(0, s^2)) summed
    (s,), kl_numpy = PRIORS["gauss0.7"], 0.0
    for layer in model.layers:
        for kind in ("weight", "bias"):
            mu = getattr(layer, f"{kind}_mu").data
            sigma = np.logaddexp(0.0, getattr(layer, f"{kind}_rho").data)
            kl_numpy += np.sum(np.log(s / sigma) + (sigma**2 + mu**2) / (2 * s**2) - 0.5)
    assert exact == pytest.approx(kl_numpy, rel=1e-12)
    mean, sem = draws.mean(), draws.std(ddof=1) / np.sqrt(len(draws))
    print(f"\nMC complexity {mean:.4f} +- {sem:.4f} (SEM) vs closed-form KL {exact:.4f}")
    assert abs(mean - exact) <= 5 * sem
    # the test has power: the SEM is far below the size of a plausible mistake
    assert 5 * sem < 0.1 * exact


# --- 5: the priors at extreme weights ---------------------------------------------------------

PRIOR_CASES = [
    GaussianPrior(0.7),
    GaussianPrior(1e-3),
    ScaleMixturePrior(0.5, 1.0, math.exp(-6)),
    ScaleMixturePrior(0.25, math.exp(-1), math.exp(-7)),
]


def prior_log_prob_and_grad(prior, w):
    t = tensor(np.array([w]), requires_grad=True)
    value = prior.log_prob(t)
    value.backward()
    return value.item(), t.grad[0]


def log_normal(w, s):
    return -0.5 * (w / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)


@pytest.mark.parametrize("w", [1e3, -1e3, 1e-3, -1e-3])
@pytest.mark.parametrize("prior", PRIOR_CASES, ids=repr)
def test_prior_log_prob_at_extreme_weights(prior, w):
    value, grad = prior_log_prob_and_grad(prior, w)
    assert math.isfinite(value) and math.isfinite(grad)
    if isinstance(prior, GaussianPrior):
        expected, expected_grad = log_normal(w, prior.sigma), -w / prior.sigma**2
    elif abs(w) > 1:
        # the narrow component is exp(-w^2 / (2 sigma2^2)) ~ exp(-1e17) relative to the wide
        # one: zero to double precision, so log P = log pi + log N(w; 0, s1^2) exactly
        expected = math.log(prior.pi) + log_normal(w, prior.sigma1)
        expected_grad = -w / prior.sigma1**2
    else:  # no underflow at |w| = 1e-3: the density itself, with no log-sum-exp
        p1, p2 = prior.pi, 1 - prior.pi
        n1, n2 = math.exp(log_normal(w, prior.sigma1)), math.exp(log_normal(w, prior.sigma2))
        density = p1 * n1 + p2 * n2
        expected = math.log(density)
        expected_grad = -w * (p1 * n1 / prior.sigma1**2 + p2 * n2 / prior.sigma2**2) / density
    assert value == pytest.approx(expected, rel=1e-12)
    assert grad == pytest.approx(expected_grad, rel=1e-12)


@pytest.mark.parametrize("prior", PRIOR_CASES[2:], ids=repr)
def test_scale_mixture_matches_torch_logaddexp(prior):
    w = np.concatenate([np.linspace(-3.0, 3.0, 61), [-0.01, -0.002, 0.0, 0.002, 0.01]])
    t = tensor(w, requires_grad=True)
    value = prior.log_prob(t)
    value.backward()

    w_torch = torch.tensor(w, dtype=DT, requires_grad=True)
    wide = normal(0.0, prior.sigma1).log_prob(w_torch) + math.log(prior.pi)
    narrow = normal(0.0, prior.sigma2).log_prob(w_torch)
    expected = torch.logaddexp(wide, narrow + math.log(1 - prior.pi)).sum()
    expected.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    assert rel_err(t.grad, w_torch.grad.numpy()) <= 1e-12
