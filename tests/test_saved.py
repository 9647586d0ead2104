"""Saved values cannot change under the tape (microbbb/engine/saved.py): raw writes into an
array a recorded op used are refused; writes through the engine are counted and a stale
backward refuses; arrays given to an op are copies; PyTorch's in-place habits work."""

from __future__ import annotations

import numpy as np
import pytest

import microbbb as mb


def test_a_raw_write_into_a_saved_array_is_refused():
    # the case from the issue: it gave x.grad == [20, 40] (the new values), silently
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(ValueError, match="read-only"):
        x.data[...] = [10.0, 20.0]
    y.backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_an_intermediate_output_is_read_only():
    x = mb.tensor([-1.0, 2.0], requires_grad=True)
    h = x * 3.0
    with pytest.raises(ValueError, match="read-only"):
        h.data[h.data < 0] = 0.0  # a "manual relu" on a recorded value


def test_an_engine_write_after_the_forward_makes_backward_refuse():
    x = mb.tensor([1.0, 2.0], requires_grad=True, name="x")
    y = (x * x).sum()
    with mb.no_grad():
        x += 1.0  # allowed, and counted
    assert x.data.tolist() == [2.0, 3.0]
    with pytest.raises(RuntimeError, match=r"input 0 \('x'\) of op 'mul' \(tape position 1\)"):
        y.backward()
    (x * x).sum().backward()  # a new forward sees the new values
    assert x.grad.tolist() == [4.0, 6.0]


def test_an_optimizer_step_makes_the_old_graph_refuse_a_second_backward():
    from microbbb.optim import SGD

    w = mb.tensor([1.0, -1.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_the_pytorch_update_under_no_grad_trains_a_leaf():
    # `with no_grad(): w -= lr * w.grad` used to replace w by a tensor without grad
    w = mb.tensor([1.0, -2.0], requires_grad=True)
    for _ in range(3):
        w.grad = None
        (w * w).sum().backward()
        with mb.no_grad():
            w -= 0.25 * w.grad
    assert w.requires_grad and w.is_leaf and w.data.tolist() == [0.125, -0.25]


def test_in_place_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w = mb.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w -= 0.1
    with pytest.raises(RuntimeError, match="no_grad"):
        w.copy_([2.0])


def test_in_place_on_a_computed_tensor_gives_a_new_tensor():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    old = y
    y += 1.0  # rebinds y, changes nothing the tape saved
    assert y is not old and old.data.tolist() == [2.0, 4.0] and y.data.tolist() == [3.0, 5.0]
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_a_new_array_leaves_what_the_records_saved_alone():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    x.data = np.array([10.0, 20.0])  # rule 3: the record keeps the old array
    y.backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_index_arrays_and_masks_are_copied():
    a = mb.tensor([1.0, 2.0, 3.0], requires_grad=True)
    idx = np.array([0, 2])
    y = (a[idx] * mb.tensor([10.0, 100.0])).sum()
    idx[...] = 1  # the caller changes its index array after the forward
    y.backward()
    assert a.grad.tolist() == [10.0, 0.0, 100.0]
    mask = np.array([True, False, True])
    a.grad = None
    z = mb.where(mask, a, 0.0).sum()
    mask[...] = False
    z.backward()
    assert a.grad.tolist() == [1.0, 0.0, 1.0]


def test_copy_zero_and_requires_grad_():
    t = mb.tensor([1.0, 2.0])
    (t * 2.0).sum()  # a recorded op? no: nothing requires grad, nothing is locked
    t.copy_([3.0, 4.0])
    assert t.data.tolist() == [3.0, 4.0]
    t.requires_grad_()
    (t * t).sum().backward()
    with mb.no_grad():
        t.zero_()
    assert t.data.tolist() == [0.0, 0.0] and t.grad.tolist() == [6.0, 8.0]
    with pytest.raises(RuntimeError, match="leaf"):
        (t * 2.0).requires_grad_(False)


def test_a_computed_tensor_changed_through_the_engine_is_locked_again():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with mb.no_grad():
        y += 1.0  # in place (grad mode is off): y's own record now refuses backward
    z = (y * y).sum()  # a new graph reads y's new values
    with pytest.raises(ValueError, match="read-only"):
        y.data[...] = 0.0  # so they must not change under it
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()  # and y's old record saw the values before the +=
