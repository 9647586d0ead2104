"""``check_gradients``: a learner's own mu and rho gradients, marked term by term.

A learner writes the Bayes by Backprop loss and its gradients by hand, as a numpy function

    mine(x, y, mu, rho, eps) -> (loss, dmu, drho)          (optionally a 4th item: parts)

with ``mu``, ``rho`` dicts of arrays keyed ``layer1.weight``, ``layer1.bias``, ... (see
``microbbb.bbb.named``) and ``eps`` a list over Monte-Carlo samples of such dicts, so that
``w = mu + softplus(rho) * eps`` and

    f = c * (log q(w | theta) - log P(w)) - log P(D | w)      (averaged over the samples).

``check_gradients(mine, model, x, y)`` draws eps, runs ``mine`` and the engine's tape on the
same eps (on a copy of the model), and compares. Every tensor's gradient is split by the tape
into the parts the paper names: the data term (``data``, the gradient of -log P(D | w)), log q
through w and directly (``log_q_through_w``, ``log_q_direct``, of c * log q), the log prior
(``log_prior``, of -c * log P(w)) and, with ``kl="closed_form"``, the KL (``kl``, of c * KL).
A wrong gradient is then tested against exact hypotheses, one per usual mistake: "yours
equals the right gradient minus the direct log q term", "... with the chain factor
eps * sigmoid(rho) left out", ... Each hypothesis predicts your gradient exactly (from the
tape's parts); it fits when ``|yours - predicted| <= RTOL * scale`` for every element, with
``scale`` the larger |entry| of the two (float64). The codes (``DIAGNOSES`` says the same):

- ``not_done``: ``mine`` raised NotImplementedError or returned None.
- ``own_noise``: two calls with the same eps gave different results: ``mine`` draws noise.
- ``eps_ignored``: a call with other eps gave the same result: ``mine`` does not use eps.
- ``eps_scaled``: the gradients are the tape's with eps times 0.1 (or sqrt(0.1)): eps drawn
  from N(0, 0.1) instead of N(0, 1) (or the given eps scaled).
- ``sign_flipped``: the whole gradient (or loss) has the wrong sign.
- ``posterior_minus_prior_times_likelihood``: f written ``log q - log P(w) * log P(D | w)``
  (or with the two densities swapped), a product where a difference belongs.
- ``log_2pi``: (loss only) off by a whole number of 0.5 log(2 pi): ``log(2 pi)`` where
  ``0.5 log(2 pi)`` belongs in a Gaussian log-density.
- ``chain_factor_missing``: (rho) df/dw used where df/dw * eps * sigmoid(rho) belongs, or
  only eps or only sigmoid(rho) = 1 / (1 + exp(-rho)) of the factor kept.
- ``sigma_for_softplus_slope``: (rho) sigma = softplus(rho) used where its slope
  sigmoid(rho) belongs.
- ``log_q_direct_missing``: the direct terms df/dmu, df/drho of log q left out.
- ``log_q_through_w_missing``: log q's derivative through w left out (it cancels against
  the direct term for mu, so leaving out both is right for mu, but not for rho).
- ``log_q_missing``: log q left out altogether (wrong for rho only).
- ``log_prior_sign``: + log P(w) where - log P(w) belongs.
- ``log_prior_missing``: the log prior left out.
- ``log_likelihood_sign``: + log P(D | w) where - log P(D | w) belongs.
- ``data_term_missing``: no data term -log P(D | w) at all.
- ``softmax_single_output``: no data term, and the likelihood is Bernoulli: a softmax over
  one output is constantly 1, so its log-likelihood is 0 (Categorical refuses one output).
- ``complexity_weight_missing``: the minibatch weight c left out of the complexity cost.
- ``sample_count``: a factor of the number of samples (summed where a mean belongs).
- ``parts_scaled``: none of the above, but a least-squares fit says yours is the right
  gradient with some parts counted a different number of times (the report gives them).
- ``wrong_parts``: none of the above; the parts ``mine`` returned are compared with the
  tape's, and the report says which agree.
- ``imprecise``: off by more than RTOL but less than 1e-4 relative: float32, or a tiny term.
- ``unexplained``: none of the above; the report says where the error is largest.
- ``noise_rho``: (a Gaussian likelihood with learned noise) the gradient of noise_rho.

The returned ``GradientReport`` prints as a table; ``ok`` is True only when the loss and every
gradient agree within RTOL. A hypothesis is only named when it fits; when several fit they
are all named; when none fits the report says so. It never turns a disagreement into "right".

The 4th item ``parts``, when returned, maps part names (above) to ``(dmu_part, drho_part)``,
each a dict like ``dmu``; only the parts given are compared. With a Gaussian likelihood that
learns its noise, ``rho`` also holds ``noise_rho`` (sigma_n = softplus(noise_rho)) and
``drho`` must hold its gradient.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import grad
from .named import eps_by_layer, mu_rho, tensor_names

RTOL = 1e-7  # relative to a gradient's scale (its largest |entry|), in float64
CLOSE = 1e-4  # below this (and above RTOL) a disagreement is called "imprecise"
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
PARTS = ("data", "log_q_through_w", "log_q_direct", "log_prior", "kl")
PART_WORDS = {
    "data": "the data term (-log P(D | w))",
    "log_q_through_w": "log q through w",
    "log_q_direct": "log q directly (df/dmu, df/drho)",
    "log_prior": "the log prior (-log P(w))",
    "kl": "the closed-form KL",
}

DIAGNOSES = {
    "not_done": "mine raised NotImplementedError or returned None",
    "own_noise": "two calls with the same eps differ: mine draws its own noise",
    "eps_ignored": "a call with other eps gives the same result: mine ignores eps",
    "eps_scaled": "equals the tape's with eps * 0.1 or eps * sqrt(0.1): eps ~ N(0, 0.1)",
    "sign_flipped": "equals minus the right value",
    "posterior_minus_prior_times_likelihood": "f = log q - log P(w) * log P(D|w) (or swapped)",
    "log_2pi": "loss off by k * 0.5 log(2 pi): log(2 pi) where 0.5 log(2 pi) belongs",
    "chain_factor_missing": "rho: df/dw without (part of) eps * sigmoid(rho)",
    "sigma_for_softplus_slope": "rho: sigma used where sigmoid(rho) = dsigma/drho belongs",
    "log_q_direct_missing": "the right gradient minus log q's direct term",
    "log_q_through_w_missing": "the right gradient minus log q's term through w",
    "log_q_missing": "the right gradient without log q",
    "log_prior_sign": "the right gradient minus twice the log prior's part",
    "log_prior_missing": "the right gradient minus the log prior's part",
    "log_likelihood_sign": "the right gradient minus twice the data term",
    "data_term_missing": "the right gradient minus the data term",
    "softmax_single_output": "no data term, Bernoulli likelihood: a softmax over one output",
    "complexity_weight_missing": "the complexity parts not multiplied by c",
    "sample_count": "the right value times S or 1/S",
    "parts_scaled": "least squares: some parts counted a different number of times",
    "wrong_parts": "none fits; mine's own parts compared with the tape's",
    "imprecise": "off by more than RTOL but less than 1e-4 (float32?)",
    "unexplained": "none fits; the largest error is shown",
    "noise_rho": "the gradient of the learned noise's noise_rho is wrong",
}


@dataclass
class GradientRow:
    """One parameter (``layer1.weight`` and ``mu``/``rho``, or ``loss``): the largest error
    relative to the scale of the right value, where it is, and both values there."""

    parameter: str
    max_relative_error: float
    where: tuple
    yours: float
    right: float

    @property
    def ok(self) -> bool:
        """Within RTOL."""
        return self.max_relative_error <= RTOL


@dataclass
class GradientFinding:
    """A wrong parameter: its name, a ``diagnosis`` code (see ``DIAGNOSES``), the message."""

    parameter: str
    diagnosis: str
    message: str  # the numbers, then ``why``
    why: str = ""  # the explanation alone (shared by the parameters with the same mistake)
    also: list[str] = field(default_factory=list)  # other codes that fit as well

    def __post_init__(self) -> None:
        if self.diagnosis not in DIAGNOSES:  # every code the report uses is documented
            raise ValueError(f"undocumented diagnosis {self.diagnosis!r}")


@dataclass
class GradientReport:
    """The result of ``check_gradients``: ``ok``, one row per parameter, the findings."""

    ok: bool
    rows: list[GradientRow]
    findings: list[GradientFinding]
    rtol: float = RTOL
    notes: list[str] = field(default_factory=list)

    def finding(self, parameter: str) -> GradientFinding | None:
        """The finding about ``parameter`` (e.g. ``"layer1.weight rho"``), or None."""
        return next((f for f in self.findings if f.parameter == parameter), None)

    @property
    def diagnoses(self) -> dict[str, str]:
        """parameter -> diagnosis code, for every finding."""
        return {f.parameter: f.diagnosis for f in self.findings}

    def __str__(self) -> str:
        if not self.rows:
            head = "gradient check: not done yet"
        elif self.ok:
            head = f"gradient check: all right (every value within rtol {self.rtol:g})"
        else:
            wrong = sum(not r.ok for r in self.rows)
            head = f"gradient check: {wrong} of {len(self.rows)} values wrong (rtol {self.rtol:g})"
        lines = [head]
        if self.rows:
            width = max(len(r.parameter) for r in self.rows)
            lines.append(
                f"  {'parameter'.ljust(width)}  {'max rel. error':>14}  {'at':<10}"
                f"  {'yours':>12}  {'right':>12}"
            )
            for r in self.rows:
                where = str(list(r.where)) if r.where else "-"
                lines.append(
                    f"  {r.parameter.ljust(width)}  {r.max_relative_error:>14.2e}  {where:<10}"
                    f"  {r.yours:>12.6g}  {r.right:>12.6g}  {'ok' if r.ok else 'WRONG'}"
                )
        groups: dict[tuple[str, str], list[GradientFinding]] = {}
        for f in self.findings:
            groups.setdefault((f.diagnosis, f.why or f.message), []).append(f)
        if len({code for code, _ in groups}) == 1 and len(self.findings) > 1:
            lines.append(f"one mistake explains every wrong value: {self.findings[0].diagnosis}")
        for (code, why), members in groups.items():
            also = sorted({a for f in members for a in f.also})
            lines.append(
                f"- [{code}] {', '.join(f.parameter for f in members)}: {why}"
                + (f" (also fits: {', '.join(also)})" if also else "")
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    __repr__ = __str__


# --- the learner's function: calling it and checking what it returns ---------------------------


class NotDone(Exception):
    """``mine`` is still a stub."""


def _call(mine: Callable, x: Any, y: Any, mu: dict, rho: dict, eps: list, keys: dict) -> tuple:
    try:
        result = mine(
            np.array(x, copy=True),
            np.array(y, copy=True),
            copy.deepcopy(mu),
            copy.deepcopy(rho),
            copy.deepcopy(eps),
        )
    except NotImplementedError as error:
        raise NotDone(str(error)) from None
    if result is None or result is Ellipsis:
        raise NotDone("mine returned None")
    if not isinstance(result, (tuple, list)) or len(result) not in (3, 4):
        raise TypeError(
            "mine(x, y, mu, rho, eps) must return a tuple (loss, dmu, drho) or (loss, dmu,"
            f" drho, parts); it returned {_what(result)}."
        )
    loss = result[0]
    if isinstance(loss, np.ndarray) and loss.size == 1:
        loss = loss.reshape(())[()]
    if isinstance(loss, bool) or not isinstance(loss, (int, float, np.number)):
        raise TypeError(f"the loss (1st item) must be a number, got {_what(loss)}.")
    if not math.isfinite(float(loss)):
        raise ValueError(f"the loss (1st item) is {float(loss)}: it must be finite.")
    dmu = _gradients(result[1], keys["mu"], "dmu (2nd item)")
    drho = _gradients(result[2], keys["rho"], "drho (3rd item)")
    parts = None
    if len(result) == 4:
        parts = result[3]
        if not isinstance(parts, dict) or any(k not in PARTS for k in parts):
            raise TypeError(
                f"parts (4th item) must be a dict with keys among {list(PARTS)}, each"
                f" (dmu_part, drho_part); got {_what(parts)}."
            )
        parts = {
            k: (
                _gradients(v[0], keys["mu"], f"parts[{k!r}][0]"),
                _gradients(v[1], keys["mu"], f"parts[{k!r}][1]"),
            )
            for k, v in parts.items()
        }
    return float(loss), dmu, drho, parts


def _what(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:80]


def _gradients(value: Any, shapes: dict[str, tuple], what: str) -> dict[str, np.ndarray]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict keyed {list(shapes)}; got {_what(value)}.")
    missing = [k for k in shapes if k not in value]
    extra = [k for k in value if k not in shapes]
    if missing or extra:
        raise ValueError(
            f"{what} must have exactly the keys {list(shapes)}; missing {missing},"
            f" unexpected {extra}."
        )
    out = {}
    for name, shape in shapes.items():
        a = np.asarray(value[name])
        if a.dtype.kind not in "iuf":
            raise TypeError(f"{what}[{name!r}] must hold numbers, got dtype {a.dtype}.")
        if a.shape != shape:
            hint = " (transposed?)" if a.shape == shape[::-1] and len(shape) == 2 else ""
            raise ValueError(
                f"{what}[{name!r}] has shape {a.shape}; it must have the shape of"
                f" {name} itself, {shape}{hint}."
            )
        if not np.isfinite(a).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise ValueError(
                f"{what}[{name!r}] contains NaN or inf (first at {list(where)}); every"
                " gradient must be finite."
            )
        out[name] = a
    return out


# --- the tape's side: the right gradients and their parts ------------------------------------


def _tape(model: Any, x: Any, y: Any, eps: list, c: float, kl: str, split: bool = False) -> dict:
    """Loss and gradients of the tape (means over the samples), on a copy of the model;
    with ``split`` (one sample) also each tensor's parts (see the module docstring)."""
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.grad = None
    loss = m.loss(x, y, len(eps), c, kl, eps=eps_by_layer(m, eps))
    loss.backward()
    keys = [
        (n, layer, k)
        for layer in m.layers
        for k, n in zip(("weight", "bias"), _names(layer), strict=True)
    ]
    right = {}
    for name, layer, kind in keys:
        right[f"{name} mu"] = getattr(layer, f"{kind}_mu").grad.copy()
        right[f"{name} rho"] = getattr(layer, f"{kind}_rho").grad.copy()
    parts = _split(loss, keys, eps[0], c, kl) if split else {key: {} for key in right}
    values = {"f": float(loss.data), "ll": float(loss.log_likelihood.data)}
    if kl == "mc":
        values.update(lq=float(loss.log_q.data), lp=float(loss.log_prior.data))
    else:
        values["kl"] = float(loss.complexity.data)
    noise = [t.grad for t in m.likelihood.parameters()]
    if noise:
        right["noise_rho"] = np.asarray(noise[0]).copy()
    return {"right": right, "parts": parts, "values": values}


def _split(loss: Any, keys: list, eps: dict, c: float, kl: str) -> dict:
    """One sample's parts: each term's gradient at the sampled w, split into the part that
    flows through w (df/dw * dw/dtheta) and the direct rest."""
    parts: dict[str, dict] = {
        f"{name} {theta}": {} for name, _, _ in keys for theta in ("mu", "rho")
    }
    terms = [(loss.log_likelihood, -1.0, "data", None)]
    if kl == "mc":
        terms += [
            (loss.log_q, c, "log_q_through_w", "log_q_direct"),
            (loss.log_prior, -c, "log_prior", None),
        ]
    else:
        terms += [(loss.complexity, c, None, "kl")]
    # getattr(layer, kind) is the sampled w; _theta its mu and rho
    wanted = [t for _, layer, kind in keys for t in (getattr(layer, kind), *_theta(layer, kind))]
    for term, sign, through, direct in terms:
        grads = [g.data for g in grad(term, wanted)]
        for i, (name, layer, kind) in enumerate(keys):
            df_dw, total_mu, total_rho = (sign * g for g in grads[3 * i : 3 * i + 3])
            rho = getattr(layer, f"{kind}_rho").data
            pathwise = {"mu": df_dw, "rho": df_dw * eps[name] / (1 + np.exp(-rho))}
            for theta, total in (("mu", total_mu), ("rho", total_rho)):
                key = f"{name} {theta}"
                if through:
                    parts[key][through] = pathwise[theta]
                if direct:
                    parts[key][direct] = total - pathwise[theta]
                elif not _fits(total, pathwise[theta], 1e-9):
                    raise RuntimeError(
                        f"check_gradients: {through} of {key} does not all flow through w;"
                        " please report this."
                    )
    return parts


def _theta(layer: Any, kind: str) -> tuple:
    return getattr(layer, f"{kind}_mu"), getattr(layer, f"{kind}_rho")


def _names(layer: Any) -> tuple[str, str]:
    return f"{layer.name}.weight", f"{layer.name}.bias"


# --- hypotheses -----------------------------------------------------------------------------


def _fits(yours: np.ndarray, predicted: np.ndarray, rtol: float = RTOL) -> bool:
    scale = max(float(np.abs(predicted).max(initial=0.0)), float(np.abs(yours).max(initial=0.0)))
    return bool(np.all(np.abs(yours - predicted) <= rtol * scale + 1e-300))


def _differs(a: np.ndarray, b: np.ndarray) -> bool:
    """True when a hypothesis's prediction can be told apart from the right answer."""
    return not _fits(a, b, 100 * RTOL)


def _gradient_hypotheses(ctx: dict) -> list[tuple[str, str, Callable]]:
    """(code, words, predict(key) -> array) for every mistake that applies."""
    right = ctx["tape"]["right"]
    h = [("sign_flipped", "it is minus the right gradient", lambda k: -right[k])]
    if ctx["kl"] == "mc":
        h += _product_hypotheses(ctx) + _log_q_prior_hypotheses(ctx)
    h += [
        (code, words, _sample_mean(ctx, _chain(ctx, which)))
        for code, which, words in CHAIN_MISTAKES
    ]
    return h + _data_hypotheses(ctx) + _count_hypotheses(ctx)


def _sample_mean(ctx: dict, fn: Callable) -> Callable:
    """key -> the mean over the samples of fn(key, sample)."""
    return lambda key: sum(fn(key, s) for s in ctx["samples"]) / ctx["n_samples"]


def _minus(ctx: dict, *names: str, times: float = 1.0) -> Callable:
    """key -> the right gradient minus ``times`` the named parts."""
    right, parts = ctx["tape"]["right"], ctx["parts"]
    return lambda key: right[key] - times * sum(parts[key].get(p, 0.0) for p in names)


def _product_hypotheses(ctx: dict) -> list[tuple[str, str, Callable]]:
    """The seed's f = log q - log P(w) * log P(D | w): a product's gradient, sample by sample."""
    c = ctx["c"]

    def product(which: str) -> Callable:
        def predict(key: str, s: dict) -> np.ndarray:
            p, v = s["parts"][key], s["values"]
            q = p["log_q_through_w"] + p["log_q_direct"]
            if which == "weighted":  # c * log q - c * log P(w) * log P(D|w)
                return q + v["ll"] * p["log_prior"] + c * v["lp"] * p["data"]
            if which == "unweighted":  # log q - log P(w) * log P(D|w)
                return (q + v["ll"] * p["log_prior"]) / c + v["lp"] * p["data"]
            return -p["log_prior"] - v["ll"] * q + c * v["lq"] * p["data"]  # swapped

        return _sample_mean(ctx, predict)

    words = (
        "it is the gradient of log q - log P(w) * log P(D | w): a product where the"
        " difference f = log q - log P(w) - log P(D | w) belongs"
    )
    swapped = (
        "it is the gradient of log P(w) - log q * log P(D | w): the two densities swapped"
        " and a product where f = log q - log P(w) - log P(D | w) has a difference"
    )
    code = "posterior_minus_prior_times_likelihood"
    return [
        (code, words, product("weighted")),
        (code, words, product("unweighted")),
        (code, swapped, product("swapped")),
    ]


CHAIN_MISTAKES = (  # (code, which, words): the ways dw/drho = eps * sigmoid(rho) goes wrong
    ("chain_factor_missing", "none", "the pathwise part is df/dw alone: the chain factor"
     " dw/drho = eps / (1 + exp(-rho)) is left out"),
    ("chain_factor_missing", "no_slope", "the pathwise part is df/dw * eps: the factor"
     " dsigma/drho = 1 / (1 + exp(-rho)) of dw/drho = eps / (1 + exp(-rho)) is left out"),
    ("chain_factor_missing", "no_eps", "the pathwise part is df/dw / (1 + exp(-rho)): the eps"
     " of the chain factor dw/drho = eps / (1 + exp(-rho)) is left out"),
    ("chain_factor_missing", "no_slope_anywhere", "it is the gradient with respect to sigma,"
     " not rho: dsigma/drho = 1 / (1 + exp(-rho)) is left out of both terms"),
    ("sigma_for_softplus_slope", "sigma", "the pathwise part uses sigma = log(1 + exp(rho))"
     " where its slope dsigma/drho = 1 / (1 + exp(-rho)) belongs (df/dw * eps * sigma)"),
    ("sigma_for_softplus_slope", "sigma_both", "both terms use sigma = log(1 + exp(rho)) where"
     " its slope dsigma/drho = 1 / (1 + exp(-rho)) belongs"),
)  # fmt: skip


def _chain(ctx: dict, which: str) -> Callable:
    """predict(key, sample) for one of CHAIN_MISTAKES: mu right, rho's pathwise part wrong."""
    kl, sigma, slope = ctx["kl"], ctx["rho_only"]["sigma"], ctx["rho_only"]["slope"]

    def predict(key: str, s: dict) -> np.ndarray:
        name = key.split()[0]
        if not key.endswith("rho"):
            return s["right"][key]
        mu_parts = s["parts"][f"{name} mu"]
        df_dw = s["right"][f"{name} mu"] - mu_parts["log_q_direct" if kl == "mc" else "kl"]
        eps, p = s["eps"][name], s["parts"][key]
        direct = p.get("log_q_direct", p.get("kl"))
        pathwise = {
            "none": df_dw,
            "no_slope": df_dw * eps,
            "no_eps": df_dw * slope[name],
            "no_slope_anywhere": df_dw * eps,
            "sigma": df_dw * eps * sigma[name],
            "sigma_both": df_dw * eps * sigma[name],
        }[which]
        if which == "no_slope_anywhere":
            direct = direct / slope[name]
        elif which == "sigma_both":
            direct = direct / slope[name] * sigma[name]
        return pathwise + direct

    return predict


def _log_q_prior_hypotheses(ctx: dict) -> list[tuple[str, str, Callable]]:
    """log q's direct or through-w term, or all of log q, or the log prior, wrong or missing."""
    return [
        ("log_q_direct_missing", "it lacks the direct term of log q (df/dmu, df/drho: log q"
         " depends on mu and sigma not only through w)", _minus(ctx, "log_q_direct")),
        ("log_q_through_w_missing", "it lacks log q's derivative through w (d log q / dw times"
         " dw/dtheta); for mu it would cancel the direct term, for rho it does not",
         _minus(ctx, "log_q_through_w")),
        ("log_q_missing", "log q is left out altogether",
         _minus(ctx, "log_q_through_w", "log_q_direct")),
        ("log_prior_sign", "the log prior enters with the wrong sign (+ log P(w) where f has"
         " - log P(w))", _minus(ctx, "log_prior", times=2.0)),
        ("log_prior_missing", "the log prior's part is missing", _minus(ctx, "log_prior")),
    ]  # fmt: skip


def _data_hypotheses(ctx: dict) -> list[tuple[str, str, Callable]]:
    """The data term missing or with the wrong sign; the minibatch weight c left out."""
    c, right, parts = ctx["c"], ctx["tape"]["right"], ctx["parts"]
    data_code = "softmax_single_output" if ctx["likelihood"] == "Bernoulli" else "data_term_missing"
    data_words = "the data term -log P(D | w) contributes nothing"
    if data_code == "softmax_single_output":
        data_words += (
            ": a softmax (or log_softmax) over a single output is constantly 1 (log 1 = 0),"
            " so it has no gradient; one output with 0/1 labels needs a sigmoid (Bernoulli,"
            " log-likelihood y * l - log(1 + exp(l)))"
        )
    h = [
        (data_code, data_words, _minus(ctx, "data")),
        ("log_likelihood_sign", "the data term enters with the wrong sign (+ log P(D | w) where"
         " f has - log P(D | w))", _minus(ctx, "data", times=2.0)),
    ]  # fmt: skip
    if c != 1:
        complexity = ("log_q_through_w", "log_q_direct", "log_prior", "kl")
        h.append(
            (
                "complexity_weight_missing",
                f"the complexity parts ({'log q, log P(w)' if ctx['kl'] == 'mc' else 'the KL'})"
                f" are not multiplied by the minibatch weight c = {c:g}",
                lambda k: right[k] + (1 / c - 1) * sum(parts[k].get(p, 0.0) for p in complexity),
            )
        )
    return h


def _count_hypotheses(ctx: dict) -> list[tuple[str, str, Callable]]:
    """A factor of the number of samples; eps scaled (drawn from N(0, 0.1))."""
    n, right = ctx["n_samples"], ctx["tape"]["right"]
    h = []
    if n > 1:
        h += [
            ("sample_count", f"it is {n} times the right one: a sum over the {n} samples where"
             " their mean belongs", lambda k: n * right[k]),
            ("sample_count", f"it is 1/{n} of the right one: divided by the number of samples"
             " once too often", lambda k: right[k] / n),
        ]  # fmt: skip
    for scale, label in ((0.1, "0.1"), (math.sqrt(0.1), "sqrt(0.1)")):
        other = ctx["scaled"][label]
        h.append(
            (
                "eps_scaled",
                f"it is the gradient for eps times {label}: eps drawn from N(0, 0.1) (standard"
                f" deviation {scale:.3g}) instead of N(0, 1), or the given eps scaled; use the eps"
                " you are given as it is",
                lambda k, other=other: other["right"][k],
            )
        )
    return h


def _value_hypotheses(ctx: dict) -> list[tuple[str, str, float]]:
    c, n, kl, v = ctx["c"], ctx["n_samples"], ctx["kl"], ctx["tape"]["values"]
    f, ll = v["f"], v["ll"]
    samples = [s["values"] for s in ctx["samples"]]
    h = [("sign_flipped", "it is minus the right loss", -f)]
    if kl == "mc":
        lq, lp = v["lq"], v["lp"]
        h += [
            (
                "posterior_minus_prior_times_likelihood",
                "it is log q - log P(w) * log P(D | w): a product where the difference belongs",
                sum(c * s["lq"] - c * s["lp"] * s["ll"] for s in samples) / n,
            ),
            (
                "posterior_minus_prior_times_likelihood",
                "it is log q - log P(w) * log P(D | w): a product where the difference belongs",
                sum(s["lq"] - s["lp"] * s["ll"] for s in samples) / n,
            ),
            (
                "posterior_minus_prior_times_likelihood",
                "it is log P(w) - log q * log P(D | w): the densities swapped, and a product",
                sum(c * s["lp"] - c * s["lq"] * s["ll"] for s in samples) / n,
            ),
            ("log_prior_sign", "+ log P(w) where f has - log P(w)", f + 2 * c * lp),
            ("log_prior_missing", "the log prior is missing", f + c * lp),
            ("log_q_missing", "log q is missing", f - c * lq),
        ]
        if c != 1:
            h.append(
                ("complexity_weight_missing", f"log q - log P(w) not times c = {c:g}", lq - lp - ll)
            )
    elif c != 1:
        h.append(("complexity_weight_missing", f"the KL not times c = {c:g}", v["kl"] - ll))
    data_code = "softmax_single_output" if ctx["likelihood"] == "Bernoulli" else "data_term_missing"
    h += [
        (data_code, "it has no data term -log P(D | w)", f + ll),
        ("log_likelihood_sign", "+ log P(D | w) where f has - log P(D | w)", f + 2 * ll),
    ]
    if n > 1:
        h += [
            ("sample_count", f"{n} times the right loss: summed over the samples", n * f),
            ("sample_count", f"1/{n} of the right loss", f / n),
        ]
    h += _log_2pi_values(ctx)
    for label in ("0.1", "sqrt(0.1)"):
        words = f"it is the loss for eps times {label}: eps drawn from N(0, 0.1), not N(0, 1)"
        h.append(("eps_scaled", words, ctx["scaled"][label]["values"]["f"]))
    return h


def _log_2pi_values(ctx: dict) -> list[tuple[str, str, float]]:
    """The loss off by k * 0.5 log(2 pi): -log(2 pi) written in some of the Gaussian
    log-densities (log q, log P(w), a Gaussian log P(D | w)), one constant per element."""
    c, f = ctx["c"], ctx["tape"]["values"]["f"]
    counts = (
        {"log q": -c * ctx["n_weights"], "log P(w)": c * ctx["n_weights"]}
        if ctx["kl"] == "mc"
        else {}
    )
    if ctx["likelihood"] == "Gaussian":
        counts["log P(D | w)"] = ctx["n_likelihood"]
    h = []
    for r in range(1, len(counts) + 1):
        for combo in itertools.combinations(counts, r):
            k = sum(counts[name] for name in combo)
            if k:
                words = (
                    f"it is off by exactly {k:g} * 0.5 log(2 pi) = {k * HALF_LOG_2PI:.6g}: the"
                    f" Gaussian log-density in {' and '.join(combo)} written with -log(2 pi)"
                    " where -0.5 log(2 pi) belongs (harmless to the gradients, wrong values)"
                )
                h.append(("log_2pi", words, f + k * HALF_LOG_2PI))
    return h


# --- the check -------------------------------------------------------------------------------


def check_gradients(
    mine: Callable,
    model: Any,
    x: Any,
    y: Any,
    n_samples: int = 1,
    seed: int = 0,
    complexity_weight: float = 1.0,
    kl: str = "mc",
) -> GradientReport:
    """Mark a hand-written ``mine(x, y, mu, rho, eps) -> (loss, dmu, drho[, parts])`` against
    the tape, term by term (see the module docstring for the call and the diagnoses).

    eps is drawn from N(0, 1) with ``numpy.random.default_rng(seed)``; ``model`` (a
    ``BayesianMLP`` with the estimator "reparam") is not changed. The loss checked is
    f = c * (log q - log P(w)) - log P(D | w), c = ``complexity_weight``, averaged over
    ``n_samples``; ``kl="closed_form"`` puts the exact KL in place of log q - log P(w).
    """
    if not callable(mine):
        raise TypeError(f"mine must be a function mine(x, y, mu, rho, eps); got {_what(mine)}.")
    c = float(complexity_weight)
    x, mu, rho, keys = _inputs(model, x)
    rng = np.random.default_rng(seed)
    eps, other_eps = (_draw(rng, keys["mu"], n_samples) for _ in range(2))
    tape = _tape(model, x, y, eps, c, kl)  # checks n_samples, kl, y, too
    try:
        loss, dmu, drho, their_parts = _call(mine, x, y, mu, rho, eps, keys)
    except NotDone as why:
        finding = GradientFinding("all", "not_done", f"not done yet ({why}).")
        return GradientReport(False, [], [finding])
    yours = {f"{k} mu": v for k, v in dmu.items()}
    yours.update({(k if k == "noise_rho" else f"{k} rho"): v for k, v in drho.items()})
    rows = _rows(loss, yours, tape)
    if all(r.ok for r in rows):
        return GradientReport(True, rows, [])

    def call(e: list) -> tuple:
        return _call(mine, x, y, mu, rho, e, keys)

    if noise := _noise_finding(call, eps, other_eps, (loss, dmu, drho)):
        return GradientReport(False, rows, [noise])
    ctx = _context(model, x, y, eps, c, kl, tape, n_samples)
    findings = [_value_finding(loss, ctx)] if not rows[0].ok else []
    for row in rows[1:]:
        if not row.ok:
            key = row.parameter
            findings.append(_gradient_finding(key, yours[key], ctx, their_parts, row))
    float32 = any(np.asarray(v).dtype == np.float32 for v in yours.values())
    notes = ["some of your gradients are float32; compute in float64 to compare at 1e-7."]
    return GradientReport(False, rows, findings, notes=notes if float32 else [])


def _draw(rng: np.random.Generator, shapes: dict, n_samples: int) -> list[dict]:
    """eps for every weight tensor and sample, from N(0, 1)."""
    return [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(n_samples)]


def _inputs(model: Any, x: Any) -> tuple[np.ndarray, dict, dict, dict]:
    """The checked x, the model's mu and rho (rho with a learned noise_rho), and the shapes
    every returned gradient must have (``{"mu": ..., "rho": ...}``)."""
    if not hasattr(model, "layers") or not hasattr(model, "loss"):
        raise TypeError(f"model must be a BayesianMLP; got {type(model).__name__}.")
    if any(layer.weight_mask is not None for layer in model.layers):
        raise ValueError(
            "check_gradients marks the loss of an unpruned network; this one has pruned"
            " weights (weight_mask). Check your gradients on a copy before pruning."
        )
    x = model.check_inputs(x)
    mu, rho = mu_rho(model)
    shapes = {name: mu[name].shape for name in tensor_names(model)}
    keys = {"mu": dict(shapes), "rho": dict(shapes)}
    learned = {t.name: t.data.copy() for t in model.likelihood.parameters()}
    if learned:
        rho.update(learned)
        keys["rho"]["noise_rho"] = learned["noise_rho"].shape
    return x, mu, rho, keys


def _noise_finding(
    call: Callable, eps: list, other_eps: list, first: tuple
) -> GradientFinding | None:
    """``own_noise`` when the same eps gives another result, ``eps_ignored`` when other eps
    give the same one; None when mine is a function of its eps."""
    if not _same_result(call(eps), first):
        message = (
            "two calls with the same eps gave different results, so your function draws"
            " its own noise. Use the eps it is given (w = mu + log(1 + exp(rho)) * eps[s][name]),"
            " drawing none: the check compares with the tape on exactly that eps."
        )
        return GradientFinding("all", "own_noise", message)
    if _same_result(call(other_eps), first):
        message = (
            "a call with different eps gave the same result, so your function does not use"
            " eps (w = mu? or noise of its own, seeded?). Use w = mu + log(1 + exp(rho)) *"
            " eps[s][name] with the eps it is given."
        )
        return GradientFinding("all", "eps_ignored", message)
    return None


def _same_result(a: tuple, b: tuple) -> bool:
    if not math.isclose(a[0], b[0], rel_tol=1e-12, abs_tol=1e-300):
        return False
    return all(np.allclose(a[i][k], b[i][k], rtol=1e-12, atol=0.0) for i in (1, 2) for k in b[i])


def _context(model: Any, x: Any, y: Any, eps: list, c: float, kl: str, tape: dict, n: int) -> dict:
    samples = []
    for e in eps:
        one = _tape(model, x, y, [e], c, kl, split=True)
        one["eps"] = e
        samples.append(one)
    scaled = {}
    for label, k in (("0.1", 0.1), ("sqrt(0.1)", math.sqrt(0.1))):
        scaled[label] = _tape(model, x, y, [{n_: a * k for n_, a in e.items()} for e in eps], c, kl)
    _, rho = mu_rho(model)
    softplus = {k: np.logaddexp(0.0, r) for k, r in rho.items()}
    slope = {k: 1 / (1 + np.exp(-r)) for k, r in rho.items()}
    n_weights = sum(a.size for a in rho.values())
    parts = {
        key: {p: sum(s["parts"][key][p] for s in samples) / n for p in samples[0]["parts"][key]}
        for key in samples[0]["parts"]
    }
    _check_sums(tape, parts)
    return {
        "parts": parts,
        "c": c,
        "kl": kl,
        "n_samples": n,
        "tape": tape,
        "samples": samples,
        "scaled": scaled,
        "rho_only": {"sigma": softplus, "slope": slope},
        "likelihood": type(model.likelihood).__name__,
        "n_weights": n_weights,
        "n_likelihood": len(x) * model.sizes[-1],
    }


def _check_sums(tape: dict, parts: dict) -> None:
    for key, right in tape["right"].items():
        if key in parts and not _fits(sum(parts[key].values()), right, 1e-9):
            raise RuntimeError(
                f"check_gradients: the parts of {key} do not add up to the tape's gradient;"
                " please report this."
            )


def _rows(loss: float, yours: dict, tape: dict) -> list[GradientRow]:
    v = tape["values"]
    terms = [v["ll"], *(v[k] for k in ("lq", "lp", "kl") if k in v)]
    scale = max(sum(abs(t) for t in terms), abs(v["f"]), 1e-300)
    rows = [GradientRow("loss", abs(loss - v["f"]) / scale, (), loss, v["f"])]
    for key, right in tape["right"].items():
        mine = yours[key]
        error = np.abs(mine - right)
        scale = max(float(np.abs(right).max(initial=0.0)), float(np.abs(mine).max(initial=0.0)))
        flat = int(np.argmax(error)) if error.size else 0
        where = tuple(int(i) for i in np.unravel_index(flat, right.shape)) if right.ndim else ()
        relative = float(error.max(initial=0.0)) / scale if scale > 0 else 0.0
        rows.append(GradientRow(key, relative, where, float(mine[where]), float(right[where])))
    return rows


def _value_finding(loss: float, ctx: dict) -> GradientFinding:
    right = ctx["tape"]["values"]["f"]
    fits = [
        (code, words) for code, words, value in _value_hypotheses(ctx) if _close(loss, value, ctx)
    ]
    head = f"your loss is {loss:.10g}, the right one {right:.10g}"
    if fits:
        why = f"{fits[0][1]}."
        return GradientFinding("loss", fits[0][0], f"{head}: {why}", why, _others(fits))
    code = "imprecise" if abs(loss - right) <= CLOSE * abs(right) else "unexplained"
    why = (
        f"none of the usual mistakes gives exactly this value (difference {loss - right:.6g})."
        " Check f = c * (log q - log P(w)) - log P(D | w), averaged over the samples."
    )
    return GradientFinding("loss", code, f"{head}; {why}", why)


def _close(a: float, b: float, ctx: dict) -> bool:
    v = ctx["tape"]["values"]
    scale = sum(abs(v[k]) for k in ("ll", "lq", "lp", "kl") if k in v) + abs(v["f"])
    return abs(a - b) <= RTOL * max(scale, abs(a), abs(b))


def _others(fits: list[tuple[str, str]]) -> list[str]:
    return sorted({code for code, _ in fits[1:]} - {fits[0][0]}) if fits else []


def _gradient_finding(
    key: str, yours: np.ndarray, ctx: dict, theirs: Any, row: GradientRow
) -> GradientFinding:
    right = ctx["tape"]["right"][key]
    where = f"at {list(row.where)}: yours {row.yours:.6g}, right {row.right:.6g}"
    if key == "noise_rho":
        return GradientFinding(key, "noise_rho", f"the gradient of noise_rho is wrong ({where}).")
    fits = []
    for code, words, predict in _gradient_hypotheses(ctx):
        predicted = predict(key)
        if _differs(predicted, right) and _fits(yours, predicted):
            fits.append((code, words))
    head = f"wrong (max relative error {row.max_relative_error:.2e} {where})"
    if fits:
        code, why = fits[0][0], f"{fits[0][1]}."
    elif row.max_relative_error <= CLOSE:
        code = "imprecise"
        why = (
            f"close, but not within rtol {RTOL:g}. Float32 arithmetic, or a tiny term missing?"
            " The check cannot tell which, so it does not accept it."
        )
    elif scaled := _least_squares(key, yours, ctx):
        code, why = "parts_scaled", f"{scaled}."
    elif theirs:
        code, why = "wrong_parts", _compare_parts(key, theirs, ctx)
    else:
        code = "unexplained"
        why = (
            "none of the usual mistakes fits exactly; the largest error is shown. Return your"
            f" parts as a 4th item ({', '.join(PARTS[:4])}) to see which of them disagree."
        )
    return GradientFinding(key, code, f"{head}: {why}", why, _others(fits))


def _least_squares(key: str, yours: np.ndarray, ctx: dict) -> str | None:
    """yours - right = sum_k alpha_k part_k, fitted; an answer only when the fit is exact
    (residual within RTOL) and well determined (more elements than parts, well conditioned)."""
    parts = ctx["parts"][key]
    names = [p for p in PARTS if p in parts and np.abs(parts[p]).max(initial=0.0) > 0]
    if key.endswith(" mu") and "log_q_through_w" in names:  # for mu it is minus the direct
        names.remove("log_q_through_w")  # term, so the two cannot be told apart
    a = np.stack([parts[p].ravel() for p in names], axis=1)
    delta = (yours - ctx["tape"]["right"][key]).ravel()
    if len(delta) < 2 * len(names) or np.linalg.cond(a) > 1e6:
        return None
    alpha, *_ = np.linalg.lstsq(a, delta, rcond=None)
    if not _fits(yours.ravel(), (ctx["tape"]["right"][key].ravel() + a @ alpha)):
        return None
    counted = [
        f"{PART_WORDS[p]} counted {_count(1 + alpha[i])} times"
        for i, p in enumerate(names)
        if abs(alpha[i]) > 1e-6
    ]
    said = "yours equals the right gradient with " + "; ".join(counted)
    if key.endswith(" mu") and "log_q_direct" in names:
        said += " (for mu, log q through w is minus its direct term: either may be the one)"
    return said + "; each should count once"


def _count(value: float) -> str:
    return str(round(value)) if abs(value - round(value)) < 1e-6 else f"{value:.4g}"


def _compare_parts(key: str, theirs: dict, ctx: dict) -> str:
    name, theta = key.split()
    agree, disagree = [], []
    for part, pair in theirs.items():
        mine = pair[0 if theta == "mu" else 1][name]
        right = ctx["parts"][key].get(part, np.zeros_like(mine))
        (agree if _fits(mine, right) else disagree).append(PART_WORDS[part])
    said = []
    if agree:
        said.append("these of your parts agree with the tape's: " + ", ".join(agree))
    if disagree:
        said.append("these do not: " + ", ".join(disagree))
    if not disagree:
        said.append("yet their sum is not your gradient, or a part you did not return is wrong")
    return "; ".join(said) + "."
