"""One Bayes by Backprop training step, written four ways.

A step, for a ReLU MLP with a Gaussian posterior N(mu, softplus(rho)^2) on every weight and
bias:

    eps ~ N(0, I) for every weight and bias;  w = mu + softplus(rho) * eps
    f = log q(w | mu, rho) - log P(w) - log P(D | w)     (one Monte-Carlo sample)
    backward, then plain SGD (lr 1e-4) on every mu and rho

with BayesianMLP's default prior, the scale mixture pi = 0.5, sigma1 = 1, sigma2 = exp(-6).

- ``HandNumpy``: a lean numpy step with the gradients derived by hand (no autodiff);
- ``Microbbb``: ``opt.zero_grad(); loss = model.loss(x, y, n_samples=1); loss.backward();
  opt.step()`` with ``microbbb.optim.SGD`` (eager: the graph is built on every step);
- ``MicrobbbProgram``: ``opt.zero_grad(); program(); opt.step()`` with
  ``program = model.loss_program(x, y)``: the same loss recorded once, then fresh eps and
  the recorded forward and backward on every call (what ``fit`` does on one batch);
- ``Torch``: leaf tensors mu and rho, the same loss in eager torch, ``backward``, a manual
  SGD update under ``torch.no_grad()``.

``build`` makes all four from the same data and the same initial mu and rho. Each has
``step()`` (one training step, fresh eps), ``loss_and_grads(eps)`` (f and its gradients for
given eps, parameters untouched) and ``clear_grads()``; ``HandNumpy.draw_eps()`` gives eps
as numpy arrays that all four accept. The hand gradients are derived term by term in
docs/bbb_gradients.md; microbbb's come from its tape (``BayesianMLP.loss``, ``backward``).

The timing harness is ``bbb_step.py``. Importing this module imports numpy and torch, so a
script that pins their threads (OMP/OPENBLAS/MKL_NUM_THREADS) must do so before importing it.
"""

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF

from microbbb.bbb import BayesianMLP, Categorical, Gaussian
from microbbb.optim import SGD

LR = 1e-4
NAMES = ("weight_mu", "weight_rho", "bias_mu", "bias_rho")  # per layer, in this order
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # Python floats throughout: float32 stays float32


class Mixture:
    """Constants of the scale-mixture prior, as Python floats."""

    def __init__(self, prior: Any):
        pi, s1, s2 = prior.pi, prior.sigma1, prior.sigma2
        self.pi, self.s1, self.s2 = pi, s1, s2
        # log(pi N(w; 0, s1^2)) = c1 - h1 w^2, and the same for the narrow component
        self.c1 = math.log(pi) - math.log(s1) - HALF_LOG_2PI
        self.c2 = math.log(1 - pi) - math.log(s2) - HALF_LOG_2PI
        self.h1, self.h2 = 0.5 / s1**2, 0.5 / s2**2
        self.k1, self.k2 = 1 / s1**2, 1 / s2**2


# ----------------------------------------------------------------------------- hand numpy


class HandNumpy:
    """The BBB step in plain numpy, with the gradients derived by hand.

    Per weight tensor, with sigma = softplus(rho), s = sigmoid(rho) = dsigma/drho and
    w = mu + sigma * eps (so (w - mu) / sigma = eps):

        log q    = sum(-eps^2/2 - log sigma) - n log(2 pi)/2
        log P(w) = sum logaddexp(a, b),  a = log(pi N(w; 0, s1^2)),  b = the narrow one
        -dlogP/dw = w (r / s1^2 + (1 - r) / s2^2),  r = exp(a - log P) = sigmoid(a - b)
        grad_mu  = dData/dw - dlogP/dw     (log q's d/dw and d/dmu cancel)
        grad_rho = s (grad_mu * eps - 1 / sigma)   (log q adds -s / sigma in total)

    where dData/dw is the usual backpropagated gradient of -log P(D | w).
    """

    def __init__(self, params, x, y, likelihood: str, prior: Mixture, noise_sigma: float, seed):
        self.params = [[p.copy() for p in layer] for layer in params]  # [w_mu, w_rho, b_mu, b_rho]
        self.x, self.y = x, y
        self.likelihood, self.prior = likelihood, prior
        self.inv_var_n = 1 / noise_sigma**2
        self.log_norm_n = math.log(noise_sigma) + HALF_LOG_2PI
        self.dtype = x.dtype
        self.rng = np.random.default_rng(seed)
        self.rows = np.arange(len(x))

    def draw_eps(self) -> list:
        std_normal, dt = self.rng.standard_normal, self.dtype
        return [
            (std_normal(w_mu.shape, dtype=dt), std_normal(b_mu.shape, dtype=dt))
            for w_mu, _, b_mu, _ in self.params
        ]

    def _sample(self, mu, rho, eps):
        """w, sigma, sigmoid(rho), log q - log P and -dlogP/dw for one weight tensor."""
        prior = self.prior
        sigma = np.logaddexp(0.0, rho)
        slope = np.exp(rho - sigma)  # sigmoid(rho) = exp(rho - softplus(rho))
        w = mu + sigma * eps
        w2 = w * w
        a = prior.c1 - prior.h1 * w2
        b = prior.c2 - prior.h2 * w2
        log_p = np.logaddexp(a, b)
        r = np.exp(a - log_p)
        r *= prior.k1 - prior.k2
        r += prior.k2
        r *= w  # -dlogP/dw
        log_q = -0.5 * float(np.vdot(eps, eps)) - float(np.log(sigma).sum())
        complexity = log_q - eps.size * HALF_LOG_2PI - float(log_p.sum())
        return w, sigma, slope, complexity, r

    def loss_and_grads(self, eps: list) -> tuple[float, list]:
        """f and [grad_w_mu, grad_w_rho, grad_b_mu, grad_b_rho] per layer, for given eps."""
        complexity, samples, weights = 0.0, [], []
        for (w_mu, w_rho, b_mu, b_rho), (w_eps, b_eps) in zip(self.params, eps, strict=True):
            pair = (self._sample(w_mu, w_rho, w_eps), self._sample(b_mu, b_rho, b_eps))
            complexity += pair[0][3] + pair[1][3]
            samples.append(pair)
            weights.append((pair[0][0], pair[1][0]))

        hs = [self.x]  # forward: the inputs of each layer, then the output
        last = len(weights) - 1
        for i, (w, b) in enumerate(weights):
            out = hs[-1] @ w
            out += b
            if i < last:
                np.maximum(out, 0.0, out=out)
            hs.append(out)
        out = hs[-1]

        if self.likelihood == "gaussian":  # delta = d(-log P(D|w)) / d(out)
            delta = out - self.y
            log_lik = -0.5 * self.inv_var_n * float(np.vdot(delta, delta))
            log_lik -= delta.size * self.log_norm_n
            delta *= self.inv_var_n
        else:
            z = out - out.max(axis=1, keepdims=True)
            delta = np.exp(z)
            total = delta.sum(axis=1, keepdims=True)
            log_lik = float(z[self.rows, self.y].sum()) - float(np.log(total).sum())
            delta /= total
            delta[self.rows, self.y] -= 1.0

        grads = [None] * len(weights)
        for i in range(last, -1, -1):
            (_, w_sigma, w_slope, _, w_prior), (_, b_sigma, b_slope, _, b_prior) = samples[i]
            w_eps, b_eps = eps[i]
            g_w_mu = hs[i].T @ delta
            g_b_mu = delta.sum(axis=0)
            if i > 0:
                delta = delta @ weights[i][0].T
                delta *= hs[i] > 0
            g_w_mu += w_prior
            g_b_mu += b_prior
            g_w_rho = g_w_mu * w_eps
            g_w_rho -= 1 / w_sigma
            g_w_rho *= w_slope
            g_b_rho = g_b_mu * b_eps
            g_b_rho -= 1 / b_sigma
            g_b_rho *= b_slope
            grads[i] = [g_w_mu, g_w_rho, g_b_mu, g_b_rho]
        return complexity - log_lik, grads

    def step(self) -> None:
        _, grads = self.loss_and_grads(self.draw_eps())
        for layer, layer_grads in zip(self.params, grads, strict=True):
            for p, g in zip(layer, layer_grads, strict=True):
                g *= LR
                p -= g

    def clear_grads(self) -> None:
        """Nothing is kept between steps."""


# ----------------------------------------------------------------------------- microbbb


class Microbbb:
    """``BayesianMLP.loss`` + ``backward`` + ``microbbb.optim.SGD``, eager: the graph is
    built anew on every step."""

    def __init__(self, model: BayesianMLP, x, y):
        self.model, self.x, self.y = model, x, y
        self.opt = SGD(model.parameters(), lr=LR)

    def step(self) -> None:
        self.opt.zero_grad()
        loss = self.model.loss(self.x, self.y, n_samples=1)
        loss.backward()
        self.opt.step()

    def loss_and_grads(self, eps: list) -> tuple[float, list]:
        """f and [grad_w_mu, grad_w_rho, grad_b_mu, grad_b_rho] per layer, for given eps."""
        self.opt.zero_grad()
        loss = self.loss_with(eps)
        grads = [[getattr(la, n).grad.copy() for n in NAMES] for la in self.model.layers]
        self.opt.zero_grad()
        return loss.item(), grads

    def loss_with(self, eps: list) -> Any:
        """The loss for the given eps, its gradients in .grad."""
        loss = self.model.loss(self.x, self.y, n_samples=1, eps=[eps])
        loss.backward()
        return loss

    def clear_grads(self) -> None:
        self.opt.zero_grad()


class MicrobbbProgram(Microbbb):
    """The same step through ``model.loss_program(x, y)``: the loss recorded once, then each
    step draws fresh eps and runs the recorded forward and backward (what ``fit`` does)."""

    def __init__(self, model: BayesianMLP, x, y):
        super().__init__(model, x, y)
        self.program = model.loss_program(x, y, n_samples=1)

    def step(self) -> None:
        self.opt.zero_grad()
        self.program()
        self.opt.step()

    def loss_with(self, eps: list) -> Any:
        return self.program(eps=[eps])


# ----------------------------------------------------------------------------- torch


class Torch:
    """The same loss in eager torch: leaf mu and rho, backward, SGD under no_grad."""

    def __init__(self, params, x, y, likelihood: str, prior: Mixture, noise_sigma: float, seed):
        self.params = [torch.tensor(p).requires_grad_() for layer in params for p in layer]
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.likelihood, self.prior = likelihood, prior
        self.dtype = self.x.dtype
        self.sigma_n = torch.tensor(noise_sigma, dtype=self.dtype)
        self.gen = torch.Generator().manual_seed(seed)

    def draw_eps(self) -> list:
        return [
            (
                torch.randn(w_mu.shape, generator=self.gen, dtype=self.dtype),
                torch.randn(b_mu.shape, generator=self.gen, dtype=self.dtype),
            )
            for w_mu, b_mu in zip(self.params[0::4], self.params[2::4], strict=True)
        ]

    @staticmethod
    def _normal_log_prob(x, mu, sigma):
        return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma) - HALF_LOG_2PI

    def loss(self, eps: list) -> torch.Tensor:
        """f for given eps, as a torch scalar with its graph."""
        prior = self.prior
        log_q = log_prior = 0.0
        h = self.x
        n_layers = len(eps)
        for i, (w_eps, b_eps) in enumerate(eps):
            w_mu, w_rho, b_mu, b_rho = self.params[4 * i : 4 * i + 4]
            sampled = []
            for mu, rho, e in ((w_mu, w_rho, w_eps), (b_mu, b_rho, b_eps)):
                sigma = TF.softplus(rho)
                w = mu + sigma * e
                log_q = log_q + self._normal_log_prob(w, mu, sigma).sum()
                wide = prior.c1 - 0.5 * (w / prior.s1) ** 2  # log(pi N(w; 0, s1^2))
                narrow = prior.c2 - 0.5 * (w / prior.s2) ** 2
                log_p = torch.logaddexp(wide, narrow)
                log_prior = log_prior + log_p.sum()
                sampled.append(w)
            h = h @ sampled[0] + sampled[1]
            if i < n_layers - 1:
                h = torch.relu(h)
        if self.likelihood == "gaussian":
            log_lik = self._normal_log_prob(self.y, h, self.sigma_n).sum()
        else:
            log_lik = -TF.cross_entropy(h, self.y, reduction="sum")
        return log_q - log_prior - log_lik

    def step(self) -> None:
        for p in self.params:
            p.grad = None
        self.loss(self.draw_eps()).backward()
        with torch.no_grad():
            for p in self.params:
                p.sub_(p.grad, alpha=LR)

    def loss_and_grads(self, eps: list) -> tuple[float, list]:
        """f and its gradients as numpy arrays, laid out as ``HandNumpy.loss_and_grads``."""
        for p in self.params:
            p.grad = None
        loss = self.loss([(torch.from_numpy(w), torch.from_numpy(b)) for w, b in eps])
        loss.backward()
        grads = [p.grad.numpy().copy() for p in self.params]
        self.clear_grads()
        return loss.item(), [grads[i : i + 4] for i in range(0, len(grads), 4)]

    def clear_grads(self) -> None:
        for p in self.params:
            p.grad = None


# ----------------------------------------------------------------------------- setup


def build(layer_sizes: list[int], batch: int, likelihood: str, dtype: np.dtype) -> dict:
    """The four implementations, from the same data and the same initial mu and rho.

    ``likelihood`` is "gaussian" (regression, noise sigma 1) or "categorical" (classes).
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, layer_sizes[0])).astype(dtype)
    if likelihood == "gaussian":
        y = rng.standard_normal((batch, layer_sizes[-1])).astype(dtype)
        lik = Gaussian(sigma=1.0, dtype=dtype)
    else:
        y = rng.integers(0, layer_sizes[-1], batch)
        lik = Categorical()
    model = BayesianMLP(layer_sizes, likelihood=lik, seed=0, dtype=dtype)
    twin = BayesianMLP(layer_sizes, likelihood=lik, seed=0, dtype=dtype)  # same mu, rho
    params = [[getattr(la, n).data.copy() for n in NAMES] for la in model.layers]
    prior = Mixture(model.prior)
    noise_sigma = 1.0
    return {
        "hand numpy": HandNumpy(params, x, y, likelihood, prior, noise_sigma, seed=1),
        "microbbb": Microbbb(model, x, y),
        "mbb program": MicrobbbProgram(twin, x, y),
        "torch": Torch(params, x, y, likelihood, prior, noise_sigma, seed=2),
    }
