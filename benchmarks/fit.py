"""Whole training runs: microbbb's ``fit`` against a torch training loop, same model and data.

Three settings, each the one a demo or the question uses:

- ``regression``: the regression demo, [1, 32, 32, 1] on 500 points of the paper's curve,
  N(0, 1) prior, Gaussian likelihood with learned noise, minibatches of 100, Adam 3e-3;
- ``question``: the question's [3, 32, 1] network on 100 observations with Bernoulli(0.6)
  labels, N(0, 1) prior, two samples per step, full batch, Adam 1e-2;
- ``digits``: scikit-learn's digits, [64, 100, 10], the scale-mixture prior, Categorical
  likelihood, minibatches of 100 (13 per epoch), temperature 0.1, Adam 3e-3.

The torch side is written the way a torch user writes BBB: an ``nn.Module`` per layer with
``mu`` and ``rho`` as ``nn.Parameter``, eps from ``torch.randn_like``, log q and the prior
from ``torch.distributions``, the likelihood from ``torch.nn.functional``, ``torch.optim.Adam``,
minibatches from ``torch.randperm``. It starts from microbbb's initial mu and rho.

Before timing, each setting is checked once: with microbbb's eps fed to the torch module,
its loss and gradients must equal microbbb's (float64: rtol 1e-9), so both do the same work.
Then the two runs alternate (the machine is noisy: only ratios from one run mean something),
``--repeats`` times each; reported: median seconds, the ratio microbbb / torch, and the mean
loss per epoch over the last tenth of the epochs for each (the two draw different eps, so
they agree in distribution, not bit for bit).

Run:  python benchmarks/fit.py [--settings regression question digits] [--scale 1.0]
      [--repeats 3] [--threads 1]
"""

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings", nargs="+", choices=["regression", "question", "digits"], default=None
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the epochs")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="numpy and torch threads")
    return parser


# Threads are pinned before numpy (OpenBLAS) and torch are loaded: they read these once.
ARGS = build_parser().parse_args() if __name__ == "__main__" else None
if ARGS is not None and {"numpy", "torch"} & set(sys.modules):
    sys.exit("numpy or torch was imported before the threads were pinned: import it below")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads if ARGS is not None else 1)

import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402
from torch import nn  # noqa: E402
from torch.distributions import Normal  # noqa: E402

from microbbb.bbb import (  # noqa: E402
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    ScaleMixturePrior,
    fit,
)

if ARGS is not None:
    torch.set_num_threads(ARGS.threads)


# ----------------------------------------------------------------------------- settings


def regression_data() -> tuple:
    from microbbb.demos.regression import toy_curve

    return toy_curve(500, np.random.default_rng(0))


def question_data() -> tuple:
    from microbbb.demos.question import make_data

    x, labels, _ = make_data(100, np.random.default_rng(0))
    return x, labels


def digits() -> tuple:
    from microbbb.demos.classification import digits_data

    x_train, _, y_train, _ = digits_data()
    return x_train, y_train


SETTINGS = {  # data, sizes, likelihood, prior, batch size, lr, samples, temperature, epochs
    "regression": dict(
        data=regression_data,
        sizes=[1, 32, 32, 1],
        likelihood=lambda: Gaussian(0.2, learn_sigma=True),
        prior=lambda: GaussianPrior(1.0),
        batch_size=100,
        lr=3e-3,
        n_samples=1,
        temperature=1.0,
        epochs=200,
    ),
    "question": dict(
        data=question_data,
        sizes=[3, 32, 1],
        likelihood=Bernoulli,
        prior=lambda: GaussianPrior(1.0),
        batch_size=None,
        lr=1e-2,
        n_samples=2,
        temperature=1.0,
        epochs=1000,
    ),
    "digits": dict(
        data=digits,
        sizes=[64, 100, 10],
        likelihood=Categorical,
        prior=ScaleMixturePrior,
        batch_size=100,
        lr=3e-3,
        n_samples=1,
        temperature=0.1,
        epochs=60,
    ),
}


# ------------------------------------------------------------ torch, as a user writes it


class TorchBayesLinear(nn.Module):
    """w = mu + softplus(rho) * eps for the weights and the biases; log q and log P kept."""

    def __init__(self, layer, prior):
        super().__init__()
        for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
            setattr(self, name, nn.Parameter(torch.tensor(getattr(layer, name).data)))
        self.prior = prior

    def forward(self, x, eps=None):
        w_sigma, b_sigma = TF.softplus(self.weight_rho), TF.softplus(self.bias_rho)
        w_eps = torch.randn_like(w_sigma) if eps is None else eps[0]
        b_eps = torch.randn_like(b_sigma) if eps is None else eps[1]
        w = self.weight_mu + w_sigma * w_eps
        b = self.bias_mu + b_sigma * b_eps
        self.log_q = (
            Normal(self.weight_mu, w_sigma).log_prob(w).sum()
            + Normal(self.bias_mu, b_sigma).log_prob(b).sum()
        )
        self.log_prior = self.prior(w) + self.prior(b)
        return x @ w + b


def torch_prior(prior):
    """log P(w) of a microbbb prior, in torch."""
    zero = torch.tensor(0.0, dtype=torch.float64)  # (python floats would make float32 tensors)
    if isinstance(prior, GaussianPrior):
        gaussian = Normal(zero, torch.tensor(prior.sigma, dtype=torch.float64))
        return lambda w: gaussian.log_prob(w).sum()
    log_pi, log_1m_pi = math.log(prior.pi), math.log(1 - prior.pi)
    wide = Normal(zero, torch.tensor(prior.sigma1, dtype=torch.float64))
    narrow = Normal(zero, torch.tensor(prior.sigma2, dtype=torch.float64))
    return lambda w: torch.logaddexp(
        log_pi + wide.log_prob(w), log_1m_pi + narrow.log_prob(w)
    ).sum()


class TorchBBB(nn.Module):
    """A ReLU MLP of TorchBayesLinear layers and the likelihood of the setting."""

    def __init__(self, model):
        super().__init__()
        prior = torch_prior(model.prior)
        self.layers = nn.ModuleList(TorchBayesLinear(layer, prior) for layer in model.layers)
        self.kind = type(model.likelihood).__name__
        if self.kind == "Gaussian":
            self.noise_rho = nn.Parameter(torch.tensor(model.likelihood.noise_rho.data))

    def log_likelihood(self, out, y):
        if self.kind == "Gaussian":
            return Normal(out[:, 0], TF.softplus(self.noise_rho)).log_prob(y).sum()
        if self.kind == "Bernoulli":
            return -TF.binary_cross_entropy_with_logits(out[:, 0], y, reduction="sum")
        return -TF.cross_entropy(out, y, reduction="sum")

    def loss(self, x, y, n_samples, weight, eps=None):
        """f = weight * (log q - log P(w)) - log P(D | w), averaged over the samples."""
        total = 0.0
        for s in range(n_samples):
            h = x
            for i, layer in enumerate(self.layers):
                h = layer(h, None if eps is None else eps[s][i])
                if i < len(self.layers) - 1:
                    h = torch.relu(h)
            log_q = sum(layer.log_q for layer in self.layers)
            log_prior = sum(layer.log_prior for layer in self.layers)
            total = total + weight * (log_q - log_prior) - self.log_likelihood(h, y)
        return total / n_samples


def torch_targets(y, kind):
    return torch.tensor(y, dtype=torch.int64 if kind == "Categorical" else torch.float64)


def torch_fit(net, x, y, setting, epochs, seed):
    """The training loop a torch user writes; returns the loss summed per epoch."""
    torch.manual_seed(seed)
    x, y = torch.tensor(x), torch_targets(y, net.kind)
    n = len(x)
    batch = setting["batch_size"] or n
    n_batches = math.ceil(n / batch)
    weight = setting["temperature"] / n_batches
    optimizer = torch.optim.Adam(net.parameters(), lr=setting["lr"])
    losses = []
    for _ in range(epochs):
        order = torch.randperm(n)
        epoch_loss = 0.0
        for i in range(n_batches):
            rows = order[i * batch : (i + 1) * batch]
            optimizer.zero_grad()
            loss = net.loss(x[rows], y[rows], setting["n_samples"], weight)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        losses.append(epoch_loss)
    return losses


# ----------------------------------------------------------------------------- the run


def new_model(setting, seed=0):
    return BayesianMLP(
        setting["sizes"], prior=setting["prior"](), likelihood=setting["likelihood"](), seed=seed
    )


def check(name, setting, x, y):
    """With the same eps, torch's loss and gradients equal microbbb's (float64, rtol 1e-9)."""
    model = new_model(setting)
    net = TorchBBB(model)
    n_batches = math.ceil(len(x) / (setting["batch_size"] or len(x)))
    weight = setting["temperature"] / n_batches
    loss = model.loss(x, y, n_samples=setting["n_samples"], complexity_weight=weight)
    loss.backward()
    eps = [[tuple(torch.tensor(e) for e in pair) for pair in sample] for sample in loss.eps]
    targets = torch_targets(model.likelihood.prepare(y, len(x), setting["sizes"][-1]), net.kind)
    if net.kind != "Categorical":
        targets = targets.reshape(-1)
    theirs = net.loss(torch.tensor(x), targets, setting["n_samples"], weight, eps)
    theirs.backward()
    pairs = [(float(loss.data), theirs.item(), "loss")]
    for layer, torch_layer in zip(model.layers, net.layers, strict=True):
        for p in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
            g, tg = getattr(layer, p).grad, getattr(torch_layer, p).grad.numpy()
            pairs.append((g, tg, f"{layer.name}.{p}"))
    if net.kind == "Gaussian":
        pairs.append((model.likelihood.noise_rho.grad, net.noise_rho.grad.numpy(), "noise_rho"))
    for mine, theirs_, what in pairs:
        if not np.allclose(mine, theirs_, rtol=1e-9, atol=1e-12 * np.abs(mine).max()):
            sys.exit(f"CHECK FAILED ({name}): {what} differs from torch's; timings not comparable")
    return len(pairs)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_setting(name, scale, repeats):
    setting = SETTINGS[name]
    x, y = setting["data"]()
    checked = check(name, setting, x, y)
    epochs = max(1, round(setting["epochs"] * scale))
    steps = epochs * math.ceil(len(x) / (setting["batch_size"] or len(x)))
    times = {"microbbb fit": [], "torch loop": []}
    finals = {"microbbb fit": [], "torch loop": []}
    tail = max(1, epochs // 10)
    fit(new_model(setting), x, y, epochs=2, batch_size=setting["batch_size"], progress=False)
    torch_fit(TorchBBB(new_model(setting)), x, y, setting, 2, 0)  # warm-ups, not timed
    for r in range(repeats):
        model = new_model(setting, seed=r)
        net = TorchBBB(new_model(setting, seed=r))
        for who, go in (
            (
                "microbbb fit",
                lambda m=model, r=r: fit(
                    m, x, y, epochs=epochs, batch_size=setting["batch_size"], lr=setting["lr"],
                    n_samples=setting["n_samples"], temperature=setting["temperature"],
                    seed=r, progress=False,
                ).loss,
            ),
            ("torch loop", lambda n=net, r=r: torch_fit(n, x, y, setting, epochs, r)),
        ):  # fmt: skip
            seconds, losses = timed(go)
            times[who].append(seconds)
            finals[who].append(float(np.mean(losses[-tail:])))
    medians = {who: statistics.median(t) for who, t in times.items()}
    print(
        f"{name:<10} {steps:>6} steps | checked {checked} numbers | "
        + " | ".join(f"{who} {medians[who]:7.2f} s" for who in times)
        + f" | fit/torch {medians['microbbb fit'] / medians['torch loop']:.2f}"
        + " | final loss "
        + ", ".join(f"{who} {statistics.median(finals[who]):.4g}" for who in finals)
    )
    return medians


def main(args):
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, {args.threads} thread(s),"
        f" torch.get_num_threads()={torch.get_num_threads()}, float64, {args.repeats} repeats"
        " (medians), runs alternate"
    )
    for name in args.settings or list(SETTINGS):
        run_setting(name, args.scale, args.repeats)


if __name__ == "__main__":
    main(ARGS)
