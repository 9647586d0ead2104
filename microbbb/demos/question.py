"""The question microbbb answers: its setting trained properly, its gradients, and what broke.

The setting (see the project's QUESTION.md): 100 observations, 3 features from N(0, 1), a
network with 32 hidden ReLU units and one output ([3, 32, 1]; the question's bias column is
each layer's bias vector here), two Monte-Carlo samples per step, and two targets:

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
   and shows where it can be seen.

Run: ``microbbb demo question --out out/question``.
"""

from __future__ import annotations

import argparse
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
    fit,
)
from ..engine import adjoint_flow, detect_anomaly, grad, tape, tensor
from ..optim import SGD, Adam
from ..viz import bbb_split
from .common import Report, matplotlib_pyplot

SIZES = [3, 32, 1]
N_OBS = 100
COEF = np.array([0.2, -1.3, -0.5])  # variant (b): y = x @ COEF + N(0, 1)
P_ONE = 0.6  # variant (a): y ~ Bernoulli(0.6), whatever x is
N_SAMPLES = 2
LR = 1e-2
PRIOR_SIGMA = 1.0
NOISE_SIGMA = 1.0
WIDTH = 96  # of the report's wrapped lines
LABEL = "  {:11s}"  # "  mistake:   ", "  microbbb:  ", ...
INDENT = " " * 13


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


# --- helpers for the report -------------------------------------------------------------------


def _tail(values: np.ndarray, n: int = 100) -> float:
    return float(np.mean(values[-n:]))


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` steps, narrowed symmetrically at both ends."""
    total = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(len(values))
    half = np.minimum(np.minimum(i, len(values) - 1 - i), window // 2)
    return (total[i + half + 1] - total[i - half]) / (2 * half + 1)


def _relative(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-300))


def _wrap(say: Report, text: str, first: str = "", rest: str = "", max_lines: Any = None) -> None:
    """Print text wrapped to WIDTH after a label; wrapped lines keep their indentation."""
    lines = []
    for paragraph in text.splitlines():
        lead = " " * (len(paragraph) - len(paragraph.lstrip()))
        lines += textwrap.wrap(paragraph.lstrip(), WIDTH - len(rest), initial_indent=lead,
                               subsequent_indent=lead + "  ") or [""]  # fmt: skip
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... ({len(lines) - max_lines} more lines)"]
    for i, line in enumerate(lines):
        say((first if i == 0 else rest) + line)


def _labelled(say: Report, label: str, text: str, max_lines: Any = None) -> None:
    _wrap(say, text, LABEL.format(label + ":") if label else INDENT, INDENT, max_lines)


# --- part 1 -----------------------------------------------------------------------------------


def part_training(
    say: Report, plt: Any, seed: int, steps: int, progress: bool, data: tuple
) -> dict[str, Any]:
    """Train both variants, draw question_training.png, return the figures."""
    (x, labels, targets), (x_new, labels_new, targets_new) = data
    say("1. The question's setting, trained by Bayes by Backprop")
    say("=" * WIDTH)
    _wrap(say, f"{N_OBS} observations, x ~ N(0, 1) with 3 features; network {SIZES} (ReLU);"
          f" prior N(0, {PRIOR_SIGMA:g}) on every weight; rho_init = -5, so sigma ="
          f" softplus(-5) = {np.logaddexp(0, -5):.4f} at the start; {N_SAMPLES} Monte-Carlo"
          f" samples per step; {steps} full-batch Adam steps with lr {LR:g}.")  # fmt: skip
    _wrap(say, "(The question drew rho ~ N(0, 1): sigma = softplus(rho) is 0.31 to 1.31 for"
          " rho in [-1, 1], as large as the weights themselves, so its sampled weights were"
          " mostly noise.)")  # fmt: skip

    model_a = make_model(Bernoulli(), seed)
    trace_a = train(model_a, x, labels, steps, label="(a) Bernoulli", progress=progress)
    model_b = make_model(Gaussian(NOISE_SIGMA), seed)
    trace_b = train(model_b, x, targets, steps, label="(b) Gaussian", progress=progress)

    pred_a = model_a.predict(x_new, n_samples=200)
    p = np.clip(pred_a.probs, 1e-12, 1 - 1e-12)
    nll_new = float(-np.mean(labels_new * np.log(p) + (1 - labels_new) * np.log(1 - p)))
    entropy = float(-(P_ONE * np.log(P_ONE) + (1 - P_ONE) * np.log(1 - P_ONE)))
    pred_b = model_b.predict(x_new, n_samples=200)
    variance = float(np.var(targets_new))
    r2 = 1 - float(np.mean((pred_b.mean - targets_new) ** 2)) / variance
    r2_best = 1 - float(np.mean((x_new @ COEF - targets_new) ** 2)) / variance

    last = min(100, steps)
    say(f"\nFinal values, mean of the last {last} steps (each step's value is a {N_SAMPLES}-sample"
        " estimate):")  # fmt: skip
    say(f"  {'':16s} {'f':>9s} {'log q':>9s} {'log P(w)':>9s} {'log P(D|w)':>11s}")
    for name, trace in (("(a) Bernoulli", trace_a), ("(b) Gaussian", trace_b)):
        values = [_tail(trace[k], last) for k in ("f", "log_q", "log_prior", "log_likelihood")]
        say(f"  {name:16s} {values[0]:9.2f} {values[1]:9.2f} {values[2]:9.2f} {values[3]:11.2f}")
    _wrap(say, "f = log q - log P(w) - log P(D|w), summed over the 161 weights (each with a mu"
          " and a rho) and the 100 observations. log q starts high (sigma 0.0067 makes q very"
          " peaked) and falls below 0 as the sigmas of the weights the data do not need grow"
          " back towards the prior's.", "  ", "  ")  # fmt: skip
    say("")
    _wrap(say, f"(a) The labels ~ Bernoulli({P_ONE}) do not depend on x. On 2000 new points the"
          f" mean predicted P(y = 1) is {pred_a.probs.mean():.3f} (share of ones in training"
          f" {labels.mean():.2f}) and the held-out NLL {nll_new:.3f} nats per point; the"
          f" entropy of Bernoulli({P_ONE}), {entropy:.3f}, is the best possible: there is"
          " nothing more to learn.", "", "    ")  # fmt: skip
    _wrap(say, f"(b) Held-out R^2 on 2000 new points: {r2:.3f}. The true function itself"
          f" scores {r2_best:.3f}: the N(0, 1) noise cannot be predicted.", "", "    ")  # fmt: skip

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    window = max(1, steps // 40)
    colours = {"f": "black", "log_q": "tab:blue", "log_prior": "tab:green",
               "log_likelihood": "tab:red"}  # fmt: skip
    names = {
        "f": "f = log q - log P(w) - log P(D|w)",
        "log_q": "log q(w | θ)",
        "log_prior": "log P(w)",
        "log_likelihood": "log P(D | w)",
    }
    titles = (f"(a) labels ~ Bernoulli({P_ONE}), Bernoulli likelihood",
              "(b) y = 0.2 x1 - 1.3 x2 - 0.5 x3 + N(0, 1), Gaussian likelihood")  # fmt: skip
    step_axis = np.arange(1, steps + 1)
    for ax, trace, title in zip(axes[0], (trace_a, trace_b), titles, strict=True):
        for key, colour in colours.items():
            ax.plot(step_axis, trace[key], color=colour, alpha=0.2, linewidth=0.6)
            ax.plot(step_axis, _running_mean(trace[key], window), color=colour, label=names[key])
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(f"{title}\nthe loss and its parts (thin: each step, {N_SAMPLES} samples;"
                     f" thick: mean of {window} steps)", fontsize=10)  # fmt: skip
        ax.set_xlabel("training step (full batch of 100 observations)")
        ax.set_ylabel("nats (summed over weights or observations)")
        ax.legend(fontsize=8, loc="upper right")

    ax = axes[1, 0]
    low = min(P_ONE, float(pred_a.probs.min())) - 0.05
    high = max(P_ONE, float(pred_a.probs.max())) + 0.05
    bins = np.linspace(low, high, 41)
    counts, _, _ = ax.hist(pred_a.probs, bins=bins, color="tab:blue", alpha=0.7,
                           label="BBB: mean P(y = 1) over 200 weight samples")  # fmt: skip
    ax.set_ylim(0, 1.3 * counts.max())  # room for the legend above the bars
    ax.axvline(P_ONE, color="black", linestyle="--", label=f"true P(y = 1) = {P_ONE}")
    ax.axvline(labels.mean(), color="tab:red", linestyle=":",
               label=f"share of ones in the training labels = {labels.mean():.2f}")  # fmt: skip
    ax.set_xlim(low, high)
    ax.set_xlabel("predicted P(y = 1) at a held-out point")
    ax.set_ylabel("number of held-out points")
    ax.set_title(f"(a) 2000 new points: NLL {nll_new:.3f} nats per point"
                 f" (best possible {entropy:.3f})", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper right")

    ax = axes[1, 1]
    truth = x_new @ COEF
    ax.scatter(truth, pred_b.mean, s=4, alpha=0.4, color="tab:blue",
               label="BBB predictive mean (200 weight samples)")  # fmt: skip
    line = np.array([truth.min(), truth.max()])
    ax.plot(line, line, color="black", linestyle="--", label="predicted = true function")
    ax.set_xlabel("true function 0.2 x1 - 1.3 x2 - 0.5 x3 (without the noise)")
    ax.set_ylabel("predicted mean of y")
    ax.set_title(f"(b) 2000 new points: R^2 {r2:.3f} (the true function scores {r2_best:.3f})",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("The question's setting by Bayes by Backprop: 100 observations, network 3-32-1,"
                 f" {steps} steps")  # fmt: skip
    fig.tight_layout()
    picture = say.path("question_training.png")
    fig.savefig(picture, dpi=100)
    plt.close(fig)
    say(f"\nPicture: {picture}")
    return {
        "final": {
            name: {k: _tail(v, last) for k, v in trace.items()}
            for name, trace in (("bernoulli", trace_a), ("gaussian", trace_b))
        },
        "r2": r2,
        "r2_best": r2_best,
        "heldout_nll_bernoulli": nll_new,
        "mean_prob_bernoulli": float(pred_a.probs.mean()),
        "picture": picture,
        "models": (model_a, model_b),
    }


# --- part 2 -----------------------------------------------------------------------------------


def _sampled(loss: Any, name: str) -> list:
    """The tensors called ``name`` on the loss's tape: one sampled w per Monte-Carlo sample."""
    found: dict[int, Any] = {}
    for record in tape(loss):
        for t in record.inputs:
            if t.name == name:
                found.setdefault(id(t), t)
    return list(found.values())


def part_gradients(say: Report, seed: int, x: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """One step's gradients of mu and rho, by hand and by autodiff, split as in the paper."""
    say("\n\n2. The gradients of mu and rho for one step, by hand and by autodiff")
    say("=" * WIDTH)
    model = make_model(Bernoulli(), seed)
    loss = model.loss(x, labels, n_samples=N_SAMPLES)
    loss.backward()
    hand = by_hand.for_model(model, x, labels, loss.eps)  # the same eps as the loss
    say("Variant (a), first step, autodiff (BBBLoss) and by hand (microbbb.bbb.by_hand):")
    say(f"  {loss!r}")
    say(f"  by hand: f = {hand.loss:.6g}")
    say("\nWhere the 32 hidden units come in, and the shapes (one mu and one rho per weight):")
    for i, layer in enumerate(model.layers):
        weight_eps, bias_eps = loss.eps[0][i]
        say(f"  layer{i + 1}: weight mu, rho {str(layer.weight_mu.shape):8s} eps"
            f" {str(weight_eps.shape):8s}  bias mu, rho {str(layer.bias_mu.shape):6s} eps"
            f" {bias_eps.shape}")  # fmt: skip
    _wrap(say, f"x {x.shape} @ w {model.layers[0].weight_mu.shape} + b (32,) -> 32 hidden"
          f" units (100, 32) -> relu -> @ w {model.layers[1].weight_mu.shape} + b (1,) ->"
          " logits (100, 1). One eps per weight per Monte-Carlo sample: 161 numbers per"
          f" sample, {N_SAMPLES * 161} per step, not one per observation: all 100 rows go"
          " through the same sampled w.", "  ", "  ")  # fmt: skip

    layer = model.layers[0]
    sampled = _sampled(loss, "layer1.weight")  # w_s = mu + sigma * eps_s, s = 1, 2
    df_dw = [g.data for g in grad(loss, sampled)]  # df/dw_s: through data, prior and log q
    split = bbb_split(loss, layer)  # the same split, read off the recorded graph
    rho = layer.weight_rho.data
    eps = [loss.eps[s][0][0] for s in range(N_SAMPLES)]
    pathwise = sum(g * e / (1 + np.exp(-rho)) for g, e in zip(df_dw, eps, strict=True))
    terms = hand.terms[0]["weight"]

    say("")
    _wrap(say, f"A few weights of layer 1. f averages the {N_SAMPLES} samples; df/dw sums the"
          " per-sample df/dw_s, taken by autodiff with microbbb.grad(loss, [w_1, w_2]) on the"
          " sampled weights; df/dmu and df/drho are the direct terms (only log q has mu and"
          " sigma in it), read off the graph with microbbb.viz.bbb_split.")  # fmt: skip
    say(f"  {'w[i,j]':7s} {'mu':>8s} {'eps_1':>7s} {'eps_2':>7s} | {'df/dw':>10s}"
        f" {'+ df/dmu':>10s} | {'= grad_mu':>10s} {'by hand':>10s}")  # fmt: skip
    cells = [(0, 0), (1, 0), (2, 0), (1, 7), (2, 31)]
    for i, j in cells:
        grad_mu, hand_mu = layer.weight_mu.grad[i, j], hand.grads[0]["weight_mu"][i, j]
        through, direct = sum(g[i, j] for g in df_dw), split["weight_mu"]["direct"][i, j]
        say(f"  {f'[{i},{j:>2}]':7s} {layer.weight_mu.data[i, j]:8.4f} {eps[0][i, j]:7.3f}"
            f" {eps[1][i, j]:7.3f} | {through:10.4f} {direct:10.4f} |"
            f" {grad_mu:10.4f} {hand_mu:10.4f}")  # fmt: skip
    say(f"\n  {'w[i,j]':7s} {'rho':>6s} | {'df/dw*eps/(1+e^-rho)':>21s} {'+ df/drho':>10s} |"
        f" {'= grad_rho':>10s} {'by hand':>10s}")  # fmt: skip
    for i, j in cells:
        grad_rho, hand_rho = layer.weight_rho.grad[i, j], hand.grads[0]["weight_rho"][i, j]
        direct = split["weight_rho"]["direct"][i, j]
        say(f"  {f'[{i},{j:>2}]':7s} {rho[i, j]:6.2f} | {pathwise[i, j]:21.4f} {direct:10.4f} |"
            f" {grad_rho:10.4f} {hand_rho:10.4f}")  # fmt: skip

    worst = abs(loss.item() - hand.loss) / abs(hand.loss)
    for k, lay in enumerate(model.layers):
        for name in ("weight_mu", "weight_rho", "bias_mu", "bias_rho"):
            worst = max(worst, _relative(getattr(lay, name).grad, hand.grads[k][name]))
        parts = bbb_split(loss, lay)
        for kind in ("weight", "bias"):
            t = hand.terms[k][kind]
            worst = max(worst, _relative(parts[f"{kind}_mu"]["through_w"], t["df_dw"]),
                        _relative(parts[f"{kind}_mu"]["direct"], t["df_dmu"]),
                        _relative(parts[f"{kind}_rho"]["through_w"], t["pathwise_rho"]),
                        _relative(parts[f"{kind}_rho"]["direct"], t["df_drho"]))  # fmt: skip
    worst = max(worst, _relative(sum(df_dw), terms["df_dw"]),
                _relative(pathwise, terms["pathwise_rho"]))  # fmt: skip
    say("")
    _wrap(say, "Largest relative difference between hand and autodiff, over f, every mu and"
          f" rho gradient of both layers and the four terms: {worst:.1e}.")  # fmt: skip
    _wrap(say, "How to read it: dw/dmu = 1 and dw/drho = eps * sigmoid(rho) = eps / (1 +"
          " exp(-rho)). df/dw and df/dmu nearly cancel, because log q's own parts cancel"
          " exactly (d log q/dw = -(w - mu)/sigma^2 = -d log q/dmu); what is left of grad_mu"
          " is the data term and the prior. grad_rho is about -1 everywhere: at rho = -5 the"
          " -log sigma inside log q dominates and pushes every sigma up, until the data"
          " resist.")  # fmt: skip
    return {"max_hand_vs_autodiff": worst}


# --- part 3 -----------------------------------------------------------------------------------


def _attempt(
    say: Report, action: Callable[[], Any], max_lines: Any = None, errors: Any = None
) -> str:
    """Run a mistake and print what microbbb raises; return the exception's class name.

    The exception itself is appended to ``errors`` when a list is given.
    """
    try:
        with np.errstate(all="ignore"):  # numpy's RuntimeWarnings: microbbb's report says more
            action()
    except (ValueError, FloatingPointError) as error:
        name = type(error).__name__
        _labelled(say, "microbbb", f"{name}: {error}", max_lines)
        if errors is not None:
            errors.append(error)
        return name
    _labelled(say, "microbbb", "NOTHING: no error was raised")
    return "not caught"


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


def _softmax_one_output(say: Report, seed: int, labels: np.ndarray, rng: Any) -> dict:
    caught: dict[str, Any] = {}
    say("\n(a) softmax over a single output")
    _labelled(say, "mistake", "model = BayesianMLP([3, 32, 1], likelihood=Categorical())")
    caught["softmax_one_output"] = _attempt(say, lambda: make_model(Categorical(), seed))
    logits = tensor(rng.standard_normal((N_OBS, 1)), requires_grad=True)
    _labelled(say, "mistake", "nll = F.categorical_nll(logits, y)   # logits (100, 1)")
    caught["categorical_nll_one_column"] = _attempt(say, lambda: F.categorical_nll(logits, labels))
    log_p = F.log_softmax(logits, axis=1)
    log_p.sum().backward()
    value, slope = float(np.abs(log_p.data).max()), float(np.abs(logits.grad).max())
    _labelled(say, "why", f"mb.log_softmax of a (100, 1) tensor: max |value| = {value:g}, max"
              f" |gradient| = {slope:g}. It is log 1 = 0 for every row whatever the network"
              " outputs, so the likelihood teaches it nothing.")  # fmt: skip
    _labelled(say, "fix", "BayesianMLP([3, 32, 1], likelihood=Bernoulli()): one logit, with"
              " log sigmoid(l) for y = 1 and log sigmoid(-l) for y = 0 (or two outputs and"
              " Categorical()).")  # fmt: skip
    return {"caught": caught, "log_softmax_one_output": (value, slope)}


def _label_shapes(say: Report, x: np.ndarray, labels: Any, targets: Any, models: tuple) -> dict:
    caught: dict[str, Any] = {}
    out_a = models[0].forward(x, mode="mean")
    out_b = models[1].forward(x, mode="mean")
    say("\n(b) labels of shape (100,) against predictions of shape (100, 1)")
    _labelled(say, "mistake", "nll = F.bernoulli_nll(logits, y)   # logits (100, 1), y (100,)")
    caught["label_shape_broadcast"] = _attempt(say, lambda: F.bernoulli_nll(out_a, labels))
    _labelled(say, "mistake", "nll = F.gaussian_nll(y, mean, 1.0)   # mean (100, 1), y (100,)")
    caught["label_shape_broadcast_gaussian"] = _attempt(
        say, lambda: F.gaussian_nll(targets, out_b, 1.0)
    )
    pred = out_b.data
    silent = (targets - pred) ** 2
    right = float(np.mean((targets - pred[:, 0]) ** 2))
    _labelled(say, "numpy", "plain numpy arrays say nothing:"
              f" ((y - mean) ** 2).shape = {silent.shape}, and its mean,"
              f" {silent.mean():.3f}, is not the mean squared error {right:.3f}:"
              " every label is compared with every prediction.")  # fmt: skip
    _labelled(say, "fix", "logits.reshape(-1) (or y.reshape(-1, 1)), so that both have the same"
              " shape; BayesianMLP.loss does this for you.")  # fmt: skip
    return {"caught": caught, "numpy_broadcast_shape": silent.shape}


def _bias_rho_shape(say: Report, seed: int, x: np.ndarray, labels: Any, rng: Any) -> dict:
    caught: dict[str, Any] = {}
    say("\n(c) a bias rho of the wrong shape, in a layer built by hand")
    _labelled(say, "mistake", "b_rho = mb.tensor(np.full(1, -5.0), requires_grad=True)   # the"
              " output size, 1, for 32 hidden units")  # fmt: skip
    nll, bias = _learner_net(x, labels, (1,), rng)
    summed = [e for e in adjoint_flow(nll) if e.summed]
    _labelled(say, "microbbb", f"NOTHING, and no library can: (1,) against (32,) is a legal"
              f" broadcast, the loss is finite ({nll.item():.2f}) and b has shape {bias.shape}:"
              " the 32 biases silently share one sigma. Where it can be seen:"
              " microbbb.engine.adjoint_flow(nll) marks every gradient that broadcasting had"
              " to sum:")  # fmt: skip
    for e in summed:
        shape = e.record.inputs[e.index].shape
        say(f"{INDENT}  {e.record.op.name:4s} input {e.index} of shape {str(shape):6s}"
            f" <- a gradient of shape {e.g.shape}")  # fmt: skip
    _labelled(say, "", "The two adds are the biases, each shared by the 100 rows: expected."
              " The mul (1,) <- (32,) is the mistake (microbbb's drawings mark such edges"
              " 'Σ broadcast').")  # fmt: skip
    _labelled(say, "mistake", "b_rho = mb.tensor(np.full(3, -5.0), requires_grad=True)   # the"
              " input size, 3")  # fmt: skip
    caught["bias_rho_wrong_shape"] = _attempt(say, lambda: _learner_net(x, labels, (3,), rng))
    layer = BayesianLinear(3, 32, rng=np.random.default_rng(seed), name="layer1")
    _labelled(say, "microbbb", "BayesianLinear(3, 32) makes the shapes itself: weight mu and"
              f" rho {layer.weight_mu.shape} and {layer.weight_rho.shape}, bias mu and rho"
              f" {layer.bias_mu.shape} and {layer.bias_rho.shape}; it draws eps with the shape"
              " of mu, and checks the noise you pass it:")  # fmt: skip
    _labelled(say, "mistake", "layer(x, eps=(weight_eps, np.zeros(1)))   # one bias eps for 32"
              " units")  # fmt: skip
    caught["bias_eps_wrong_shape"] = _attempt(
        say, lambda: layer(x, eps=(np.zeros((3, 32)), np.zeros(1)))
    )
    layer.bias_rho = tensor(np.full(1, -5.0), requires_grad=True)
    say("  mistake:   layer.bias_rho = mb.tensor(np.full(1, -5.0), requires_grad=True)")
    caught["bias_rho_assigned_wrong_shape"] = _attempt(say, lambda: layer(x))
    layer.bias_rho = tensor(np.full(32, -5.0), requires_grad=True)
    _labelled(say, "fix", "b_rho = mb.tensor(np.full(32, -5.0), requires_grad=True), or better"
              " BayesianLinear(3, 32) / BayesianMLP([3, 32, 1], ...), which give every mu, rho"
              " and eps the shape of its weight.")  # fmt: skip
    return {
        "caught": caught,
        "silent_broadcast_edges": [
            (e.record.op.name, e.record.inputs[e.index].shape, e.g.shape) for e in summed
        ],
        "not_caught": ["bias rho of shape (1,) for 32 hidden units (a legal broadcast)"],
    }


def _overflow(say: Report) -> dict:
    caught: dict[str, Any] = {}
    errors: list = []
    rho = tensor(1000.0, requires_grad=True, name="rho")
    z = tensor([[0.0, 1e4]], requires_grad=True, name="z")
    say("\n(d) sigma = log(1 + exp(rho)) overflowing, and log(softmax(...)) underflowing")
    _labelled(say, "mistake", "with mb.detect_anomaly(): sigma = mb.log(1 + mb.exp(rho))   #"
              " rho = 1000")  # fmt: skip

    def overflow() -> None:
        with detect_anomaly():
            F.log(1 + F.exp(rho))

    caught["exp_overflow"] = _attempt(say, overflow, errors=errors)
    _labelled(say, "fix", f"sigma = mb.softplus(rho) = {F.softplus(rho).item():g}, finite:"
              " softplus is computed as max(rho, 0) + log1p(exp(-|rho|)).")  # fmt: skip
    _labelled(say, "mistake", "with mb.detect_anomaly(): log_p = mb.log(mb.softmax(z))   # z ="
              " [[0, 1e4]]")  # fmt: skip

    def underflow() -> None:
        with detect_anomaly():
            F.log(F.softmax(z, axis=1))

    caught["log_softmax_underflow"] = _attempt(say, underflow, errors=errors)
    fixed = F.log_softmax(z, axis=1).data
    _labelled(say, "fix", f"log_p = mb.log_softmax(z) = {np.array2string(fixed, precision=1)},"
              " finite: z - logsumexp(z).")  # fmt: skip
    return {"caught": caught, "anomaly_ops": [getattr(e, "op", None) for e in errors]}


def _learning_rates(say: Report, seed: int, data: tuple, steps_small_lr: int) -> dict:
    x, labels, targets = data
    caught: dict[str, Any] = {}
    errors: list = []
    say("\n(e) a learning rate that is too large, and one that is too small")
    model = make_model(Gaussian(NOISE_SIGMA), seed)
    _labelled(say, "mistake", "fit(model, x, y, epochs=50, optimizer=SGD(model.parameters(),"
              " lr=1.0))")  # fmt: skip
    caught["lr_too_large"] = _attempt(
        say,
        lambda: fit(
            model,
            x,
            targets,
            epochs=50,
            optimizer=SGD(model.parameters(), lr=1.0),
            n_samples=N_SAMPLES,
            progress=False,
        ),  # fmt: skip
        errors=errors,
    )
    _labelled(say, "", "f sums over 100 observations, so its gradients are large: the first"
              " step moves some mu by tens, the loss explodes, the next gradients are in the"
              " millions and throw some rho so far below 0 that sigma = softplus(rho) is 0, and"
              " log q(w | mu, sigma) is NaN.")  # fmt: skip
    _labelled(say, "fix", f"Adam with lr {LR:g} (part 1), or SGD with a far smaller lr.")

    model = make_model(Bernoulli(), seed)
    _labelled(say, "mistake", f"fit(model, x, y, epochs={steps_small_lr}, lr=1e-11)   # the"
              " question's learning rate; fit uses Adam")  # fmt: skip
    before = model.loss(x, labels, n_samples=N_SAMPLES)
    start = [p.data.copy() for p in model.parameters()]
    history = fit(model, x, labels, epochs=steps_small_lr, lr=1e-11, n_samples=N_SAMPLES,
                  progress=False)  # fmt: skip
    after = model.loss(x, labels, n_samples=N_SAMPLES, eps=before.eps)
    change = abs(after.item() - before.item()) / abs(before.item()) * 100
    moved = max(
        float(np.abs(p.data - s).max()) for p, s in zip(model.parameters(), start, strict=True)
    )
    _labelled(say, "microbbb", f"no error, since it is not one. With the same eps, f went from"
              f" {before.item():.6f} to {after.item():.6f}, and no parameter moved by more"
              f" than {moved:.1e}. The training loss went from {history.loss[0]:.1f} to"
              f" {history.loss[-1]:.1f}, but that is only the Monte-Carlo noise of new eps at"
              " every step.")  # fmt: skip
    if change < 1e-3:
        _labelled(say, "WARNING", f"(this demo's check) the loss changed by {change:.1e} % in"
                  f" {steps_small_lr} steps: nothing is learning.")  # fmt: skip
        caught["lr_too_small"] = "warning"
    else:
        caught["lr_too_small"] = "not caught"
    _labelled(say, "fix", f"a learning rate that moves the parameters: Adam with lr {LR:g}, as"
              " in part 1 (see its loss curves).")  # fmt: skip
    return {
        "caught": caught,
        "small_lr_change_percent": change,
        "diverged": str(errors[0]).splitlines()[0] if errors else None,
    }


def _wrong_signs(say: Report, seed: int, data: tuple, train_steps: int) -> dict:
    x, _, targets = data
    caught: dict[str, Any] = {}
    say("\n(f) the loss assembled with the wrong signs, and the names of the densities swapped")
    model = make_model(Gaussian(NOISE_SIGMA), seed)
    loss = model.loss(x, targets, n_samples=N_SAMPLES)
    posterior, prior, likelihood = loss.log_prior, loss.log_q, loss.log_likelihood  # swapped
    wrong = posterior - prior * likelihood
    _labelled(say, "mistake", "posterior, prior, likelihood = loss.log_prior, loss.log_q,"
              " loss.log_likelihood")  # fmt: skip
    say(f"{INDENT}my_loss = posterior - prior * likelihood")
    _labelled(say, "microbbb", "computes f itself, and its repr names every part with its"
              " sign:")  # fmt: skip
    say(f"{INDENT}{loss!r}")
    q, ll = loss.log_q.item(), loss.log_likelihood.item()
    _labelled(say, "", f"my_loss = {wrong.item():.1f}, but f = {loss.item():.1f}.")
    if abs(wrong.item() - loss.item()) > 1e-9 * abs(loss.item()):
        _labelled(say, "WARNING", "(this demo's check against the BBBLoss) my_loss is not f.")
        caught["wrong_signs"] = "BBBLoss parts"
    else:
        caught["wrong_signs"] = "not caught"
    g_wrong = np.concatenate([g.data.ravel() for g in grad(wrong, model.parameters())])
    g_right = np.concatenate([g.data.ravel() for g in grad(loss, model.parameters())])
    cosine = float(g_wrong @ g_right / (np.linalg.norm(g_wrong) * np.linalg.norm(g_right)))
    _labelled(say, "why", "As a function of (log q, log P(w), log P(D|w)), f has the slopes"
              f" (+1, -1, -1); my_loss has (-log P(D|w), +1, -log q) = ({-ll:+.1f}, +1,"
              f" {-q:+.1f}): the prior pushes the weights away from 0, and the likelihood is"
              " weighted by log q, whose sign flips once the sigmas grow. At the first step"
              f" the two gradients point almost the same way (cosine {cosine:.3f}: both are"
              " dominated by log q pushing every sigma up), so nothing looks wrong yet."
              f" Minimising my_loss with Adam, lr {LR:g}:")  # fmt: skip
    optimizer = Adam(model.parameters(), lr=LR)
    rows = []
    show = {0, train_steps // 6, train_steps // 3, train_steps // 2, 2 * train_steps // 3,
            5 * train_steps // 6, train_steps - 1}  # fmt: skip
    with np.errstate(all="ignore"):
        for step in range(train_steps):
            optimizer.zero_grad()
            step_loss = model.loss(x, targets, n_samples=N_SAMPLES)
            my_loss = step_loss.log_prior - step_loss.log_q * step_loss.log_likelihood
            if not np.isfinite(my_loss.item()):
                break
            if step in show:
                rows.append((step, my_loss.item(), step_loss.log_q.item(),
                             step_loss.log_likelihood.item()))  # fmt: skip
            my_loss.backward()
            optimizer.step()
    say(f"{INDENT}  {'step':>5s} {'my_loss':>11s} {'log q':>9s} {'log P(D|w)':>11s}")
    for step, value, lq, lik in rows:
        say(f"{INDENT}  {step:5d} {value:11.4g} {lq:9.1f} {lik:11.4g}")
    _labelled(say, "", "my_loss falls all the way, so the learner sees a loss that decreases;"
              " but as soon as log q < 0 the likelihood is pushed the wrong way and the"
              " network fits the data worse and worse.")  # fmt: skip
    _labelled(say, "fix", "loss = model.loss(x, y, n_samples=2), a BBBLoss: f = log q(w|theta)"
              " - log P(w) - log P(D|w); then loss.backward().")  # fmt: skip
    return {
        "caught": caught,
        "wrong_loss": wrong.item(),
        "right_loss": loss.item(),
        "gradient_cosine": cosine,
        "wrong_training": rows,
    }


def part_mistakes(
    say: Report, seed: int, data: tuple, models: tuple, steps: int = 2000
) -> dict[str, Any]:
    """Each mistake of the question, reproduced, with what microbbb says and the fix."""
    x, labels, targets = data
    rng = np.random.default_rng(seed + 1)
    say("\n\n3. What broke the question's versions, and what microbbb says")
    say("=" * WIDTH)
    say("(In the code lines, mb is microbbb and F is microbbb.functional.)")
    results = [
        _softmax_one_output(say, seed, labels, rng),
        _label_shapes(say, x, labels, targets, models),
        _bias_rho_shape(say, seed, x, labels, rng),
        _overflow(say),
        _learning_rates(say, seed, data, steps_small_lr=min(200, steps)),
        _wrong_signs(say, seed, data, train_steps=min(600, steps)),
    ]
    figures: dict[str, Any] = {"caught": {}}
    for result in results:
        figures["caught"].update(result.pop("caught"))
        figures.update(result)
    return figures


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
    rng = np.random.default_rng(seed)
    data = make_data(N_OBS, rng)
    new_data = make_data(2000, rng)
    say("The question microbbb answers: Bayes by Backprop for a 3-32-1 network, by hand and by"
        f" autodiff (seed {seed})\n")  # fmt: skip
    figures = part_training(say, plt, seed, steps, progress, (data, new_data))
    models = figures.pop("models")
    figures.update(part_gradients(say, seed, data[0], data[1]))
    figures.update(part_mistakes(say, seed, data, models, steps))
    say("\n\nSummary: what microbbb said about each mistake")
    say("=" * WIDTH)
    for key, value in figures["caught"].items():
        say(f"  {key:32s} {value}")
    for item in figures["not_caught"]:
        say(f"  {'not an error anywhere':32s} {item}")
    say.save()
    figures["report"] = say.path("report.txt")
    return figures


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/question", help="folder for the files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000, help="training steps of part 1")
    args = parser.parse_args(argv)
    run(args.out, seed=args.seed, steps=args.steps)
