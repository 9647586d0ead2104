"""The Tensor, the tape and reverse-mode backpropagation.

This module provides:

- ``Tensor`` and ``tensor()``: a numpy array (``.data``) with ``.grad``, ``.requires_grad``,
  ``.name`` and ``.record``, the tape entry of the op that produced it.
- ``Record``: one entry of the tape: the op, its input tensors, its parameters, its output
  value and its position in recording order.
- ``Primitive``: an op, i.e. a forward function on numpy arrays plus one vector-Jacobian
  product (VJP) per input. Calling a primitive on tensors runs the forward and, if any input
  requires grad, appends a ``Record``.
- ``no_grad`` / ``enable_grad``, ``Tensor.backward`` and the functional ``grad``.

It does not define any op: the derivative table lives in ``primitives.py``.

How the tape works. There is no global list of records: each output tensor holds its record
and each record holds its input tensors, so a graph is freed as soon as nothing refers to its
output (10 000 training steps do not grow memory). Every record gets a number from a global
counter when it is made; ``backward`` collects the records reachable from the output and
walks them newest first, i.e. in reverse order of recording, which is always a valid reverse
topological order because an op is recorded after all of its inputs exist.

One VJP for first and higher order. A VJP is written once against a namespace ``xp``. In an
ordinary backward, ``xp`` holds the numpy forward functions of the primitives and the VJP
runs on raw arrays (fast, nothing recorded). With ``create_graph=True``, ``xp`` holds the
primitives themselves and the VJP runs on tensors, so the gradient is itself recorded and
can be differentiated again.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Sequence
from operator import attrgetter
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ShapeError(ValueError):
    """An op got inputs whose shapes do not fit together."""


class _State:
    """Process-wide switches: is grad recording on, is anomaly mode on."""

    grad_enabled = True
    anomaly = False
    anomaly_start = 0  # the clock when the current detect_anomaly() began
    clock = 0  # how many records were ever made: gives each its position in order
    retained = 0  # how many tensors ever asked for retain_grad() (0: backward skips a scan)


_state = _State()


# ----------------------------------------------------------------------------- grad mode


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self) -> None:
        self.previous = _state.grad_enabled
        _state.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        _state.grad_enabled = self.previous


def no_grad() -> _GradMode:
    """Context manager: ops inside it record nothing and their outputs need no grad."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager: switch recording back on (inside a ``no_grad`` block)."""
    return _GradMode(True)


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad are being recorded."""
    return _state.grad_enabled


# ----------------------------------------------------------------------------- records


class Record:
    """One entry of the tape: ``out = op(*inputs, **params)``.

    ``out`` is the output's value (a numpy array), ``index`` the record's position in
    recording order (global, increasing), ``scope`` the group name active when it was
    recorded (see ``scope()``), used by drawings.
    """

    __slots__ = ("op", "inputs", "params", "out", "index", "scope")

    def __init__(self, op: Primitive, inputs: tuple, params: dict, out: np.ndarray):
        self.op = op
        self.inputs = inputs
        self.params = params
        self.out = out
        _state.clock += 1
        self.index = _state.clock
        self.scope = _scopes[-1] if _scopes else None

    def __repr__(self) -> str:
        shapes = ", ".join(str(t.shape) for t in self.inputs)
        return f"<Record #{self.index} {self.op.name}({shapes}) -> {self.out.shape}>"


_scopes: list[str] = []


class Cut(NamedTuple):
    """Where a tensor was cut from the graph: by ``detach()`` or by an op under
    ``no_grad()``. ``sources`` are weak references to the tensors it came from (weak, so a
    cut tensor does not keep the old graph alive)."""

    reason: str
    op: str | None
    sources: tuple


class scope:
    """Context manager that names a group of ops (``with scope("layer1"): ...``).

    Records made inside it carry the name (nested scopes are joined with "/"); drawings use
    it to draw the group as a cluster. It changes nothing in the math.
    """

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        _scopes.append(f"{_scopes[-1]}/{self.name}" if _scopes else self.name)

    def __exit__(self, *exc: object) -> None:
        _scopes.pop()


# ----------------------------------------------------------------------------- primitives


class Primitive:
    """An op: ``forward`` on numpy arrays and ``vjps[i]``, the VJP for input ``i``.

    ``vjps[i](xp, g, out, *inputs, **params)`` returns ``g``'s pull-back to input ``i``,
    where ``g`` is the adjoint of the output (same shape as ``out``). It may return a
    gradient of the broadcast shape: the engine sums it back to the input's shape.
    ``rules`` holds the same VJPs as short formulas, for drawings and docs.

    Positional arguments of a call are the op's tensor inputs (numbers and arrays become
    constant tensors of the first tensor input's dtype); keyword arguments are its
    non-differentiable parameters (axis, shape, index, ...).
    """

    def __init__(
        self,
        name: str,
        forward: Callable[..., np.ndarray],
        vjps: Sequence[Callable[..., Any]],
        rules: Sequence[str],
    ):
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.rules = tuple(rules)

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *inputs: Any, **params: Any) -> Tensor:
        """Run the forward on the inputs' data; record it if any input requires grad."""
        tensors = inputs
        for a in inputs:
            if type(a) is not Tensor and not isinstance(a, Tensor):  # wrap numbers, arrays
                tensors = _as_tensors(inputs)
                break
        try:
            out = self.forward(*[t.data for t in tensors], **params)
        except ShapeError:
            raise
        except ValueError as error:
            raise _shape_error(self.name, tensors, params, error) from error
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        record = None
        if _state.grad_enabled:
            for t in tensors:
                if t.requires_grad:
                    record = Record(self, tensors, params, out)
                    break
        if _state.anomaly:
            anomaly.check_forward(self, tensors, out, record)
        result = Tensor._make(out, record)
        if not _state.grad_enabled:
            cut_from = tuple(weakref.ref(t) for t in tensors if t.requires_grad)
            if cut_from:  # remember, for drawings, that no_grad cut a gradient path here
                result.cut = Cut("no_grad", self.name, cut_from)
        return result


def _shape_error(name: str, tensors: tuple, params: dict, error: Exception) -> ShapeError:
    shapes = " and ".join(str(t.shape) for t in tensors)
    text = f"{name}: inputs of shapes {shapes} do not fit"
    if params:
        text += " (" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"
    if "broadcast" in str(error):
        text += (
            ". Broadcasting compares shapes from the right: each pair of sizes must be"
            " equal or one of them 1. Reshape an input (for example y.reshape(-1, 1))"
            " or fix the shape that is wrong"
        )
    return ShapeError(f"{text}. numpy said: {error}")


def _as_tensors(inputs: tuple) -> tuple:
    """Inputs as tensors: numbers and arrays become constants of the first tensor's dtype."""
    dtype = next((a.data.dtype for a in inputs if isinstance(a, Tensor)), None)
    return tuple(a if isinstance(a, Tensor) else _constant(a, dtype) for a in inputs)


def _constant(value: Any, dtype: np.dtype | None) -> Tensor:
    """Wrap a number or array as a constant tensor (no grad) of the given float dtype."""
    array = np.asarray(value)
    _check_dtype(array.dtype)
    return Tensor._make(array.astype(dtype or np.float64, copy=False), None)


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in "fiub" or (dtype.kind == "f" and dtype not in FLOAT_DTYPES):
        raise TypeError(
            f"microbbb tensors hold float32 or float64 numbers; got dtype {dtype}. "
            "Convert the data first, for example np.asarray(data, dtype=np.float64) "
            "(complex numbers, strings, objects and float16 are not supported)."
        )


# ----------------------------------------------------------------------------- tensors


class Tensor:
    """A numpy array that remembers how it was computed, for reverse-mode autodiff.

    Attributes: ``data`` (numpy array), ``grad`` (numpy array of the same shape or None;
    after ``backward(create_graph=True)`` a Tensor), ``requires_grad``, ``name`` (shown in
    drawings and tables), ``record`` (the tape entry of the op that made it; None for
    leaves and constants).

    Comparisons (``<``, ``>``, ...) return plain boolean numpy arrays: they are not
    differentiable. ``==`` is identity, as for any Python object, so tensors can be used
    as dictionary keys.
    """

    __slots__ = ("data", "grad", "requires_grad", "name", "record", "cut", "_retain", "__weakref__")
    __array_ufunc__ = None  # make `ndarray * Tensor` call Tensor.__rmul__

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        name: str | None = None,
        dtype: Any = None,
    ):
        if isinstance(data, Tensor):
            data = data.data
        array = np.array(data)  # a copy: later changes to `data` do not change the tensor
        _check_dtype(array.dtype)
        if dtype is None:
            dtype = array.dtype if array.dtype in FLOAT_DTYPES else np.float64
        elif np.dtype(dtype) not in FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
        self.data = array.astype(dtype, copy=False)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.name = name
        self.record = None
        self.cut = None
        self._retain = False

    @staticmethod
    def _make(data: np.ndarray, record: Record | None) -> Tensor:
        # fast path used by every op: no validation, no copy
        t = Tensor.__new__(Tensor)
        t.data = data
        t.grad = None
        t.requires_grad = record is not None
        t.name = None
        t.record = record
        t.cut = None
        t._retain = False
        return t

    # --- properties -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data``."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions of ``data``."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements of ``data``."""
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of ``data`` (float32 or float64)."""
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True when no recorded op made this tensor (parameters, data, constants)."""
        return self.record is None

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
        extra = ""
        if self.record is not None:
            extra += f", op={self.record.op.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self.dtype != np.float64:
            extra += f", dtype={self.dtype}"
        if self.name:
            extra += f", name={self.name!r}"
        return f"tensor({body}{extra})"

    # --- autodiff -----------------------------------------------------------------------
    def backward(self, grad: Any = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad.

        For a non-scalar tensor, ``grad`` (the adjoint of this tensor, same shape) must be
        given. Gradients add up across calls until you reset them (``p.grad = None``).
        The graph is not freed: calling ``backward`` twice adds the gradient twice.
        With ``create_graph=True`` the gradients are recorded tensors (differentiable).
        """
        handed_out: set[int] = set()
        adjoints = _backprop(self, grad, create_graph, (), handed_out)
        for leaf, g in adjoints.items():
            _accumulate(leaf, g, create_graph, handed_out)

    def retain_grad(self) -> Tensor:
        """Keep this intermediate tensor's gradient in ``.grad`` during ``backward``."""
        self._retain = True
        _state.retained += 1
        return self

    def detach(self) -> Tensor:
        """A tensor with the same data, cut from the graph (no grad flows through it)."""
        t = Tensor._make(self.data, None)
        t.cut = Cut("detach", None, (weakref.ref(self),))
        return t

    # --- operators ----------------------------------------------------------------------
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

    # --- methods (the same ops as the functions in primitives.py) -------------------------
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

    def clip(self, low: float | None = None, high: float | None = None) -> Tensor:
        """Clamp values to [low, high]; no gradient flows where a value was clamped."""
        return P.clip(self, low=low, high=high)


def tensor(
    data: Any, requires_grad: bool = False, name: str | None = None, dtype: Any = None
) -> Tensor:
    """Make a Tensor from numbers, lists or a numpy array (copied).

    Floats keep their dtype if float32 or float64; integers and booleans become float64
    unless ``dtype`` says otherwise.
    """
    return Tensor(data, requires_grad=requires_grad, name=name, dtype=dtype)


def _value(a: Any) -> Any:
    return a.data if isinstance(a, Tensor) else a


def _normalize_index(index: Any) -> Any:
    # tensors and lists used as indices become integer (or boolean) numpy arrays
    if isinstance(index, tuple):
        return tuple(_normalize_index(i) for i in index)
    if isinstance(index, Tensor):
        raise TypeError(
            "index with ints, slices or numpy arrays (integer or boolean), not a Tensor:"
            " tensors hold floats, so a boolean mask or an integer index would be ambiguous."
            " Use index.data.astype(int) for integer positions."
        )
    if isinstance(index, list):
        return np.asarray(index)
    return index


# ----------------------------------------------------------------------------- backward


def _reachable_records(root: Tensor) -> list[Record]:
    """The records the root depends on, newest first (reverse order of recording)."""
    records = [root.record]
    seen = {root.record}
    stack = [root.record]
    while stack:  # an explicit stack, not recursion: deep graphs are fine
        for t in stack.pop().inputs:
            r = t.record
            if r is not None and r not in seen:
                seen.add(r)
                records.append(r)
                stack.append(r)
    records.sort(key=attrgetter("index"), reverse=True)
    return records


def tape(output: Tensor) -> list[Record]:
    """The records ``output`` depends on, in the order they were recorded (the forward
    trace). ``backward`` walks the same list from the end."""
    if output.record is None:
        return []
    return _reachable_records(output)[::-1]


class Edge(NamedTuple):
    """One gradient contribution of a reverse sweep: the VJP of ``record``'s op for its
    input ``index``, given the output adjoint ``g``, gave ``contribution`` (already summed
    back to the input's shape; ``summed`` says broadcasting made that necessary)."""

    record: Record
    index: int
    g: np.ndarray
    contribution: np.ndarray
    summed: bool


def adjoint_flow(output: Tensor, grad: Any = None) -> list[Edge]:
    """Every contribution of a reverse sweep from ``output``, in the order computed.

    Nothing is written to any ``.grad``. The contributions into a tensor add up to its
    adjoint; drawings, trace tables and gradient attribution are built from this list.
    """
    edges: list[Edge] = []
    _backprop(output, grad, False, (output,), set(), lambda *e: edges.append(Edge(*e)))
    return edges


def _sinks(records: list[Record], root: Tensor, wanted: Sequence[Tensor]) -> dict:
    """Non-leaf tensors whose adjoint must be handed out, by the record that made them:
    the ``wanted`` ones for ``grad()``, else those that asked for ``retain_grad()``."""
    if wanted:
        candidates: Any = wanted
    elif not _state.retained:
        return {}
    else:
        candidates = itertools.chain((root,), (t for r in records for t in r.inputs))
        candidates = (t for t in candidates if t._retain)
    found: dict[Record, list[Tensor]] = {}
    for t in candidates:
        if t.record is not None:
            bucket = found.setdefault(t.record, [])
            if all(u is not t for u in bucket):
                bucket.append(t)
    return found


def _backprop(
    root: Tensor,
    grad: Any,
    create_graph: bool,
    wanted: Sequence[Tensor],
    handed_out: set[int],
    on_edge: Callable[..., None] | None = None,
) -> dict[Tensor, Any]:
    """Run the reverse sweep from ``root``; return the adjoint of every leaf reached.

    With ``wanted`` (used by ``grad()``), the adjoints of those tensors that are not leaves
    are returned too; otherwise intermediate tensors that asked for ``retain_grad()`` get
    theirs added to ``.grad``. ``handed_out`` collects the ids of arrays that must not
    become a ``.grad`` without a copy (see ``_accumulate``). ``on_edge(record, i, g, gi,
    summed)`` is called for every contribution (see ``adjoint_flow``).
    """
    if not root.requires_grad:
        raise RuntimeError(
            "backward: this tensor does not require grad, so there is nothing to"
            " differentiate. Make the inputs you want gradients for with"
            " tensor(..., requires_grad=True), and do not compute it under no_grad()"
            " or from .detach()ed values."
        )
    g = _root_grad(root, grad, create_graph)
    handed_out.add(id(g))  # the caller's array: never store it as a .grad uncopied
    leaves: dict[Tensor, Any] = {}
    if root.record is None:  # the root is itself a leaf
        leaves[root] = g
        return leaves

    xp = GRAPH if create_graph else NUMPY
    records = _reachable_records(root)
    adjoint: dict[Record, Any] = {root.record: g}
    sinks = _sinks(records, root, wanted)

    check = _state.anomaly
    with enable_grad() if create_graph else no_grad():
        for r in records:
            g = adjoint.pop(r, None)
            if g is None:
                continue
            if sinks and r in sinks:
                for t in sinks[r]:
                    if wanted:
                        leaves[t] = g
                    else:
                        _accumulate(t, g, create_graph, handed_out)
            if create_graph:
                out, args = Tensor._make(r.out, r), r.inputs
            else:
                out, args = r.out, [t.data for t in r.inputs]
            for i, t in enumerate(r.inputs):
                if not t.requires_grad:
                    continue
                vjp = r.op.vjps[i]
                gi = vjp(xp, g, out, *args, **r.params) if r.params else vjp(xp, g, out, *args)
                summed = gi.shape != t.data.shape
                if summed:  # broadcasting summed this gradient
                    gi = xp.sum_to(gi, shape=t.data.shape)
                if not create_graph and gi.dtype != t.data.dtype:
                    gi = gi.astype(t.data.dtype)
                if check:
                    anomaly.check_backward(r, i, g, gi)
                if on_edge is not None:
                    on_edge(r, i, g, gi, summed)
                if t.record is None:
                    leaves[t] = gi if t not in leaves else leaves[t] + gi
                else:
                    previous = adjoint.get(t.record)
                    adjoint[t.record] = gi if previous is None else previous + gi
    return leaves


def _root_grad(root: Tensor, grad: Any, create_graph: bool) -> Any:
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward on a tensor of shape {root.shape} needs grad=..., an array of"
                " that shape holding the adjoint (the gradient of the final scalar with"
                " respect to this tensor). For a loss, reduce it to a scalar first, for"
                " example with .sum() or .mean()."
            )
        grad = np.ones_like(root.data)
    value = grad.data if isinstance(grad, Tensor) else np.asarray(grad, dtype=root.dtype)
    if value.shape != root.shape:
        raise ShapeError(
            f"backward: grad has shape {value.shape} but the tensor has shape {root.shape};"
            " they must be equal."
        )
    if create_graph:
        return grad if isinstance(grad, Tensor) else Tensor._make(value, None)
    return value


def _accumulate(t: Tensor, g: Any, create_graph: bool, handed_out: set[int]) -> None:
    if create_graph:
        t.grad = g if t.grad is None else t.grad + g
    elif t.grad is None:
        # .grad must own its memory (a later `+=` must not change another gradient). A
        # VJP's fresh result can be kept as is; anything else is copied: the same array
        # handed to two inputs (add passes g through), views (reshape, broadcast_to).
        owned = type(g) is np.ndarray and g.flags.owndata and g.flags.writeable
        if owned and id(g) not in handed_out:
            handed_out.add(id(g))
            t.grad = g
        else:
            t.grad = np.array(g, dtype=t.data.dtype)
    elif isinstance(t.grad, Tensor):
        t.grad = t.grad.data + g
    else:
        t.grad += g


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    create_graph: bool = False,
) -> tuple[Tensor, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, as a tuple of tensors.

    Leaves' ``.grad`` are left untouched. ``grad_outputs`` are the adjoints of the outputs
    (needed for non-scalar outputs). An input the outputs do not depend on gets zeros.
    With ``create_graph=True`` the results are recorded, so they can be differentiated
    again (Hessian-vector products: ``grad(grad(f, x, create_graph=True)[0] @ v, x)``).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs] * len(outputs)
    total: dict[Tensor, Any] = {}
    for out, g in zip(outputs, grad_outputs, strict=True):
        if not out.requires_grad:
            continue
        for t, gt in _backprop(out, g, create_graph, inputs, set()).items():
            total[t] = gt if t not in total else total[t] + gt
    results = []
    for t in inputs:
        g = total.get(t)
        if g is None:
            g = np.zeros_like(t.data)
        if isinstance(g, Tensor):
            results.append(g)
        else:  # a copy: g may be shared with grad_outputs or with another result
            results.append(Tensor._make(np.array(g, dtype=t.data.dtype), None))
    return tuple(results)


# The primitives (the derivative table) and anomaly mode use the classes above; they are
# imported last so that both modules can refer to this one.
from . import anomaly  # noqa: E402
from . import primitives as P  # noqa: E402

NUMPY = SimpleNamespace(**{p.name: p.forward for p in P.PRIMITIVES}, **P.CONSTANT_HELPERS)
GRAPH = SimpleNamespace(**{p.name: p for p in P.PRIMITIVES}, **P.CONSTANT_HELPERS)
