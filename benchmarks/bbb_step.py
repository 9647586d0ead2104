"""One Bayes by Backprop training step: hand-written numpy vs microbbb vs torch (CPU, eager).

A step, for a ReLU MLP with a Gaussian posterior N(mu, softplus(rho)^2) on every weight and
bias:

    eps ~ N(0, I) for every weight and bias;  w = mu + softplus(rho) * eps
    f = log q(w | mu, rho) - log P(w) - log P(D | w)     (one Monte-Carlo sample)
    backward, then plain SGD (lr 1e-4) on every mu and rho

with BayesianMLP's default prior, the scale mixture pi = 0.5, sigma1 = 1, sigma2 = exp(-6).

- hand numpy: a lean numpy step with the analytic gradients, written below (``HandNumpy``);
- microbbb: ``opt.zero_grad(); loss = model.loss(x, y, n_samples=1); loss.backward();
  opt.step()`` with ``microbbb.optim.SGD`` (eager: the graph is built on every step);
- mbb program: ``opt.zero_grad(); program(); opt.step()`` with
  ``program = model.loss_program(x, y)``: the same loss recorded once, then fresh eps and
  the recorded forward and backward on every call (what ``fit`` does on one batch);
- torch: leaf tensors mu and rho, the same loss in eager torch, ``backward``, a manual SGD
  update under ``torch.no_grad()``.

Before timing, each size and dtype is checked once: with the same eps, the hand step's, the
program's and torch's loss and gradients must equal microbbb's (float64: rtol 1e-9), so all
do the same work; the script aborts otherwise. The steps then run interleaved round-robin
in one process (the machine is noisy: only ratios from one run mean something), after a
warm-up. Reported: median time, spread (IQR / median), the ratios of the medians, the peak
memory of one step, and microbbb's memory growth over 1000 steps (eager and program).

Run:  python benchmarks/bbb_step.py [--sizes 3-32-1 ...] [--dtype float64|float32|both]
      [--threads 1] [--scale 1.0] [--growth small|all|none] [--markdown] [--profile]
"""

import argparse
import os
import sys

SIZES = {  # name: (layer sizes, batch, likelihood, timed rounds at --scale 1)
    "3-32-1": ([3, 32, 1], 100, "gaussian", 3000),
    "64-100-10": ([64, 100, 10], 128, "categorical", 2000),
    "784-400-400-10": ([784, 400, 400, 10], 128, "categorical", 120),
}
SMALL = ("3-32-1", "64-100-10")  # sizes whose 1000-step memory check is cheap
LR = 1e-4
GROWTH_STEPS = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="numpy/OpenBLAS and torch threads (default 1). With as many threads as cores,"
        " any other load on the machine stalls torch's OpenMP threads (steps 10-100x slower)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the number of timed rounds"
    )
    parser.add_argument(
        "--growth",
        choices=["small", "all", "none"],
        default="small",
        help=f"measure microbbb's memory growth over {GROWTH_STEPS} steps for the small"
        " sizes (default), every size, or none",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of timing, cProfile microbbb's step (top 15 functions by tottime)",
    )
    return parser


# Threads must be pinned before numpy (OpenBLAS) and torch are imported.
ARGS = build_parser().parse_args() if __name__ == "__main__" else None
THREADS = ARGS.threads if ARGS is not None else 1
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

import microbbb  # noqa: E402
from microbbb.bbb import BayesianMLP, Categorical, Gaussian  # noqa: E402
from microbbb.optim import SGD  # noqa: E402

torch.set_num_threads(THREADS)

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
    """``BayesianMLP.loss`` + ``backward`` + ``microbbb.optim.SGD``."""

    def __init__(self, model: BayesianMLP, x, y):
        self.model, self.x, self.y = model, x, y
        self.opt = SGD(model.parameters(), lr=LR)

    def step(self) -> None:
        self.opt.zero_grad()
        loss = self.model.loss(self.x, self.y, n_samples=1)
        loss.backward()
        self.opt.step()

    def loss_and_grads(self, eps: list) -> tuple[float, list]:
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


# ----------------------------------------------------------------------------- setup, check

NAMES = ("weight_mu", "weight_rho", "bias_mu", "bias_rho")
TOLERANCE = {"float64": (1e-9, 1e-12), "float32": (1e-4, 1e-5)}  # rtol, floor * max|b|


def build(size: str, dtype: np.dtype) -> dict:
    """The three implementations, from the same data and the same initial mu and rho."""
    layer_sizes, batch, likelihood, _ = SIZES[size]
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


def rel_err(a: np.ndarray, b: np.ndarray, rtol: float, floor: float) -> float:
    """max |a - b| / (rtol |b| + floor max|b|): at most 1 means equal within tolerance."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    bound = rtol * np.abs(b) + floor * max(float(np.abs(b).max()), 1e-300)
    return float((np.abs(a - b) / bound).max())


def check(impls: dict, size: str, dtype_name: str) -> dict:
    """Same eps for all: loss and every gradient must match microbbb's. Returns the
    worst |difference| / tolerance per implementation."""
    rtol, floor = TOLERANCE[dtype_name]
    eps = impls["hand numpy"].draw_eps()
    ref_loss, ref_grads = impls["microbbb"].loss_and_grads(eps)
    worst = {}
    for name in ("hand numpy", "mbb program", "torch"):
        loss, grads = impls[name].loss_and_grads(eps)
        errors = {"loss": rel_err(loss, ref_loss, rtol, 0.0)}
        for i, (layer, ref_layer) in enumerate(zip(grads, ref_grads, strict=True)):
            for n, g, ref in zip(NAMES, layer, ref_layer, strict=True):
                if g.shape != ref.shape or g.dtype != ref.dtype:
                    sys.exit(
                        f"CHECK FAILED ({size}, {dtype_name}): {name} layer{i + 1}.{n} has"
                        f" shape {g.shape} {g.dtype}, microbbb {ref.shape} {ref.dtype}"
                    )
                errors[f"layer{i + 1}.{n}"] = rel_err(g, ref, rtol, floor)
        bad = {k: v for k, v in errors.items() if not v <= 1.0}
        if bad:
            sys.exit(
                f"CHECK FAILED ({size}, {dtype_name}): {name} differs from microbbb beyond"
                f" rtol {rtol:g} (+ {floor:g} max|g|), |diff|/tolerance: {bad}."
                f" Loss {loss!r} vs microbbb {ref_loss!r}. The timings would not compare"
                " equal work; aborting."
            )
        worst[name] = max(errors.values())
    return worst


# ----------------------------------------------------------------------------- measurement


def interleave(steps: dict[str, Callable], rounds: int, warmup: int) -> dict:
    """Time every step ``rounds`` times, round-robin (the order rotates each round)."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times = {name: np.empty(rounds) for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = steps[name]
            start = time.perf_counter_ns()
            fn()
            times[name][r] = time.perf_counter_ns() - start
    return times


def peak_tracemalloc(impl: Any) -> int:
    """Bytes allocated above the starting level at the peak of one step (numpy, Python)."""
    impl.clear_grads()
    gc.collect()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    impl.step()
    return tracemalloc.get_traced_memory()[1] - start


def peak_torch_profiler(impl: Torch) -> int | None:
    """Torch's CPU allocator bypasses tracemalloc: replay the allocations and frees of one
    step recorded by torch.profiler(profile_memory=True). None if that is unavailable."""
    from torch.profiler import ProfilerActivity, profile

    impl.clear_grads()  # else torch warns about freeing blocks allocated before profiling
    try:
        with (
            quiet_stderr(),
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
        ):
            impl.step()
        events = prof.profiler.kineto_results.events()
        changes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    except Exception:  # a private API: report n/a rather than fail the benchmark
        return None
    current = peak = 0
    for _, nbytes in changes:
        current += nbytes
        peak = max(peak, current)
    return peak


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ start/stop messages)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def growth(impl: Microbbb, steps: int) -> tuple[int, int]:
    """tracemalloc current after ``steps`` more steps minus after 10 warm-up steps, and
    the same over the second half of those steps only (the steady state)."""
    for _ in range(10):
        impl.step()
    start = tracemalloc.get_traced_memory()[0]
    for _ in range(steps // 2):
        impl.step()
    half = tracemalloc.get_traced_memory()[0]
    for _ in range(steps - steps // 2):
        impl.step()
    end = tracemalloc.get_traced_memory()[0]
    return end - start, end - half


def profile_microbbb(impl: Microbbb, steps: int) -> str:
    for _ in range(20):
        impl.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        impl.step()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


# ----------------------------------------------------------------------------- output


def fmt_time(ns: float) -> str:
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us" if ns < 1e5 else f"{ns / 1e3:.0f} us"
    return f"{ns / 1e6:.2f} ms" if ns < 1e8 else f"{ns / 1e6:.0f} ms"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    if abs(n) < 1024:
        return f"{n} B"
    if abs(n) < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.1f} MiB"


def spread(t: np.ndarray) -> str:
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return f"{100 * (q3 - q1) / med:.0f}%"


TIME_COLUMNS = [
    ("size (batch)", "<"),
    ("dtype", "<"),
    ("hand numpy", ">"),
    ("iqr", ">"),
    ("microbbb", ">"),
    ("iqr", ">"),
    ("mbb program", ">"),
    ("iqr", ">"),
    ("torch", ">"),
    ("iqr", ">"),
    ("mbb/np", ">"),
    ("mbb/torch", ">"),
    ("prog/np", ">"),
    ("prog/torch", ">"),
]
MEMORY_COLUMNS = [
    ("size (batch)", "<"),
    ("dtype", "<"),
    ("peak np", ">"),
    ("peak mbb", ">"),
    ("peak prog", ">"),
    ("peak torch", ">"),
    ("mbb/np", ">"),
    ("prog/np", ">"),
    (f"mem 10->{GROWTH_STEPS + 10} mbb, prog", ">"),
    (f"{GROWTH_STEPS // 2 + 10}->{GROWTH_STEPS + 10} mbb, prog", ">"),
]


def table(columns: list[tuple[str, str]], rows: list[list[str]], markdown: bool) -> str:
    heads = [c[0] for c in columns]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |"]
        lines.append("|" + "|".join("---:" if a == ">" else ":---" for _, a in columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        parts = [f"{c:{a}{w}}" for c, (_, a), w in zip(cells, columns, widths, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(heads))
    return "\n".join([line(heads), rule] + [line(r) for r in rows])


def header(args: argparse.Namespace) -> list[str]:
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    blas = "BLAS threads: see OPENBLAS_NUM_THREADS"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{i['internal_api']} {i['version']} {i['num_threads']} thread(s)"
            for i in threadpool_info()
        )
    except ImportError:
        pass
    env = " ".join(
        f"{v}={os.environ[v]}"
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    )
    return [
        "One BBB training step (draw eps, forward, f = log q - log P(w) - log P(D|w) with the"
        " scale-mixture prior pi=0.5 sigma1=1 sigma2=e^-6, backward, SGD lr=1e-4 on every mu"
        " and rho), ReLU MLP, one sample",
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__},"
        f" microbbb {microbbb.__version__} (git {commit}); {os.cpu_count()} CPUs,"
        f" {platform.machine()}",
        f"threads: {env}; numpy: {blas}; torch.get_num_threads()={torch.get_num_threads()}",
        "times: median over interleaved rounds (the order rotates each round) after warm-up;"
        " iqr = interquartile range / median; mbb/np and mbb/torch = ratios of the medians",
        "peak: memory allocated above the starting level during one step (grads cleared"
        " first); numpy and microbbb via tracemalloc, torch via torch.profiler memory events"
        " (tracemalloc does not see torch's allocator)",
        "mem a->b: microbbb's tracemalloc current after step b minus after step a,"
        " eager, program"
        f" ({GROWTH_STEPS} steps after 10 warm-up steps; '-' = not measured, see --growth)",
    ]


# ----------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    cases = [(s, d) for s in args.sizes for d in dtypes]

    if args.profile:
        for size, dtype_name in cases:
            impl = build(size, np.dtype(dtype_name))["microbbb"]
            steps = max(20, int(SIZES[size][3] * args.scale) // 3)
            print(f"== cProfile of {steps} microbbb steps, {size}, {dtype_name}")
            print(profile_microbbb(impl, steps))
        print(f"total runtime {time.perf_counter() - t_start:.1f} s")
        return

    lines = header(args)
    time_rows, memory_rows, checks = [], [], []
    for size, dtype_name in cases:
        layer_sizes, batch, likelihood, base_rounds = SIZES[size]
        impls = build(size, np.dtype(dtype_name))
        worst = check(impls, size, dtype_name)
        checks.append(
            f"{size} {dtype_name}: max |diff|/tolerance hand numpy {worst['hand numpy']:.2g},"
            f" mbb program {worst['mbb program']:.2g}, torch {worst['torch']:.2g}"
        )
        rounds = max(10, int(base_rounds * args.scale))
        times = interleave(
            {name: impl.step for name, impl in impls.items()}, rounds, max(5, rounds // 10)
        )
        med = {name: float(np.median(t)) for name, t in times.items()}

        tracemalloc.start()
        peak = {name: peak_tracemalloc(impls[name]) for name in ("hand numpy", "microbbb")}
        peak["mbb program"] = peak_tracemalloc(impls["mbb program"])
        grow = {}
        if args.growth == "all" or (args.growth == "small" and size in SMALL):
            grow = {name: growth(impls[name], GROWTH_STEPS) for name in ("microbbb", "mbb program")}
        tracemalloc.stop()
        peak["torch"] = peak_torch_profiler(impls["torch"])

        label = f"{size} ({batch})"
        time_rows.append(
            [label, dtype_name]
            + [
                cell
                for name in ("hand numpy", "microbbb", "mbb program", "torch")
                for cell in (fmt_time(med[name]), spread(times[name]))
            ]
            + [
                f"{med[name] / med[base]:.2f}"
                for name in ("microbbb", "mbb program")
                for base in ("hand numpy", "torch")
            ]
        )
        memory_rows.append(
            [label, dtype_name]
            + [fmt_bytes(peak[name]) for name in ("hand numpy", "microbbb", "mbb program", "torch")]
            + [f"{peak[name] / peak['hand numpy']:.2f}" for name in ("microbbb", "mbb program")]
            + [
                ", ".join(fmt_bytes(grow[name][k]) for name in ("microbbb", "mbb program"))
                if grow
                else "-"
                for k in (0, 1)
            ]
        )
        print(f"[{size} {dtype_name}: {rounds} rounds done]", file=sys.stderr, flush=True)

    tol = ", ".join(f"{k} rtol {r:g} + {f:g} max|g|" for k, (r, f) in TOLERANCE.items())
    lines.append(
        "check (once, same eps): loss and every gradient of hand numpy, the program and torch"
        f" equal microbbb's ({tol}); worst |diff|/tolerance (<= 1 passes):"
    )
    lines += ["  " + c for c in checks]
    if args.markdown:
        print("\n".join(f"  - {ln.strip()}" if ln[:1] == " " else f"- {ln}" for ln in lines))
        print()
    else:
        print("\n".join(lines))
        print()
    print(table(TIME_COLUMNS, time_rows, args.markdown))
    print()
    print(table(MEMORY_COLUMNS, memory_rows, args.markdown))
    print(f"\ntotal runtime {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main(ARGS)
