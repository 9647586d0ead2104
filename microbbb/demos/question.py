"""The question microbbb answers: its setting trained properly, its gradients, and what broke.

The setting, from the question as docs/question.md tells it: 100 observations, 3 features
from N(0, 1), a network with 32 hidden ReLU units and one output ([3, 32, 1]; the question's
bias column is each layer's bias vector here), two Monte-Carlo samples per step, and two
targets:

(a) binary labels drawn as Bernoulli(0.6), independent of x, with a Bernoulli likelihood
    (one logit and a sigmoid): the best a model can do is to predict 0.6 everywhere;
(b) y = 0.2 x1 - 1.3 x2 - 0.5 x3 + N(0, 1), with a Gaussian likelihood of sigma 1: no model
    can explain the noise, so the best held-out R^2 is about 2 / 3.

The demo has three parts:

1. both variants trained by Bayes by Backprop (Adam, full batch, a N(0, 1) prior, the
   library's default rho_init), with the loss f = log q - log P(w) - log P(D|w) and each
   of its parts plotted (``question_training.png``), and the held-out R^2 of (b);
2. the gradients of mu and rho for one step, derived by hand (``microbbb.bbb.by_hand``)
   and by autodiff, split as in the paper: grad_mu = df/dw + df/dmu and
   grad_rho = df/dw * eps / (1 + exp(-rho)) + df/drho, with the shapes of mu, rho and eps;
3. each mistake that broke the question's hand-written versions, as a one-line
   reproduction, what microbbb says about it (an exception, an anomaly report, a warning
   or the named parts of the loss), and the fix. One of them, a bias rho with one entry
   for 32 hidden units, is a legal broadcast that no error can catch; the report says so
   and shows where it can be seen. Two are no errors at all, the question's learning rate
   1e-11 and its initial rho ~ N(0, 1): for those the report shows what
   ``microbbb.bbb.diagnose`` finds in the trained model and fit's history (nothing moved;
   each sampled network is mostly noise).

The code is in three parts: ``compute`` returns every number as plain data, ``draw_pictures``
makes the picture from them, and ``report_text`` fills the report's words,
which are in ``templates/question.txt``.

Run: ``microbbb demo question --out out/question``.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from ..bbb import (
    BayesianLinear,
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    by_hand,
    diagnose,
    fit,
)
from ..engine import adjoint_flow, detect_anomaly, grad, tape, tensor
from ..optim import SGD, Adam
from ..viz import bbb_split
from .common import Report, Template, matplotlib_pyplot, save_figure, stage

SIZES = [3, 32, 1]
N_OBS = 100
COEF = np.array([0.2, -1.3, -0.5])  # variant (b): y = x @ COEF + N(0, 1)
P_ONE = 0.6  # variant (a): y ~ Bernoulli(0.6), whatever x is
N_SAMPLES = 2
LR = 1e-2
PRIOR_SIGMA = 1.0
NOISE_SIGMA = 1.0
WIDTH = 96  # of the report's wrapped lines
CELLS = [(0, 0), (1, 0), (2, 0), (1, 7), (2, 31)]  # the weights of layer 1 in part 2's tables
NOT_CAUGHT = "bias rho of shape (1,) for 32 hidden units (a legal broadcast)"


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (n, 3) from N(0, 1), binary labels (n,) ~ Bernoulli(0.6), linear targets (n,)."""
    x = rng.standard_normal((n, 3))
    labels = rng.binomial(1, P_ONE, n)
    targets = x @ COEF + NOISE_SIGMA * rng.standard_normal(n)
    return x, labels, targets


def make_model(likelihood: Any, seed: int) -> BayesianMLP:
    """The question's network with a N(0, 1) prior and the library's default rho_init."""
    return BayesianMLP(SIZES, likelihood=likelihood, prior=GaussianPrior(PRIOR_SIGMA), seed=seed)


def train(
    model: BayesianMLP,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    lr: float = LR,
    label: str = "",
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Full-batch Adam on f, recording f and its three parts at every step."""
    optimizer = Adam(model.parameters(), lr=lr)
    names = ("f", "log_q", "log_prior", "log_likelihood")
    trace = {name: np.empty(steps) for name in names}
    show = progress and sys.stderr.isatty()
    for step in range(steps):
        optimizer.zero_grad()
        loss = model.loss(x, y, n_samples=N_SAMPLES)
        if not np.isfinite(loss.item()):  # never plot a NaN: stop and say where
            raise FloatingPointError(f"{label}: the loss is {loss.item()} at step {step + 1}")
        loss.backward()
        optimizer.step()
        parts = (loss, loss.log_q, loss.log_prior, loss.log_likelihood)
        for name, value in zip(names, parts, strict=True):
            trace[name][step] = value.item()
        if show and (step + 1) % 100 == 0:
            sys.stderr.write(f"\r{label}: step {step + 1}/{steps}, f {loss.item():9.2f}")
            sys.stderr.flush()
    if show:
        sys.stderr.write("\n")
    return trace


def _tail(values: np.ndarray, n: int = 100) -> float:
    return float(np.mean(values[-n:]))


def _relative(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-300))


# --- the numbers, part 1: the question's setting trained -------------------------------------


def training_numbers(
    seed: int, steps: int, progress: bool, data: tuple, new_data: tuple
) -> tuple[dict[str, Any], tuple[BayesianMLP, BayesianMLP]]:
    """Both variants trained by BBB: loss traces, held-out predictions and scores; the models."""
    (x, labels, targets), (x_new, labels_new, targets_new) = data, new_data
    model_a = make_model(Bernoulli(), seed)
    trace_a = train(model_a, x, labels, steps, label="(a) Bernoulli", progress=progress)
    model_b = make_model(Gaussian(NOISE_SIGMA), seed)
    trace_b = train(model_b, x, targets, steps, label="(b) Gaussian", progress=progress)
    probs = model_a.predict(x_new, n_samples=200).probs  # P(y = 1) at each new point
    p = np.clip(probs, 1e-12, 1 - 1e-12)
    predicted = model_b.predict(x_new, n_samples=200).mean
    variance = float(np.var(targets_new))
    traces, last = {"bernoulli": trace_a, "gaussian": trace_b}, min(100, steps)
    return {
        "steps": steps,
        "last": last,
        "traces": traces,
        "final": {name: {k: _tail(v, last) for k, v in t.items()} for name, t in traces.items()},
        "sigma_init": float(np.logaddexp(0, -5)),  # softplus(rho_init)
        "probs": probs,
        "mean_prob": float(probs.mean()),
        "share_of_ones": float(labels.mean()),
        "heldout_nll": float(-np.mean(labels_new * np.log(p) + (1 - labels_new) * np.log(1 - p))),
        "entropy": float(-(P_ONE * np.log(P_ONE) + (1 - P_ONE) * np.log(1 - P_ONE))),
        "truth": x_new @ COEF,
        "predicted": predicted,
        "r2": 1 - float(np.mean((predicted - targets_new) ** 2)) / variance,
        "r2_best": 1 - float(np.mean((x_new @ COEF - targets_new) ** 2)) / variance,
    }, (model_a, model_b)


# --- the numbers, part 2: the gradients of mu and rho for one step ---------------------------


def _sampled(loss: Any, name: str) -> list:
    """The tensors called ``name`` on the loss's tape: one sampled w per Monte-Carlo sample."""
    found: dict[int, Any] = {}
    for record in tape(loss):
        for t in record.inputs:
            if t.name == name:
                found.setdefault(id(t), t)
    return list(found.values())


def gradient_numbers(seed: int, x: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Variant (a)'s first step: f, the shapes, and grad_mu and grad_rho split as in the paper,
    by autodiff and by hand (``microbbb.bbb.by_hand``), for a few weights of layer 1."""
    model = make_model(Bernoulli(), seed)
    loss = model.loss(x, labels, n_samples=N_SAMPLES)
    loss.backward()
    hand = by_hand.for_model(model, x, labels, loss.eps)  # the same eps as the loss
    first = model.layers[0]
    sampled = _sampled(loss, "layer1.weight")  # w_s = mu + sigma * eps_s, s = 1, 2
    df_dw = [g.data for g in grad(loss, sampled)]  # df/dw_s: through data, prior and log q
    eps = [loss.eps[s][0][0] for s in range(N_SAMPLES)]
    rho = first.weight_rho.data
    pathwise = sum(g * e / (1 + np.exp(-rho)) for g, e in zip(df_dw, eps, strict=True))
    n_weights = sum(layer.weight_mu.size + layer.bias_mu.size for layer in model.layers)
    return {
        "loss": repr(loss),
        "hand_loss": hand.loss,
        "x_shape": x.shape,
        "shapes": [_shapes(layer, loss.eps[0][i]) for i, layer in enumerate(model.layers)],
        "eps_per_step": N_SAMPLES * n_weights,
        **_cells(first, hand, bbb_split(loss, first), df_dw, eps, pathwise),
        "worst": _largest_difference(model, loss, hand, sum(df_dw), pathwise),
    }


def _shapes(layer: BayesianLinear, eps: tuple) -> dict[str, tuple]:
    """The shapes of a layer's mu (and rho, the same) and of one sample's eps."""
    weight_eps, bias_eps = eps
    return {
        "weight": layer.weight_mu.shape,
        "weight_eps": weight_eps.shape,
        "bias": layer.bias_mu.shape,
        "bias_eps": bias_eps.shape,
    }


def _cells(
    layer: BayesianLinear, hand: Any, split: dict, df_dw: list, eps: list, pathwise: np.ndarray
) -> dict[str, list[dict[str, Any]]]:
    """The terms of grad_mu and grad_rho at the weights CELLS, by autodiff and by hand."""
    mu_rows, rho_rows = [], []
    for i, j in CELLS:
        mu_rows.append(
            {
                "i": i,
                "j": j,
                "mu": layer.weight_mu.data[i, j],
                "eps_1": eps[0][i, j],
                "eps_2": eps[1][i, j],
                "df_dw": sum(g[i, j] for g in df_dw),
                "df_dmu": split["weight_mu"]["direct"][i, j],
                "grad_mu": layer.weight_mu.grad[i, j],
                "by_hand": hand.grads[0]["weight_mu"][i, j],
            }
        )
        rho_rows.append(
            {
                "i": i,
                "j": j,
                "rho": layer.weight_rho.data[i, j],
                "pathwise": pathwise[i, j],
                "df_drho": split["weight_rho"]["direct"][i, j],
                "grad_rho": layer.weight_rho.grad[i, j],
                "by_hand": hand.grads[0]["weight_rho"][i, j],
            }
        )
    return {"mu_rows": mu_rows, "rho_rows": rho_rows}


def _largest_difference(
    model: BayesianMLP, loss: Any, hand: Any, df_dw: np.ndarray, pathwise: np.ndarray
) -> float:
    """Hand against autodiff: f, every mu and rho gradient, and the four terms of each."""
    worst = abs(loss.item() - hand.loss) / abs(hand.loss)
    for k, layer in enumerate(model.layers):
        for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
            worst = max(worst, _relative(getattr(layer, name).grad, hand.grads[k][name]))
        parts = bbb_split(loss, layer)
        for kind in ("weight", "bias"):
            terms, mu, rho = hand.terms[k][kind], parts[f"{kind}_mu"], parts[f"{kind}_rho"]
            worst = max(
                worst,
                _relative(mu["through_w"], terms["df_dw"]),
                _relative(mu["direct"], terms["df_dmu"]),
                _relative(rho["through_w"], terms["pathwise_rho"]),
                _relative(rho["direct"], terms["df_drho"]),
            )
    terms = hand.terms[0]["weight"]
    return max(worst, _relative(df_dw, terms["df_dw"]), _relative(pathwise, terms["pathwise_rho"]))


# --- the numbers, part 3: each mistake of the question, reproduced ---------------------------


def _attempt(action: Callable[[], Any]) -> dict[str, Any]:
    """Run a mistake; what microbbb raised: the exception's class name, message and op."""
    try:
        with np.errstate(all="ignore"):  # numpy's RuntimeWarnings: microbbb's report says more
            action()
    except (ValueError, FloatingPointError) as error:
        name, op = type(error).__name__, getattr(error, "op", None)
        return {"caught": name, "message": str(error), "op": op}
    return {"caught": "not caught", "message": None, "op": None}


def _learner_net(x: np.ndarray, labels: np.ndarray, bias_rho_shape: tuple, rng: Any) -> Any:
    """A hand-built 3-32-1 BBB forward pass, as a learner writes it with tensors."""

    def param(value: Any) -> Any:
        return tensor(value, requires_grad=True)

    w_mu, w_rho = param(rng.normal(0, 0.5, (3, 32))), param(np.full((3, 32), -5.0))
    b_mu, b_rho = param(np.zeros(32)), param(np.full(bias_rho_shape, -5.0))
    v_mu, v_rho = param(rng.normal(0, 0.2, (32, 1))), param(np.full((32, 1), -5.0))
    c_mu, c_rho = param(np.zeros(1)), param(np.full(1, -5.0))
    w = w_mu + F.softplus(w_rho) * rng.standard_normal((3, 32))
    b = b_mu + F.softplus(b_rho) * rng.standard_normal(32)
    v = v_mu + F.softplus(v_rho) * rng.standard_normal((32, 1))
    c = c_mu + F.softplus(c_rho) * rng.standard_normal(1)
    logits = F.relu(tensor(x) @ w + b) @ v + c
    return F.bernoulli_nll(logits.reshape(-1), labels), b


def _softmax_one_output(seed: int, labels: np.ndarray, rng: Any) -> dict[str, Any]:
    """(a) A softmax over a single output: refused, and why it could not learn."""
    attempts = {"softmax_one_output": _attempt(lambda: make_model(Categorical(), seed))}
    logits = tensor(rng.standard_normal((N_OBS, 1)), requires_grad=True)
    attempts["categorical_nll_one_column"] = _attempt(lambda: F.categorical_nll(logits, labels))
    log_p = F.log_softmax(logits, axis=1)
    log_p.sum().backward()
    value, slope = float(np.abs(log_p.data).max()), float(np.abs(logits.grad).max())
    return {"attempts": attempts, "value": value, "slope": slope}


def _label_shapes(x: np.ndarray, labels: Any, targets: Any, models: tuple) -> dict[str, Any]:
    """(b) Labels (100,) against predictions (100, 1): refused; what plain numpy computes."""
    out_a = models[0].forward(x, mode="mean")
    out_b = models[1].forward(x, mode="mean")
    attempts = {
        "label_shape_broadcast": _attempt(lambda: F.bernoulli_nll(out_a, labels)),
        "label_shape_broadcast_gaussian": _attempt(lambda: F.gaussian_nll(targets, out_b, 1.0)),
    }
    pred = out_b.data
    silent = (targets - pred) ** 2
    right = float(np.mean((targets - pred[:, 0]) ** 2))
    return {"attempts": attempts, "shape": silent.shape, "mean": float(silent.mean()), "mse": right}


def _bias_rho_shape(seed: int, x: np.ndarray, labels: Any, rng: Any) -> dict[str, Any]:
    """(c) A bias rho of the wrong shape: the legal broadcast, and the shapes microbbb checks."""
    nll, bias = _learner_net(x, labels, (1,), rng)
    summed = [e for e in adjoint_flow(nll) if e.summed]
    edges = [(e.record.op.name, e.index, e.record.inputs[e.index].shape, e.g.shape) for e in summed]
    attempts = {"bias_rho_wrong_shape": _attempt(lambda: _learner_net(x, labels, (3,), rng))}
    layer = BayesianLinear(3, 32, rng=np.random.default_rng(seed), name="layer1")
    names = ("weight_mu", "weight_rho", "bias_mu", "bias_rho")
    shapes = {name: getattr(layer, name).shape for name in names}
    wrong_eps = (np.zeros((3, 32)), np.zeros(1))
    attempts["bias_eps_wrong_shape"] = _attempt(lambda: layer(x, eps=wrong_eps))
    layer.bias_rho = tensor(np.full(1, -5.0), requires_grad=True)
    attempts["bias_rho_assigned_wrong_shape"] = _attempt(lambda: layer(x))
    return {
        "attempts": attempts,
        "loss": nll.item(),
        "bias_shape": bias.shape,
        "edges": edges,  # (op, input, its shape, the shape of the gradient summed into it)
        "shapes": shapes,
    }


def _overflow() -> dict[str, Any]:
    """(d) exp overflowing and log(softmax) underflowing, caught by detect_anomaly."""
    rho = tensor(1000.0, requires_grad=True, name="rho")
    z = tensor([[0.0, 1e4]], requires_grad=True, name="z")

    def overflow() -> None:
        with detect_anomaly():
            F.log(1 + F.exp(rho))

    def underflow() -> None:
        with detect_anomaly():
            F.log(F.softmax(z, axis=1))

    attempts = {"exp_overflow": _attempt(overflow)}
    softplus = F.softplus(rho).item()
    attempts["log_softmax_underflow"] = _attempt(underflow)
    log_softmax = F.log_softmax(z, axis=1).data
    return {"attempts": attempts, "softplus": softplus, "log_softmax": log_softmax}


def _learning_rates(seed: int, data: tuple, steps: int) -> dict[str, Any]:
    """(e) A learning rate far too large (training diverges) and far too small (nothing moves)."""
    x, labels, targets = data
    model = make_model(Gaussian(NOISE_SIGMA), seed)
    sgd = SGD(model.parameters(), lr=1.0)

    def diverge() -> None:
        fit(model, x, targets, epochs=50, optimizer=sgd, n_samples=N_SAMPLES, progress=False)

    attempts = {"lr_too_large": _attempt(diverge)}
    model = make_model(Bernoulli(), seed)
    before = model.loss(x, labels, n_samples=N_SAMPLES)
    start = [p.data.copy() for p in model.parameters()]
    history = fit(model, x, labels, epochs=steps, lr=1e-11, n_samples=N_SAMPLES, progress=False)
    after = model.loss(x, labels, n_samples=N_SAMPLES, eps=before.eps)
    change = abs(after.item() - before.item()) / abs(before.item()) * 100
    pairs = zip(model.parameters(), start, strict=True)
    message = attempts["lr_too_large"]["message"]
    return {
        "attempts": attempts,
        "diagnosis": diagnose(model, history, x),
        "checks": {"lr_too_small": "warning" if change < 1e-3 else "not caught"},
        "steps": steps,
        "before": before.item(),
        "after": after.item(),
        "moved": max(float(np.abs(p.data - s).max()) for p, s in pairs),
        "first_loss": history.loss[0],
        "last_loss": history.loss[-1],
        "change": change,  # in percent
        "diverged": message.splitlines()[0] if message is not None else None,
    }


def _wrong_signs(seed: int, data: tuple, steps: int) -> dict[str, Any]:
    """(f) The loss assembled with wrong signs and swapped names, and what training it does."""
    x, _, targets = data
    model = make_model(Gaussian(NOISE_SIGMA), seed)
    loss = model.loss(x, targets, n_samples=N_SAMPLES)
    posterior, prior, likelihood = loss.log_prior, loss.log_q, loss.log_likelihood  # swapped
    wrong = posterior - prior * likelihood
    differs = abs(wrong.item() - loss.item()) > 1e-9 * abs(loss.item())
    g_wrong = np.concatenate([g.data.ravel() for g in grad(wrong, model.parameters())])
    g_right = np.concatenate([g.data.ravel() for g in grad(loss, model.parameters())])
    cosine = float(g_wrong @ g_right / (np.linalg.norm(g_wrong) * np.linalg.norm(g_right)))
    return {
        "attempts": {},
        "checks": {"wrong_signs": "BBBLoss parts" if differs else "not caught"},
        "loss": repr(loss),
        "wrong": wrong.item(),
        "right": loss.item(),
        "log_q": loss.log_q.item(),
        "log_likelihood": loss.log_likelihood.item(),
        "cosine": cosine,
        "rows": _train_wrong_loss(model, x, targets, steps),
    }


def _train_wrong_loss(model: BayesianMLP, x: np.ndarray, y: np.ndarray, steps: int) -> list:
    """Adam on the learner's loss; (step, my_loss, log q, log P(D|w)) at seven steps."""
    optimizer = Adam(model.parameters(), lr=LR)
    show = {0, steps // 6, steps // 3, steps // 2, 2 * steps // 3, 5 * steps // 6, steps - 1}
    rows = []
    with np.errstate(all="ignore"):
        for step in range(steps):
            optimizer.zero_grad()
            loss = model.loss(x, y, n_samples=N_SAMPLES)
            my_loss = loss.log_prior - loss.log_q * loss.log_likelihood
            if not np.isfinite(my_loss.item()):
                break
            if step in show:
                rows.append((step, my_loss.item(), loss.log_q.item(), loss.log_likelihood.item()))
            my_loss.backward()
            optimizer.step()
    return rows


def mistake_numbers(seed: int, data: tuple, models: tuple, steps: int) -> dict[str, Any]:
    """Each mistake of the question reproduced: what microbbb raised or showed, and why."""
    x, labels, targets = data
    rng = np.random.default_rng(seed + 1)
    return {  # in this order: the mistakes share rng
        "softmax_one_output": _softmax_one_output(seed, labels, rng),
        "label_shapes": _label_shapes(x, labels, targets, models),
        "bias_rho_shape": _bias_rho_shape(seed, x, labels, rng),
        "overflow": _overflow(),
        "learning_rates": _learning_rates(seed, data, steps=min(200, steps)),
        "wrong_signs": _wrong_signs(seed, data, steps=min(600, steps)),
        "wide_sigmas": _wide_sigmas(seed, data, steps=min(200, steps)),
    }


def _wide_sigmas(seed: int, data: tuple, steps: int) -> dict[str, Any]:
    """(g) The question's initial rho ~ N(0, 1), trained on (b): what diagnose says."""
    x, _, targets = data
    model = make_model(Gaussian(NOISE_SIGMA), seed)
    rng = np.random.default_rng(seed + 2)
    for layer in model.layers:  # new rho tensors, drawn as the question drew them
        for name in ("weight_rho", "bias_rho"):
            old = getattr(layer, name)
            rho = tensor(rng.standard_normal(old.shape), requires_grad=True, name=old.name)
            setattr(layer, name, rho)
    sigma = np.concatenate([layer.weight_sigma().ravel() for layer in model.layers])
    history = fit(model, x, targets, epochs=steps, lr=LR, n_samples=N_SAMPLES, progress=False)
    return {
        "attempts": {},
        "steps": steps,
        "sigma_low": float(np.quantile(sigma, 0.1)),
        "sigma_high": float(np.quantile(sigma, 0.9)),
        "diagnosis": diagnose(model, history, x),
    }


def caught(mistakes: dict[str, Any]) -> dict[str, str]:
    """What microbbb said about each mistake: an exception's name, "warning", or "not caught"."""
    said = {}
    for mistake in mistakes.values():
        said |= {key: attempt["caught"] for key, attempt in mistake["attempts"].items()}
        said |= mistake.get("checks", {})
    return said


# --- all the numbers, and the figures the demo returns ---------------------------------------


def compute(seed: int = 0, steps: int = 2000, progress: bool = False) -> dict[str, Any]:
    """Every number of the demo's three parts, as plain data (no printing, no files).

    ``steps``: training steps of part 1; part 3 trains for at most 600 (and 200) steps.
    """
    rng = np.random.default_rng(seed)
    data = make_data(N_OBS, rng)
    new_data = make_data(2000, rng)
    stage(f"part 1: training both variants, {steps} steps each", progress)
    training, models = training_numbers(seed, steps, progress, data, new_data)
    stage("parts 2 and 3: one step's gradients, then each mistake", progress)
    return {
        "seed": seed,
        "training": training,
        "gradients": gradient_numbers(seed, data[0], data[1]),
        "mistakes": mistake_numbers(seed, data, models, steps),
    }


def figures(numbers: dict[str, Any], picture: str) -> dict[str, Any]:
    """The figures ``run`` returns, taken from the numbers."""
    training, mistakes = numbers["training"], numbers["mistakes"]
    softmax, overflow = mistakes["softmax_one_output"], mistakes["overflow"]
    lrs, signs = mistakes["learning_rates"], mistakes["wrong_signs"]
    edges = mistakes["bias_rho_shape"]["edges"]
    return {
        "final": training["final"],
        "r2": training["r2"],
        "r2_best": training["r2_best"],
        "heldout_nll_bernoulli": training["heldout_nll"],
        "mean_prob_bernoulli": training["mean_prob"],
        "picture": picture,
        "max_hand_vs_autodiff": numbers["gradients"]["worst"],
        "caught": caught(mistakes),
        "log_softmax_one_output": (softmax["value"], softmax["slope"]),
        "numpy_broadcast_shape": mistakes["label_shapes"]["shape"],
        "silent_broadcast_edges": [(op, shape, summed) for op, _, shape, summed in edges],
        "not_caught": [NOT_CAUGHT],
        "anomaly_ops": [a["op"] for a in overflow["attempts"].values() if a["message"] is not None],
        "small_lr_change_percent": lrs["change"],
        "diverged": lrs["diverged"],
        "wrong_loss": signs["wrong"],
        "right_loss": signs["right"],
        "gradient_cosine": signs["cosine"],
        "wrong_training": signs["rows"],
        "diagnosis_small_lr": [f.check for f in lrs["diagnosis"].findings],
        "diagnosis_wide_sigmas": [f.check for f in mistakes["wide_sigmas"]["diagnosis"].findings],
    }


# --- the picture ------------------------------------------------------------------------------


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` steps, narrowed symmetrically at both ends."""
    total = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(len(values))
    half = np.minimum(np.minimum(i, len(values) - 1 - i), window // 2)
    return (total[i + half + 1] - total[i - half]) / (2 * half + 1)


def draw_pictures(plt: Any, numbers: dict[str, Any], out: str) -> str:
    """Draw question_training.png from part 1's numbers; return its path."""
    training = numbers["training"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    _draw_traces(axes[0], training)
    _draw_probabilities(axes[1, 0], training)
    _draw_predictions(axes[1, 1], training)
    fig.suptitle(
        "The question's setting by Bayes by Backprop: 100 observations, network 3-32-1,"
        f" {training['steps']} steps"
    )
    return save_figure(plt, fig, os.path.join(out, "question_training.png"))


def _draw_traces(axes: Any, training: dict[str, Any]) -> None:
    """f and its three parts at every step, for both variants."""
    steps = training["steps"]
    window = max(1, steps // 40)
    colours = {
        "f": "black",
        "log_q": "tab:blue",
        "log_prior": "tab:green",
        "log_likelihood": "tab:red",
    }
    names = {
        "f": "f = log q - log P(w) - log P(D|w)",
        "log_q": "log q(w | θ)",
        "log_prior": "log P(w)",
        "log_likelihood": "log P(D | w)",
    }
    titles = (
        f"(a) labels ~ Bernoulli({P_ONE}), Bernoulli likelihood",
        "(b) y = 0.2 x1 - 1.3 x2 - 0.5 x3 + N(0, 1), Gaussian likelihood",
    )
    step_axis = np.arange(1, steps + 1)
    traces = training["traces"].values()
    for ax, trace, title in zip(axes, traces, titles, strict=True):
        for key, colour in colours.items():
            ax.plot(step_axis, trace[key], color=colour, alpha=0.2, linewidth=0.6)
            ax.plot(step_axis, _running_mean(trace[key], window), color=colour, label=names[key])
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(
            f"{title}\nthe loss and its parts (thin: each step, {N_SAMPLES} samples;"
            f" thick: mean of {window} steps)",
            fontsize=10,
        )
        ax.set_xlabel("training step (full batch of 100 observations)")
        ax.set_ylabel("nats (summed over weights or observations)")
        ax.legend(fontsize=8, loc="upper right")


def _draw_probabilities(ax: Any, training: dict[str, Any]) -> None:
    """Variant (a): the predicted P(y = 1) at the held-out points, against the truth."""
    probs, share = training["probs"], training["share_of_ones"]
    low = min(P_ONE, float(probs.min())) - 0.05
    high = max(P_ONE, float(probs.max())) + 0.05
    label = "BBB: mean P(y = 1) over 200 weight samples"
    counts, _, _ = ax.hist(
        probs, bins=np.linspace(low, high, 41), color="tab:blue", alpha=0.7, label=label
    )
    ax.set_ylim(0, 1.3 * counts.max())  # room for the legend above the bars
    ax.axvline(P_ONE, color="black", linestyle="--", label=f"true P(y = 1) = {P_ONE}")
    label = f"share of ones in the training labels = {share:.2f}"
    ax.axvline(share, color="tab:red", linestyle=":", label=label)
    ax.set_xlim(low, high)
    ax.set_xlabel("predicted P(y = 1) at a held-out point")
    ax.set_ylabel("number of held-out points")
    nll, entropy = training["heldout_nll"], training["entropy"]
    title = f"(a) 2000 new points: NLL {nll:.3f} nats per point (best possible {entropy:.3f})"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")


def _draw_predictions(ax: Any, training: dict[str, Any]) -> None:
    """Variant (b): the predictive mean at the held-out points against the true function."""
    truth = training["truth"]
    label = "BBB predictive mean (200 weight samples)"
    ax.scatter(truth, training["predicted"], s=4, alpha=0.4, color="tab:blue", label=label)
    line = np.array([truth.min(), truth.max()])
    ax.plot(line, line, color="black", linestyle="--", label="predicted = true function")
    ax.set_xlabel("true function 0.2 x1 - 1.3 x2 - 0.5 x3 (without the noise)")
    ax.set_ylabel("predicted mean of y")
    r2, r2_best = training["r2"], training["r2_best"]
    title = f"(b) 2000 new points: R^2 {r2:.3f} (the true function scores {r2_best:.3f})"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")


# --- the report text: templates/question.txt filled with the numbers -------------------------


def report_text(numbers: dict[str, Any], picture: str, template: Template) -> str:
    """The report: the sections of templates/question.txt filled with the numbers."""
    mistakes = numbers["mistakes"]
    return "\n".join(
        [
            template.fill("title", {"seed": numbers["seed"]}, wrap=False),
            _training_text(numbers["training"], picture, template),
            _gradients_text(numbers["gradients"], template),
            template.fill("mistakes", {}),
            _softmax_one_output_text(mistakes["softmax_one_output"], template),
            _label_shapes_text(mistakes["label_shapes"], template),
            _bias_rho_shape_text(mistakes["bias_rho_shape"], template),
            _overflow_text(mistakes["overflow"], template),
            _learning_rates_text(mistakes["learning_rates"], template),
            _wrong_signs_text(mistakes["wrong_signs"], template),
            _wide_sigmas_text(mistakes["wide_sigmas"], template),
            _summary_text(mistakes, template),
        ]
    )


def _training_text(training: dict[str, Any], picture: str, template: Template) -> str:
    values = {name: training[name] for name in ("steps", "last", "sigma_init", "mean_prob")}
    values |= {name: training[name] for name in ("share_of_ones", "heldout_nll", "entropy")}
    values |= {"r2": training["r2"], "r2_best": training["r2_best"], "picture": picture}
    values |= {"n_obs": N_OBS, "sizes": SIZES, "prior_sigma": PRIOR_SIGMA, "lr": LR}
    values |= {"n_samples": N_SAMPLES, "p_one": P_ONE}
    for variant, final in training["final"].items():
        values |= {f"{variant}_{part}": value for part, value in final.items()}
    return template.fill("training", values)


def _gradients_text(gradients: dict[str, Any], template: Template) -> str:
    shapes = gradients["shapes"]
    rows = {"shape_rows": [], "mu_rows": [], "rho_rows": []}
    for i, layer in enumerate(shapes):
        strings = {name: str(shape) for name, shape in layer.items()}
        rows["shape_rows"].append(template.fill("shape_row", {"layer": i + 1, **strings}))
    for name in ("mu", "rho"):
        rows[f"{name}_rows"] = [template.fill(f"{name}_row", r) for r in gradients[f"{name}_rows"]]
    values = {name: "\n".join(lines) for name, lines in rows.items()}
    values |= {name: gradients[name] for name in ("loss", "hand_loss", "x_shape", "eps_per_step")}
    values |= {"w1_shape": shapes[0]["weight"], "w2_shape": shapes[1]["weight"]}
    return template.fill(
        "gradients", values | {"n_samples": N_SAMPLES, "worst": gradients["worst"]}
    )


def _said(mistake: dict[str, Any], template: Template) -> dict[str, str]:
    """What microbbb said to each attempt of a mistake: "ValueError: ...", or nothing."""
    said = {}
    for key, attempt in mistake["attempts"].items():
        if attempt["message"] is None:
            said[key] = template.fill("nothing_raised", {})
        else:
            said[key] = f"{attempt['caught']}: {attempt['message']}"
    return said


def _softmax_one_output_text(mistake: dict[str, Any], template: Template) -> str:
    values = {"value": mistake["value"], "slope": mistake["slope"]}
    return template.fill("softmax_one_output", _said(mistake, template) | values)


def _label_shapes_text(mistake: dict[str, Any], template: Template) -> str:
    values = {name: mistake[name] for name in ("shape", "mean", "mse")}
    return template.fill("label_shapes", _said(mistake, template) | values)


def _bias_rho_shape_text(mistake: dict[str, Any], template: Template) -> str:
    rows = []
    for op, index, shape, summed in mistake["edges"]:
        values = {"op": op, "index": index, "shape": str(shape), "grad_shape": summed}
        rows.append(template.fill("summed_row", values))
    values = {"loss": mistake["loss"], "bias_shape": mistake["bias_shape"]}
    values |= {"summed_rows": "\n".join(rows), **mistake["shapes"]}
    return template.fill("bias_rho_shape", _said(mistake, template) | values)


def _overflow_text(mistake: dict[str, Any], template: Template) -> str:
    log_softmax = np.array2string(mistake["log_softmax"], precision=1)
    values = {"softplus": mistake["softplus"], "log_softmax": log_softmax}
    return template.fill("overflow", _said(mistake, template) | values)


def _learning_rates_text(mistake: dict[str, Any], template: Template) -> str:
    names = ("steps", "before", "after", "moved", "first_loss", "last_loss")
    values = {name: mistake[name] for name in names} | {"lr": LR}
    warning = {"change": mistake["change"], "steps": mistake["steps"]}
    warned = mistake["checks"]["lr_too_small"] == "warning"
    values["nothing_learns"] = template.fill("nothing_learns", warning) if warned else ""
    values["diagnosis"] = _diagnosis_text(mistake["diagnosis"])
    return template.fill("learning_rates", _said(mistake, template) | values)


def _diagnosis_text(diagnosis: Any) -> str:
    """A ``Diagnosis`` as indented lines of at most WIDTH columns, each finding wrapped."""
    indent = " " * 13
    lines = []
    for line in str(diagnosis).splitlines():
        start = len(line) - len(line.lstrip(" -"))
        wrapped = textwrap.wrap(line, WIDTH - len(indent), subsequent_indent=" " * (start + 2))
        lines += [indent + part for part in wrapped]
    return "\n".join(lines)


def _wide_sigmas_text(mistake: dict[str, Any], template: Template) -> str:
    values = {name: mistake[name] for name in ("steps", "sigma_low", "sigma_high")}
    values |= {"lr": LR, "diagnosis": _diagnosis_text(mistake["diagnosis"])}
    return template.fill("wide_sigmas", values)


def _wrong_signs_text(mistake: dict[str, Any], template: Template) -> str:
    rows = []
    for step, my_loss, log_q, log_likelihood in mistake["rows"]:
        values = {"step": step, "my_loss": my_loss, "log_q": log_q}
        rows.append(template.fill("training_row", values | {"log_likelihood": log_likelihood}))
    values = {name: mistake[name] for name in ("loss", "wrong", "right", "cosine")}
    values |= {"minus_log_likelihood": -mistake["log_likelihood"], "minus_log_q": -mistake["log_q"]}
    warned = mistake["checks"]["wrong_signs"] != "not caught"
    values["not_f"] = template.fill("not_f", {}) if warned else ""
    return template.fill("wrong_signs", values | {"lr": LR, "training_rows": "\n".join(rows)})


def _summary_text(mistakes: dict[str, Any], template: Template) -> str:
    rows = [
        template.fill("caught_row", {"mistake": key, "caught": value}, wrap=False)
        for key, value in caught(mistakes).items()
    ]
    rows.append(template.fill("not_caught_row", {"mistake": NOT_CAUGHT}, wrap=False))
    return template.fill("summary", {"caught_rows": "\n".join(rows)})


# --- the demo ---------------------------------------------------------------------------------


def run(
    out: str = "out/question",
    seed: int = 0,
    echo: Any = print,
    progress: bool = True,
    steps: int = 2000,
) -> dict[str, Any]:
    """Run the three parts, write question_training.png and report.txt, return the figures.

    ``steps``: training steps of part 1; part 3 trains for at most 600 (and 200) steps.
    """
    plt = matplotlib_pyplot()
    say = Report(out, echo)
    numbers = compute(seed, steps, progress)
    picture = draw_pictures(plt, numbers, out)
    say(report_text(numbers, picture, Template.of("question", WIDTH)))
    say.save()
    return figures(numbers, picture) | {"report": say.path("report.txt")}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/question", help="folder for the files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000, help="training steps of part 1")
    args = parser.parse_args(argv)
    run(args.out, seed=args.seed, steps=args.steps)
