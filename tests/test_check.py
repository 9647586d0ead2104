"""gradcheck and gradgradcheck (microbbb/engine/check.py) catch wrong VJPs."""

import numpy as np
import pytest

import microbbb as mb
from microbbb import GradcheckError, Primitive, Tensor

X = np.array([0.3, -1.2, 2.0])


def square(vjp):
    return Primitive("square", lambda x: x * x, [vjp], rules=["g * 2 * x"])


RIGHT = square(lambda xp, g, out, x: g * 2 * x)
MISSING_FACTOR = square(lambda xp, g, out, x: g * x)
# right in value, but reads the raw array, so under create_graph it is a constant
NOT_DIFFERENTIABLE = square(lambda xp, g, out, x: g * 2 * (x.data if isinstance(x, Tensor) else x))


def test_gradcheck_passes_a_right_vjp():
    assert mb.gradcheck(RIGHT, mb.tensor(X, requires_grad=True))
    assert mb.gradgradcheck(RIGHT, mb.tensor(X, requires_grad=True))


def test_gradcheck_reports_where_a_wrong_vjp_differs():
    x = mb.tensor(X, requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        mb.gradcheck(lambda a, b: MISSING_FACTOR(b) + a, mb.tensor(1.0), x)
    text = str(info.value)
    assert "input 1 (shape (3,)), element (0,), output 0 element (0,)" in text
    assert "analytic 0.3" in text and "numeric 0.6" in text


def test_gradgradcheck_catches_a_vjp_that_is_not_differentiable():
    x = mb.tensor(X, requires_grad=True)
    assert mb.gradcheck(NOT_DIFFERENTIABLE, x)  # first order is right ...
    with pytest.raises(GradcheckError):
        mb.gradgradcheck(NOT_DIFFERENTIABLE, x)  # ... second order is not


def test_gradcheck_needs_float64_and_something_to_check():
    with pytest.raises(TypeError, match="float64"):
        mb.gradcheck(mb.exp, mb.tensor(X, dtype=np.float32, requires_grad=True))
    with pytest.raises(ValueError, match="requires_grad"):
        mb.gradcheck(mb.exp, mb.tensor(X))


def test_gradcheck_handles_several_outputs():
    x = mb.tensor(X, requires_grad=True)
    assert mb.gradcheck(lambda t: (mb.sin(t), t.sum() * 2), x)


def test_gradcheck_perturbs_inputs_that_are_not_c_contiguous():
    x = mb.tensor(np.arange(6.0).reshape(2, 3).T, requires_grad=True)  # Fortran order
    assert not x.data.flags.c_contiguous
    assert mb.gradcheck(lambda u: u * mb.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), x)
