"""Module, Linear and MLP (microbbb/nn.py)."""

import numpy as np
import pytest

import microbbb as mb
from microbbb.nn import MLP, Module


def test_parameters_are_found_in_attributes_lists_and_children():
    model = MLP([3, 4, 2], seed=0)
    names = [name for name, _ in model.named_parameters()]
    assert names == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"
    ]  # fmt: skip
    assert [p.shape for p in model.parameters()] == [(3, 4), (4,), (4, 2), (2,)]

    class Holder(Module):
        def __init__(self):
            self.constant = mb.tensor(1.0)  # no grad: not a parameter
            self.inner = MLP([2, 1], seed=1)

    assert len(Holder().parameters()) == 2


def test_mlp_forward_is_relu_between_layers_only():
    model = MLP([3, 4, 2], seed=0)
    x = np.random.default_rng(1).standard_normal((5, 3))
    w1, b1, w2, b2 = (p.data for p in model.parameters())
    expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(model(x).data, expected, rtol=1e-14)
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_unknown_activation_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        MLP([2, 1], activation="gelu")
    with pytest.raises(ValueError, match="at least an input and an output"):
        MLP([2])
