"""``Tensor``: a numpy array that remembers the op that made it.

A tensor holds ``data`` (a float32 or float64 numpy array), ``requires_grad``, ``grad``
(filled by ``backward``), a ``name`` for drawings, and ``record``: the tape entry of the op
that made it (None for leaves: parameters, data, constants). Its operators and methods are
the table's ops and ``backward``, whose modules import this one: so it imports them at its
end, the engine's one import cycle.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from .modes import Cut

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
RETAINING: weakref.WeakSet = weakref.WeakSet()  # non-leaves that asked for retain_grad()
OPS: dict[str, Any] = {}  # the primitives by name, for the methods below (filled at the end)


def check_dtype(dtype: np.dtype) -> None:
    """Refuse what a tensor cannot hold (ints and bools are converted, so they pass)."""
    if dtype.kind not in "fiub" or (dtype.kind == "f" and dtype not in FLOAT_DTYPES):
        raise TypeError(
            f"microbbb tensors hold float32 or float64 numbers; got dtype {dtype}. "
            "Convert the data first, for example np.asarray(data, dtype=np.float64) "
            "(complex numbers, strings, objects and float16 are not supported)."
        )


def _operator(name: str, reflected: bool = False) -> Callable[[Tensor, Any], Tensor]:
    """``a <op> b`` as a call of the primitive ``name`` (``b <op> a`` when reflected)."""
    if reflected:
        return lambda self, other: OPS[name](other, self)
    return lambda self, other: OPS[name](self, other)


def _comparison(compare: Callable) -> Callable[[Tensor, Any], np.ndarray]:
    """``a < b`` and friends: a boolean numpy array of the values, not a tensor."""
    return lambda self, other: compare(
        self.data, other.data if isinstance(other, Tensor) else other
    )


def _reduction(name: str, what: str) -> Callable[..., Tensor]:
    """The method ``x.<name>(axis=None, keepdims=False)``: the primitive ``name``."""

    def method(self: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        return OPS[name](self, axis=axis, keepdims=keepdims)

    method.__name__, method.__doc__ = name, f"{what} over ``axis`` (all axes when None)."
    return method


def _elementwise(name: str, what: str) -> Callable[[Tensor], Tensor]:
    """The method ``x.<name>()``: the primitive ``name``, elementwise."""

    def method(self: Tensor) -> Tensor:
        return OPS[name](self)

    method.__name__, method.__doc__ = name, f"Elementwise {what}."
    return method


class Tensor:
    """A numpy array that remembers how it was computed, for reverse-mode autodiff.

    ``grad`` is a numpy array of ``data``'s shape, or None; after
    ``backward(create_graph=True)`` a Tensor. ``cut`` says where ``detach``/``no_grad``
    cut this tensor from a graph (drawings show it). Comparisons (``<``, ``>``, ...) give
    boolean numpy arrays: they are not differentiable. ``==`` is identity, as for any
    Python object, so tensors can be dictionary keys.
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "record", "cut", "__weakref__")
    __array_ufunc__ = None  # make `ndarray * Tensor` call Tensor.__rmul__

    def __init__(
        self, data: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = None
    ):
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

    def detach(self) -> Tensor:
        """A tensor with the same data, cut from the graph (no grad flows through it)."""
        t = Tensor.wrap(self.data)
        t.cut = Cut("detach", None, (weakref.ref(self),))
        return t

    # --- operators and methods: each calls an op of the derivative table ------------------
    __add__, __radd__ = _operator("add"), _operator("add", reflected=True)
    __sub__, __rsub__ = _operator("sub"), _operator("sub", reflected=True)
    __mul__, __rmul__ = _operator("mul"), _operator("mul", reflected=True)
    __truediv__, __rtruediv__ = _operator("div"), _operator("div", reflected=True)
    __pow__, __rpow__ = _operator("pow"), _operator("pow", reflected=True)
    __matmul__, __rmatmul__ = _operator("matmul"), _operator("matmul", reflected=True)

    __lt__, __le__ = _comparison(np.less), _comparison(np.less_equal)  # not differentiable
    __gt__, __ge__ = _comparison(np.greater), _comparison(np.greater_equal)

    def __neg__(self) -> Tensor:
        return P.neg(self)

    def __getitem__(self, index: Any) -> Tensor:
        return P.getitem(self, index)

    sum = _reduction("sum", "Sum")
    mean = _reduction("mean", "Mean")
    max = _reduction("max", "Maximum (tied maxima share the gradient equally)")

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

    exp = _elementwise("exp", "e**x")
    log = _elementwise("log", "the natural logarithm")
    log1p = _elementwise("log1p", "log(1 + x), accurate for small x")
    sqrt = _elementwise("sqrt", "the square root")
    abs = _elementwise("abs", "|x| (gradient 0 at x = 0)")
    sin = _elementwise("sin", "the sine")
    cos = _elementwise("cos", "the cosine")
    tanh = _elementwise("tanh", "the hyperbolic tangent")
    sigmoid = _elementwise("sigmoid", "1 / (1 + exp(-x)), stable for large |x|")
    relu = _elementwise("relu", "max(x, 0) (gradient 0 at x = 0)")
    softplus = _elementwise("softplus", "log(1 + exp(x)), stable for large |x|")


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

OPS.update((op.name, op) for op in P.PRIMITIVES)
