"""Bayesian layers and networks: ``BayesianLinear``, ``BayesianMLP`` and the BBB loss.

Each weight has a Gaussian variational posterior q(w | theta) = N(mu, sigma^2) with
theta = (mu, rho) and sigma = softplus(rho) = log(1 + exp(rho)). A forward pass samples

    eps ~ N(0, I),   w = mu + sigma * eps

(the reparametrisation: the randomness is in eps, so gradients reach mu and rho through w).
The loss of Blundell et al. (2015), averaged over S Monte-Carlo samples, is

    f(w, theta) = complexity_weight * (log q(w | theta) - log P(w)) - log P(D | w)

and ``BayesianMLP.loss`` returns it as a ``BBBLoss``: a scalar tensor that also carries its
parts by name (``log_q``, ``log_prior``, ``log_likelihood``), so a wrong sign shows.

Shapes: for a layer with n_in inputs and n_out outputs, ``weight_mu``, ``weight_rho`` and
``weight_eps`` are (n_in, n_out) and ``bias_*`` are (n_out,). One eps per weight per sample,
shared by every row of the batch. The hidden units are the n_out of the hidden layers.

That is the plain estimator, ``estimator="reparam"``. ``"local"`` (the local
reparameterisation trick) and ``"flipout"`` draw noise per row of the batch as well, so that
the rows' noise averages out in the gradient; ``microbbb.bbb.estimators`` explains them,
``microbbb.bbb.gradient_variance`` measures what they change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import functional as F
from ..engine import Tensor, from_numpy, no_grad, scope, tensor
from ..nn import Module, activation_function
from . import checks, estimators, io
from .likelihoods import Bernoulli, Categorical, Gaussian
from .priors import GaussianPrior, ScaleMixturePrior
from .program import LossProgram

MODES = ("sample", "mean", "fixed")


class Noise(Tensor):
    """eps ~ N(0, I): a constant tensor of random draws, marked as such so that drawings
    show it as noise rather than data. It holds the layer's own eps array (no copy)."""

    __slots__ = ()


class BayesianLinear(Module):
    """A linear layer with a Gaussian posterior over each weight and bias.

    ``forward(x, mode)``: ``mode="sample"`` draws fresh eps (training), ``"mean"`` uses
    w = mu (no noise), ``"fixed"`` reuses the last draw (``weight_eps``, ``bias_eps``).
    ``forward(x, eps=(weight_eps, bias_eps))`` uses the given noise.

    ``mu_init``: std of the normal draw of ``weight_mu`` (default 1/sqrt(in_features));
    biases' mu start at 0. ``rho_init``: initial rho of every weight (default -5, so
    sigma = softplus(-5) ~ 0.0067: a small posterior spread to start from, see the
    question this library answers for why rho ~ N(0, 1) drowns the signal).

    ``estimator``: how a sampled pass computes its output (see ``microbbb.bbb.estimators``):
    ``"reparam"`` (w = mu + sigma * eps, then ``x @ w + b``), ``"local"`` (the local
    reparameterisation trick: pre-activations sampled per row) or ``"flipout"``. With
    ``"local"``, ``self.weight`` and ``self.bias`` are a separate draw from q, used only by
    the Monte-Carlo complexity cost (``log_q``, ``log_prior``), not by the output.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        prior: GaussianPrior | ScaleMixturePrior | None = None,
        mu_init: float | None = None,
        rho_init: float = -5.0,
        rng: np.random.Generator | None = None,
        name: str | None = None,
        dtype: Any = np.float64,
        estimator: str = "reparam",
    ):
        self.name = name or "bayesian_linear"
        _check_inits(mu_init, rho_init, self.name)
        self.estimator = estimators.check(estimator)
        self.in_features, self.out_features = in_features, out_features
        self.prior = prior if prior is not None else ScaleMixturePrior()
        self.rng = rng if rng is not None else np.random.default_rng()
        std = mu_init if mu_init is not None else 1 / np.sqrt(in_features)
        shape_w, shape_b = (in_features, out_features), (out_features,)

        def param(value: np.ndarray, label: str) -> Tensor:
            return tensor(value, requires_grad=True, name=f"{self.name}.{label}", dtype=dtype)

        self.weight_mu = param(self.rng.normal(0.0, std, shape_w), "weight_mu")
        self.weight_rho = param(np.full(shape_w, rho_init), "weight_rho")
        self.bias_mu = param(np.zeros(shape_b), "bias_mu")
        self.bias_rho = param(np.full(shape_b, rho_init), "bias_rho")
        self.weight_eps: np.ndarray | None = None  # the last noise drawn (numpy arrays)
        self.bias_eps: np.ndarray | None = None
        self.output_eps: np.ndarray | None = None  # estimator "local": (N, out_features)
        self.sign_in: np.ndarray | None = None  # estimator "flipout": (N, in_features)
        self.sign_out: np.ndarray | None = None  # estimator "flipout": (N, out_features)
        self.weight: Tensor | None = None  # the last sampled weights w (tensors)
        self.bias: Tensor | None = None
        self.weight_mask: np.ndarray | None = None  # set by pruning: 0 removes a weight
        self._sigmas: tuple[Tensor, Tensor] | None = None
        self._noise: dict[str, Tensor] | None = None  # the noise tensors of the last pass

    # --- sampling -------------------------------------------------------------------------
    def sigmas(self) -> tuple[Tensor, Tensor]:
        """sigma = softplus(rho) for the weights and the biases (recorded tensors)."""
        for kind, mu, rho in (
            ("weight", self.weight_mu, self.weight_rho),
            ("bias", self.bias_mu, self.bias_rho),
        ):
            if rho.data.shape != mu.data.shape:
                raise ValueError(
                    f"{self.name}: {kind}_rho has shape {rho.shape} but {kind}_mu has shape"
                    f" {mu.shape}: every weight needs its own rho. A smaller rho would be"
                    " broadcast, silently sharing one sigma between many weights."
                )
        with scope(self.name):
            weight_sigma = _named(F.softplus(self.weight_rho), f"{self.name}.weight_sigma")
            bias_sigma = _named(F.softplus(self.bias_rho), f"{self.name}.bias_sigma")
        return weight_sigma, bias_sigma

    def sample(
        self,
        mode: str = "sample",
        eps: Sequence[Any] | None = None,
        sigmas: tuple[Tensor, Tensor] | None = None,
        n_rows: int | None = None,
    ) -> None:
        """Set ``self.weight`` and ``self.bias`` to w = mu + sigma * eps for this pass.

        ``eps``: the layer's noise, one array per name of ``noise_names()``: (weight_eps,
        bias_eps) for "reparam", plus output_eps for "local", sign_in and sign_out for
        "flipout". ``n_rows``: the batch size (the per-row noise of "local" and "flipout").
        ``sigmas``: sigma = softplus(rho) computed once and shared by several samples
        (``BayesianMLP.loss`` does this), so that each sigma has one recorded origin.
        """
        names = self.noise_names()
        self._set_noise(mode, eps, n_rows, names)
        weight_sigma, bias_sigma = sigmas if sigmas is not None else self.sigmas()
        self._sigmas = (weight_sigma, bias_sigma)
        self._noise = None
        with scope(self.name):
            if mode == "mean" and eps is None:
                weight, bias = self.weight_mu, self.bias_mu
            else:
                # the graph holds the layer's own noise arrays (a LossProgram redraws them)
                self._noise = {
                    name: _named(Noise.wrap(getattr(self, name)), f"{self.name}.{name}")
                    for name in names
                }
                weight = F.reparameterize(self.weight_mu, weight_sigma, self._noise["weight_eps"])
                bias = F.reparameterize(self.bias_mu, bias_sigma, self._noise["bias_eps"])
                which = "_kl_sample" if self.estimator == "local" else ""  # not in the output
                weight = _named(weight, f"{self.name}.weight{which}")
                bias = _named(bias, f"{self.name}.bias{which}")
            if self.weight_mask is not None:
                weight = _named(weight * self.weight_mask, f"{self.name}.weight_pruned")
        self.weight, self.bias = weight, bias

    def noise_names(self) -> tuple[str, ...]:
        """The names of the noise arrays this layer's estimator draws, in drawing order."""
        return estimators.NOISE[estimators.check(self.estimator)]

    def noise(self) -> tuple[np.ndarray, ...]:
        """The last noise drawn: one array per name of ``noise_names()``."""
        return tuple([getattr(self, name) for name in self.noise_names()])

    def _set_noise(self, mode: str, eps: Any, n_rows: int | None, names: tuple) -> None:
        dtype = self.weight_mu.dtype
        shapes = estimators.noise_shapes(
            self.estimator, self.in_features, self.out_features, n_rows
        )
        if eps is not None:
            if len(eps) != len(names):
                raise ValueError(
                    f"{self.name}: the estimator {self.estimator!r} takes {len(names)} noise"
                    f" arrays per layer, {names}; got {len(eps)}"
                )
            arrays = [np.array(e, dtype=dtype) for e in eps]  # own copies
            if [a.shape for a in arrays] != list(shapes.values()):
                expected = " and ".join(str(shape) for shape in shapes.values())
                raise ValueError(
                    f"{self.name}: eps must have the shapes of mu, {expected} ({names});"
                    f" got {' and '.join(str(a.shape) for a in arrays)}."
                )
            for name, array in zip(names, arrays, strict=True):
                setattr(self, name, array)
        elif mode == "sample":
            for name, shape in shapes.items():
                array = np.empty(shape, dtype=dtype)
                estimators.fill(self.rng, name, array)
                setattr(self, name, array)
        elif mode == "fixed":
            if self.weight_eps is None or any(
                getattr(self, name) is None or getattr(self, name).shape != shape
                for name, shape in shapes.items()
            ):
                raise ValueError(
                    f"{self.name}: mode='fixed' needs a previous sample with the estimator"
                    f" {self.estimator!r} and this batch size ({n_rows} rows)"
                )
        elif mode != "mean":
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")

    def forward(
        self,
        x: Any,
        mode: str = "sample",
        eps: Sequence[Any] | None = None,
        sigmas: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Sample the weights (see ``sample``), then the output by the layer's estimator:
        ``x @ weight + bias`` for "reparam" (and for w = mu, ``mode="mean"``)."""
        n_rows = None  # the batch size, for the per-row noise of "local" and "flipout"
        if self.estimator != "reparam":
            shape = x.shape if isinstance(x, Tensor) else np.shape(x)
            if len(shape) != 2:
                raise ValueError(
                    f"{self.name}: the estimator {self.estimator!r} draws noise per row, so x"
                    f" must have shape (N, {self.in_features}); got {shape}"
                )
            n_rows = shape[0]
        self.sample(mode, eps, sigmas, n_rows=n_rows)
        with scope(self.name):
            if self._noise is None or self.estimator == "reparam":
                return x @ self.weight + self.bias
            weight_sigma, bias_sigma = self._sigmas
            weight_mu, noise = self.weight_mu, self._noise
            if self.estimator == "local":
                variance = F.square(weight_sigma)
                if self.weight_mask is not None:
                    weight_mu, variance = weight_mu * self.weight_mask, variance * self.weight_mask
                return estimators.local_output(
                    x, weight_mu, variance, self.bias_mu, bias_sigma, noise["output_eps"]
                )
            delta = weight_sigma * noise["weight_eps"]
            if self.weight_mask is not None:
                weight_mu, delta = weight_mu * self.weight_mask, delta * self.weight_mask
            return estimators.flipout_output(
                x, weight_mu, delta, self.bias, noise["sign_in"], noise["sign_out"]
            )

    # --- the complexity cost of the last sample --------------------------------------------
    def log_q(self) -> Tensor:
        """``log q(w | theta) = sum log N(w; mu, sigma^2)`` at the last sampled w."""
        weight_sigma, bias_sigma = self._last_sigmas()
        with scope(f"{self.name}/log_q"):
            return F.normal_log_prob(self.weight, self.weight_mu, weight_sigma).sum() + (
                F.normal_log_prob(self.bias, self.bias_mu, bias_sigma).sum()
            )

    def log_prior(self) -> Tensor:
        """``log P(w)`` under the layer's prior, at the last sampled w."""
        self._last_sigmas()
        with scope(f"{self.name}/log_prior"):
            return self.prior.log_prob(self.weight) + self.prior.log_prob(self.bias)

    def kl(self, sigmas: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Closed-form ``KL(q || P)`` (Gaussian prior only): the expectation of
        log q - log P, without sampling. ``sigmas``: as in ``sample``."""
        if not isinstance(self.prior, GaussianPrior):
            raise ValueError(
                "the closed-form KL needs a GaussianPrior; the scale mixture has none, use"
                " the Monte-Carlo complexity cost (kl='mc')"
            )
        weight_sigma, bias_sigma = sigmas if sigmas is not None else self.sigmas()
        with scope(f"{self.name}/kl"):
            return self.prior.kl(self.weight_mu, weight_sigma) + self.prior.kl(
                self.bias_mu, bias_sigma
            )

    def _last_sigmas(self) -> tuple[Tensor, Tensor]:
        if self._sigmas is None or self.weight is None:
            raise RuntimeError(f"{self.name}: run a forward pass first")
        return self._sigmas

    def weight_sigma(self) -> np.ndarray:
        """sigma = softplus(rho) of the weights, as a numpy array."""
        with no_grad():
            return F.softplus(self.weight_rho).data

    def __getstate__(self) -> dict[str, Any]:
        # a copy (copy.deepcopy, pickle) leaves out the last forward pass's graph (the
        # sampled w and sigma): it belongs to the old parameters. The eps are kept.
        state = dict(self.__dict__)
        state.update(weight=None, bias=None, _sigmas=None, _noise=None)
        return state

    def __repr__(self) -> str:
        return f"BayesianLinear({self.in_features}, {self.out_features}, prior={self.prior})"


def _named(t: Tensor, name: str) -> Tensor:
    t.name = name
    return t


def _check_inits(mu_init: Any, rho_init: Any, who: str) -> None:
    if mu_init is not None:
        meaning = "the std of the initial weight means; None for 1/sqrt(in_features)"
        checks.number(mu_init, f"{who}: mu_init", meaning, low=0)
    checks.number(rho_init, f"{who}: rho_init", "the initial rho of every weight and bias")


class LossData(NamedTuple):
    """Where a recorded loss holds its data, by reference: ``x`` (the array every sample's
    input tensor holds), ``targets`` (the labels as the likelihood put them in the graph: a
    tensor, or Categorical's integer array) and the ``complexity_weight`` constant (None
    when it was 1, so no multiplication was recorded). ``x`` and ``targets`` are the loss's
    own copies of the caller's arrays; a ``LossProgram`` feeds the next minibatch into
    them."""

    x: np.ndarray
    targets: Any
    complexity_weight: Tensor | None


class BBBLoss(Tensor):
    """The scalar loss f, plus its parts (tensors in the same graph), averaged over samples.

    ``f = complexity_weight * complexity - log_likelihood`` where ``complexity`` is
    ``log_q - log_prior`` (Monte-Carlo, the paper's choice) or the closed-form KL.
    ``eps`` holds the noise of every sample: ``eps[s][layer] = (weight_eps, bias_eps)``
    (plus the per-row noise of the estimator: ``layer.noise_names()``); ``output`` is the
    last sample's network output, ``inputs`` a ``LossData``. ``estimator`` names how the
    data term was sampled; with "local", ``log_q`` and ``log_prior`` are evaluated at a
    separate draw of w (``layerN.weight_kl_sample``), the output having sampled none.
    """

    __slots__ = (
        "log_q",
        "log_prior",
        "log_likelihood",
        "complexity",
        "complexity_weight",
        "n_samples",
        "eps",
        "output",
        "inputs",
        "estimator",
    )

    def __repr__(self) -> str:
        c = self.complexity_weight
        if self.log_q is not None:
            text = (
                f"{c:g} * (log_q {self.log_q.item():.6g} - log_prior {self.log_prior.item():.6g})"
            )
            if self.estimator == "local":
                text += " at a separate w sample"
        else:
            text = f"{c:g} * KL {self.complexity.item():.6g}"
        return (
            f"BBBLoss({self.item():.6g} = {text} - log_likelihood"
            f" {self.log_likelihood.item():.6g}; {self.n_samples} sample(s))"
        )


class BayesianMLP(Module):
    """A multilayer perceptron of ``BayesianLinear`` layers, with a prior and a likelihood.

    ``sizes = [n_in, hidden..., n_out]``; the activation (relu, tanh, sigmoid, softplus) is
    applied between layers. ``seed`` fixes the initial mu and every eps drawn afterwards.
    ``estimator``: "reparam" (default), "local" or "flipout", for every layer (see
    ``microbbb.bbb.estimators``); it can be changed later (``model.estimator = "local"``).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str = "relu",
        prior: GaussianPrior | ScaleMixturePrior | None = None,
        likelihood: Gaussian | Bernoulli | Categorical | None = None,
        seed: int | None = None,
        mu_init: float | None = None,
        rho_init: float = -5.0,
        dtype: Any = np.float64,
        estimator: str = "reparam",
    ):
        estimators.check(estimator)
        if len(sizes) < 2:
            raise ValueError(f"sizes must be >= 2 positive integers [n_in, ..., n_out]: {sizes}")
        for i, n in enumerate(sizes):  # (a bool or a float is refused, not read as a width)
            checks.count(n, f"sizes[{i}]", "the width of a layer")
        if likelihood is None:
            raise ValueError(
                "BayesianMLP needs a likelihood: Gaussian(sigma=...) for regression,"
                " Bernoulli() for 0/1 labels with one output, Categorical() for classes."
            )
        likelihood.check_outputs(sizes[-1])
        _check_inits(mu_init, rho_init, "BayesianMLP")
        self.sizes = [int(n) for n in sizes]
        self.activation = activation
        self._act = activation_function(activation)
        self.prior = prior if prior is not None else ScaleMixturePrior()
        self.likelihood = likelihood
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.mu_init, self.rho_init = mu_init, rho_init
        self.rng = np.random.default_rng(seed)
        self.layers = [
            BayesianLinear(
                n_in,
                n_out,
                prior=self.prior,
                mu_init=mu_init,
                rho_init=rho_init,
                rng=self.rng,
                name=f"layer{i + 1}",
                dtype=dtype,
                estimator=estimator,
            )
            for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        ]

    @property
    def estimator(self) -> str:
        """The gradient estimator of every layer: "reparam", "local" or "flipout"."""
        return self.layers[0].estimator

    @estimator.setter
    def estimator(self, value: str) -> None:
        value = estimators.check(value)
        for layer in self.layers:
            layer.estimator = value

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """mu and rho of every layer (``layers.0.weight_mu``, ...), then the likelihood's
        (``likelihood.noise_rho`` when the noise is learned)."""
        for i, layer in enumerate(self.layers):
            for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
                yield f"{prefix}layers.{i}.{name}", getattr(layer, name)
        for t in self.likelihood.parameters():
            yield f"{prefix}likelihood.{t.name}", t

    # --- forward ----------------------------------------------------------------------------
    def check_inputs(self, x: Any) -> np.ndarray:
        """x as a new array of shape (N, n_in) in the model's dtype; clear errors otherwise.

        Always a copy: a graph holds it, so changing the caller's array afterwards (say,
        reusing a buffer for the next batch) cannot change what ``backward`` computes.
        """
        x = np.asarray(x.data if isinstance(x, Tensor) else x)
        if x.dtype.kind not in "iufb":
            raise TypeError(f"inputs x must be numbers, got dtype {x.dtype}")
        if x.ndim == 1 and self.sizes[0] == 1:
            x = x.reshape(-1, 1)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(
                f"inputs x must have shape (N, {self.sizes[0]}) for this network; got {x.shape}."
            )
        if not np.isfinite(x).all():
            row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise ValueError(
                f"inputs x contain NaN or inf (first in row {row}); clean the data first."
            )
        return x.astype(self.dtype)  # a copy, even when the dtype is already the model's

    def forward(
        self,
        x: Any,
        mode: str = "sample",
        eps: Sequence[Any] | None = None,
        sigmas: Sequence[tuple[Tensor, Tensor]] | None = None,
    ) -> Tensor:
        """The network output for inputs x, with sampled (or mean, or fixed) weights.

        ``eps``: a list with one ``(weight_eps, bias_eps)`` per layer, or None.
        ``sigmas``: each layer's ``sigmas()``, when computed once for several samples.
        """
        return self._forward(self.check_inputs(x), mode, eps, sigmas)

    def _forward(self, x: np.ndarray, mode: str, eps: Any, sigmas: Any) -> Tensor:
        h = from_numpy(x, "x")  # x was checked, and is the model's own copy
        for i, layer in enumerate(self.layers):
            h = layer(
                h,
                mode=mode,
                eps=None if eps is None else eps[i],
                sigmas=None if sigmas is None else sigmas[i],
            )
            if i < len(self.layers) - 1:
                h = self._act(h)
        return h

    # --- the loss -------------------------------------------------------------------------
    def loss(
        self,
        x: Any,
        y: Any,
        n_samples: int = 1,
        complexity_weight: float = 1.0,
        kl: str = "mc",
        eps: Sequence[Any] | None = None,
    ) -> BBBLoss:
        """The BBB loss ``f = complexity_weight * (log q - log P(w)) - log P(D | w)``.

        Averaged over ``n_samples`` weight samples. ``kl="closed_form"`` replaces the
        Monte-Carlo ``log q - log P(w)`` by the exact KL (Gaussian prior only).
        ``eps[s]`` gives the noise of sample s (per layer, (weight_eps, bias_eps) plus the
        estimator's per-row noise, see ``BayesianLinear.noise_names``). With the estimator
        "local" and ``kl="mc"``, log q - log P(w) is evaluated at a separate draw of w.
        For a minibatch i of M, pass ``complexity_weight = minibatch_weights(M)[i]``.
        The graph holds copies of x and y: changing them afterwards changes nothing.
        """
        n_samples, complexity_weight = _check_loss_arguments(n_samples, complexity_weight, kl, eps)
        x = self.check_inputs(x)
        prepared = self.likelihood.prepare(y, len(x), self.sizes[-1])
        targets = self.likelihood.as_targets(prepared, self.dtype)
        sigmas = [layer.sigmas() for layer in self.layers]  # once, shared by the samples
        log_likelihood, log_q, log_prior, draws, output = self._sampled_terms(
            x, targets, n_samples, kl, eps, sigmas
        )
        with scope("loss"):
            if n_samples > 1:  # the Monte-Carlo average
                log_likelihood = log_likelihood / n_samples
                log_q = log_q / n_samples if log_q is not None else None
                log_prior = log_prior / n_samples if log_prior is not None else None
            log_likelihood = _named(log_likelihood, "log_likelihood")
            if kl == "mc":
                log_q, log_prior = _named(log_q, "log_q"), _named(log_prior, "log_prior")
                complexity = _named(log_q - log_prior, "complexity")
            else:
                kls = (layer.kl(s) for layer, s in zip(self.layers, sigmas, strict=True))
                complexity = _named(_total(kls), "kl")
            weight, weighted = None, complexity
            if complexity_weight != 1:  # a constant a LossProgram can set for each minibatch
                weight = from_numpy(np.asarray(complexity_weight, dtype=self.dtype))
                weighted = _named(weight, "complexity_weight") * complexity
            f = weighted - log_likelihood
        result = BBBLoss.wrap(f.data, f.record)
        result.name, result.n_samples, result.eps, result.output = "f", n_samples, draws, output
        result.log_q, result.log_prior, result.log_likelihood = log_q, log_prior, log_likelihood
        result.complexity, result.complexity_weight = complexity, complexity_weight
        result.inputs, result.estimator = LossData(x, targets, weight), self.estimator
        return result

    def _sampled_terms(
        self, x: np.ndarray, targets: Any, n_samples: int, kl: str, eps: Any, sigmas: list
    ) -> tuple:
        """Sum over the samples of log P(D | w), log q and log P(w) (the last two None for
        the closed-form KL), the eps of every sample and the last sample's output."""
        log_q = log_prior = log_likelihood = output = None
        draws = []
        for s in range(n_samples):
            output = self._forward(x, "sample", None if eps is None else eps[s], sigmas)
            draws.append([layer.noise() for layer in self.layers])
            with scope("likelihood"):
                ll = self.likelihood.log_likelihood(output, targets)
            log_likelihood = ll if log_likelihood is None else log_likelihood + ll
            if kl == "mc":
                lq = _total(layer.log_q() for layer in self.layers)
                lp = _total(layer.log_prior() for layer in self.layers)
                log_q = lq if log_q is None else log_q + lq
                log_prior = lp if log_prior is None else log_prior + lp
        return log_likelihood, log_q, log_prior, draws, output

    def loss_program(
        self,
        x: Any,
        y: Any,
        n_samples: int = 1,
        complexity_weight: float = 1.0,
        kl: str = "mc",
    ) -> LossProgram:
        """``loss(x, y, ...)`` and its backward recorded once: each call of the result draws
        fresh eps, runs forward and backward, and returns the ``BBBLoss`` (see
        ``microbbb.bbb.program``). Same numbers as eager steps, less Python per step."""
        return LossProgram(self, x, y, n_samples, complexity_weight, kl)

    # --- prediction -------------------------------------------------------------------------
    def predict(self, x: Any, n_samples: int = 100, mode: str = "sample") -> Any:
        """The predictive distribution, averaging over ``n_samples`` weight samples.

        Regression: ``RegressionPrediction`` (mean, std = sqrt(epistemic^2 + aleatoric^2)).
        Classification: ``ClassificationPrediction`` (mean probabilities, entropy).
        ``mode="mean"`` uses w = mu once (no averaging).
        """
        checks.choice(mode, "mode", ("sample", "mean"))
        n_samples = checks.n_samples(n_samples)
        with no_grad():
            if mode == "mean":
                outputs = self.forward(x, mode="mean").data[None]
            else:
                outputs = np.stack([self.forward(x).data for _ in range(n_samples)])
        return self.likelihood.predictive(outputs)

    # --- files ----------------------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Write the model to an ``.npz`` file (atomically; see ``microbbb.bbb.io``)."""
        io.save(self, path)

    @classmethod
    def load(cls, path: Any) -> BayesianMLP:
        """Read a model written by ``save``; raises ``ModelFileError`` for other files."""
        return io.load(path, cls)

    def __repr__(self) -> str:
        return (
            f"BayesianMLP(sizes={self.sizes}, activation={self.activation!r},"
            f" prior={self.prior}, likelihood={self.likelihood})"
        )


def _check_loss_arguments(n_samples: Any, complexity_weight: Any, kl: Any, eps: Any) -> tuple:
    checks.choice(kl, "kl", ("mc", "closed_form"))
    n_samples = checks.n_samples(n_samples)
    complexity_weight = checks.complexity_weight(complexity_weight)
    if eps is not None and len(eps) != n_samples:
        raise ValueError(f"eps holds {len(eps)} samples but n_samples is {n_samples}")
    return n_samples, complexity_weight


def _total(parts: Any) -> Tensor:
    total = None
    for p in parts:
        total = p if total is None else total + p
    return total
