"""From microbbb to PyTorch: the same Bayes by Backprop model as a ``torch.nn.Module``.

``to_torch(model)`` copies a trained ``BayesianMLP`` into ``TorchBayesianMLP``: the same
mu and rho (as ``torch.nn.Parameter``), the same prior, likelihood and activation, and the
same loss ``f = c (log q - log P(w)) - log P(D | w)``. Given the same eps, its loss and
gradients equal microbbb's (the tests check it), so a model can move to torch when it
outgrows a numpy engine (GPUs, larger data, torch's distributed tools).

torch is imported only by this module, and only when ``to_torch`` is called.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
ACTIVATIONS = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": torch.nn.functional.softplus,
}


def _normal_log_prob(x: torch.Tensor, mu: Any, sigma: Any) -> torch.Tensor:
    z = (x - mu) / sigma
    log_sigma = torch.log(sigma) if torch.is_tensor(sigma) else math.log(sigma)
    return -0.5 * z * z - log_sigma - HALF_LOG_2PI


class TorchBayesianMLP(torch.nn.Module):
    """A ``BayesianMLP`` in torch: ``layers[i]`` holds weight_mu, weight_rho, bias_mu,
    bias_rho; ``loss(x, y, n_samples, complexity_weight, eps)`` returns (f, parts)."""

    def __init__(self, model: Any):
        super().__init__()
        dtype = torch.float32 if model.dtype == np.float32 else torch.float64
        self.sizes, self.activation = list(model.sizes), model.activation
        self.prior = model.prior.config()
        self.likelihood = model.likelihood.config()
        self.layers = torch.nn.ModuleList()
        for layer in model.layers:
            module = torch.nn.Module()
            for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
                value = torch.tensor(getattr(layer, name).data, dtype=dtype)
                setattr(module, name, torch.nn.Parameter(value))
            mask = layer.weight_mask  # pruned weights stay exactly zero, as in microbbb
            module.register_buffer("weight_mask", None if mask is None else torch.tensor(mask))
            self.layers.append(module)
        self.noise_rho = None
        if self.likelihood.get("learn_sigma"):
            value = torch.tensor(model.likelihood.noise_rho.data, dtype=dtype)
            self.noise_rho = torch.nn.Parameter(value)

    def _log_prior(self, w: torch.Tensor) -> torch.Tensor:
        p = self.prior
        if p["type"] == "GaussianPrior":
            return _normal_log_prob(w, 0.0, p["sigma"]).sum()
        wide = math.log(p["pi"]) + _normal_log_prob(w, 0.0, p["sigma1"])
        narrow = math.log(1 - p["pi"]) + _normal_log_prob(w, 0.0, p["sigma2"])
        return torch.logaddexp(wide, narrow).sum()

    def _log_likelihood(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        kind = self.likelihood["type"]
        if kind == "Gaussian":
            if self.noise_rho is not None:
                sigma = torch.nn.functional.softplus(self.noise_rho)
            else:
                sigma = torch.tensor(self.likelihood["sigma"], dtype=out.dtype, device=out.device)
            return _normal_log_prob(y.reshape(out.shape), out, sigma).sum()
        if kind == "Bernoulli":
            logit = out[:, 0]
            return (y * logit - torch.nn.functional.softplus(logit)).sum()
        log_p = torch.log_softmax(out, dim=1)
        return log_p[torch.arange(len(y)), y.long()].sum()

    def _as_input(self, x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        """x as a tensor on the parameters' device (numpy arrays are welcome)."""
        like = self.layers[0].weight_mu
        value = x if torch.is_tensor(x) else np.array(x)  # a copy: microbbb's may be read-only
        return torch.as_tensor(value, dtype=dtype or like.dtype, device=like.device)

    def forward(self, x: Any, eps: list | None = None) -> torch.Tensor:
        """The output for one weight sample (eps[l] = (weight_eps, bias_eps), or drawn)."""
        return self._sample(self._as_input(x), eps)[0]

    def _sample(self, x: torch.Tensor, eps: list | None) -> tuple[torch.Tensor, list]:
        act = ACTIVATIONS[self.activation]
        h, sampled = x, []
        for i, layer in enumerate(self.layers):
            ws = []
            for k, name in enumerate(("weight", "bias")):
                mu, rho = getattr(layer, f"{name}_mu"), getattr(layer, f"{name}_rho")
                if eps is None:
                    e = torch.randn_like(mu)
                else:
                    e = torch.tensor(np.array(eps[i][k]), dtype=mu.dtype, device=mu.device)
                sigma = torch.nn.functional.softplus(rho)
                ws.append((mu + sigma * e, mu, sigma))
            if layer.weight_mask is not None:
                ws[0] = (ws[0][0] * layer.weight_mask, *ws[0][1:])
            sampled.extend(ws)
            h = h @ ws[0][0] + ws[1][0]
            if i < len(self.layers) - 1:
                h = act(h)
        return h, sampled

    def loss(
        self,
        x: Any,
        y: Any,
        n_samples: int = 1,
        complexity_weight: float = 1.0,
        eps: list | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """f averaged over samples, and its parts (log_q, log_prior, log_likelihood)."""
        x = self._as_input(x)
        y = self._as_input(y, torch.long if self.likelihood["type"] == "Categorical" else None)
        totals = {"log_q": 0.0, "log_prior": 0.0, "log_likelihood": 0.0}
        for s in range(n_samples):
            out, sampled = self._sample(x, None if eps is None else eps[s])
            totals["log_likelihood"] = totals["log_likelihood"] + self._log_likelihood(out, y)
            for w, mu, sigma in sampled:
                totals["log_q"] = totals["log_q"] + _normal_log_prob(w, mu, sigma).sum()
                totals["log_prior"] = totals["log_prior"] + self._log_prior(w)
        parts = {k: v / n_samples for k, v in totals.items()}
        f = complexity_weight * (parts["log_q"] - parts["log_prior"]) - parts["log_likelihood"]
        return f, parts


def to_torch(model: Any) -> TorchBayesianMLP:
    """The equivalent ``torch.nn.Module`` of a ``BayesianMLP`` (parameters copied).

    The twin samples w = mu + sigma * eps, as the estimator "reparam" does; a model with
    another estimator is refused (its gradients would differ from the twin's)."""
    if model.estimator != "reparam":
        raise ValueError(
            f"to_torch builds the twin of the estimator 'reparam' (it samples w); this model"
            f" uses {model.estimator!r}. Convert a copy with model.estimator = 'reparam':"
            " the parameters are the same."
        )
    return TorchBayesianMLP(model)
