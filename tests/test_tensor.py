"""Tensor, tape and backward semantics (microbbb/engine: tensor.py, tape.py, sweep.py and
gradients.py).

Reference values are closed-form derivatives or torch 2.13 in float64; they agree with ours
to rounding, so rtol=1e-12 unless a comment says otherwise.
"""

import math

import numpy as np
import pytest
import torch

import microbbb as mb
from microbbb import Tensor

torch.set_default_dtype(torch.float64)
RTOL = 1e-12


def close(a, b, rtol=RTOL, atol=1e-14):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# --- construction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, dtype, expected",
    [
        ([1.0, 2.0], None, np.float64),
        ([1, 2], None, np.float64),
        ([True, False], None, np.float64),
        (np.ones(3, np.float32), None, np.float32),
        (np.ones(3, np.int32), None, np.float64),
        ([1.0, 2.0], "float32", np.float32),
        (np.ones(3, np.float32), np.float64, np.float64),
    ],
)
def test_tensor_dtype(data, dtype, expected):
    t = mb.tensor(data, dtype=dtype)
    assert isinstance(t, Tensor) and t.dtype == expected and isinstance(t.data, np.ndarray)


@pytest.mark.parametrize(
    "data, word",
    [
        (np.array([1 + 2j]), "complex128"),
        (np.array(["a", "b"]), "<U1"),
        (np.array([object()], dtype=object), "object"),
        (np.ones(2, np.float16), "float16"),
    ],
)
def test_tensor_refuses_unsupported_dtypes(data, word):
    with pytest.raises(TypeError, match=f"float32 or float64.*{word}|{word}.*float32"):
        mb.tensor(data)


def test_tensor_refuses_integer_dtype_argument():
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        mb.tensor([1.0], dtype=np.int64)


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = mb.tensor(a)
    a[0] = 99.0
    assert t.data[0] == 1.0


def test_attributes_and_repr():
    t = mb.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True, name="w")
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.dtype == np.float64
    assert t.T.shape == (3, 2) and np.array_equal(t.T.data, t.data.T)
    assert t.numpy() is t.data
    assert t.is_leaf and (t * 2).is_leaf is False
    assert mb.tensor(3.5).item() == 3.5
    text = repr(t)
    assert "name='w'" in text and "requires_grad=True" in text
    assert "op=mul" in repr(t * 2)


# --- operators with numbers and arrays on either side -------------------------------------


X0 = np.array([0.5, 1.5, 2.0])


@pytest.mark.parametrize(
    "fn, value, derivative",
    [
        (lambda x: x + 2, X0 + 2, np.ones(3)),
        (lambda x: 2 + x, X0 + 2, np.ones(3)),
        (lambda x: x - 2, X0 - 2, np.ones(3)),
        (lambda x: 2 - x, 2 - X0, -np.ones(3)),
        (lambda x: x * 3, X0 * 3, 3 * np.ones(3)),
        (lambda x: 3 * x, X0 * 3, 3 * np.ones(3)),
        (lambda x: x / 4, X0 / 4, np.full(3, 0.25)),
        (lambda x: 4 / x, 4 / X0, -4 / X0**2),
        (lambda x: x**3, X0**3, 3 * X0**2),
        (lambda x: 2**x, 2**X0, 2**X0 * math.log(2)),
        (lambda x: -x, -X0, -np.ones(3)),
        (lambda x: np.array([1.0, 2.0, 3.0]) * x, X0 * [1, 2, 3], np.array([1.0, 2, 3])),
        (lambda x: x * np.array([1.0, 2.0, 3.0]), X0 * [1, 2, 3], np.array([1.0, 2, 3])),
        (lambda x: np.array([1.0, 2.0, 3.0]) - x, [1, 2, 3] - X0, -np.ones(3)),
        (lambda x: x @ np.array([1.0, 2.0, 3.0]), X0 @ [1, 2, 3], np.array([1.0, 2, 3])),
        (lambda x: np.array([1.0, 2.0, 3.0]) @ x, X0 @ [1, 2, 3], np.array([1.0, 2, 3])),
    ],
)
def test_operators(fn, value, derivative):
    x = mb.tensor(X0, requires_grad=True)
    y = fn(x)
    assert isinstance(y, Tensor)
    close(y.data, value)
    y.sum().backward()
    close(x.grad, derivative)


def test_comparisons_return_plain_boolean_arrays():
    x = mb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert isinstance(mask, np.ndarray) and mask.dtype == bool
    assert mask.tolist() == [False, True, True]
    assert (x <= 2).tolist() == [True, True, False]


def test_tensors_compare_elementwise_and_hash_by_identity():
    a, b = mb.tensor([1.0, 2.0]), mb.tensor([1.0, 3.0])
    assert (a == b).tolist() == [True, False] and (a != b).tolist() == [False, True]
    assert isinstance(a == b, np.ndarray) and (a == [1.0, 2.0]).all()
    c, d = mb.tensor(1.0), mb.tensor(1.0)
    assert len({c: 1, d: 2}) == 2 and hash(c) != hash(d)  # dictionary keys by identity


# --- Python's and numpy's protocols ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "truth"), [([0.0], False), (0.0, False), ([2.0], True), (-1.0, True)]
)
def test_bool_of_one_element_is_its_truth(value, truth):
    assert bool(mb.tensor(value)) is truth


def test_bool_of_several_elements_is_ambiguous():
    with pytest.raises(ValueError, match="ambiguous"):
        bool(mb.tensor([1.0, 2.0]))


def test_float_and_int_of_one_element():
    assert float(mb.tensor([2.5])) == 2.5 and int(mb.tensor(3.7)) == 3
    with pytest.raises(TypeError, match="one element"):
        float(mb.tensor([1.0, 2.0]))


def test_numpy_ufuncs_on_a_tensor_name_the_microbbb_function():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"mb\.exp\(x\)"):
        np.exp(x)
    with pytest.raises(TypeError, match=r"mb\.log\(x\)"):
        np.log(x)
    y = np.array([3.0, 4.0]) * x  # the operators still work from the array side
    assert isinstance(y, Tensor) and y.requires_grad


def test_numpy_reductions_on_a_tensor_are_microbbb_reductions():
    x = mb.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    total = np.sum(x) + np.mean(x, axis=0).sum() + np.max(x)
    assert isinstance(total, Tensor)
    total.backward()
    close(x.grad, [[1.5, 1.5], [1.5, 2.5]])
    with pytest.raises(TypeError, match="numpy.cumprod"):
        np.cumprod(x)


def test_lists_of_tensors_are_refused_never_constants():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"mb\.stack"):
        mb.mean([x, 2 * x])  # as np.asarray it would be a constant: gradient 0
    with pytest.raises(TypeError, match=r"mb\.stack"):
        x + [x, [x]]
    y = (x + [1.0, 2.0]).sum()  # numbers are constants, as before
    y.backward()
    close(x.grad, [1.0, 1.0])
    m = mb.mean(mb.stack([x, 2 * x]))
    x.grad = None
    m.backward()
    close(x.grad, [0.75, 0.75])  # d/dx mean([x, 2x]) over 4 numbers


def test_an_array_given_to_an_op_is_copied():
    a = np.array([1.0, 2.0])
    x = mb.tensor([3.0, 4.0], requires_grad=True)
    y = (x * a).sum()
    a[...] = 100.0  # the caller changes its array after the forward
    y.backward()
    close(x.grad, [1.0, 2.0])


def test_create_graph_gradients_keep_each_leafs_dtype():
    a = mb.tensor([1.0, 2.0], requires_grad=True, dtype=np.float32)
    b = mb.tensor([3.0, 4.0], requires_grad=True)  # float64: a * b is float64
    (ga, gb) = mb.grad((a * b).sum(), [a, b], create_graph=True)
    assert ga.dtype == np.float32 and gb.dtype == np.float64
    close(ga.data, [3.0, 4.0])
    (a * b).sum().backward(create_graph=True)
    assert a.grad.dtype == np.float32
    (h,) = mb.grad((ga * ga).sum(), b)  # the cast is differentiable: d/db sum(b^2) = 2b
    close(h.data, [6.0, 8.0])
