"""The plain MLP's dropout (MC dropout's network): masks, scaling, switching off, checks."""

import numpy as np
import pytest

from microbbb.engine import tensor
from microbbb.nn import MLP


def test_dropout_masks_hidden_units_and_scales_the_rest():
    net = MLP([3, 400, 1], seed=0, dropout=0.25)
    x = np.random.default_rng(1).normal(size=(2, 3))
    # the hidden layer by hand: relu(x W1 + b1); the output with W2 = 1 sums it up
    net.layers[1].weight = tensor(np.ones((400, 1)), requires_grad=True)
    hidden = np.maximum(x @ net.layers[0].weight.data + net.layers[0].bias.data, 0)
    full = hidden.sum(axis=1)
    draws = np.array([net(x).data[:, 0] for _ in range(2000)])
    assert len({tuple(d) for d in draws}) > 1900  # a new mask at every call
    # inverted dropout: E[output] = the output without dropout (3 standard errors)
    error = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - full) < 3 * error + 1e-12)
    # about a quarter of the units dropped: the spread of one draw matches Bernoulli(0.75)
    # sum_j h_j m_j / 0.75, variance sum_j h_j^2 * 0.25 / 0.75
    expected_std = np.sqrt((hidden**2).sum(axis=1) * 0.25 / 0.75)
    np.testing.assert_allclose(draws.std(axis=0), expected_std, rtol=0.1)
    np.testing.assert_allclose(net(x, dropout=False).data[:, 0], full, rtol=1e-12)


def test_no_dropout_is_the_plain_network_and_bad_rates_are_refused():
    x = np.random.default_rng(2).normal(size=(4, 3))
    plain, masked = MLP([3, 8, 2], seed=5), MLP([3, 8, 2], seed=5, dropout=0.5)
    np.testing.assert_array_equal(plain(x).data, masked(x, dropout=False).data)
    np.testing.assert_array_equal(plain(x).data, plain(x).data)  # dropout 0: deterministic
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="dropout must be a probability in"):
            MLP([3, 8, 2], dropout=bad)
    with pytest.raises(TypeError, match="dropout"):
        MLP([3, 8, 2], dropout="0.5")
