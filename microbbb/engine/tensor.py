"""``Tensor``: a numpy array that remembers the op that made it.

A tensor holds ``data`` (a float32 or float64 numpy array), ``requires_grad``, ``grad``
(filled by ``backward``), a ``name`` for drawings, and ``record``: the tape entry of the op
that made it (None for leaves: parameters, data, constants). Its operators and methods are
the table's ops and ``backward``, whose modules import this one: so it imports them at its
end, the engine's one import cycle.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import methods, nonfinite
from .kernels import FLOAT_DTYPES, check_dtype
from .methods import (
    comparison,
    copy_,
    elementwise,
    in_place,
    number,
    operator,
    reduction,
    requires_grad_,
    zero_,
)
from .modes import Cut

RETAINING: weakref.WeakSet = weakref.WeakSet()  # non-leaves that asked for retain_grad()


class Tensor:
    """A numpy array that remembers how it was computed, for reverse-mode autodiff.

    ``grad`` is a numpy array of ``data``'s shape, or None; after
    ``backward(create_graph=True)`` a Tensor. ``cut`` says where ``detach``/``no_grad``
    cut this tensor from a graph (drawings show it). Comparisons (``<``, ``==``, ...) give
    boolean numpy arrays: they are not differentiable. Tensors hash by identity, so they
    can be dictionary keys (as in PyTorch). Python's and numpy's protocols: methods.py.
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "record", "cut", "__weakref__")

    def __init__(
        self, data: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = None
    ):
        nonfinite.ensure_filter()  # (checked where tensors are made, not in every op)
        array = np.array(data.data if isinstance(data, Tensor) else data)  # a copy
        check_dtype(array.dtype)
        if dtype is None:
            dtype = array.dtype if array.dtype in FLOAT_DTYPES else np.float64
        elif np.dtype(dtype) not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
        self.data = array.astype(dtype, copy=False)
        self.grad, self.requires_grad, self.name = None, bool(requires_grad), name
        self.record, self.cut = None, None

    @classmethod
    def wrap(cls, data: np.ndarray, record: Any = None) -> Tensor:
        """A tensor holding ``data`` itself, without a copy or a check: the output of
        ``record`` (it then requires grad), or a constant when ``record`` is None. For ops
        and extensions (``data`` must be a float32 or float64 array); users want ``tensor``."""
        t = cls.__new__(cls)
        t.data, t.record, t.requires_grad = data, record, record is not None
        t.grad = t.name = t.cut = None
        return t

    # --- properties -------------------------------------------------------------------
    shape = property(lambda self: self.data.shape, doc="The shape of ``data``.")
    ndim = property(lambda self: self.data.ndim, doc="The number of axes of ``data``.")
    size = property(lambda self: self.data.size, doc="The number of elements of ``data``.")
    dtype = property(lambda self: self.data.dtype, doc="``data``'s dtype (float32/float64).")
    is_leaf = property(lambda self: self.record is None, doc="True when no op recorded it.")

    @property
    def T(self) -> Tensor:
        """The transpose (axes reversed, as numpy's ``.T``)."""
        return P.transpose(self, axes=tuple(reversed(range(self.ndim))))

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying numpy array (shared, not copied)."""
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20)
        extra = f", op={self.record.op.name}" if self.record is not None else ""
        extra += ", requires_grad=True" if self.requires_grad and not extra else ""
        extra += f", dtype={self.dtype}" if self.dtype != np.float64 else ""
        extra += f", name={self.name!r}" if self.name else ""
        return f"tensor({body}{extra})"

    # --- autodiff -----------------------------------------------------------------------
    def backward(self, grad: Any = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        For a non-scalar tensor, ``grad`` (the adjoint of this tensor, same shape) must be
        given. Gradients add up across calls until you reset them (``p.grad = None``).
        The graph is not freed: calling ``backward`` twice adds the gradient twice.
        With ``create_graph=True`` the gradients are recorded tensors (differentiable).
        """
        gradients.backward(self, grad, create_graph)

    def retain_grad(self) -> Tensor:
        """Keep this intermediate tensor's gradient in ``.grad`` during ``backward``."""
        RETAINING.add(self)
        return self

    copy_, zero_, requires_grad_ = copy_, zero_, requires_grad_  # (PyTorch's in-place names)

    def detach(self) -> Tensor:
        """A tensor with the same data, cut from the graph (no grad flows through it)."""
        t = Tensor.wrap(self.data)
        t.cut = Cut("detach", None, (weakref.ref(self),))
        return t

    # --- operators and methods: each calls an op of the derivative table ------------------
    __add__, __radd__ = operator("add"), operator("add", reflected=True)
    __sub__, __rsub__ = operator("sub"), operator("sub", reflected=True)
    __mul__, __rmul__ = operator("mul"), operator("mul", reflected=True)
    __truediv__, __rtruediv__ = operator("div"), operator("div", reflected=True)
    __pow__, __rpow__ = operator("pow"), operator("pow", reflected=True)
    __matmul__, __rmatmul__ = operator("matmul"), operator("matmul", reflected=True)
    __iadd__, __isub__ = in_place("add"), in_place("sub")  # in place under no_grad()
    __imul__, __itruediv__ = in_place("mul"), in_place("div")

    __lt__, __le__ = comparison(np.less), comparison(np.less_equal)  # not differentiable
    __gt__, __ge__ = comparison(np.greater), comparison(np.greater_equal)
    __eq__, __ne__ = comparison(np.equal), comparison(np.not_equal)
    __hash__ = object.__hash__  # elementwise ==, yet dictionary keys by identity (as torch)
    __bool__, __float__, __int__ = methods.truth, number(float), number(int)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return methods.array_ufunc(ufunc, method, *inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return methods.array_function(func, args, kwargs)

    def __neg__(self) -> Tensor:
        return P.neg(self)

    def __getitem__(self, index: Any) -> Tensor:
        return P.getitem(self, index)

    sum = reduction("sum", "Sum")
    mean = reduction("mean", "Mean")
    max = reduction("max", "Maximum (tied maxima share the gradient equally)")

    def reshape(self, *shape: Any) -> Tensor:
        """Same data, new shape (``reshape(2, 3)`` or ``reshape((2, 3))``)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return P.reshape(self, shape=shape)

    def transpose(self, *axes: Any) -> Tensor:
        """Permute axes (reverse them when no axes are given), as numpy."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return P.transpose(self, axes=axes or tuple(reversed(range(self.ndim))))

    def clip(self, low: float | None = None, high: float | None = None) -> Tensor:
        """Clamp values to [low, high]; no gradient flows where a value was clamped."""
        return P.clip(self, low=low, high=high)

    exp = elementwise("exp", "e**x")
    log = elementwise("log", "the natural logarithm")
    log1p = elementwise("log1p", "log(1 + x), accurate for small x")
    sqrt = elementwise("sqrt", "the square root")
    abs = elementwise("abs", "|x| (gradient 0 at x = 0)")
    sin = elementwise("sin", "the sine")
    cos = elementwise("cos", "the cosine")
    tanh = elementwise("tanh", "the hyperbolic tangent")
    sigmoid = elementwise("sigmoid", "1 / (1 + exp(-x)), stable for large |x|")
    relu = elementwise("relu", "max(x, 0) (gradient 0 at x = 0)")
    softplus = elementwise("softplus", "log(1 + exp(x)), stable for large |x|")


def tensor(
    data: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = None
) -> Tensor:
    """Make a Tensor from numbers, lists or a numpy array (copied).

    Floats keep their dtype if float32 or float64; integers and booleans become float64
    unless ``dtype`` says otherwise.
    """
    return Tensor(data, requires_grad=requires_grad, name=name, dtype=dtype)


def from_numpy(array: np.ndarray, name: str | None = None) -> Tensor:
    """A constant tensor that shares ``array``'s memory (no copy), as ``torch.from_numpy``:
    later changes to the array show in the tensor. ``array`` must be float32 or float64."""
    if not isinstance(array, np.ndarray) or array.dtype not in FLOAT_DTYPES:
        kind = getattr(array, "dtype", type(array).__name__)
        raise TypeError(f"from_numpy needs a float32 or float64 numpy array, got {kind}")
    t = Tensor.wrap(array)
    t.name = name
    return t


# Tensor's operators and methods are the ops and the backward defined in these modules, which
# import Tensor: imported last, this is the engine's one (documented) import cycle.
from . import gradients  # noqa: E402
from . import primitives as P  # noqa: E402

methods.OPS.update((op.name, op) for op in P.PRIMITIVES)
methods.OPS.update(getitem=P.getitem, where=P.where, concatenate=P.concatenate, stack=P.stack)
