"""A model's parameters and noise as plain named arrays, the way a learner writes them.

A hand derivation (in numpy, or in R like the question's ``Un``, ``Rn``, ``eps``) works with
one mu, one rho and one eps per weight tensor. Here they are dicts keyed by the tensor's
name, in layer order: ``layer1.weight``, ``layer1.bias``, ``layer2.weight``, ... so that
``mu["layer1.weight"]`` is the value of ``layer1.weight_mu`` (shape (n_in, n_out)) and
``mu["layer1.bias"]`` that of ``layer1.bias_mu`` (shape (n_out,)). ``eps`` is a list over
Monte-Carlo samples of such dicts. The learned noise of a Gaussian likelihood, when there is
one, is ``{"noise_rho": ...}``.

Only the estimator "reparam" has one eps per weight tensor (w = mu + sigma * eps); "local"
and "flipout" draw per-row noise and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .layers import BayesianMLP

KINDS = ("weight", "bias")


def tensor_names(model: BayesianMLP) -> list[str]:
    """The names of the weight tensors, in layer order: ``["layer1.weight", "layer1.bias",
    "layer2.weight", ...]``."""
    return [f"{layer.name}.{kind}" for layer in model.layers for kind in KINDS]


def mu_rho(model: BayesianMLP) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Copies of every mu and rho, keyed by ``tensor_names(model)``."""
    mu, rho = {}, {}
    for layer in model.layers:
        for kind in KINDS:
            mu[f"{layer.name}.{kind}"] = getattr(layer, f"{kind}_mu").data.copy()
            rho[f"{layer.name}.{kind}"] = getattr(layer, f"{kind}_rho").data.copy()
    return mu, rho


def likelihood_parameters(model: BayesianMLP) -> dict[str, np.ndarray]:
    """The likelihood's learned parameters by name (``{"noise_rho": ...}`` for a Gaussian
    with learned noise), copies; empty when it has none."""
    return {t.name: t.data.copy() for t in model.likelihood.parameters()}


def eps_by_name(model: BayesianMLP, eps: Sequence[Sequence[Sequence[Any]]]) -> list[dict]:
    """The noise of a loss (``loss.eps``: per sample, per layer, ``(weight_eps, bias_eps)``)
    as a list over samples of dicts keyed by ``tensor_names(model)`` (copies)."""
    _only_reparam(model)
    samples = []
    for s, sample in enumerate(eps):
        if len(sample) != len(model.layers):
            raise ValueError(
                f"eps[{s}] has noise for {len(sample)} layers; the network has {len(model.layers)}."
            )
        named = {}
        for layer, noise in zip(model.layers, sample, strict=True):
            for kind, array in zip(KINDS, noise, strict=True):
                named[f"{layer.name}.{kind}"] = np.array(array, copy=True)
        samples.append(named)
    return samples


def eps_by_layer(model: BayesianMLP, eps: Sequence[dict[str, Any]]) -> list[list[tuple]]:
    """The inverse of ``eps_by_name``: ``eps[s][name]`` -> per sample, per layer,
    ``(weight_eps, bias_eps)``, the form ``model.loss(..., eps=...)`` takes."""
    _only_reparam(model)
    names = tensor_names(model)
    out = []
    for s, sample in enumerate(eps):
        if sorted(sample) != sorted(names):
            missing = [n for n in names if n not in sample]
            extra = [n for n in sample if n not in names]
            raise ValueError(
                f"eps[{s}] must have one array per weight tensor, keyed {names};"
                f" missing {missing}, unexpected {extra}."
            )
        out.append(
            [
                tuple(np.asarray(sample[f"{layer.name}.{kind}"]) for kind in KINDS)
                for layer in model.layers
            ]
        )
    return out


def _only_reparam(model: BayesianMLP) -> None:
    if model.estimator != "reparam":
        raise ValueError(
            f"one eps per weight tensor is the estimator 'reparam'; this model uses"
            f" {model.estimator!r}, whose per-row noise has no such form. Set"
            " model.estimator = 'reparam' (on a copy) for a hand derivation."
        )
