"""Optimisers: SGD (with optional momentum) and Adam, over any engine tensors.

Each works on a list of tensors with ``requires_grad=True``: ``zero_grad()`` forgets the
gradients, ``step()`` updates ``p.data`` in place from ``p.grad``. ``state_dict()`` and
``load_state_dict()`` give the exact state (for checkpoints that resume bit-identically).
Hyperparameters are checked when the optimiser is made: a learning rate that is not a
positive finite number, betas or a momentum outside [0, 1), a non-positive eps, each
raise an error naming the argument, instead of an update that is NaN from the first step.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .engine import Tensor
from .engine.extend import writing


class Optimizer:
    """Base class: holds the parameters and the per-parameter state."""

    def __init__(self, params: Iterable[Tensor], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimiser got no parameters")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"parameter {i} is not a tensor with requires_grad=True")
        self.lr = _checked(lr, "lr", "a positive finite number (the step size)", _positive)
        self.steps = 0

    def zero_grad(self) -> None:
        """Forget accumulated gradients (``p.grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place, through the engine (a
        graph recorded before the step then refuses to backpropagate: its values changed)."""
        self.steps += 1
        with writing(*self.params):
            for i, p in enumerate(self.params):
                if p.grad is not None:
                    g = p.grad.data if isinstance(p.grad, Tensor) else p.grad
                    self._update(i, p, g)

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        raise NotImplementedError

    def buffers(self) -> dict[str, tuple[int, np.ndarray]]:
        """The per-parameter state arrays by name, each with its parameter's index."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as numpy arrays and numbers."""
        state: dict[str, Any] = {"steps": self.steps, "lr": self.lr}
        state.update({key: array for key, (_, array) in self.buffers().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict``. Every array is checked first (present,
        of its parameter's shape: never broadcast), so a refused state changes nothing."""
        buffers = self.buffers()
        for key, (i, array) in buffers.items():
            value = np.asarray(state[key])
            if value.shape != array.shape:
                raise ValueError(
                    f"{key} has shape {value.shape}, but parameter {i} has shape {array.shape}"
                )
        steps = int(state["steps"])
        lr = _checked(float(state["lr"]), "lr", "a positive finite number", _positive)
        self.steps, self.lr = steps, lr
        for key, (_, array) in buffers.items():
            array[...] = state[key]


class SGD(Optimizer):
    """``v = momentum * v + g;  p -= lr * v`` (plain SGD when momentum = 0)."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0):
        super().__init__(params, lr)
        share = "in [0, 1) (the share of the previous update kept)"
        self.momentum = _checked(momentum, "momentum", share, _fraction)
        self.velocity = [np.zeros_like(p.data) for p in self.params] if momentum else None

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        if self.velocity is not None:
            v = self.velocity[i]
            v *= self.momentum
            v += g
            g = v
        p.data -= self.lr * g

    def buffers(self) -> dict[str, tuple[int, np.ndarray]]:
        """The momentum buffers (none without momentum)."""
        return {f"velocity.{i}": (i, v) for i, v in enumerate(self.velocity or [])}


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015) with bias correction.

    ``m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (b1, b2) of numbers in [0, 1), got {betas!r}")
        meanings = ("the decay of the mean gradient", "the decay of the mean squared gradient")
        self.betas = tuple(
            _checked(b, f"betas[{i}]", f"in [0, 1) ({meaning})", _fraction)
            for i, (b, meaning) in enumerate(zip(betas, meanings, strict=True))
        )
        self.eps = _checked(eps, "eps", "a positive finite number (added to sqrt(v))", _positive)
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def _update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        b1, b2 = self.betas
        m, v = self.m[i], self.v[i]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        m_hat = m / (1 - b1**self.steps)
        v_hat = v / (1 - b2**self.steps)
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def buffers(self) -> dict[str, tuple[int, np.ndarray]]:
        """The first and second moments."""
        moments = {f"m.{i}": (i, m) for i, m in enumerate(self.m)}
        return moments | {f"v.{i}": (i, v) for i, v in enumerate(self.v)}


def _positive(value: float) -> bool:
    return 0 < value < math.inf  # False for NaN too


def _fraction(value: float) -> bool:
    return 0 <= value < 1  # False for NaN too


def _checked(value: Any, name: str, wanted: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float if it is a real number (not a bool) and ``ok``; else an error
    that names the hyperparameter and says what it must be."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {wanted}, got {value!r} (a {type(value).__name__})")
    if not ok(value):
        raise ValueError(f"{name} must be {wanted}, got {value}")
    return float(value)
