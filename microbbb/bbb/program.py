"""``LossProgram``: the BBB loss and its backward, recorded once and run again.

Training on the same batch step after step builds the same graph every time; only the
parameters and the noise eps change. ``model.loss_program(x, y)`` records the loss once
(a ``TapeProgram``) and each call then draws fresh eps into the graph's eps arrays and
runs the recorded forward and backward: the same numbers as ``model.loss(x, y)`` followed
by ``backward()``, bit for bit, without the per-op Python bookkeeping of eager mode.
``feed(x, y, complexity_weight)`` puts the next minibatch of the same size in place, so
``fit`` runs one program per batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine import ShapeError, TapeProgram, Tensor
from ..engine.extend import writing
from . import checks, estimators

if TYPE_CHECKING:
    from .layers import BayesianMLP, BBBLoss


class LossProgram:
    """``model.loss(x, y, ...)`` plus ``backward()``, recorded once, run on every call.

    Each call draws fresh noise for every layer from the model's generator (eps for every
    weight and bias, plus the per-row noise of the "local" and "flipout" estimators), in place
    and in the order ``loss`` draws them (so N calls give the numbers of N eager steps from
    the same seed), runs the recorded forward and backward, adds the gradients to each
    parameter's ``.grad`` (zero them between steps, as in eager mode) and returns the
    ``BBBLoss``: the same object every time, its value and parts updated. The first call
    uses the eps drawn while recording.

    x and y are copied when recording; ``feed`` replaces them (and the complexity weight)
    with the next batch of the same size. Record a new program when the batch size,
    ``n_samples``, ``kl``, the estimator or the network change: the recording holds them
    (a changed estimator is caught: the next call raises). Replacing a
    parameter tensor or a pruning mask is caught (the next call raises); changing values in
    place is what training does and is seen.
    """

    def __init__(
        self,
        model: BayesianMLP,
        x: Any,
        y: Any,
        n_samples: int = 1,
        complexity_weight: float = 1.0,
        kl: str = "mc",
    ):
        self.model = model
        # loss holds its own copies of x and y (loss.inputs); feed() writes into them
        self.loss = model.loss(x, y, n_samples, complexity_weight, kl)
        self.program = TapeProgram(self.loss)
        self._noise_names = [layer.noise_names() for layer in model.layers]
        self._draws = [  # (name, array) of every noise array the graph holds, in drawing order
            (name, array)
            for sample in self.loss.eps
            for names, arrays in zip(self._noise_names, sample, strict=True)
            for name, array in zip(names, arrays, strict=True)
        ]
        self._eps_arrays = [array for _, array in self._draws]
        self._recorded_with = self._network()
        self._first = True

    def feed(self, x: Any, y: Any, complexity_weight: float | None = None) -> None:
        """Put the next batch (of the recorded size) and its complexity weight in place.

        x and y are checked as ``loss`` checks them. Raises if the recording cannot take
        them: another batch size, or a weight other than 1 when the recording had 1 (then
        the multiplication was not recorded).
        """
        model, data = self.model, self.loss.inputs  # where the recording holds its data
        if complexity_weight is not None:
            complexity_weight = checks.complexity_weight(complexity_weight)
        x = model.check_inputs(x)
        y = model.likelihood.prepare(y, len(x), model.sizes[-1])
        if x.shape != data.x.shape:
            raise ShapeError(
                f"LossProgram.feed: a batch of {len(x)} rows, but the loss was recorded with"
                f" {len(data.x)}. Record one program per batch size."
            )
        if complexity_weight is not None and complexity_weight != self.loss.complexity_weight:
            if data.complexity_weight is None:
                raise ValueError(
                    "LossProgram.feed: the loss was recorded with complexity_weight 1 (no"
                    " multiplication recorded); record it with the weight of a minibatch."
                )
            with writing(data.complexity_weight):
                data.complexity_weight.data[...] = complexity_weight
            self.loss.complexity_weight = complexity_weight
        targets = data.targets.data if isinstance(data.targets, Tensor) else data.targets
        with writing(data.x, targets):  # the recording's own arrays, read-only otherwise
            data.x[...] = x
            targets[...] = y

    def _network(self) -> list:
        """The objects the recording holds: parameter tensors and pruning masks."""
        held = ("weight_mu", "weight_rho", "bias_mu", "bias_rho", "weight_mask")
        layers = [getattr(layer, name) for layer in self.model.layers for name in held]
        return [*layers, *self.model.likelihood.parameters()]

    def __call__(self, eps: Sequence[Any] | None = None) -> BBBLoss:
        """Fresh eps, forward, backward; returns the loss (gradients in ``.grad``).

        ``eps[s]``: the noise to use instead, as for ``BayesianMLP.loss`` (a list with one
        ``(weight_eps, bias_eps, ...)`` per layer for each sample s); it is copied in.
        """
        if any(a is not b for a, b in zip(self._network(), self._recorded_with, strict=True)):
            raise ValueError(
                "LossProgram: a parameter tensor or a pruning mask of the model was replaced"
                " after the loss was recorded, so the recording no longer describes the"
                " network. Record a new one: model.loss_program(x, y, ...)."
            )
        if self.model.estimator != self.loss.estimator:
            raise ValueError(
                f"LossProgram: the loss was recorded with the estimator {self.loss.estimator!r}"
                f" but the model now uses {self.model.estimator!r}. Record a new one:"
                " model.loss_program(x, y, ...)."
            )
        if eps is not None:
            self._copy_in(eps)
        elif not self._first:
            rng = self.model.rng
            with writing(*self._eps_arrays):  # loss.eps[s][layer]: the graph's noise arrays
                for name, array in self._draws:
                    estimators.fill(rng, name, array)
        self._first = False
        self.program.run()
        return self.loss

    def _copy_in(self, eps: Sequence[Any]) -> None:
        if len(eps) != len(self.loss.eps):
            raise ValueError(
                f"eps holds {len(eps)} samples; this program draws {len(self.loss.eps)}"
            )
        for s, (given, arrays) in enumerate(zip(eps, self.loss.eps, strict=True)):
            for i, (pair, targets) in enumerate(zip(given, arrays, strict=True)):
                if len(pair) != len(targets):
                    raise ValueError(
                        f"eps[{s}][{i}]: {len(pair)} arrays; the estimator"
                        f" {self.loss.estimator!r} needs {self._noise_names[i]}"
                    )
                for value, target in zip(pair, targets, strict=True):
                    value = np.asarray(value)
                    if value.shape != target.shape:
                        raise ValueError(
                            f"eps[{s}][{i}]: shape {value.shape}, the layer needs {target.shape}"
                        )
                    with writing(target):
                        target[...] = value

    def __repr__(self) -> str:
        return f"<LossProgram of {self.model!r}: {self.program!r}>"
