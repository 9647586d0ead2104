"""microbbb.testing.assert_same_gradients: silent when microbbb and torch agree, and an
AssertionError naming the input, the element and both values when they do not, at each
order (values, VJPs, Hessian-vector products)."""

import numpy as np
import pytest
import torch

import microbbb as mb
from microbbb.testing import assert_same_gradients

X = np.linspace(-2.0, 2.5, 7)


@pytest.mark.parametrize("order", [1, 2])
def test_agreeing_functions_pass_at_both_orders(order):
    assert_same_gradients(mb.softplus, torch.nn.functional.softplus, X, order=order)
    a, b = np.arange(6.0).reshape(2, 3) / 7, np.linspace(-1, 1, 12).reshape(3, 4)
    assert_same_gradients(lambda x, w: mb.tanh(x @ w), lambda x, w: torch.tanh(x @ w), a, b,
                          order=order)  # fmt: skip
    assert_same_gradients(
        lambda x: mb.log_softmax(x, axis=-1),
        lambda x: torch.log_softmax(x, dim=-1),
        b,
        order=order,
    )


def test_an_input_the_output_ignores_gets_zeros_on_both_sides():
    assert_same_gradients(lambda x, y: mb.exp(x), lambda x, y: torch.exp(x), X, X, order=2)


def test_a_wrong_gradient_is_named_by_input_element_and_both_values():
    bump = np.zeros(7)
    bump[3] = 0.5  # x * x.detach(): the value x**2, but one element's gradient is off

    def wrong_square(x, y):
        return x * x + y * (x - x.detach()) * bump

    y = np.ones(7)
    with pytest.raises(AssertionError) as caught:
        assert_same_gradients(wrong_square, lambda x, y: x * x, X, y)
    message = str(caught.value)
    rng = np.random.default_rng(0)
    v = rng.standard_normal(7)
    right = 2 * X[3] * v[3]
    assert "the gradient of input 0" in message and "at [3]" in message
    assert f"torch {right:.12g}" in message
    assert f"microbbb {right + 0.5 * v[3]:.12g}" in message
    assert "1 of 7 elements" in message


def test_a_wrong_value_is_caught_before_the_gradients():
    with pytest.raises(AssertionError, match="the output differs from torch at \\[0\\]"):
        assert_same_gradients(lambda x: mb.exp(x) + (x[0] * 0 + 1e-6), torch.exp, X)
    with pytest.raises(AssertionError, match="differ in shape: microbbb \\(7,\\), torch \\(\\)"):
        assert_same_gradients(mb.exp, lambda x: torch.exp(x).sum(), X)


def test_a_wrong_second_derivative_passes_order_1_and_fails_order_2():
    def cube(x):  # value x**3 and gradient 3 x**2, but second derivative 6x - 2
        d = x - x.detach()
        return x**3 - d * d

    assert_same_gradients(cube, lambda x: x**3, X, order=1)
    with pytest.raises(AssertionError, match="the Hessian-vector product of input 0"):
        assert_same_gradients(cube, lambda x: x**3, X, order=2)


def test_a_wrong_gradient_of_the_second_input_names_it():
    def wrong(x, y):
        return x * y.detach() + (y - y.detach()) * 2.0  # d/dy is 2, not x

    with pytest.raises(AssertionError, match="the gradient of input 1"):
        assert_same_gradients(wrong, lambda x, y: x * y, X, X + 1)


def test_the_tolerance_is_relative_to_torch():
    # off by 1e-12 relative: within rtol 1e-10; off by 1e-8 relative: outside it
    assert_same_gradients(lambda x: mb.exp(x) * (1 + 1e-12), torch.exp, X)
    with pytest.raises(AssertionError, match="the output differs"):
        assert_same_gradients(lambda x: mb.exp(x) * (1 + 1e-8), torch.exp, X)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: assert_same_gradients(mb.exp, torch.exp, X, order=3), ValueError, "order"),
        (lambda: assert_same_gradients(mb.exp, torch.exp), ValueError, "at least one input"),
        (lambda: assert_same_gradients(mb.exp, torch.exp, ["a"]), TypeError, "real numbers"),
        (lambda: assert_same_gradients(mb.exp, torch.exp, [np.nan]), ValueError, "NaN"),
        (lambda: assert_same_gradients(lambda x: 1.0, torch.exp, X), TypeError, "microbbb"),
        (lambda: assert_same_gradients(mb.exp, lambda x: 1.0, X), TypeError, "torch.Tensor"),
    ],
)
def test_bad_calls_say_what_to_fix(call, error, message):
    with pytest.raises(error, match=message):
        call()
