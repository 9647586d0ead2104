"""``Tensor``: a numpy array that remembers the op that made it.

A tensor holds ``data`` (a float32 or float64 numpy array), ``requires_grad``, ``grad``
(filled by ``backward``), an optional ``name`` for drawings and tables, and ``record``:
the tape entry of the op that produced it (None for leaves: parameters, data, constants).
Its operators and methods are the ops of the derivative table (``primitives.py``) and
``backward``; they import this module, so this one imports them at its end: the engine's
one import cycle.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
RETAINING: weakref.WeakSet = weakref.WeakSet()  # non-leaves that asked for retain_grad()


def check_dtype(dtype: np.dtype) -> None:
    """Refuse what a tensor cannot hold (ints and bools are converted, so they pass)."""
    if dtype.kind not in "fiub" or (dtype.kind == "f" and dtype not in FLOAT_DTYPES):
        raise TypeError(
            f"microbbb tensors hold float32 or float64 numbers; got dtype {dtype}. "
            "Convert the data first, for example np.asarray(data, dtype=np.float64) "
            "(complex numbers, strings, objects and float16 are not supported)."
        )


class Cut(NamedTuple):
    """Where a tensor was cut from the graph: by ``detach()`` or by an op under
    ``no_grad()``. ``sources`` are weak references to the tensors it came from (weak, so a
    cut tensor does not keep the old graph alive)."""

    reason: str
    op: str | None
    sources: tuple


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
        t.data, t.grad, t.requires_grad, t.name = data, None, record is not None, None
        t.record, t.cut = record, None
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

    # --- operators: the primitives of the table -------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return P.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return P.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return P.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return P.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return P.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return P.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return P.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return P.div(other, self)

    def __pow__(self, other: Any) -> Tensor:
        return P.pow(self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return P.pow(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return P.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return P.matmul(other, self)

    def __neg__(self) -> Tensor:
        return P.neg(self)

    def __getitem__(self, index: Any) -> Tensor:
        return P.getitem(self, index=_normalize_index(index))

    def __lt__(self, other: Any) -> np.ndarray:
        return self.data < _value(other)

    def __le__(self, other: Any) -> np.ndarray:
        return self.data <= _value(other)

    def __gt__(self, other: Any) -> np.ndarray:
        return self.data > _value(other)

    def __ge__(self, other: Any) -> np.ndarray:
        return self.data >= _value(other)

    # --- methods (the same ops as the functions in microbbb.functional) ---------------------
    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes when None)."""
        return P.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes when None)."""
        return P.mean(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; tied maxima share the gradient equally."""
        return P.max(self, axis=axis, keepdims=keepdims)

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

    def exp(self) -> Tensor:
        """Elementwise e**x."""
        return P.exp(self)

    def log(self) -> Tensor:
        """Elementwise natural logarithm."""
        return P.log(self)

    def log1p(self) -> Tensor:
        """Elementwise log(1 + x), accurate for small x."""
        return P.log1p(self)

    def sqrt(self) -> Tensor:
        """Elementwise square root."""
        return P.sqrt(self)

    def abs(self) -> Tensor:
        """Elementwise |x| (gradient 0 at x = 0)."""
        return P.abs(self)

    def sin(self) -> Tensor:
        """Elementwise sine."""
        return P.sin(self)

    def cos(self) -> Tensor:
        """Elementwise cosine."""
        return P.cos(self)

    def tanh(self) -> Tensor:
        """Elementwise hyperbolic tangent."""
        return P.tanh(self)

    def sigmoid(self) -> Tensor:
        """Elementwise 1 / (1 + exp(-x)), stable for large |x|."""
        return P.sigmoid(self)

    def relu(self) -> Tensor:
        """Elementwise max(x, 0) (gradient 0 at x = 0)."""
        return P.relu(self)

    def softplus(self) -> Tensor:
        """Elementwise log(1 + exp(x)), stable for large |x|."""
        return P.softplus(self)


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


def _value(a: Any) -> Any:
    return a.data if isinstance(a, Tensor) else a


def _normalize_index(index: Any) -> Any:
    """Lists used as indices become numpy arrays; tensors are refused."""
    if isinstance(index, tuple):
        return tuple(_normalize_index(i) for i in index)
    if isinstance(index, Tensor):
        raise TypeError(
            "index with ints, slices or numpy arrays (integer or boolean), not a Tensor:"
            " tensors hold floats, so a boolean mask or an integer index would be ambiguous."
            " Use index.data.astype(int) for integer positions."
        )
    return np.asarray(index) if isinstance(index, list) else index


# Tensor's operators and methods are the ops and the backward defined in these modules, which
# import Tensor: imported last, this is the engine's one (documented) import cycle.
from . import gradients  # noqa: E402
from . import primitives as P  # noqa: E402
