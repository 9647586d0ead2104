"""microbbb.bbb.named: a model's mu, rho and eps as dicts keyed layer1.weight, layer1.bias, ..."""

import numpy as np
import pytest

from microbbb.bbb import BayesianMLP, Gaussian
from microbbb.bbb.named import (
    eps_by_layer,
    eps_by_name,
    likelihood_parameters,
    mu_rho,
    tensor_names,
)


def model(**kw):
    return BayesianMLP([3, 4, 2], likelihood=Gaussian(sigma=0.5, learn_sigma=True), seed=1, **kw)


def test_names_are_in_layer_order_and_values_are_the_parameters():
    m = model()
    assert tensor_names(m) == ["layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"]
    mu, rho = mu_rho(m)
    assert list(mu) == list(rho) == tensor_names(m)
    np.testing.assert_array_equal(mu["layer2.weight"], m.layers[1].weight_mu.data)
    np.testing.assert_array_equal(rho["layer1.bias"], m.layers[0].bias_rho.data)
    assert mu["layer1.weight"].shape == (3, 4) and rho["layer2.bias"].shape == (2,)
    mu["layer1.weight"][0, 0] += 1.0  # copies: the model does not change
    assert mu["layer1.weight"][0, 0] != m.layers[0].weight_mu.data[0, 0]
    assert set(likelihood_parameters(m)) == {"noise_rho"}


def test_eps_goes_there_and_back_and_reproduces_the_loss():
    m = model()
    x, y = np.random.default_rng(0).normal(size=(5, 3)), np.zeros((5, 2))
    loss = m.loss(x, y, n_samples=2)
    named = eps_by_name(m, loss.eps)
    assert len(named) == 2 and list(named[1]) == tensor_names(m)
    np.testing.assert_array_equal(named[1]["layer2.bias"], loss.eps[1][1][1])
    again = m.loss(x, y, n_samples=2, eps=eps_by_layer(m, named))
    assert float(again.data) == float(loss.data)


def test_wrong_keys_and_other_estimators_are_refused():
    m = model()
    named = eps_by_name(m, m.loss(np.zeros((2, 3)), np.zeros((2, 2))).eps)
    del named[0]["layer2.bias"]
    with pytest.raises(ValueError, match=r"missing \['layer2.bias'\]"):
        eps_by_layer(m, named)
    m.estimator = "flipout"
    with pytest.raises(ValueError, match="estimator 'reparam'"):
        eps_by_name(m, [])
