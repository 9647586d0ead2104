"""The Bayes by Backprop loss and its gradients for mu and rho, derived by hand, in numpy.

This module uses no autodiff: it answers "how do I compute the gradients of mu and rho
without it?", and it checks the engine independently. It covers ReLU MLPs of any depth,
the Gaussian (fixed or learned noise), Bernoulli and Categorical likelihoods, the Gaussian
and scale-mixture priors, and the Monte-Carlo or closed-form complexity cost.

The derivation
--------------
For one weight tensor, theta = (mu, rho), sigma = softplus(rho) = log(1 + e^rho), and one
Monte-Carlo sample eps ~ N(0, I):

    w = mu + sigma * eps
    f(w, theta) = c * (log q(w | theta) - log P(w)) - log P(D | w)        (c: minibatch weight)

f depends on mu in two ways: through w (w moves when mu moves) and directly, because
log q(w | mu, sigma) = sum log N(w; mu, sigma^2) has mu in it. The chain rule adds both:

    grad_mu  = df/dw * dw/dmu  + df/dmu   = df/dw + df/dmu               (dw/dmu = 1)
    grad_rho = df/dw * dw/drho + df/drho  = df/dw * eps * sigmoid(rho) + df/drho
               (dw/drho = eps * dsigma/drho, dsigma/drho = sigmoid(rho) = 1 / (1 + e^-rho))

Here df/dw is the *total* derivative with respect to the sampled weights, holding mu and
sigma fixed: the ordinary backpropagated gradient of the data term, plus the derivatives of
the log-densities with respect to w. df/dmu and df/drho are the *direct* terms: only
log q depends on mu and sigma other than through w.

The pieces (elementwise, z = (w - mu) / sigma):

    log q       = sum[-z^2/2 - log sigma - log(2 pi)/2]
      d/dw      = -(w - mu) / sigma^2
      d/dmu     = +(w - mu) / sigma^2          (so d/dw + d/dmu = 0 for log q itself)
      d/dsigma  = (w - mu)^2 / sigma^3 - 1 / sigma
    log P(w), Gaussian N(0, s^2):   d/dw = -w / s^2
    log P(w), scale mixture:        with a = log pi + log N(w; 0, s1^2),
                                    b = log(1 - pi) + log N(w; 0, s2^2),
                                    r = e^a / (e^a + e^b) = sigmoid(a - b),
                                    log P = logaddexp(a, b),  d/dw = -w (r / s1^2 + (1 - r) / s2^2)
    log P(D | w): backpropagation through the network, starting from d/d(output):
      Gaussian:    (y - out) / sigma_n^2    (and d/dsigma_n = (y - out)^2/sigma_n^3 - 1/sigma_n)
      Bernoulli:   y - sigmoid(logit)       (log-lik = y l - softplus(l))
      Categorical: onehot(y) - softmax(l)   (log-lik = l_y - logsumexp(l))
    a dense layer out = h @ W + b:  dW = h^T delta,  db = sum_rows delta,  dh = delta @ W^T
    ReLU h = max(a, 0):             da = dh * (a > 0)

With the closed-form KL for a Gaussian prior N(0, s^2),
KL = sum[log(s / sigma) + (sigma^2 + mu^2) / (2 s^2) - 1/2] has no w in it: d/dmu = mu / s^2,
d/dsigma = -1/sigma + sigma / s^2, and df/dw keeps only the data term.

With S samples, f and every gradient are the means over the samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), without overflow."""
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), without overflow."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def normal_log_prob(x: np.ndarray, mu: Any, sigma: Any) -> np.ndarray:
    """log N(x; mu, sigma^2), elementwise."""
    z = (x - mu) / sigma
    return -0.5 * z * z - np.log(sigma) - HALF_LOG_2PI


@dataclass
class HandResult:
    """The loss, its parts and the gradients, all averaged over the samples.

    ``grads[l]`` maps "weight_mu", "weight_rho", "bias_mu", "bias_rho" to arrays.
    ``terms[l]`` maps "weight" and "bias" to the paper's decomposition:
    ``df_dw`` (total derivative through the sampled weights), ``df_dmu`` (direct),
    ``pathwise_rho`` (df/dw * eps * sigmoid(rho)) and ``df_drho`` (direct), so that
    grad_mu = df_dw + df_dmu and grad_rho = pathwise_rho + df_drho.
    """

    loss: float
    complexity: float
    log_q: float | None  # None with the closed-form KL
    log_prior: float | None
    log_likelihood: float
    grads: list[dict[str, np.ndarray]]
    terms: list[dict[str, dict[str, np.ndarray]]]
    noise_rho_grad: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- the densities' derivatives with respect to w --------------------------------------------


def log_prior_and_dw(w: np.ndarray, prior: Any) -> tuple[float, np.ndarray]:
    """log P(w) summed, and d log P / dw elementwise, for a Gaussian or scale-mixture prior."""
    if hasattr(prior, "pi"):  # scale mixture
        a = math.log(prior.pi) + normal_log_prob(w, 0.0, prior.sigma1)
        b = math.log(1 - prior.pi) + normal_log_prob(w, 0.0, prior.sigma2)
        r, one_minus_r = sigmoid(a - b), sigmoid(b - a)  # shares of the two components
        dw = -w * (r / prior.sigma1**2 + one_minus_r / prior.sigma2**2)
        return float(np.logaddexp(a, b).sum()), dw
    s = prior.sigma
    return float(normal_log_prob(w, 0.0, s).sum()), -w / s**2


def log_likelihood_and_dout(
    out: np.ndarray, y: np.ndarray, likelihood: Any, noise_sigma: float | None
) -> tuple[float, np.ndarray, float]:
    """log P(D | w), d/d(output), and (Gaussian) d/d(noise sigma)."""
    kind = type(likelihood).__name__
    if kind == "Gaussian":
        y = y.reshape(out.shape)
        residual = y - out
        value = float(normal_log_prob(y, out, noise_sigma).sum())
        d_sigma = float((residual**2 / noise_sigma**3 - 1 / noise_sigma).sum())
        return value, residual / noise_sigma**2, d_sigma
    if kind == "Bernoulli":
        logit = out[:, 0]
        value = float((y * logit - softplus(logit)).sum())
        return value, (y - sigmoid(logit))[:, None], 0.0
    if kind == "Categorical":
        m = out.max(axis=1, keepdims=True)
        log_softmax = out - (m + np.log(np.exp(out - m).sum(axis=1, keepdims=True)))
        onehot = np.zeros_like(out)
        onehot[np.arange(len(y)), y] = 1.0
        value = float(log_softmax[np.arange(len(y)), y].sum())
        return value, onehot - np.exp(log_softmax), 0.0
    raise ValueError(f"unknown likelihood {kind}")


# --- the whole loss and its gradients ----------------------------------------------------------


def loss_and_gradients(
    layers: list[dict[str, np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
    eps: list[list[tuple[np.ndarray, np.ndarray]]],
    prior: Any,
    likelihood: Any,
    complexity_weight: float = 1.0,
    kl: str = "mc",
    noise_rho: float | None = None,
) -> HandResult:
    """The BBB loss of a ReLU MLP and the gradient of every mu and rho, by hand.

    ``layers[l]`` holds numpy arrays "weight_mu", "weight_rho" (n_in, n_out), "bias_mu",
    "bias_rho" (n_out,). ``eps[s][l] = (weight_eps, bias_eps)`` is the noise of sample s.
    ``prior`` needs ``sigma`` (Gaussian) or ``pi, sigma1, sigma2`` (mixture); the
    likelihood is a ``Gaussian`` (its ``sigma``; ``noise_rho`` when learned),
    ``Bernoulli`` or ``Categorical`` object, only read for its kind and numbers.
    """
    if any(len(pair) != 2 for sample in eps for pair in sample):
        raise ValueError(
            "eps[s][l] must be (weight_eps, bias_eps): by_hand derives the estimator 'reparam'"
            " only; the noise of 'local' or 'flipout' (per-row arrays too) has no hand derivation"
            " here. Use the engine's gradients for those."
        )
    n_samples, c = len(eps), complexity_weight
    noise_sigma = None
    if type(likelihood).__name__ == "Gaussian":
        noise_sigma = float(softplus(noise_rho)) if noise_rho is not None else likelihood.sigma
    names = ("weight", "bias")
    mus = [[layer[f"{k}_mu"] for k in names] for layer in layers]
    rhos = [[layer[f"{k}_rho"] for k in names] for layer in layers]
    sigmas = [[softplus(r) for r in pair] for pair in rhos]

    totals = dict.fromkeys(["loss", "complexity", "log_q", "log_prior", "log_likelihood"], 0.0)
    totals["d_sigma_n"] = 0.0
    zeros = [[np.zeros_like(m) for m in pair] for pair in mus]
    df_dw, df_dmu, pathwise_rho, df_drho = (
        [[z.copy() for z in pair] for pair in zeros] for _ in range(4)
    )

    for sample in eps:
        # forward: w = mu + sigma * eps, then the network
        ws = [
            [mu + sigma * e for mu, sigma, e in zip(m, s, e2, strict=True)]
            for m, s, e2 in zip(mus, sigmas, sample, strict=True)
        ]
        hs, pre = [x], []
        for i, (weight, bias) in enumerate(ws):
            a = hs[-1] @ weight + bias
            pre.append(a)
            hs.append(np.maximum(a, 0.0) if i < len(ws) - 1 else a)
        ll, delta, d_sigma_n = log_likelihood_and_dout(hs[-1], y, likelihood, noise_sigma)

        # backward through the data term: delta = df/d(pre-activation), f's data part = -ll
        delta = -delta
        data_dw = [[None, None] for _ in ws]
        for i in reversed(range(len(ws))):
            data_dw[i] = [hs[i].T @ delta, delta.sum(axis=0)]
            if i > 0:
                delta = (delta @ ws[i][0].T) * (pre[i - 1] > 0)

        # the complexity cost and its partial derivatives
        log_q = log_prior = kl_value = 0.0
        for i in range(len(ws)):
            for k in range(2):
                w, mu, sigma, e = ws[i][k], mus[i][k], sigmas[i][k], sample[i][k]
                rho_slope = sigmoid(rhos[i][k])  # dsigma/drho
                if kl == "mc":
                    log_q += float(normal_log_prob(w, mu, sigma).sum())
                    lp, dlp_dw = log_prior_and_dw(w, prior)
                    log_prior += lp
                    dlq_dw = -(w - mu) / sigma**2
                    dlq_dmu = (w - mu) / sigma**2
                    dlq_dsigma = (w - mu) ** 2 / sigma**3 - 1 / sigma
                    total_dw = data_dw[i][k] + c * (dlq_dw - dlp_dw)
                    direct_mu = c * dlq_dmu
                    direct_sigma = c * dlq_dsigma
                else:  # closed-form KL to N(0, s^2): no dependence on w
                    s = prior.sigma
                    kl_value += float(
                        (math.log(s) - np.log(sigma) + (sigma**2 + mu**2) / (2 * s**2) - 0.5).sum()
                    )
                    total_dw = data_dw[i][k]
                    direct_mu = c * mu / s**2
                    direct_sigma = c * (-1 / sigma + sigma / s**2)
                df_dw[i][k] += total_dw / n_samples
                df_dmu[i][k] += direct_mu / n_samples
                pathwise_rho[i][k] += total_dw * e * rho_slope / n_samples
                df_drho[i][k] += direct_sigma * rho_slope / n_samples

        totals["log_q"] += log_q / n_samples
        totals["log_prior"] += log_prior / n_samples
        totals["log_likelihood"] += ll / n_samples
        complexity = log_q - log_prior if kl == "mc" else kl_value
        totals["complexity"] += complexity / n_samples
        totals["loss"] += (c * complexity - ll) / n_samples
        totals["d_sigma_n"] += d_sigma_n / n_samples

    grads, terms = [], []
    for i in range(len(layers)):
        grads.append({})
        terms.append({})
        for k, name in enumerate(names):
            grads[i][f"{name}_mu"] = df_dw[i][k] + df_dmu[i][k]
            grads[i][f"{name}_rho"] = pathwise_rho[i][k] + df_drho[i][k]
            terms[i][name] = {
                "df_dw": df_dw[i][k],
                "df_dmu": df_dmu[i][k],
                "pathwise_rho": pathwise_rho[i][k],
                "df_drho": df_drho[i][k],
            }
    noise_grad = None
    if noise_rho is not None:  # f has -log P(D|w); dsigma_n/dnoise_rho = sigmoid(noise_rho)
        noise_grad = float(-totals["d_sigma_n"] * sigmoid(np.asarray(noise_rho)))
    return HandResult(
        loss=totals["loss"],
        complexity=totals["complexity"],
        log_q=totals["log_q"] if kl == "mc" else None,
        log_prior=totals["log_prior"] if kl == "mc" else None,
        log_likelihood=totals["log_likelihood"],
        grads=grads,
        terms=terms,
        noise_rho_grad=noise_grad,
    )


def for_model(
    model: Any,
    x: Any,
    y: Any,
    eps: list[list[tuple[np.ndarray, np.ndarray]]],
    complexity_weight: float = 1.0,
    kl: str = "mc",
) -> HandResult:
    """``loss_and_gradients`` with the numbers read from a ``BayesianMLP``'s parameters.

    Only for the estimator "reparam": the derivation above samples w. For "local" and
    "flipout" the data term's gradient takes other paths (per-row pre-activations, random
    signs); use the engine's gradients (``model.loss(x, y).backward()``), which
    tests/test_estimators.py checks against finite differences.
    """
    if model.estimator != "reparam":
        raise ValueError(
            f"by_hand derives the gradients of the estimator 'reparam'; this model uses"
            f" {model.estimator!r}. Use the engine's gradients (model.loss(x, y).backward()),"
            " or set model.estimator = 'reparam' on a copy."
        )
    if model.activation != "relu":
        raise ValueError("the hand-derived gradients cover ReLU networks")
    layers = [
        {
            name: getattr(layer, name).data
            for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho")
        }
        for layer in model.layers
    ]
    x = model.check_inputs(x)
    y = model.likelihood.prepare(y, len(x), model.sizes[-1])
    likelihood = model.likelihood
    noise_rho = None
    if getattr(likelihood, "learn_sigma", False):
        noise_rho = float(likelihood.noise_rho.data)
    return loss_and_gradients(
        layers, x, y, eps, model.prior, likelihood, complexity_weight, kl, noise_rho
    )
