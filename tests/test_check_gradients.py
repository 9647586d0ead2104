"""check_gradients: a correct hand derivation passes in every setting; each usual mistake,
planted in it, is named with the right parameters; perturbations are never called right;
bad input gets an error that says what to fix."""

import re

import numpy as np
import pytest
from bbb_learner import learner

from microbbb.bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    ScaleMixturePrior,
    by_hand,
    check_gradients,
    marking,
    named,
)

LIKELIHOODS = {
    "gaussian": lambda: Gaussian(0.7),
    "gaussian_learned": lambda: Gaussian(0.7, learn_sigma=True),
    "bernoulli": Bernoulli,
    "categorical": Categorical,
}
PRIORS = {
    "gaussian": lambda: GaussianPrior(0.8),
    "mixture": lambda: ScaleMixturePrior(0.5, 1.0, 0.05),
}


def setting(likelihood="bernoulli", prior="gaussian", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((12, 3))
    n_out = 3 if likelihood == "categorical" else 1
    if likelihood.startswith("gaussian"):
        y = 0.2 * x[:, 0] - 1.3 * x[:, 1] + rng.standard_normal(12)
    elif likelihood == "bernoulli":
        y = (rng.random(12) < 0.6).astype(float)
    else:
        y = rng.integers(0, 3, 12)
    model = BayesianMLP(
        [3, 6, n_out],
        likelihood=LIKELIHOODS[likelihood](),
        prior=PRIORS[prior](),
        seed=seed,
        rho_init=-1.0,
    )
    for layer in model.layers:  # as after some training: biases start at 0, where some
        layer.bias_mu.data[...] = rng.normal(0.0, 0.3, layer.bias_mu.shape)  # terms vanish
        layer.weight_mu.data[...] = rng.normal(0.0, 0.5, layer.weight_mu.shape)
        layer.weight_rho.data[...] += rng.normal(0.0, 0.3, layer.weight_rho.shape)
    return model, x, y


def rho_keys(model):
    return [f"{n} rho" for n in named.tensor_names(model)]


def all_keys(model):
    return [f"{n} {t}" for n in named.tensor_names(model) for t in ("mu", "rho")]


# --- the test's own learner is right (checked against by_hand, not against the checker) ------


def test_the_reference_learner_agrees_with_by_hand():
    model, x, y = setting("gaussian", "mixture")
    mu, rho = named.mu_rho(model)
    rng = np.random.default_rng(3)
    eps = [{k: rng.standard_normal(v.shape) for k, v in mu.items()} for _ in range(2)]
    loss, dmu, drho = learner(model, c=0.3)(x, y, mu, rho, eps)
    hand = by_hand.for_model(model, x, y, named.eps_by_layer(model, eps), complexity_weight=0.3)
    assert loss == pytest.approx(hand.loss, rel=1e-12)
    for i, layer in enumerate(model.layers):
        for kind in ("weight", "bias"):
            key = f"{layer.name}.{kind}"
            np.testing.assert_allclose(dmu[key], hand.grads[i][f"{kind}_mu"], rtol=1e-10)
            np.testing.assert_allclose(drho[key], hand.grads[i][f"{kind}_rho"], rtol=1e-10)


# --- a correct solution passes ---------------------------------------------------------------

CASES = [(lik, prior, n, "mc") for lik in LIKELIHOODS for prior in PRIORS for n in (1, 3)] + [
    (lik, "gaussian", n, "closed_form") for lik in LIKELIHOODS for n in (1, 3)
]


@pytest.mark.parametrize("likelihood, prior, n_samples, kl", CASES)
def test_a_correct_solution_passes(likelihood, prior, n_samples, kl):
    model, x, y = setting(likelihood, prior)
    c = 0.25
    report = check_gradients(
        learner(model, c=c, kl=kl), model, x, y, n_samples=n_samples, complexity_weight=c, kl=kl
    )
    assert report.ok, str(report)
    assert not report.findings
    assert "all right" in str(report)
    assert len(report.rows) == 1 + 4 * len(model.layers) + ("learned" in likelihood)


def test_the_model_is_left_as_it_was():
    model, x, y = setting()
    before = [p.data.copy() for p in model.parameters()]
    check_gradients(learner(model, {"no_chain"}), model, x, y, n_samples=2)
    assert all(p.grad is None for p in model.parameters())
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, b)


# --- each planted mistake is named, with the right parameters --------------------------------

PRODUCT, WEIGHT = "posterior_minus_prior_times_likelihood", "complexity_weight_missing"
MISTAKES = [
    # (mistake, likelihood, prior, n_samples, c, kl, expected: "all" | "rho" | {key: code})
    ("product", "bernoulli", "gaussian", 1, 1.0, "mc", "all", PRODUCT),
    ("product", "gaussian", "mixture", 3, 0.5, "mc", "all", PRODUCT),
    ("eps_0.1", "bernoulli", "gaussian", 1, 1.0, "mc", "all", "eps_scaled"),
    ("eps_0.1", "categorical", "mixture", 3, 1.0, "mc", "all", "eps_scaled"),
    ("no_chain", "bernoulli", "gaussian", 1, 1.0, "mc", "rho", "chain_factor_missing"),
    ("no_chain", "gaussian", "mixture", 3, 0.5, "mc", "rho", "chain_factor_missing"),
    ("no_chain", "categorical", "gaussian", 2, 1.0, "closed_form", "rho", "chain_factor_missing"),
    ("sigma_slope", "bernoulli", "gaussian", 1, 1.0, "mc", "rho", "sigma_for_softplus_slope"),
    ("sigma_slope", "gaussian", "mixture", 3, 1.0, "mc", "rho", "sigma_for_softplus_slope"),
    ("no_direct", "bernoulli", "gaussian", 1, 1.0, "mc", "grads", "log_q_direct_missing"),
    ("no_direct", "categorical", "mixture", 3, 0.3, "mc", "grads", "log_q_direct_missing"),
    ("no_q_through_w", "bernoulli", "gaussian", 1, 1.0, "mc", "grads", "log_q_through_w_missing"),
    ("no_q_through_w", "gaussian", "mixture", 3, 1.0, "mc", "grads", "log_q_through_w_missing"),
    ("prior_sign", "bernoulli", "gaussian", 1, 1.0, "mc", "all", "log_prior_sign"),
    ("prior_sign", "gaussian", "mixture", 3, 0.5, "mc", "all", "log_prior_sign"),
    ("no_weight", "bernoulli", "gaussian", 1, 0.1, "mc", "all", WEIGHT),
    ("no_weight", "categorical", "gaussian", 3, 0.1, "closed_form", "all", WEIGHT),
    ("sum_samples", "bernoulli", "mixture", 3, 1.0, "mc", "all", "sample_count"),
    ("sum_samples", "gaussian", "gaussian", 2, 1.0, "closed_form", "all", "sample_count"),
    ("flip", "bernoulli", "gaussian", 1, 1.0, "mc", "all", "sign_flipped"),
    ("flip", "gaussian_learned", "mixture", 3, 1.0, "mc", "all", "sign_flipped"),
    ("softmax_one", "bernoulli", "gaussian", 1, 1.0, "mc", "all", "softmax_single_output"),
    ("softmax_one", "bernoulli", "mixture", 3, 0.5, "mc", "all", "softmax_single_output"),
    ("log_2pi", "gaussian", "gaussian", 1, 1.0, "mc", "loss", "log_2pi"),
    ("log_2pi", "gaussian", "mixture", 3, 0.2, "mc", "loss", "log_2pi"),
    ("log_2pi", "gaussian", "gaussian", 1, 1.0, "closed_form", "loss", "log_2pi"),
]  # fmt: skip


@pytest.mark.parametrize(
    "mistake, likelihood, prior, n_samples, c, kl, which, code",
    MISTAKES,
    ids=[f"{m[0]}-{m[1]}-{m[2]}-{m[3]}-{m[5]}" for m in MISTAKES],
)
def test_a_planted_mistake_is_named(mistake, likelihood, prior, n_samples, c, kl, which, code):
    model, x, y = setting(likelihood, prior)
    mine = learner(model, {mistake}, c=c, kl=kl)
    report = check_gradients(mine, model, x, y, n_samples=n_samples, complexity_weight=c, kl=kl)
    assert not report.ok
    expected = {
        "all": ["loss", *all_keys(model)],
        "grads": all_keys(model),
        "rho": rho_keys(model),
        "loss": ["loss"],
    }[which]
    got = {k: v for k, v in report.diagnoses.items() if k != "noise_rho"}
    assert got == dict.fromkeys(expected, code), str(report)
    text = str(report)
    assert f"[{code}]" in text and "WRONG" in text
    for finding in report.findings:  # the numbers are in the words
        assert re.search(r"yours -?\d|your loss is -?\d", finding.message), finding.message


def test_through_w_part_of_log_q_left_out_with_its_direct_part_is_right_for_mu_only():
    model, x, y = setting()
    mine = learner(model, {"no_direct", "no_q_through_w"})
    report = check_gradients(mine, model, x, y)
    assert set(report.diagnoses) == set(rho_keys(model)), str(report)
    assert set(report.diagnoses.values()) == {"log_q_missing"}


def test_own_noise_and_ignored_eps_are_told_apart():
    model, x, y = setting()
    report = check_gradients(learner(model, {"own_noise"}), model, x, y)
    assert report.diagnoses == {"all": "own_noise"}, str(report)
    right = learner(model)

    def ignores_eps(x, y, mu, rho, eps):
        return right(x, y, mu, rho, [{k: 0 * v for k, v in e.items()} for e in eps])

    report = check_gradients(ignores_eps, model, x, y)
    assert report.diagnoses == {"all": "eps_ignored"}, str(report)


def test_two_mistakes_at_once_are_fitted_as_parts_or_compared_part_by_part():
    model, x, y = setting()
    report = check_gradients(learner(model, {"prior_sign", "no_direct"}), model, x, y)
    assert not report.ok
    assert report.diagnoses["layer1.weight mu"] == "parts_scaled", str(report)
    message = report.finding("layer1.weight mu").message
    assert "log prior (-log P(w)) counted -1 times" in message
    assert "log q directly (df/dmu, df/drho) counted 0 times" in message
    assert report.diagnoses["layer2.bias mu"] == "unexplained"  # one element: too few to fit
    mine = learner(model, {"prior_sign", "no_direct"}, return_parts=True)
    report = check_gradients(mine, model, x, y)
    finding = report.finding("layer2.bias mu")
    assert finding.diagnosis == "wrong_parts", str(report)
    assert "agree with the tape's: the data term" in finding.message
    assert "these do not: log q directly (df/dmu, df/drho), the log prior" in finding.message


# --- never a wrong answer called right -------------------------------------------------------


def test_random_perturbations_are_never_reported_correct():
    model, x, y = setting("gaussian", "mixture")
    right = learner(model)
    rng = np.random.default_rng(7)
    for trial in range(40):
        size = 10 ** rng.uniform(-6, 0)
        target = rng.choice(["loss", "dmu", "drho"])
        name = rng.choice(named.tensor_names(model))
        spread = trial % 2 == 0  # every element, or one

        def perturbed(x, y, mu, rho, eps, size=size, target=target, name=name, spread=spread):
            loss, dmu, drho = right(x, y, mu, rho, eps)
            if target == "loss":
                return loss * (1 + size), dmu, drho
            g = (dmu if target == "dmu" else drho)[name]
            noise = rng.standard_normal(g.shape) if spread else np.zeros(g.shape)
            noise.flat[rng.integers(g.size)] = 1.0
            g += size * np.abs(g).max() * noise
            return loss, dmu, drho

        # the same perturbation on every call: fix the rng's draws for this trial
        state = rng.bit_generator.state

        def fixed(*args, _state=state, _fn=perturbed):
            rng.bit_generator.state = _state
            return _fn(*args)

        report = check_gradients(fixed, model, x, y)
        assert not report.ok, (size, target, name)
        key = "loss" if target == "loss" else f"{name} {'mu' if target == 'dmu' else 'rho'}"
        assert key in report.diagnoses, str(report)


def test_a_solution_off_by_less_than_the_tolerance_is_right_and_slightly_more_is_not():
    model, x, y = setting()
    right = learner(model)
    for factor, ok in ((1 + 1e-9, True), (1 + 1e-6, False)):

        def scaled(x, y, mu, rho, eps, f=factor):
            loss, dmu, drho = right(x, y, mu, rho, eps)
            return loss, dmu, {k: v * f for k, v in drho.items()}

        report = check_gradients(scaled, model, x, y)
        assert report.ok is ok, str(report)
        if not ok:
            assert set(report.diagnoses.values()) == {"imprecise"}, str(report)


# --- not done, and bad input -----------------------------------------------------------------


def test_a_stub_is_not_done_yet():
    model, x, y = setting()

    def stub(x, y, mu, rho, eps):
        raise NotImplementedError

    for mine in (stub, lambda *args: None):
        report = check_gradients(mine, model, x, y)
        assert not report.ok and report.diagnoses == {"all": "not_done"}
        assert "not done yet" in str(report)


def wrong_return(model, change):
    right = learner(model)

    def mine(x, y, mu, rho, eps):
        return change(*right(x, y, mu, rho, eps))

    return mine


BAD = [
    (lambda loss, dmu, drho: (loss, dmu), TypeError, "must return a tuple \\(loss, dmu, drho\\)"),
    (lambda loss, dmu, drho: ("1.0", dmu, drho), TypeError, "loss \\(1st item\\) must be a number"),
    (lambda loss, dmu, drho: (np.nan, dmu, drho), ValueError, "loss \\(1st item\\) is nan"),
    (lambda loss, dmu, drho: (loss, list(dmu.values()), drho),
     TypeError, "dmu \\(2nd item\\) must be a dict"),
    (lambda loss, dmu, drho: (loss, {k: v for k, v in dmu.items() if "bias" not in k}, drho),
     ValueError, "missing \\['layer1.bias', 'layer2.bias'\\]"),
    (lambda loss, dmu, drho: (loss, dmu, {**drho, "layer1.weight": drho["layer1.weight"].T}),
     ValueError, "drho \\(3rd item\\)\\['layer1.weight'\\] has shape \\(6, 3\\)"
     ".*\\(3, 6\\) \\(transposed\\?\\)"),
    (lambda loss, dmu, drho: (loss, {**dmu, "layer2.bias": dmu["layer2.bias"] * np.nan}, drho),
     ValueError, "\\['layer2.bias'\\] contains NaN or inf \\(first at \\[0\\]\\)"),
    (lambda loss, dmu, drho: (loss, dmu, drho, {"prior": (dmu, drho)}),
     TypeError, "parts \\(4th item\\)"),
]  # fmt: skip


@pytest.mark.parametrize("change, error, message", BAD)
def test_bad_returns_say_what_to_fix(change, error, message):
    model, x, y = setting()
    with pytest.raises(error, match=message):
        check_gradients(wrong_return(model, change), model, x, y)


def test_bad_arguments_say_what_to_fix():
    model, x, y = setting()
    with pytest.raises(TypeError, match="mine must be a function"):
        check_gradients("mine", model, x, y)
    with pytest.raises(TypeError, match="model must be a BayesianMLP"):
        check_gradients(learner(model), object(), x, y)
    with pytest.raises(ValueError, match="inputs x must have shape"):
        check_gradients(learner(model), model, x[:, :2], y)
    flipout = BayesianMLP([3, 4, 1], likelihood=Bernoulli(), estimator="flipout")
    with pytest.raises(ValueError, match="estimator 'reparam'"):
        check_gradients(learner(flipout), flipout, x, y)


def test_a_softmax_over_one_output_is_refused_by_the_model_pointing_to_bernoulli():
    with pytest.raises(ValueError, match="use Bernoulli\\(\\) with one output"):
        BayesianMLP([3, 32, 1], likelihood=Categorical())


# --- the codes are documented ----------------------------------------------------------------


def test_every_diagnosis_code_is_documented():
    listed = re.findall(r"^- ``([a-z_0-9]+)``", marking.__doc__, flags=re.M)
    assert listed == list(marking.DIAGNOSES)
    with pytest.raises(ValueError, match="undocumented diagnosis"):
        marking.GradientFinding("loss", "a_new_code", "words")
