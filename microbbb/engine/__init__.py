"""The engine: tensors, the tape, the derivative table, the reverse sweep, gradcheck,
anomaly mode and recorded programs.

Read it in this order: ``tensor.py`` (Tensor), ``tape.py`` (what an op records),
``primitives.py`` (the derivative table: every op with its VJPs; its longer forwards are in
``kernels.py``), ``sweep.py`` (the reverse sweep), ``gradients.py`` (``backward``, ``grad``,
``adjoint_flow``), ``forward.py`` (``jvp``: forward mode from the same VJPs), then
``check.py`` (finite-difference checks), ``anomaly.py`` (NaN hunting) and ``program.py`` (a
recorded tape run again, for speed). ``extend.py`` is the
public surface for adding ops. Nothing here knows about Bayes by Backprop or drawing.
"""

# tensor.py first: its last lines import the modules that need Tensor (the one cycle)
from .tensor import Tensor, from_numpy, tensor  # isort: skip

from . import extend
from .anomaly import AnomalyError, detect_anomaly
from .check import GradcheckError, gradcheck, gradgradcheck
from .forward import jvp
from .gradients import Edge, adjoint_flow, grad
from .kernels import ShapeError
from .modes import Cut, enable_grad, is_grad_enabled, no_grad, scope
from .primitives import PRIMITIVES, concatenate, stack, where
from .program import TapeProgram
from .tape import Primitive, Record, tape

__all__ = [
    "PRIMITIVES",
    "AnomalyError",
    "Cut",
    "Edge",
    "GradcheckError",
    "Primitive",
    "Record",
    "ShapeError",
    "TapeProgram",
    "Tensor",
    "adjoint_flow",
    "concatenate",
    "detect_anomaly",
    "enable_grad",
    "extend",
    "from_numpy",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "is_grad_enabled",
    "jvp",
    "no_grad",
    "scope",
    "stack",
    "tape",
    "tensor",
    "where",
]
