"""Likelihoods P(D | w): how the network's output explains the labels.

- ``Gaussian(sigma)``: regression, ``y ~ N(output, sigma^2)``; sigma fixed, or learned
  (``learn_sigma=True``: a point-estimated parameter ``noise_rho`` with
  sigma = softplus(noise_rho), not given a posterior).
- ``Bernoulli()``: binary labels in {0, 1} from one logit, ``log sigmoid`` in stable form.
- ``Categorical()``: integer class labels from C >= 2 logits, via ``log_softmax``.

Each checks its labels (kind, range, NaN, length) and the network's output size, and says
what to do when they are wrong; shapes are matched explicitly, never by broadcasting.
Each also turns S sampled outputs into a predictive distribution (``predictive``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import functional as F
from ..engine import Tensor, from_numpy, tensor
from . import checks


@dataclass
class RegressionPrediction:
    """Predictive mean and standard deviation, with the two sources of spread.

    ``std**2 = epistemic_std**2 + aleatoric_std**2``: epistemic is the spread of the
    network's output over weight samples (what the model does not know), aleatoric the
    likelihood's noise sigma (what no model could predict).
    """

    mean: np.ndarray
    std: np.ndarray
    epistemic_std: np.ndarray
    aleatoric_std: np.ndarray


@dataclass
class ClassificationPrediction:
    """Mean class probabilities over weight samples, and the predictive entropy.

    For Bernoulli, ``probs`` is P(y = 1) with shape (N,); for Categorical, shape (N, C).
    ``entropy`` (nats) splits as ``expected_entropy`` (aleatoric) plus
    ``mutual_information`` (epistemic: disagreement between weight samples).
    """

    probs: np.ndarray
    labels: np.ndarray
    entropy: np.ndarray
    expected_entropy: np.ndarray
    mutual_information: np.ndarray


def _labels(y: Any, n: int, who: str) -> np.ndarray:
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    if y.dtype.kind not in "iufb":
        raise TypeError(f"{who}: labels must be numbers, got dtype {y.dtype}")
    if y.ndim == 0 or len(y) != n:
        raise ValueError(
            f"{who}: {n} inputs but {0 if y.ndim == 0 else len(y)} labels; x and y must have"
            " the same number of rows."
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        row = int(np.flatnonzero(~np.isfinite(y.reshape(n, -1)).all(axis=1))[0])
        raise ValueError(
            f"{who}: labels y contain NaN or inf (first in row {row}); remove or impute"
            " those rows first."
        )
    return y


class Gaussian:
    """``log P(D | w) = sum_n log N(y_n; output_n, sigma^2)`` (regression)."""

    kind = "regression"

    def __init__(self, sigma: float = 1.0, learn_sigma: bool = False, dtype: Any = np.float64):
        self.learn_sigma = learn_sigma
        self._sigma = checks.positive(sigma, "Gaussian: sigma", "the noise standard deviation")
        self._constants: dict[np.dtype, Tensor] = {}  # sigma as a tensor, by dtype
        # softplus(rho) = sigma  <=>  rho = log(exp(sigma) - 1) = sigma + log(-expm1(-sigma))
        rho = self._sigma + math.log(-math.expm1(-self._sigma))
        self.noise_rho = tensor(rho, requires_grad=True, name="noise_rho", dtype=dtype)

    @property
    def sigma(self) -> Tensor | float:
        """The noise standard deviation (a tensor when learned)."""
        return F.softplus(self.noise_rho) if self.learn_sigma else self._sigma

    def parameters(self) -> list[Tensor]:
        """``[noise_rho]`` when sigma is learned, else nothing."""
        return [self.noise_rho] if self.learn_sigma else []

    def check_outputs(self, n_outputs: int) -> None:
        """Any number of outputs >= 1 is fine for regression."""

    def prepare(self, y: Any, n: int, n_outputs: int) -> np.ndarray:
        """Validated labels of shape (N, n_outputs)."""
        y = _labels(y, n, "Gaussian likelihood").astype(np.float64)
        if y.ndim == 1 and n_outputs == 1:
            y = y.reshape(-1, 1)  # explicit: (N,) labels against (N, 1) outputs
        if y.shape != (n, n_outputs):
            raise ValueError(
                f"Gaussian likelihood: labels have shape {y.shape} but the network has"
                f" {n_outputs} outputs, so they must have shape ({n}, {n_outputs})."
            )
        return y

    def as_targets(self, y: np.ndarray, dtype: Any) -> Tensor:
        """Prepared labels as the graph holds them: a constant tensor ``y`` (a new array)."""
        return from_numpy(y.astype(dtype), "y")

    def log_likelihood(self, output: Tensor, y: Any) -> Tensor:
        """``sum_n log N(y_n; output_n, sigma^2)`` (``y``: prepared labels or targets)."""
        y = y if isinstance(y, Tensor) else self.as_targets(np.asarray(y), output.dtype)
        sigma = self.sigma if self.learn_sigma else self._constant_sigma(output.dtype)
        return F.normal_log_prob(y, output, sigma).sum()

    def _constant_sigma(self, dtype: np.dtype) -> Tensor:
        """The fixed sigma as a constant tensor of ``dtype``, made once, not on every step."""
        if self._constants.get(dtype) is None:
            self._constants[dtype] = from_numpy(np.array(self._sigma, dtype=dtype))
        return self._constants[dtype]

    def predictive(self, outputs: np.ndarray) -> RegressionPrediction:
        """From outputs of shape (S, N, D): mean, std and its two parts (D = 1 squeezed)."""
        sigma = float(np.asarray(self.sigma.data if self.learn_sigma else self._sigma))
        mean = outputs.mean(axis=0)
        epistemic = outputs.std(axis=0)
        aleatoric = np.full_like(mean, sigma)
        std = np.sqrt(epistemic**2 + aleatoric**2)
        parts = [mean, std, epistemic, aleatoric]
        if mean.shape[-1] == 1:
            parts = [p[..., 0] for p in parts]
        return RegressionPrediction(*parts)

    def config(self) -> dict[str, Any]:
        """A JSON-able description (for saving models)."""
        sigma = float(np.asarray(self.sigma.data)) if self.learn_sigma else self._sigma
        return {"type": "Gaussian", "sigma": sigma, "learn_sigma": self.learn_sigma}

    def __repr__(self) -> str:
        return f"Gaussian(sigma={self.config()['sigma']:g}, learn_sigma={self.learn_sigma})"


class Bernoulli:
    """``log P(D | w) = sum_n [y_n log sigmoid(l_n) + (1 - y_n) log sigmoid(-l_n)]``."""

    kind = "classification"

    def parameters(self) -> list[Tensor]:
        """No parameters."""
        return []

    def check_outputs(self, n_outputs: int) -> None:
        """Bernoulli needs exactly one logit."""
        if n_outputs != 1:
            raise ValueError(
                f"Bernoulli likelihood needs one output (a logit), the network has"
                f" {n_outputs}. For {n_outputs} classes use Categorical()."
            )

    def prepare(self, y: Any, n: int, n_outputs: int) -> np.ndarray:
        """Validated 0/1 labels of shape (N,)."""
        y = _labels(y, n, "Bernoulli likelihood")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # explicit: (N, 1) labels are read as (N,)
        if y.ndim != 1:
            raise ValueError(f"Bernoulli likelihood: labels must have shape ({n},), got {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError(
                "Bernoulli likelihood: labels must be 0 or 1, got values such as"
                f" {np.unique(y[~np.isin(y, (0, 1))])[:5].tolist()}."
            )
        return y.astype(np.float64)

    def as_targets(self, y: np.ndarray, dtype: Any) -> Tensor:
        """Prepared labels as the graph holds them: a constant tensor ``y`` (a new array)."""
        return from_numpy(y.astype(dtype), "y")

    def log_likelihood(self, output: Tensor, y: Any) -> Tensor:
        """``-bernoulli_nll(logits, y)``, the logits being output[:, 0] (``y``: prepared
        labels or targets)."""
        y = y if isinstance(y, Tensor) else self.as_targets(np.asarray(y), output.dtype)
        return -F.bernoulli_nll(output.reshape(-1), y)

    def predictive(self, outputs: np.ndarray) -> ClassificationPrediction:
        """From logits of shape (S, N, 1): mean P(y = 1), entropy and its parts."""
        p = F.sigmoid.forward(outputs[..., 0])  # the engine's stable numpy sigmoid
        per_sample = _entropy(np.stack([1 - p, p], axis=-1))
        mean = p.mean(axis=0)
        entropy = _entropy(np.stack([1 - mean, mean], axis=-1))
        expected = per_sample.mean(axis=0)
        labels = (mean > 0.5).astype(np.int64)
        return ClassificationPrediction(mean, labels, entropy, expected, entropy - expected)

    def config(self) -> dict[str, Any]:
        """A JSON-able description (for saving models)."""
        return {"type": "Bernoulli"}

    def __repr__(self) -> str:
        return "Bernoulli()"


class Categorical:
    """``log P(D | w) = sum_n log softmax(l_n)[y_n]`` for integer labels in 0..C-1."""

    kind = "classification"

    def parameters(self) -> list[Tensor]:
        """No parameters."""
        return []

    def check_outputs(self, n_outputs: int) -> None:
        """Categorical needs at least two logits."""
        if n_outputs < 2:
            raise ValueError(
                "Categorical likelihood over a single output: a softmax over one output is"
                " constantly 1, so the log-likelihood is always 0 and its gradient is zero;"
                " nothing would be learned. For binary labels use Bernoulli() with one"
                " output (a sigmoid), or Categorical() with two outputs."
            )

    def prepare(self, y: Any, n: int, n_outputs: int) -> np.ndarray:
        """Validated integer labels of shape (N,)."""
        y = _labels(y, n, "Categorical likelihood")
        if y.dtype.kind not in "iu":
            raise ValueError(
                "Categorical likelihood: labels must be integer class indices; got dtype"
                f" {y.dtype}. If they are whole numbers stored as floats, pass y.astype(int)."
            )
        if y.ndim != 1:
            raise ValueError(
                f"Categorical likelihood: labels must have shape ({n},), got {y.shape}"
            )
        if y.min() < 0 or y.max() >= n_outputs:
            raise ValueError(
                f"Categorical likelihood: labels must lie in 0..{n_outputs - 1} (the network"
                f" has {n_outputs} outputs); got values from {y.min()} to {y.max()}."
            )
        return y

    def as_targets(self, y: np.ndarray, dtype: Any) -> np.ndarray:
        """Prepared labels as the graph holds them: the integer array, as the index that
        picks each row's log-probability: a read-only copy (later changes to the caller's
        labels are not seen), which the record keeps as it is (a LossProgram changes it
        through ``writing``, which backward sees)."""
        y = np.array(y)
        y.setflags(False)  # read-only (positional: twice as fast as write=False)
        return y

    def log_likelihood(self, output: Tensor, y: np.ndarray) -> Tensor:
        """``-categorical_nll(logits, y)``."""
        return -F.categorical_nll(output, y)

    def predictive(self, outputs: np.ndarray) -> ClassificationPrediction:
        """From logits of shape (S, N, C): mean probabilities, entropy and its parts."""
        z = outputs - outputs.max(axis=-1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=-1, keepdims=True)
        mean = p.mean(axis=0)
        entropy = _entropy(mean)
        expected = _entropy(p).mean(axis=0)
        return ClassificationPrediction(
            mean, mean.argmax(axis=-1), entropy, expected, entropy - expected
        )

    def config(self) -> dict[str, Any]:
        """A JSON-able description (for saving models)."""
        return {"type": "Categorical"}

    def __repr__(self) -> str:
        return "Categorical()"


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis, with 0 log 0 = 0."""
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0), axis=-1)


def likelihood_from_config(config: dict[str, Any]) -> Gaussian | Bernoulli | Categorical:
    """Rebuild a likelihood from ``likelihood.config()``."""
    kind = config.get("type")
    if kind == "Gaussian":
        return Gaussian(sigma=config["sigma"], learn_sigma=config["learn_sigma"])
    if kind == "Bernoulli":
        return Bernoulli()
    if kind == "Categorical":
        return Categorical()
    raise ValueError(f"unknown likelihood type {kind!r}")
