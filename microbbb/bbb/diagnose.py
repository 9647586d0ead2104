"""``diagnose(model, history, x=None)``: what looks wrong with a Bayes by Backprop run.

"My Bayesian network doesn't learn" has a few usual causes, and each leaves numbers behind
in the trained model and the ``History`` of ``fit``. Each check below reads them and, when
they look wrong, says so in plain words with the numbers and what to try:

- ``complexity``: the complexity cost (times the schedule's weight) is more than
  ``DWARF`` (10) times the data term -log P(D | w) at the last epoch, and the data term
  is at least ``FITTED`` (0.1) nats per observation (below that the data are fitted
  closely, and a small data term, not a large complexity cost, makes the ratio): the
  posterior is held near the prior and fits the data loosely (predictions less confident
  than they are right). Try a temperature below 1 (``fit(..., temperature=0.1)``) or a
  wider prior.
- ``sigma_unmoved``: rho moved by less than ``STILL`` (1e-3, root mean square, summed
  over the epochs): the sigmas are where they started.
- ``mu_unmoved`` / ``learning_rate``: mu moved by less than ``STILL`` times its own size;
  with the learning rate and the number of steps, how far Adam could have moved it (about
  lr per step).
- ``prior``: the prior's standard deviation against the learned mu (root mean square):
  more than ``WIDE`` (100) times wider, or less than a third as wide.
- ``loss_flat`` / ``loss_rising``: the objective (at the last epoch's weight) fell by
  less than 1 % from the first epoch to the last, or (averaged over a tenth of the
  epochs, against the sampling noise) ended more than a quarter of its fall above its
  lowest: a learning rate too large (not reported when mu did not move).
- ``noise`` (needs ``x``): the network's raw output (logits, or the regression mean)
  varies more across ``N_DRAWS`` (20) weight samples than its mean varies across the
  inputs: each sampled network is mostly noise (large initial sigmas do this).
- ``constant_prediction`` (needs ``x``): the predictive mean barely changes across the
  inputs (spread below 1 % of a class probability, or of the predictive std).

The result, a ``Diagnosis``, prints as a short report; ``findings`` holds one ``Finding``
per problem (check name, message, the numbers), ``passed`` the names of the checks that
found nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import no_grad

DWARF = 10.0
STILL = 1e-3
WIDE = 100.0
N_DRAWS = 20  # weight samples of the checks on the outputs
FITTED = 0.1  # nats per observation of -log P(D | w) below which the data count as fitted


@dataclass
class Finding:
    """One problem: the check that found it, what it means, and the numbers behind it."""

    check: str
    message: str
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass
class Diagnosis:
    """Every finding of ``diagnose`` and the checks that passed; ``str()`` is the report."""

    findings: list[Finding]
    passed: list[str]

    @property
    def ok(self) -> bool:
        """True when no check found a problem."""
        return not self.findings

    def __str__(self) -> str:
        lines = [f"diagnose: {len(self.findings)} problem(s) found"]
        lines += [f"  - [{f.check}] {f.message}" for f in self.findings]
        lines.append(f"  checks that found nothing: {', '.join(self.passed) or 'none'}")
        return "\n".join(lines)


def diagnose(model: Any, history: Any, x: Any = None) -> Diagnosis:
    """Read ``model`` (a trained ``BayesianMLP``) and the ``History`` of its ``fit``; with
    inputs ``x``, also check that the predictions depend on them. See the module docstring
    for the checks and their thresholds."""
    if history is None or not getattr(history, "loss", None):
        raise ValueError(
            "diagnose needs the History that fit returned, with at least one epoch:"
            " diagnose(model, fit(model, x, y, ...))"
        )
    mu = np.concatenate([layer.weight_mu.data.ravel() for layer in model.layers])
    checks = {
        "complexity": _complexity(history),
        "sigma_unmoved": _unmoved(history.rho_change, "rho", 1.0, history),
        "mu_unmoved": _unmoved(history.mu_change, "mu", _rms(mu), history),
        "prior": _prior(model.prior, mu),
        "loss_flat": _flat(history),
        "loss_rising": _rising(history),
    }
    if x is not None:
        checks["noise"] = _noise(*_outputs(model, x))
        checks["constant_prediction"] = _constant(model, x)
    if checks["mu_unmoved"] is not None:
        checks["loss_rising"] = None  # nothing moved: the loss changed with the noise alone
    findings = [f for f in checks.values() if f is not None]
    return Diagnosis(findings, [name for name, f in checks.items() if f is None])


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def _objective(history: Any) -> np.ndarray:
    """Each epoch's objective at the last epoch's complexity weight (comparable epochs)."""
    weight = history.complexity_weight[-1] if history.complexity_weight else 1.0
    return weight * np.asarray(history.complexity) + np.asarray(history.nll)


def _complexity(history: Any) -> Finding | None:
    weight = history.complexity_weight[-1] if history.complexity_weight else 1.0
    complexity, data = weight * history.complexity[-1], history.nll[-1]
    n_rows = history.settings.get("n_rows")
    if complexity <= DWARF * max(abs(data), 1e-12):
        return None
    if n_rows is not None and data / n_rows < FITTED:
        return None  # the data are fitted closely: a small data term, not a large complexity
    ratio = complexity / max(abs(data), 1e-12)
    return Finding(
        "complexity",
        f"the complexity cost ({complexity:.4g} nats, complexity weight {weight:g}) is"
        f" {ratio:.3g} times the data term -log P(D|w) ({data:.4g} nats{_per(data, n_rows)})"
        " at the last epoch:"
        " the posterior is held near the prior and fits the data loosely (expect"
        " predictions less confident than they are right). Try a posterior temperature"
        " below 1 (fit(..., temperature=0.1)), a wider prior, or more data.",
        {"complexity": complexity, "data": data, "ratio": ratio, "weight": weight},
    )


def _per(data: float, n_rows: int | None) -> str:
    return "" if n_rows is None else f", {data / n_rows:.3g} per observation"


def _unmoved(changes: list, name: str, scale: float, history: Any) -> Finding | None:
    if not changes:
        return None  # a History from before these were recorded
    moved, limit = float(np.sum(changes)), STILL * max(scale, 1e-12)
    if moved >= limit:
        return None
    lr = history.settings.get("lr")
    steps = history.epochs * history.settings.get("steps_per_epoch", 1)
    reach = "" if lr is None else f" Adam moves a parameter by about lr = {lr:g} per step,"
    reach += "" if lr is None else f" so {steps} steps can move it by about {lr * steps:.2g}."
    what = "the sigmas are still at their initial value" if name == "rho" else "mu barely moved"
    return Finding(
        f"{'sigma' if name == 'rho' else 'mu'}_unmoved",
        f"{what}: {name} moved by {moved:.2g} in all (root mean square over the weights,"
        f" summed over {history.epochs} epochs), against {limit:.2g} needed to call it"
        f" moved.{reach} Nothing is learning: use a learning rate that moves the"
        " parameters (Adam with lr 1e-3 to 1e-2).",
        {"moved": moved, "limit": limit, "lr": math.nan if lr is None else lr, "steps": steps},
    )


def _prior_std(prior: Any) -> float:
    if hasattr(prior, "sigma1"):
        return math.sqrt(prior.pi * prior.sigma1**2 + (1 - prior.pi) * prior.sigma2**2)
    return float(prior.sigma)


def _prior(prior: Any, mu: np.ndarray) -> Finding | None:
    std, size = _prior_std(prior), _rms(mu)
    numbers = {"prior_std": std, "mu_rms": size}
    if std > WIDE * size:
        side = "wider than" if size == 0 else f"{std / size:.3g} times wider than"
        advice = "a prior this wide says little; a narrower one (closer to the weights' scale)"
    elif 3 * std < size:
        side = f"{size / std:.3g} times narrower than"
        advice = "the prior fights the data; a wider prior lets the weights reach their scale"
    else:
        return None
    return Finding(
        "prior",
        f"the prior (standard deviation {std:.3g}) is {side} the learned weights (root mean"
        f" square of mu {size:.3g}): {advice}.",
        numbers,
    )


def _outputs(model: Any, x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per output: the spread of the network's mean output across the inputs, and the mean
    over the inputs of its spread across ``N_DRAWS`` weight samples (raw outputs: logits,
    or the regression mean)."""
    x = model.check_inputs(x)[:500]
    with no_grad():
        outputs = np.stack([model.forward(x).data for _ in range(N_DRAWS)])
    across_inputs = outputs.mean(axis=0).std(axis=0)
    across_samples = outputs.std(axis=0).mean(axis=0)
    return across_inputs, across_samples


def _noise(across_inputs: np.ndarray, across_samples: np.ndarray) -> Finding | None:
    signal, noise = float(across_inputs.max()), float(across_samples.max())
    if noise <= signal:
        return None
    return Finding(
        "noise",
        f"the network's output varies more from one weight sample to the next (std"
        f" {noise:.3g}, mean over the inputs) than from one input to the next (std of the"
        f" mean output {signal:.3g}): each sampled network is mostly noise. If the sigmas"
        " started large (rho near 0 or above gives sigma = softplus(rho) of 0.7 or more),"
        " start them small (rho_init = -5: sigma 0.0067) and let the data widen them; if"
        " the data do not depend on x, this is what they say.",
        {"across_samples": noise, "across_inputs": signal},
    )


def _flat(history: Any) -> Finding | None:
    f = _objective(history)
    if len(f) < 2 or f[0] - f[-1] >= 0.01 * abs(f[0]):
        return None
    return Finding(
        "loss_flat",
        f"the loss did not fall: {f[0]:.6g} at the first epoch, {f[-1]:.6g} at the last"
        f" ({len(f)} epochs; a fall of less than 1 %).",
        {"first": float(f[0]), "last": float(f[-1])},
    )


def _rising(history: Any) -> Finding | None:
    f = _objective(history)
    window = max(1, len(f) // 10)  # means over a tenth of the run: not the sampling noise
    f = np.convolve(f, np.ones(window) / window, mode="valid")
    low = int(np.argmin(f))
    fall = f[0] - f[low]
    if len(f) < 3 or fall < 0.01 * abs(f[0]) or f[-1] - f[low] <= 0.25 * fall:
        return None
    lr = history.settings.get("lr")
    return Finding(
        "loss_rising",
        f"the loss rose again (means over {window} epochs): lowest {f[low]:.6g} at epochs"
        f" {low + 1}-{low + window}, {f[-1]:.6g} at the end, more than a quarter of its fall"
        " back. The learning rate"
        f"{'' if lr is None else f' ({lr:g})'} may be too large: try a third of it.",
        {"lowest": float(f[low]), "last": float(f[-1]), "epoch": low + 1, "window": window},
    )


def _constant(model: Any, x: Any) -> Finding | None:
    x = model.check_inputs(x)[:500]
    prediction = model.predict(x, n_samples=N_DRAWS)
    if hasattr(prediction, "probs"):
        spread = float(np.max(np.std(prediction.probs, axis=0)))
        scale, unit = 1.0, "of a class probability"
    else:
        spread = float(np.max(np.std(prediction.mean, axis=0)))
        scale, unit = float(np.mean(prediction.std)), "of the predictive std"
    if spread >= 0.01 * scale:
        return None
    return Finding(
        "constant_prediction",
        f"the predictive mean is nearly the same for every input: its spread over {len(x)}"
        f" inputs is {spread:.3g} ({spread / scale:.2g} {unit}). The network ignores x:"
        " nothing was learned, or the data do not depend on x.",
        {"spread": spread, "scale": scale},
    )


__all__ = ["Diagnosis", "Finding", "diagnose"]
