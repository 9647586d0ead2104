"""The engine: tensors, the tape, the derivative table, gradcheck and anomaly mode.

Read it in this order: ``core.py`` (Tensor, Record, backward), ``primitives.py`` (every
op with its VJPs), ``check.py`` (finite-difference checks), ``anomaly.py`` (NaN hunting),
``program.py`` (running a recorded tape again, for speed).
Nothing here knows about Bayes by Backprop or drawing.
"""

from .anomaly import AnomalyError, detect_anomaly
from .check import GradcheckError, gradcheck, gradgradcheck
from .core import (
    Cut,
    Edge,
    Primitive,
    Record,
    ShapeError,
    Tensor,
    adjoint_flow,
    enable_grad,
    grad,
    is_grad_enabled,
    no_grad,
    scope,
    tape,
    tensor,
)
from .primitives import PRIMITIVES, concatenate, stack, where
from .program import TapeProgram

__all__ = [
    "Cut",
    "Edge",
    "adjoint_flow",
    "PRIMITIVES",
    "AnomalyError",
    "GradcheckError",
    "Primitive",
    "Record",
    "ShapeError",
    "TapeProgram",
    "Tensor",
    "concatenate",
    "detect_anomaly",
    "enable_grad",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "is_grad_enabled",
    "no_grad",
    "scope",
    "stack",
    "tape",
    "tensor",
    "where",
]
