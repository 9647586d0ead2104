"""How Tensor's operators and methods call the ops, and how tensors meet Python and numpy.

``Tensor`` (tensor.py) lists its operators and methods as one-liners such as
``__add__ = operator("add")``; the functions here make them. They find the ops by name in
``OPS``, which tensor.py fills once the derivative table is imported (the table imports
Tensor, so it comes later).

Python's and numpy's protocols, as numpy and PyTorch behave:

- ``bool(t)``, ``float(t)``, ``int(t)`` of a one-element tensor are its value's; with more
  elements ``bool`` is ambiguous and the numbers are refused.
- numpy's ufuncs: from an array's side the operators work (``array * t`` is a tensor), as
  do comparisons (boolean arrays); any other ufunc on a tensor (``np.exp(t)``) is refused
  with the name of the microbbb function that keeps the gradient.
- numpy's functions: ``np.sum``, ``np.mean``, ``np.max``, ``np.reshape``, ``np.transpose``,
  ``np.concatenate``, ``np.stack``, ``np.where``, ``np.clip`` on tensors are microbbb's;
  any other is refused: its result would be a constant where a variable was meant.
  ``np.asarray(t)`` (and ``t.data``) give the values, without the gradient, on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .modes import THREAD
from .saved import writing

OPS: dict[str, Any] = {}  # the primitives and public ops by name (filled by tensor.py)

OPERATOR_UFUNCS = {
    np.add: "add",
    np.subtract: "sub",
    np.multiply: "mul",
    np.true_divide: "div",
    np.power: "pow",
    np.matmul: "matmul",
    np.negative: "neg",
}
COMPARISON_UFUNCS = (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal)
UFUNC_NAMES = {"absolute": "abs", "arctan": "arctan", "true_divide": "div"}  # numpy -> mb
FUNCTIONS = {  # numpy function -> (the tensor's method, the arguments it takes)
    np.sum: ("sum", ("axis", "keepdims")),
    np.mean: ("mean", ("axis", "keepdims")),
    np.max: ("max", ("axis", "keepdims")),
    np.reshape: ("reshape", ("shape",)),
    np.transpose: ("transpose", ("axes",)),
}
SEQUENCE_FUNCTIONS = {np.concatenate: "concatenate", np.stack: "stack", np.where: "where"}


def value(a: Any) -> Any:
    """The values of a tensor (its ``numpy()``); anything else as it is."""
    return a.numpy() if hasattr(a, "requires_grad") and hasattr(a, "numpy") else a


def operator(name: str, reflected: bool = False) -> Callable:
    """``a <op> b`` as a call of the op ``name`` (``b <op> a`` when reflected)."""
    if reflected:
        return lambda self, other: OPS[name](other, self)
    return lambda self, other: OPS[name](self, other)


def comparison(compare: Callable) -> Callable:
    """``a < b``, ``a == b`` and friends: a boolean numpy array of the values, no tensor."""
    return lambda self, other: compare(self.data, value(other))


def reduction(name: str, what: str) -> Callable:
    """The method ``x.<name>(axis=None, keepdims=False)``: the op ``name``."""

    def method(self: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return OPS[name](self, axis=axis, keepdims=keepdims)

    method.__name__, method.__doc__ = name, f"{what} over ``axis`` (all axes when None)."
    return method


def elementwise(name: str, what: str) -> Callable:
    """The method ``x.<name>()``: the op ``name``, elementwise."""

    def method(self: Any) -> Any:
        return OPS[name](self)

    method.__name__, method.__doc__ = name, f"Elementwise {what}."
    return method


IN_PLACE = {
    "add": (np.add, "+="),
    "sub": (np.subtract, "-="),
    "mul": (np.multiply, "*="),
    "div": (np.true_divide, "/="),
}


def in_place(name: str) -> Callable:
    """``x += y`` and friends, as PyTorch: under ``no_grad()`` (or on a tensor that needs
    no grad) the array changes in place, through the engine (``saved.writing``); on a leaf
    that requires grad it is refused; on a tensor that recorded ops computed it gives a new
    tensor (the name is rebound), so no saved value changes."""
    ufunc, symbol = IN_PLACE[name]

    def method(self: Any, other: Any) -> Any:
        if self.requires_grad and THREAD.modes.grad_enabled:
            if self.record is None:
                raise RuntimeError(_leaf_in_place(f"x {symbol} ..."))
            return OPS[name](self, other)
        with writing(self):
            ufunc(self.data, value(other), out=self.data)
        return self

    return method


def copy_(t: Any, values: Any) -> Any:
    """``t.copy_(values)``: write ``values`` (broadcast to t's shape) into t's array, in
    place, through the engine; refused on a tensor that requires grad outside no_grad()."""
    if t.requires_grad and THREAD.modes.grad_enabled:
        raise RuntimeError(_leaf_in_place("x.copy_(...)"))
    with writing(t):
        t.data[...] = value(values)
    return t


def zero_(t: Any) -> Any:
    """``t.zero_()``: set t's values to 0, in place (as ``copy_``)."""
    return copy_(t, 0.0)


def requires_grad_(t: Any, requires_grad: bool = True) -> Any:
    """``t.requires_grad_()``: switch gradient tracking of a leaf on or off."""
    if t.record is not None:
        raise RuntimeError(
            "only a leaf's requires_grad can change; this tensor was computed by recorded"
            " ops: use t.detach() for a tensor cut from its graph."
        )
    t.requires_grad = bool(requires_grad)
    return t


def _leaf_in_place(what: str) -> str:
    return (
        f"a tensor that requires grad is being used in an in-place operation ({what}): its"
        " old value may be needed for backward. To change a parameter (an optimiser step),"
        " do it under `with microbbb.no_grad():`; to compute a new value, write x = x + ..."
    )


def truth(t: Any) -> bool:
    """``bool(t)``: the value of a one-element tensor; ambiguous for more, as numpy."""
    if t.data.size != 1:
        raise ValueError(
            f"the truth value of a tensor of shape {t.shape} is ambiguous: use"
            " (t > 0).any() or (t > 0).all() for a question about all its elements."
        )
    return bool(t.data)


def number(kind: type) -> Callable:
    """``float(t)`` or ``int(t)`` of a one-element tensor."""

    def convert(t: Any) -> Any:
        if t.data.size != 1:
            raise TypeError(
                f"{kind.__name__}() needs a tensor with one element; this one has shape"
                f" {t.shape}. Use t.data for the array, or reduce it first (t.sum())."
            )
        return kind(t.data.item())

    return convert


def array_ufunc(ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """numpy's ufunc protocol: operators and comparisons work, other ufuncs are refused."""
    if method == "__call__" and not kwargs:
        if ufunc in OPERATOR_UFUNCS:
            return OPS[OPERATOR_UFUNCS[ufunc]](*inputs)
        if ufunc in COMPARISON_UFUNCS:
            return ufunc(*(value(a) for a in inputs))
    name, numpy_name = UFUNC_NAMES.get(ufunc.__name__, ufunc.__name__), ufunc.__name__
    if name in OPS:
        advice = f"call mb.{name}(x) to keep the gradient"
    else:
        advice = f"call mb.{name}(x) if microbbb has it (see microbbb.functional)"
    raise TypeError(
        f"numpy.{numpy_name} does not know microbbb tensors: {advice}, or numpy.{numpy_name}"
        "(x.data) for the values as a constant, without a gradient."
    )


def array_function(func: Callable, args: tuple, kwargs: dict) -> Any:
    """numpy's function protocol: numpy's reductions and shape functions become microbbb's."""
    if func in FUNCTIONS:
        name, allowed = FUNCTIONS[func]
        first, *rest = args
        if set(kwargs) <= set(allowed) and len(rest) <= len(allowed) and hasattr(first, name):
            return getattr(first, name)(*rest, **kwargs)
    elif func in SEQUENCE_FUNCTIONS:
        return OPS[SEQUENCE_FUNCTIONS[func]](*args, **kwargs)
    raise TypeError(
        f"numpy.{func.__name__} does not know microbbb tensors here: its result would be a"
        " constant where a variable was meant. Use the microbbb function of the same name"
        f" if there is one (mb.{func.__name__}; see microbbb.functional), or"
        f" numpy.{func.__name__}(x.data) for the values without a gradient."
    )
