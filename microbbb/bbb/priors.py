"""Priors P(w) over weights, evaluated in log space.

- ``GaussianPrior(sigma)``: ``log P(w) = sum_j log N(w_j; 0, sigma^2)``.
- ``ScaleMixturePrior(pi, sigma1, sigma2)`` (Blundell et al. 2015, eq. 7):
  ``log P(w) = sum_j log[pi N(w_j; 0, sigma1^2) + (1 - pi) N(w_j; 0, sigma2^2)]``, computed
  as ``logaddexp(log pi + log N1, log(1 - pi) + log N2)`` so that neither component has to
  be exponentiated: finite for |w| up to 1e3 and beyond, with no density floor added. It is
  one primitive, ``scale_mixture_log_prob``, whose VJP is in the derivative table.

The default prior is the scale mixture with pi = 0.5, sigma1 = 1, sigma2 = exp(-6), inside
the paper's grid (pi in {1/4, 1/2, 3/4}, -log sigma1 in {0, 1, 2}, -log sigma2 in {6, 7, 8}).
"""

from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from ..engine import Tensor
from . import checks


class GaussianPrior:
    """``P(w) = prod_j N(w_j; 0, sigma^2)``."""

    def __init__(self, sigma: float = 1.0):
        self.sigma = checks.positive(sigma, "GaussianPrior: sigma", "the prior's std")

    def log_prob(self, w: Tensor) -> Tensor:
        """``sum_j log N(w_j; 0, sigma^2)``."""
        return F.normal_log_prob(w, 0.0, self.sigma).sum()

    def kl(self, mu: Tensor, sigma: Tensor) -> Tensor:
        """Closed-form ``KL(N(mu, sigma^2) || N(0, s^2))`` summed over elements, s = prior sigma.

        ``KL = log(s / sigma) + (sigma^2 + mu^2) / (2 s^2) - 1/2``; its expectation is what
        the Monte-Carlo complexity cost ``log q(w) - log P(w)`` estimates.
        """
        s = self.sigma
        return (math.log(s) - F.log(sigma) + (sigma * sigma + mu * mu) / (2 * s * s) - 0.5).sum()

    def config(self) -> dict[str, Any]:
        """A JSON-able description (for saving models)."""
        return {"type": "GaussianPrior", "sigma": self.sigma}

    def __repr__(self) -> str:
        return f"GaussianPrior(sigma={self.sigma:g})"


class ScaleMixturePrior:
    """``P(w) = prod_j [pi N(w_j; 0, sigma1^2) + (1 - pi) N(w_j; 0, sigma2^2)]`` (eq. 7)."""

    def __init__(self, pi: float = 0.5, sigma1: float = 1.0, sigma2: float = math.exp(-6)):
        # open interval: log(pi) and log(1 - pi) must both be finite
        self.pi = checks.between(pi, "ScaleMixturePrior: pi", "the first component's weight", 0, 1)
        self.sigma1 = checks.positive(sigma1, "ScaleMixturePrior: sigma1", "component 1's std")
        self.sigma2 = checks.positive(sigma2, "ScaleMixturePrior: sigma2", "component 2's std")

    def log_prob(self, w: Tensor) -> Tensor:
        """``sum_j logaddexp(log pi + log N(w_j; 0, s1^2), log(1-pi) + log N(w_j; 0, s2^2))``."""
        return F.scale_mixture_log_prob(w, self.pi, self.sigma1, self.sigma2).sum()

    def config(self) -> dict[str, Any]:
        """A JSON-able description (for saving models)."""
        return {
            "type": "ScaleMixturePrior",
            "pi": self.pi,
            "sigma1": self.sigma1,
            "sigma2": self.sigma2,
        }

    def __repr__(self) -> str:
        return f"ScaleMixturePrior(pi={self.pi:g}, sigma1={self.sigma1:g}, sigma2={self.sigma2:g})"


def prior_from_config(config: dict[str, Any]) -> GaussianPrior | ScaleMixturePrior:
    """Rebuild a prior from ``prior.config()``."""
    kind = config.get("type")
    args = {k: v for k, v in config.items() if k != "type"}
    if kind == "GaussianPrior":
        return GaussianPrior(**args)
    if kind == "ScaleMixturePrior":
        return ScaleMixturePrior(**args)
    raise ValueError(f"unknown prior type {kind!r}")
