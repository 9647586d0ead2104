"""Three ways to estimate the gradient of the data term, E_q[-log P(D | w)]: the noise they
draw and the output of a layer ``x @ W + b`` they compute from it.

- ``"reparam"`` (Blundell et al. 2015): one w = mu + sigma * eps per Monte-Carlo sample,
  shared by every row of the batch. Noise per layer: ``weight_eps`` (n_in, n_out) and
  ``bias_eps`` (n_out,).
- ``"local"``, the local reparameterisation trick (Kingma, Salimans & Welling 2015): for
  Gaussian weights each pre-activation ``b = x @ W + bias`` of a row is Gaussian, with mean
  ``x @ mu_W + mu_b`` and variance ``x^2 @ sigma_W^2 + sigma_b^2``; it is sampled directly,
  ``b = mean + sqrt(variance) * output_eps``, with ``output_eps`` (N, n_out): one draw per
  row and output unit, so the rows' noise is independent and averages out over the batch.
  No w is sampled for the data term, so the complexity cost cannot be evaluated at "the"
  sample: with ``kl="mc"`` it is evaluated at a *separate* draw w = mu + sigma * eps from
  ``weight_eps`` and ``bias_eps`` (drawn for that purpose alone; an unbiased estimate of the
  KL, as good as the plain estimator's); with ``kl="closed_form"`` (Gaussian prior) the
  exact KL is used and those two arrays are drawn but unused. Noise per layer:
  ``weight_eps``, ``bias_eps``, ``output_eps``.
- ``"flipout"`` (Wen et al. 2018): one shared perturbation ``delta = sigma * weight_eps``
  per sample, decorrelated between rows by random signs:
  ``b = x @ mu_W + ((x * sign_in) @ delta) * sign_out + bias`` with ``sign_in`` (N, n_in)
  and ``sign_out`` (N, n_out) of +-1 drawn per row. Each row sees a weight with exactly the
  distribution q; the bias is sampled once per sample (shared, as in the plain estimator).
  w = mu + delta is a real sample of q, so the Monte-Carlo complexity cost is evaluated at
  it, as with ``"reparam"``. Noise per layer: ``weight_eps``, ``bias_eps``, ``sign_in``,
  ``sign_out``.

All three give unbiased estimates of the same gradient (tests/test_estimators.py checks it)
and all reduce to the deterministic network x @ mu + mu_b when sigma -> 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..engine import Tensor

ESTIMATORS = ("reparam", "local", "flipout")
NOISE = {
    "reparam": ("weight_eps", "bias_eps"),
    "local": ("weight_eps", "bias_eps", "output_eps"),
    "flipout": ("weight_eps", "bias_eps", "sign_in", "sign_out"),
}
SIGNS = ("sign_in", "sign_out")  # the noise arrays of +-1; the others are N(0, 1)


def check(estimator: Any) -> str:
    """``estimator`` if it is one of ``ESTIMATORS``; ValueError listing them otherwise."""
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise ValueError(
            f"estimator must be one of {ESTIMATORS} (the plain reparameterisation, the local"
            f" reparameterisation trick, Flipout); got {estimator!r}"
        )
    return estimator


def noise_shapes(
    estimator: str, in_features: int, out_features: int, n_rows: int | None
) -> dict[str, tuple]:
    """The shape of each noise array of a layer, by name, for a batch of ``n_rows``."""
    shapes = {"weight_eps": (in_features, out_features), "bias_eps": (out_features,)}
    if estimator == "local":
        shapes["output_eps"] = (n_rows, out_features)
    elif estimator == "flipout":
        shapes["sign_in"], shapes["sign_out"] = (n_rows, in_features), (n_rows, out_features)
    return shapes


def fill(rng: np.random.Generator, name: str, out: np.ndarray) -> None:
    """Draw the noise array ``name`` into ``out``, in place: N(0, 1), or +-1 with
    probability 1/2 each for the signs. Eager passes and a ``LossProgram`` both draw
    through this function, so the same generator gives them the same numbers."""
    if name in SIGNS:
        out[...] = np.where(rng.random(out.shape) < 0.5, -1.0, 1.0)
    else:
        rng.standard_normal(out=out, dtype=out.dtype)


def local_output(
    x: Tensor,
    weight_mu: Tensor,
    weight_variance: Tensor,
    bias_mu: Tensor,
    bias_sigma: Tensor,
    output_eps: Tensor,
) -> Tensor:
    """The local reparameterisation: ``mean + sqrt(variance) * output_eps`` with
    ``mean = x @ mu_W + mu_b`` and ``variance = x^2 @ sigma_W^2 + sigma_b^2``."""
    mean = x @ weight_mu + bias_mu
    # x^2 @ sigma_W^2 as one op with a parameter in it: an op on x alone would not be
    # recorded (nothing in it requires grad), so a LossProgram would keep its first value
    # after feed() puts the next batch into x
    variance = F.einsum("ni,ni,io->no", x, x, weight_variance) + F.square(bias_sigma)
    return mean + F.sqrt(variance) * output_eps


def flipout_output(
    x: Tensor, weight_mu: Tensor, delta: Tensor, bias: Tensor, sign_in: Tensor, sign_out: Tensor
) -> Tensor:
    """Flipout: ``x @ mu_W + ((x * sign_in) @ delta) * sign_out + bias``, delta = sigma * eps."""
    # (x * sign_in) @ delta as one op with delta in it, recorded (see local_output): x *
    # sign_in alone would be a constant to a LossProgram, which redraws sign_in in place
    flipped = F.einsum("ni,ni,io->no", x, sign_in, delta)
    return x @ weight_mu + flipped * sign_out + bias
