"""microbbb: a tiny tape-based reverse-mode autodiff engine on numpy, for learning
Bayes by Backprop (Blundell et al., 2015, "Weight Uncertainty in Neural Networks").

Start with ``tensor``; every op is listed with its vector-Jacobian product in
``microbbb/engine/primitives.py``; composite functions live in ``microbbb.functional``.
"""

from . import functional
from .engine import (
    PRIMITIVES,
    AnomalyError,
    GradcheckError,
    Primitive,
    Record,
    ShapeError,
    TapeProgram,
    Tensor,
    detect_anomaly,
    enable_grad,
    grad,
    gradcheck,
    gradgradcheck,
    is_grad_enabled,
    no_grad,
    scope,
    tape,
    tensor,
)
from .functional import (
    abs,
    arctan,
    ceil,
    clip,
    concatenate,
    cos,
    cosh,
    cumsum,
    einsum,
    exp,
    expm1,
    floor,
    log,
    log1p,
    log2,
    log10,
    log_sigmoid,
    log_softmax,
    logaddexp,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    normal_log_prob,
    prod,
    relu,
    reshape,
    sigmoid,
    sign,
    sin,
    sinh,
    softmax,
    softplus,
    sqrt,
    stack,
    sum,
    tanh,
    transpose,
    where,
)

__version__ = "0.1.0"

__all__ = [
    "PRIMITIVES", "AnomalyError", "GradcheckError", "Primitive", "Record", "ShapeError",
    "TapeProgram", "Tensor", "abs", "arctan", "ceil", "clip", "concatenate", "cos", "cosh",
    "cumsum", "detect_anomaly", "einsum", "enable_grad", "exp", "expm1", "floor",
    "functional", "grad", "gradcheck", "gradgradcheck", "is_grad_enabled", "log", "log10",
    "log1p", "log2", "log_sigmoid", "log_softmax", "logaddexp", "logsumexp", "matmul",
    "max", "maximum", "mean", "minimum", "no_grad", "normal_log_prob", "prod", "relu",
    "reshape", "scope", "sigmoid", "sign", "sin", "sinh", "softmax", "softplus", "sqrt",
    "stack", "sum", "tanh", "tape", "tensor", "transpose", "where",
]  # fmt: skip
