"""Module basics and a plain (deterministic) MLP, built on the engine.

Provides ``Module`` (collects parameters: tensors with ``requires_grad=True``, held as
attributes, in lists, or in sub-modules), ``Linear`` and ``MLP``. The MLP is the
deterministic baseline that the Bayes by Backprop demos compare against; the Bayesian
layers live in ``microbbb.bbb``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import functional as F
from .engine import Tensor, scope, tensor

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "softplus": F.softplus,
}


def activation_function(name: str) -> Callable[[Tensor], Tensor]:
    """The activation called ``name`` (relu, tanh, sigmoid, softplus)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class Module:
    """Base class: ``parameters()`` finds every trainable tensor inside, in order."""

    def parameters(self) -> list[Tensor]:
        """The trainable tensors held by this module and its children (see
        ``named_parameters``)."""
        return [t for _, t in self.named_parameters()]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, tensor) for every parameter, e.g. ``layers.0.weight_mu``.

        A parameter is a leaf tensor with ``requires_grad=True`` held as a public attribute
        (or in a list of them); tensors computed in a forward pass are not parameters.
        """
        for key, value in vars(self).items():
            if key.startswith("_"):
                continue
            items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
            for i, item in items:
                name = f"{prefix}{key}" + (f".{i}" if i is not None else "")
                if isinstance(item, Tensor) and item.requires_grad and item.is_leaf:
                    yield name, item
                elif isinstance(item, Module):
                    yield from item.named_parameters(name + ".")

    def zero_grad(self) -> None:
        """Forget accumulated gradients (``p.grad = None`` for every parameter)."""
        for p in self.parameters():
            p.grad = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward``."""
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses define it."""
        raise NotImplementedError


class Linear(Module):
    """``y = x @ weight + bias`` with weight of shape (in_features, out_features)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rng: np.random.Generator | None = None,
        dtype: Any = np.float64,
        name: str | None = None,
    ):
        rng = rng or np.random.default_rng()
        self.name = name or "linear"
        std = 1 / np.sqrt(in_features)
        self.weight = tensor(
            rng.normal(0, std, (in_features, out_features)),
            requires_grad=True,
            name=f"{self.name}.weight",
            dtype=dtype,
        )
        self.bias = tensor(
            np.zeros(out_features), requires_grad=True, name=f"{self.name}.bias", dtype=dtype
        )

    def forward(self, x: Any) -> Tensor:
        """``x @ weight + bias``."""
        with scope(self.name):
            return x @ self.weight + self.bias


class MLP(Module):
    """A stack of ``Linear`` layers with an activation between them (not after the last).

    ``dropout = p > 0``: after each hidden activation, every unit is set to 0 with
    probability p and the others are scaled by 1 / (1 - p) (inverted dropout), at every
    call, in training and in prediction alike: averaging the predictions of many calls
    is MC dropout (Gal and Ghahramani 2016). The masks come from a generator seeded by
    ``seed``. ``forward(x, dropout=False)`` switches it off (the usual test-time network).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        seed: int | None = None,
        dtype: Any = np.float64,
        dropout: float = 0.0,
    ):
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output size, got {sizes}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise TypeError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if not 0 <= dropout < 1:
            raise ValueError(
                f"dropout must be a probability in [0, 1) (the share of hidden units set to"
                f" 0 at each call), got {dropout}"
            )
        rng = np.random.default_rng(seed)
        self.sizes = list(sizes)
        self.activation = activation
        self.dropout = float(dropout)
        self._act = activation_function(activation)
        self.layers = [
            Linear(n_in, n_out, rng=rng, dtype=dtype, name=f"layer{i + 1}")
            for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        ]
        self._masks = np.random.default_rng(rng.integers(2**63))

    def forward(self, x: Any, dropout: bool = True) -> Tensor:
        """The network's output (logits or regression mean) for inputs ``x``; with
        ``self.dropout > 0`` and ``dropout=True``, one draw of the dropout masks."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self._act(x)
                if dropout and self.dropout > 0:
                    keep = self._masks.random(x.shape) >= self.dropout
                    x = x * (keep / (1.0 - self.dropout))
        return x
