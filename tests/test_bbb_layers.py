"""BayesianLinear, BayesianMLP, the loss's parts, prediction, likelihood errors
(microbbb/bbb/layers.py, likelihoods.py)."""

import math

import numpy as np
import pytest

import microbbb as mb
from microbbb.bbb import (
    BayesianLinear,
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    ScaleMixturePrior,
)

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 3))


def softplus(x):
    return np.logaddexp(0, x)


# --- BayesianLinear ----------------------------------------------------------------------


def test_parameter_shapes_names_and_default_prior():
    layer = BayesianLinear(3, 4, rng=np.random.default_rng(0), name="hidden")
    assert layer.weight_mu.shape == layer.weight_rho.shape == (3, 4)
    assert layer.bias_mu.shape == layer.bias_rho.shape == (4,)
    assert layer.weight_mu.name == "hidden.weight_mu"
    assert isinstance(layer.prior, ScaleMixturePrior)
    assert (layer.prior.pi, layer.prior.sigma1, layer.prior.sigma2) == (0.5, 1.0, math.exp(-6))
    np.testing.assert_allclose(layer.weight_sigma(), softplus(-5.0))


def test_sample_mode_draws_fresh_eps_and_w_is_mu_plus_sigma_eps():
    layer = BayesianLinear(3, 4, rng=np.random.default_rng(0), rho_init=-1.0)
    out1 = layer(X)
    eps1 = layer.weight_eps.copy()
    w = layer.weight_mu.data + softplus(layer.weight_rho.data) * eps1
    np.testing.assert_allclose(layer.weight.data, w, rtol=1e-15)
    b = layer.bias_mu.data + softplus(layer.bias_rho.data) * layer.bias_eps
    np.testing.assert_allclose(out1.data, X @ w + b, rtol=1e-13)
    layer(X)
    assert not np.array_equal(layer.weight_eps, eps1)


def test_mean_and_fixed_modes():
    layer = BayesianLinear(3, 4, rng=np.random.default_rng(0), rho_init=-1.0)
    with pytest.raises(ValueError, match="needs a previous sample"):
        layer(X, mode="fixed")
    np.testing.assert_allclose(layer(X, mode="mean").data, X @ layer.weight_mu.data)
    first = layer(X).data
    np.testing.assert_array_equal(layer(X, mode="fixed").data, first)
    with pytest.raises(ValueError, match="mode must be one of"):
        layer(X, mode="average")


def test_explicit_eps_is_used_and_checked():
    layer = BayesianLinear(3, 2, rng=np.random.default_rng(0), rho_init=0.0)
    weight_eps, bias_eps = np.ones((3, 2)), -np.ones(2)
    layer(X, eps=(weight_eps, bias_eps))
    expected = layer.weight_mu.data + softplus(0.0) * weight_eps
    np.testing.assert_allclose(layer.weight.data, expected)
    with pytest.raises(ValueError, match=r"eps must have the shapes of mu, \(3, 2\) and \(2,\)"):
        layer(X, eps=(np.ones((2, 3)), np.ones(2)))


def test_same_seed_same_draws():
    a = BayesianMLP([3, 5, 1], likelihood=Gaussian(), seed=4)
    b = BayesianMLP([3, 5, 1], likelihood=Gaussian(), seed=4)
    np.testing.assert_array_equal(a(X).data, b(X).data)
    np.testing.assert_array_equal(a.layers[1].weight_eps, b.layers[1].weight_eps)


# --- the loss --------------------------------------------------------------------------------


def test_loss_is_a_scalar_tensor_with_named_parts():
    model = BayesianMLP([3, 4, 1], likelihood=Gaussian(0.5), seed=0, rho_init=-2.0)
    y = RNG.standard_normal(12)
    loss = model.loss(X, y, n_samples=2, complexity_weight=0.1)
    assert isinstance(loss, mb.Tensor) and loss.shape == ()
    parts = 0.1 * (loss.log_q.item() - loss.log_prior.item()) - loss.log_likelihood.item()
    assert loss.item() == pytest.approx(parts, rel=1e-12)
    assert len(loss.eps) == 2 and len(loss.eps[0]) == 2
    text = repr(loss)
    assert "log_q" in text and "log_prior" in text and "log_likelihood" in text
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_log_q_is_the_gaussian_log_density_of_the_sample():
    model = BayesianMLP([3, 4, 1], likelihood=Gaussian(0.5), seed=0, rho_init=-2.0)
    loss = model.loss(X, RNG.standard_normal(12))
    expected = 0.0
    for layer, (weight_eps, bias_eps) in zip(model.layers, loss.eps[0], strict=True):
        for rho, eps in [(layer.weight_rho.data, weight_eps), (layer.bias_rho.data, bias_eps)]:
            sigma = softplus(rho)  # z = (w - mu) / sigma = eps
            expected += np.sum(-0.5 * eps**2 - np.log(sigma) - 0.5 * np.log(2 * np.pi))
    assert loss.log_q.item() == pytest.approx(expected, rel=1e-12)


# --- input and label errors ------------------------------------------------------------------


def test_a_likelihood_must_be_chosen():
    with pytest.raises(ValueError, match="needs a likelihood.*Bernoulli"):
        BayesianMLP([3, 1])


@pytest.mark.parametrize(
    "sizes, error, message",
    [
        ([3], ValueError, r">= 2 positive integers"),
        ([3, True], TypeError, r"sizes\[1\] must be an integer >= 1 .*True \(a bool\)"),
        ([3, 2.5, 1], TypeError, r"sizes\[1\] must be an integer >= 1 .*2\.5"),
        ([3, 0, 1], ValueError, r"sizes\[1\] must be an integer >= 1 .*got 0"),
    ],
)
def test_layer_sizes_must_be_positive_integers(sizes, error, message):
    with pytest.raises(error, match=message):
        BayesianMLP(sizes, likelihood=Gaussian())


def test_categorical_over_one_output_is_refused():
    with pytest.raises(ValueError, match="softmax over one output is constantly 1.*Bernoulli"):
        BayesianMLP([3, 32, 1], likelihood=Categorical())


def test_bernoulli_needs_one_output():
    with pytest.raises(ValueError, match="needs one output.*Categorical"):
        BayesianMLP([3, 2], likelihood=Bernoulli())


@pytest.mark.parametrize(
    "likelihood, n_out, y, message",
    [
        (Categorical, 3, np.array([0.0, 1.0] * 6), "integer class indices"),
        (Categorical, 3, np.array([0, 1, 2, 3] * 3), r"0\.\.2"),
        (Bernoulli, 1, np.array([0, 1, 2] * 4), "must be 0 or 1"),
        (Bernoulli, 1, np.array([0, 1] * 5), "12 inputs but 10 labels"),
        (Gaussian, 1, np.array([0.5, np.nan] * 6), r"NaN or inf \(first in row 1\)"),
        (Gaussian, 2, np.zeros(12), r"must have shape \(12, 2\)"),
    ],
)
def test_bad_labels_give_clear_errors(likelihood, n_out, y, message):
    model = BayesianMLP([3, n_out], likelihood=likelihood(), seed=0)
    with pytest.raises(ValueError, match=message):
        model.loss(X, y)


@pytest.mark.parametrize(
    "x, message",
    [
        (np.ones((12, 4)), r"shape \(N, 3\).*\(12, 4\)"),
        (np.where(np.eye(12, 3) == 1, np.inf, 0.0), r"NaN or inf \(first in row 0\)"),
        (np.array([["a", "b", "c"]]), "must be numbers"),
    ],
)
def test_bad_inputs_give_clear_errors(x, message):
    model = BayesianMLP([3, 1], likelihood=Gaussian(), seed=0)
    with pytest.raises((ValueError, TypeError), match=message):
        model.loss(x, np.zeros(len(x)))


def test_huge_but_finite_inputs_and_labels_are_accepted():
    """Data whose sum overflows is still finite data: only NaN and inf are refused."""
    model = BayesianMLP([3, 1], likelihood=Gaussian(), seed=0)
    x, y = np.full((12, 3), 1e308), np.full(12, 1e308)
    with np.errstate(all="ignore"):  # (the loss of such data is inf: not the point here)
        loss = model.loss(x, y)
    assert loss.inputs.x.max() == 1e308
    x[3, 1] = -np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(first in row 3\)"):
        model.loss(x, y)


def test_labels_of_shape_n_and_n_by_1_give_the_same_loss():
    # the (N,) vs (N, 1) mix-up must neither broadcast to (N, N) nor change the value
    model = BayesianMLP([3, 1], likelihood=Bernoulli(), seed=0)
    y = (RNG.random(12) < 0.5).astype(int)
    eps = model.loss(X, y).eps
    a = model.loss(X, y, eps=eps).log_likelihood.item()
    b = model.loss(X, y.reshape(-1, 1), eps=eps).log_likelihood.item()
    logits = X @ model.layers[0].weight.data + model.layers[0].bias.data
    expected = np.sum(y * logits[:, 0] - np.logaddexp(0, logits[:, 0]))
    assert a == b == pytest.approx(expected, rel=1e-12)


# --- prediction --------------------------------------------------------------------------------


def test_regression_prediction_splits_the_spread():
    model = BayesianMLP([3, 8, 1], likelihood=Gaussian(0.3), seed=0, rho_init=-1.0)
    p = model.predict(X, n_samples=50)
    assert p.mean.shape == p.std.shape == (12,)
    np.testing.assert_allclose(p.aleatoric_std, 0.3)
    np.testing.assert_allclose(p.std**2, p.epistemic_std**2 + 0.09, rtol=1e-12)
    assert (p.epistemic_std > 0).all()
    mean_only = model.predict(X, mode="mean")
    np.testing.assert_array_equal(mean_only.epistemic_std, 0.0)


def test_classification_prediction_probabilities_and_entropy():
    model = BayesianMLP([3, 8, 4], likelihood=Categorical(), seed=0, rho_init=-1.0)
    p = model.predict(X, n_samples=30)
    assert p.probs.shape == (12, 4)
    np.testing.assert_allclose(p.probs.sum(axis=1), 1.0)
    entropy = -(p.probs * np.log(p.probs)).sum(axis=1)
    np.testing.assert_allclose(p.entropy, entropy, rtol=1e-12)
    assert (p.mutual_information >= -1e-12).all() and (p.entropy <= np.log(4) + 1e-12).all()
    np.testing.assert_array_equal(p.labels, p.probs.argmax(axis=1))
    binary = BayesianMLP([3, 8, 1], likelihood=Bernoulli(), seed=0).predict(X, n_samples=5)
    assert binary.probs.shape == (12,) and ((binary.probs > 0) & (binary.probs < 1)).all()


class _DtypeChecked:
    """A primitive's VJPs, each asserting that it returns its input's dtype *before* the
    engine's safety cast (which would otherwise hide an upcast and its cost)."""

    def __init__(self, op):
        self.op, self.vjps = op, op.vjps

    def __getitem__(self, i):
        def vjp(xp, g, out, *inputs, **params):
            result = self.vjps[i](xp, g, out, *inputs, **params)
            assert result.dtype == inputs[i].dtype, f"{self.op.name} VJP {i}: {result.dtype}"
            return result

        return vjp


@pytest.mark.parametrize(
    "likelihood, prior, out",
    [
        (Categorical(), GaussianPrior(), 2),
        (Categorical(), None, 3),  # None: the default scale mixture
        (Gaussian(sigma=0.5, dtype=np.float32), None, 1),
        (Gaussian(learn_sigma=True, dtype=np.float32), None, 1),
        (Bernoulli(), None, 1),
    ],
    ids=["categorical-gaussian-prior", "categorical", "gaussian", "learned-noise", "bernoulli"],
)
def test_float32_model_stays_float32(likelihood, prior, out, monkeypatch):
    """Every forward, every VJP (before any cast) and every gradient of a step is float32,
    and the program (LossProgram) keeps it so too."""
    for op in mb.PRIMITIVES:
        monkeypatch.setattr(op, "vjps", _DtypeChecked(op))
    model = BayesianMLP([3, 4, out], likelihood=likelihood, seed=0, dtype=np.float32, prior=prior)
    y = RNG.integers(0, out, 12) if isinstance(likelihood, Categorical) else RNG.random((12, 1))
    y = (y > 0.5).astype(float)[:, 0] if isinstance(likelihood, Bernoulli) else y
    loss = model.loss(X, y, n_samples=2)
    loss.backward()
    assert {r.out.dtype for r in mb.tape(loss)} == {np.dtype(np.float32)}
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float32)}
    model.zero_grad()
    program = model.loss_program(X, y)
    program()
    program()
    assert {r.out.dtype for r in mb.tape(program.loss)} == {np.dtype(np.float32)}
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float32)}


def test_a_rho_of_the_wrong_shape_is_refused_not_broadcast():
    layer = BayesianLinear(3, 32, rng=np.random.default_rng(0))
    layer.bias_rho = mb.tensor(np.full(1, -5.0), requires_grad=True)  # one rho for 32 biases
    with pytest.raises(ValueError, match=r"bias_rho has shape \(1,\) but bias_mu has shape"):
        layer(X)


def test_parameters_are_the_leaves_only_even_after_a_forward_pass():
    model = BayesianMLP([3, 4, 1], likelihood=Gaussian(1.0, learn_sigma=True), seed=0)
    model(X)  # leaves sampled w, sigma tensors on the layers
    names = [name for name, _ in model.named_parameters()]
    assert names == [f"layers.{i}.{k}" for i in range(2)
                     for k in ("weight_mu", "weight_rho", "bias_mu", "bias_rho")] + [
        "likelihood.noise_rho"
    ]  # fmt: skip
    assert [id(p) for p in model.parameters()] == [id(p) for _, p in model.named_parameters()]


# --- arguments: checked, and the error names the argument ------------------------------------

NAN, INF = float("nan"), float("inf")


def _small_regression():
    model = BayesianMLP([3, 4, 1], likelihood=Gaussian(0.5), seed=0)
    return model, RNG.standard_normal(12)


COUNT = r"n_samples must be an integer >= 1 \(the number of weight samples"
WEIGHT = r"complexity_weight must be a finite number >= 0 \(the weight of"
LOSS_ARGUMENTS = [
    ({"n_samples": 2.5}, TypeError, COUNT + r".*got 2\.5 \(a float\)"),
    ({"n_samples": True}, TypeError, COUNT + r".*got True \(a bool\)"),
    ({"n_samples": 0}, ValueError, COUNT + r".*got 0$"),
    ({"complexity_weight": -0.5}, ValueError, WEIGHT + r".*got -0\.5$"),
    ({"complexity_weight": NAN}, ValueError, WEIGHT + r".*got nan$"),
    ({"complexity_weight": INF}, ValueError, WEIGHT + r".*got inf$"),
    ({"complexity_weight": "0.1"}, TypeError, WEIGHT + r".*got '0\.1' \(a str\)"),
    ({"kl": "exact"}, ValueError, r"kl must be 'mc' or 'closed_form', got 'exact'"),
]


@pytest.mark.parametrize("kwargs, error, message", LOSS_ARGUMENTS)
@pytest.mark.parametrize("method", ["loss", "loss_program"])
def test_loss_arguments_are_checked_by_name(method, kwargs, error, message):
    model, y = _small_regression()
    with pytest.raises(error, match=message):
        getattr(model, method)(X, y, **kwargs)


@pytest.mark.parametrize("weight", [-0.5, NAN, INF])
def test_a_fed_complexity_weight_is_checked_by_name(weight):
    model, y = _small_regression()
    program = model.loss_program(X, y, complexity_weight=0.5)
    with pytest.raises(ValueError, match=WEIGHT + f".*got {weight}$"):
        program.feed(X, y, complexity_weight=weight)
    assert program.loss.complexity_weight == 0.5  # nothing was fed


def test_predict_checks_n_samples_and_mode_by_name():
    model, _ = _small_regression()
    with pytest.raises(ValueError, match=COUNT):
        model.predict(X, n_samples=0)
    with pytest.raises(ValueError, match=r"mode must be 'sample' or 'mean', got 'fixed'"):
        model.predict(X, mode="fixed")  # was silently read as "sample"


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: Gaussian(sigma=INF), ValueError, r"Gaussian: sigma must be a positive finite"
                                                  r" number .*got inf"),
        (lambda: Gaussian(sigma=NAN), ValueError, r"Gaussian: sigma must .*got nan"),
        (lambda: Gaussian(sigma=0.0), ValueError, r"Gaussian: sigma must .*got 0\.0"),
        (lambda: Gaussian(sigma="1"), TypeError, r"Gaussian: sigma must .*got '1' \(a str\)"),
        (lambda: GaussianPrior(sigma=INF), ValueError, r"GaussianPrior: sigma must be a positive"
                                                       r" finite number .*got inf"),
        (lambda: GaussianPrior(sigma=-1.0), ValueError, r"GaussianPrior: sigma .*got -1\.0"),
        (lambda: ScaleMixturePrior(pi=NAN), ValueError, r"pi must be in \(0, 1\).*got nan"),
        (lambda: ScaleMixturePrior(pi=1.0), ValueError, r"pi must be in \(0, 1\).*got 1\.0"),
        (lambda: ScaleMixturePrior(sigma1=INF), ValueError, r"ScaleMixturePrior: sigma1 must be a"
                                                            r" positive finite number.*got inf"),
        (lambda: ScaleMixturePrior(sigma2=NAN), ValueError, r"ScaleMixturePrior: sigma2 .*got nan"),
        (lambda: ScaleMixturePrior(sigma2=0.0), ValueError, r"ScaleMixturePrior: sigma2 .*got 0"),
        (lambda: BayesianLinear(3, 2, mu_init=NAN), ValueError, r"mu_init must be a finite number"
                                                                r" >= 0 .*got nan"),
        (lambda: BayesianLinear(3, 2, mu_init=-0.1), ValueError, r"mu_init .*got -0\.1"),
        (lambda: BayesianLinear(3, 2, rho_init=INF), ValueError, r"rho_init must be a finite"
                                                                 r" number .*got inf"),
        (lambda: BayesianMLP([3, 1], likelihood=Gaussian(), mu_init=INF), ValueError,
         r"BayesianMLP: mu_init must be a finite number >= 0 .*got inf"),
        (lambda: BayesianMLP([3, 1], likelihood=Gaussian(), rho_init=NAN), ValueError,
         r"BayesianMLP: rho_init must be a finite number .*got nan"),
    ],
)  # fmt: skip
def test_constructor_arguments_are_checked_by_name(make, error, message):
    with pytest.raises(error, match=message):
        make()


# --- the graph holds its own copies of the caller's arrays -------------------------------------


@pytest.mark.parametrize("changed", ["x", "y"])
@pytest.mark.parametrize("likelihood, n_out", [(Categorical, 3), (Bernoulli, 1), (Gaussian, 1)])
def test_backward_does_not_see_the_callers_arrays_change(likelihood, n_out, changed):
    model = BayesianMLP([3, 4, n_out], likelihood=likelihood(), seed=0, rho_init=-2.0)
    y = RNG.integers(0, 2 if n_out == 1 else n_out, 12)
    y = y.astype(float) if likelihood is Gaussian else y
    x, labels = X.copy(), y.copy()  # the caller's arrays (float64 and int64, as the model's)
    loss = model.loss(x, labels, n_samples=2)
    value = loss.item()
    if changed == "x":
        x[...] = 3.0
    else:
        labels[...] = labels[::-1].copy()
    loss.backward()
    got = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    untouched = model.loss(X, y, n_samples=2, eps=loss.eps)
    untouched.backward()
    assert untouched.item() == value
    for g, p in zip(got, model.parameters(), strict=True):
        np.testing.assert_array_equal(g, p.grad)


def test_a_forward_pass_does_not_see_the_callers_x_change():
    model = BayesianMLP([3, 4, 1], likelihood=Gaussian(), seed=0)
    x = X.copy()
    out = model(x)
    x[...] = 3.0
    out.sum().backward()
    got = model.layers[0].weight_mu.grad.copy()
    model.zero_grad()
    eps = [(layer.weight_eps, layer.bias_eps) for layer in model.layers]
    model(X, eps=eps).sum().backward()
    np.testing.assert_array_equal(got, model.layers[0].weight_mu.grad)
