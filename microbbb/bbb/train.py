"""Training a ``BayesianMLP``: minibatch weighting, ``fit``, checkpoints.

``minibatch_weights(M, scheme)`` gives the weight pi_i of the complexity cost of minibatch
i (1-based) out of M, summing to 1 over an epoch:

- ``"uniform"``: pi_i = 1 / M
- ``"blundell"``: pi_i = 2^(M - i) / (2^M - 1) (the paper's eq. 9: early minibatches carry
  most of the complexity cost), computed as 2^-i / (1 - 2^-M) so that M = 10 000 neither
  overflows nor gives NaN (late weights underflow to 0, which is their value in floats).

``fit`` runs the epochs: for each minibatch, the loss with ``complexity_weight =
beta_e * pi_i``, backward, an optimiser step. The epoch's factor beta_e is the complexity
weight schedule:

- constant (``kl_warmup=0``, the default): beta_e = 1, the paper's objective;
- linear warm-up over K epochs (``kl_warmup=K``): beta_e = min(1, e / K) for epoch e =
  1, 2, ... (never 0: the first epoch already has 1/K), so the network first fits the
  data and the complexity cost comes in gradually;
- times a posterior ``temperature`` T (default 1): beta_e is multiplied by T. Training
  then targets the tempered posterior p(w | D) proportional to P(D | w)^(1/T) P(w)
  (T < 1: "cold", trusting the data more than the prior; the KL weight of other
  libraries).

The history records beta_e of every epoch (``History.complexity_weight``).

fit ends cleanly on Ctrl-C (keeping the model and the history so far; a process that
ignores Ctrl-C, as under ``nohup``, keeps ignoring it), and with a checkpoint path saves
atomically every N epochs; ``resume=True`` continues bit-identically.

Divergence. fit never trains on through a wrong number. Before each optimiser step it
checks that the loss and every gradient are finite, and that the loss has not grown more
than ``GROWTH_LIMIT`` (1000) times over the lowest seen so far; after the step, that every
parameter is finite. A failure raises ``TrainingDiverged``: what happened, at which epoch
and step, the learning rate and what to try; for the loss and the gradients it also
replays that step (same minibatch, same eps) in anomaly mode, naming the op that made a
NaN or an infinity if one did.

The growth is measured like with like. Minibatch losses differ for healthy reasons: with
``"blundell"`` weights the first carries half the complexity cost and the last almost
none (on the classification demo's digits their losses differ 3000-fold), and a last
minibatch may be smaller. So each step's loss is compared as an estimate of the whole
objective, ``complexity + (N / n) * (-log P(minibatch | w))`` (N rows in all, n in the
minibatch; with one batch, the loss itself), against the lowest estimate so far, and fit
stops when it exceeds that lowest by more than 999 times ``max(|lowest|, N)``: 1000-fold
growth of a lowest above N nats, and growth by more than 999 nats per observation when
the lowest is smaller, near 0 or negative (a learned noise sigma can make -log P(D | w)
negative, so a plain ratio would mean nothing there). Measured on
the demos' settings (seeds 0-3, both weighting schemes, every step, minibatch noise
included), this growth never exceeded 7.5: regression (its lowest estimate, about 90
nats, is below its floor N = 500; the estimate itself reached 18 times its lowest),
digits 1.22, breast cancer 1.09, the question's setting 1.75 (Adam, lr 3e-3 and 1e-2).
Learning rates that diverge grow it 1e4- to 1e40-fold (Adam with lr 10 on the question's
setting: from 952 to 2.3e8 in one step). The comparison starts again after ``resume``.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine import AnomalyError, detect_anomaly
from ..optim import Adam, Optimizer
from . import checks
from .diagnose import diagnose as diagnose_run
from .io import load_checkpoint, save_checkpoint
from .layers import BayesianMLP
from .likelihoods import Gaussian
from .program import LossProgram

GROWTH_LIMIT = 1000  # see the module docstring: 130 times the largest growth measured
SCHEMES = ("uniform", "blundell")
KLS = ("mc", "closed_form")
HISTORY_LISTS = (
    "loss",
    "complexity",
    "nll",
    "accuracy",
    "rmse",
    "complexity_weight",
    "mu_change",
    "rho_change",
)


def minibatch_weights(n_batches: int, scheme: str = "uniform") -> np.ndarray:
    """pi_i for i = 1..M: ``"uniform"`` 1/M, ``"blundell"`` 2^(M-i) / (2^M - 1)."""
    n_batches = checks.count(n_batches, "n_batches", "the number of minibatches of an epoch")
    checks.choice(scheme, "scheme", SCHEMES)
    if scheme == "uniform":
        return np.full(n_batches, 1.0 / n_batches)
    i = np.arange(1, n_batches + 1)  # "blundell":
    # 2^(M-i) / (2^M - 1) = 2^-i / (1 - 2^-M); 1 - 2^-M = -expm1(-M log 2)
    return np.ldexp(1.0, -i) / -math.expm1(-n_batches * math.log(2))


class TrainingDiverged(FloatingPointError):
    """The loss, a gradient or a parameter became NaN or inf, or the loss grew more than
    ``GROWTH_LIMIT``-fold; the message says where, and what to try."""


@dataclass
class History:
    """Per epoch, summed over its M minibatches (so each is an estimate for the whole data):
    ``complexity`` = sum_i pi_i (log q - log P(w)) (or the KL), ``nll`` = -log P(D | w),
    ``complexity_weight`` = the schedule's beta_e (warm-up times temperature; 1 for the
    paper's objective), ``loss`` = beta_e * complexity + nll (the objective F of the paper
    when beta_e = 1); ``accuracy`` (classification) or ``rmse`` (regression) of the sampled
    network on the training batches; ``mu_change`` and ``rho_change``, the root mean square
    over every mu (rho) of how far the epoch moved it. ``interrupted`` is True when Ctrl-C
    ended training early. ``settings``: the fit's lr (None for an optimiser without one),
    kl_scheme, kl_warmup, temperature, n_samples, batch_size, steps per epoch, n_rows."""

    loss: list[float] = field(default_factory=list)
    complexity: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    rmse: list[float] = field(default_factory=list)
    complexity_weight: list[float] = field(default_factory=list)
    mu_change: list[float] = field(default_factory=list)
    rho_change: list[float] = field(default_factory=list)
    interrupted: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """How many epochs were completed."""
        return len(self.loss)

    def as_dict(self) -> dict[str, Any]:
        """The history as plain lists (JSON-able)."""
        return {k: getattr(self, k) for k in HISTORY_LISTS}


def fit(
    model: BayesianMLP,
    x: Any,
    y: Any,
    epochs: int,
    batch_size: int | None = None,
    optimizer: Optimizer | None = None,
    lr: float | None = None,
    n_samples: int = 1,
    kl_scheme: str = "uniform",
    kl: str = "mc",
    seed: int = 0,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    callback: Callable[[int, History], None] | None = None,
    kl_warmup: int = 0,
    temperature: float = 1.0,
    diagnose: bool = False,
) -> History:
    """Train ``model`` by Bayes by Backprop; return the per-epoch ``History``.

    ``batch_size=None``: the whole data set as one batch; else minibatches in a new random
    order each epoch, fed to the loss recorded once per batch size (``loss_program``).
    ``optimizer`` defaults to Adam(lr), lr = 1e-3 unless given (fit refuses both).
    ``kl_scheme`` weights the complexity cost of the M minibatches (``minibatch_weights``);
    ``kl_warmup`` (epochs of linear warm-up) and ``temperature`` scale it per epoch (module
    docstring). ``kl``: "mc" (sampled log q - log P) or "closed_form". ``seed`` fixes the
    shuffling; ``progress``: a bar when stderr is a terminal; ``callback(epoch, history)``
    runs after each epoch; ``diagnose=True`` prints ``diagnose(model, history, x)`` at the
    end. Every argument is checked before training: an error names it and what to pass.
    """
    epochs, checkpoint_every = _check_schedule(epochs, checkpoint, checkpoint_every, resume)
    optimizer = _optimizer(model, optimizer, lr)
    settings = (kl_scheme, n_samples, kl, _Schedule(kl_warmup, temperature))
    training = _Training(model, optimizer, x, y, batch_size, settings, seed)
    resumed = resume and checkpoint is not None and os.path.exists(checkpoint)
    start = load_checkpoint(checkpoint, *training.state()) if resumed else 0
    bar = _ProgressBar(epochs, enabled=progress and sys.stderr.isatty())
    with _DeferInterrupt() as interrupt:
        for epoch in range(start, epochs):
            if not training.epoch(epoch, interrupt):  # Ctrl-C: stop, keep what was done
                break
            bar.update(epoch + 1, training.history)
            _after_epoch(training, epoch, (checkpoint, checkpoint_every), callback)
    bar.close()
    if diagnose:
        print(diagnose_run(model, training.history, x=training.x))
    return training.history


def _after_epoch(training: _Training, epoch: int, saving: tuple, callback: Any) -> None:
    """Save a checkpoint when one is due, then run the callback."""
    checkpoint, every = saving
    if checkpoint is not None and (epoch + 1) % every == 0:
        save_checkpoint(checkpoint, *training.state(), epoch + 1)
    if callback is not None:
        callback(epoch, training.history)


def _check_schedule(epochs: Any, checkpoint: Any, every: Any, resume: bool) -> tuple[int, int]:
    """epochs and checkpoint_every, checked; resume needs a checkpoint path."""
    epochs = checks.count(epochs, "epochs", "the number of passes over the data, in all")
    every = checks.count(every, "checkpoint_every", "save a checkpoint every this many epochs")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path (checkpoint=...) to resume from")
    return epochs, every


def _optimizer(model: BayesianMLP, optimizer: Optimizer | None, lr: float | None) -> Optimizer:
    """The optimiser fit uses: the one given, or Adam(lr) (lr = 1e-3 when not given)."""
    if optimizer is None:
        return Adam(model.parameters(), lr=1e-3 if lr is None else lr)
    if lr is not None:
        raise ValueError(
            f"fit got lr={lr} and an optimizer, which has its own learning rate"
            f" ({optimizer.lr:g}): set the learning rate on the optimizer, not on fit."
        )
    return optimizer


class _Schedule:
    """The complexity weight schedule: beta_e = temperature * min(1, e / kl_warmup)."""

    def __init__(self, kl_warmup: Any, temperature: Any):
        meaning = "epochs of linear warm-up of the complexity weight; 0 for none"
        if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int):
            raise TypeError(f"kl_warmup must be an integer >= 0 ({meaning}), got {kl_warmup!r}")
        if kl_warmup < 0:
            raise ValueError(f"kl_warmup must be an integer >= 0 ({meaning}), got {kl_warmup}")
        meaning = "the posterior temperature T multiplying the complexity cost; 1 for none"
        self.kl_warmup = kl_warmup
        self.temperature = checks.positive(temperature, "temperature", meaning)

    def weight(self, epoch: int) -> float:
        """beta of epoch ``epoch`` (0-based)."""
        if self.kl_warmup == 0:
            return self.temperature
        return self.temperature * min(1.0, (epoch + 1) / self.kl_warmup)


class _Training:
    """One ``fit``: the model, the optimiser, the checked data, the shuffling generator, the
    history, and one ``LossProgram`` per batch size (recorded once, fed each minibatch).
    ``loss_settings``: kl_scheme, n_samples, kl, the complexity weight schedule."""

    def __init__(
        self,
        model: BayesianMLP,
        optimizer: Optimizer,
        x: Any,
        y: Any,
        batch_size: int | None,
        loss_settings: tuple[str, int, str, _Schedule],
        seed: int,
    ):
        kl_scheme, n_samples, kl, self.schedule = loss_settings
        checks.choice(kl_scheme, "kl_scheme", SCHEMES)
        self.n_samples, self.kl = checks.n_samples(n_samples), checks.choice(kl, "kl", KLS)
        self.x = model.check_inputs(x)
        self.y = model.likelihood.prepare(y, len(self.x), model.sizes[-1])
        if batch_size is None:
            self.batch_size = len(self.x)
        else:
            meaning = "the rows of a minibatch; None for the whole data set"
            self.batch_size = checks.count(batch_size, "batch_size", meaning)
        self.weights = minibatch_weights(math.ceil(len(self.x) / self.batch_size), kl_scheme)
        self.model, self.optimizer = model, optimizer
        self.shuffle_rng = np.random.default_rng(seed)
        self.guard = _Guard(model, optimizer, len(self.x), self.kl)
        self.history = History()
        self.history.settings = {
            "lr": getattr(optimizer, "lr", None),
            "kl_scheme": kl_scheme,
            "kl_warmup": self.schedule.kl_warmup,
            "temperature": self.schedule.temperature,
            "n_samples": self.n_samples,
            "batch_size": self.batch_size,
            "steps_per_epoch": len(self.weights),
            "n_rows": len(self.x),
        }
        self.programs: dict[int, LossProgram] = {}

    def state(self) -> tuple:
        """What a checkpoint holds: model, optimiser, shuffling generator, history."""
        return self.model, self.optimizer, self.shuffle_rng, self.history

    def batches(self) -> Any:
        """The minibatches of one epoch: the whole data set as it is, or a new order."""
        if len(self.weights) == 1:
            yield self.x, self.y
            return
        order = self.shuffle_rng.permutation(len(self.x))
        for start in range(0, len(self.x), self.batch_size):
            rows = order[start : start + self.batch_size]
            yield self.x[rows], self.y[rows]

    def epoch(self, epoch: int, interrupt: _DeferInterrupt) -> bool:
        """One epoch of steps, recorded in the history; False if Ctrl-C ended it early."""
        model, sums = self.model, np.zeros(4)  # loss, complexity, nll, accuracy or sq. error
        beta, before = self.schedule.weight(epoch), _mu_and_rho(model)
        for step, (xb, yb) in enumerate(self.batches()):
            self.optimizer.zero_grad()
            loss = self.program(xb, yb, beta * self.weights[step])()  # fresh eps, fwd, bwd
            where = f"epoch {epoch + 1}, step {step + 1}"
            self.guard.before_step(loss, xb, yb, where)
            self.optimizer.step()
            self.guard.after_step(where)
            sums += _batch_stats(model, loss, yb, self.weights[step])
            if interrupt.requested:
                self.history.interrupted = True
                return False
        _record_epoch(self.history, model, sums, len(self.x), len(self.weights))
        self.history.complexity_weight.append(beta)
        for name, old, new in zip(("mu", "rho"), before, _mu_and_rho(model), strict=True):
            getattr(self.history, f"{name}_change").append(_rms(new - old))
        return True

    def program(self, xb: np.ndarray, yb: np.ndarray, weight: float) -> LossProgram:
        """The loss program of this batch size, fed this minibatch and complexity weight."""
        program = self.programs.get(len(xb))
        if program is not None and weight != 1 and program.loss.inputs.complexity_weight is None:
            program = None  # recorded with weight 1: no multiplication to feed a weight to
        if program is None:
            program = self.model.loss_program(xb, yb, self.n_samples, weight, self.kl)
            self.programs[len(xb)] = program
        elif len(self.weights) > 1 or weight != program.loss.complexity_weight:
            program.feed(xb, yb, weight)
        return program


def _mu_and_rho(model: BayesianMLP) -> tuple[np.ndarray, np.ndarray]:
    """Copies of every mu and every rho of the layers, each as one flat array."""
    mu = [p.data.ravel() for layer in model.layers for p in (layer.weight_mu, layer.bias_mu)]
    rho = [p.data.ravel() for layer in model.layers for p in (layer.weight_rho, layer.bias_rho)]
    return np.concatenate(mu), np.concatenate(rho)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def _batch_stats(model: BayesianMLP, loss: Any, yb: np.ndarray, pi: float) -> np.ndarray:
    output = loss.output.data
    if isinstance(model.likelihood, Gaussian):
        score = float(((output - yb) ** 2).sum())  # squared error, for the RMSE
    elif output.shape[1] == 1:
        score = float(((output[:, 0] > 0) == (yb > 0.5)).sum())
    else:
        score = float((output.argmax(axis=1) == yb).sum())
    complexity = pi * loss.complexity.item()  # pi_i (log q - log P), without the schedule
    return np.array([loss.item(), complexity, -loss.log_likelihood.item(), score])


def _record_epoch(history: History, model: BayesianMLP, sums: np.ndarray, n: int, m: int):
    history.loss.append(sums[0])
    history.complexity.append(sums[1])
    history.nll.append(sums[2])
    if isinstance(model.likelihood, Gaussian):
        history.rmse.append(math.sqrt(sums[3] / (n * model.sizes[-1])))
    else:
        history.accuracy.append(sums[3] / n)


class _Guard:
    """The checks of every step of a ``fit`` (see the module docstring); each failure raises
    ``TrainingDiverged``. ``lowest``: the lowest estimate of the objective so far, and
    where it was seen."""

    def __init__(self, model: BayesianMLP, optimizer: Optimizer, n_rows: int, kl: str):
        self.model, self.optimizer, self.n_rows, self.kl = model, optimizer, n_rows, kl
        self.named = list(model.named_parameters())  # once: the programs hold these tensors
        self.lowest: tuple[float, str] | None = None

    def before_step(self, loss: Any, xb: np.ndarray, yb: np.ndarray, where: str) -> None:
        """The loss and every gradient finite, the loss not grown ``GROWTH_LIMIT``-fold."""
        if not np.isfinite(loss.data).all():
            self._stop(where, f"the loss is {loss.item()}", (loss, xb, yb))
        bad = self._not_finite("grad")
        if bad:
            self._stop(where, f"the gradient of {', '.join(bad)} is not finite", (loss, xb, yb))
        # the whole objective, estimated from this minibatch: like with like at every step
        estimate = loss.complexity.item() - self.n_rows / len(xb) * loss.log_likelihood.item()
        if self.lowest is not None and (what := self._growth(estimate)):
            self._stop(where, what, (loss, xb, yb))
        if self.lowest is None or estimate < self.lowest[0]:
            self.lowest = (estimate, where)

    def _growth(self, estimate: float) -> str | None:
        """What to say when ``estimate`` exceeds the lowest so far by more than
        ``GROWTH_LIMIT - 1`` times max(|lowest|, N); None when it does not."""
        lowest, seen = self.lowest
        if estimate - lowest <= (GROWTH_LIMIT - 1) * max(abs(lowest), self.n_rows):
            return None
        if lowest <= 0:
            return (
                f"the loss grew to {estimate:.4g} from its lowest so far, {lowest:.4g} at"
                f" {seen}: by more than {GROWTH_LIMIT - 1} nats per observation"
            )
        return (
            f"the loss grew to {estimate:.4g}, {estimate / lowest:.3g} times the lowest so far"
            f" ({lowest:.4g} at {seen}); fit stops when it grows more than {GROWTH_LIMIT}-fold"
            " (each step's loss read as an estimate of the whole objective: complexity"
            " + N/n * the minibatch's -log P(D | w))"
        )

    def after_step(self, where: str) -> None:
        """Every parameter finite after the optimiser's step."""
        bad = self._not_finite("data")
        if bad:
            grads = [np.abs(p.grad).max() for p in self.model.parameters() if p.grad is not None]
            largest = float(max(grads, default=0.0))
            raise TrainingDiverged(
                f"training stopped at {where}: after the optimiser step, parameters"
                f" {', '.join(bad)} are not finite. The loss and the gradients of that step"
                f" were finite (the largest |gradient| {largest:.3g}): the update itself"
                f" overflowed. {self._advice()}"
            )

    def _not_finite(self, attribute: str) -> list[str]:
        values = ((name, getattr(p, attribute)) for name, p in self.named)
        return [name for name, v in values if v is not None and not np.isfinite(v).all()]

    def _advice(self) -> str:
        lr = getattr(self.optimizer, "lr", None)
        if lr is None:
            return "Try a smaller learning rate."
        return (
            f"The learning rate is {lr:g}: too large a step makes the parameters diverge (or a"
            f" posterior sigma collapse to 0). Try a smaller lr, such as {lr / 10:g}."
        )

    def _stop(self, where: str, what: str, step: tuple) -> None:
        """Replay the step in anomaly mode, then raise ``TrainingDiverged``."""
        loss, xb, yb = step
        report = "no op made a NaN or an infinity: every value was finite"
        try:
            with detect_anomaly():
                replay = self.model.loss(
                    xb, yb, loss.n_samples, loss.complexity_weight, self.kl, eps=loss.eps
                )
                replay.backward()  # gradients of this replay are discarded below
        except AnomalyError as error:
            report = str(error)
        finally:
            self.model.zero_grad()
        raise TrainingDiverged(
            f"training stopped at {where}: {what}.\n"
            f"Replaying that step in anomaly mode:\n{report}\n{self._advice()}"
        )


class _DeferInterrupt:
    """Turn Ctrl-C into a flag checked between steps, so a step is never cut in half."""

    def __enter__(self) -> _DeferInterrupt:
        self.requested = False
        self.installed, self.previous = False, None
        if threading.current_thread() is not threading.main_thread():
            return self  # (only the main thread may set handlers)
        previous = signal.getsignal(signal.SIGINT)
        # SIG_IGN: Ctrl-C was ignored on purpose (nohup, a background job), so it stays
        # ignored; None: a handler not set from Python, which could not be put back.
        if previous is not signal.SIG_IGN and previous is not None:
            self.previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)


class _ProgressBar:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.start = total, enabled, time.monotonic()

    def update(self, done: int, history: History) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / self.total)
        if history.accuracy:
            metric = f"acc {history.accuracy[-1]:.3f}"
        else:
            metric = f"rmse {history.rmse[-1]:.4g}"
        elapsed = time.monotonic() - self.start
        sys.stderr.write(
            f"\repoch {done}/{self.total} [{'#' * filled}{'.' * (width - filled)}]"
            f" loss {history.loss[-1]:.5g} {metric} {elapsed:.0f}s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


__all__ = ["History", "TrainingDiverged", "fit", "minibatch_weights"]
