"""``gradient_variance``: how noisy is each estimator's gradient of mu and rho?

Every training step uses one Monte-Carlo estimate of the gradient of the objective
F(theta) = E_q[f]. Estimators that agree on the expectation (see ``microbbb.bbb.estimators``)
can differ a lot in how far one estimate strays from it. ``gradient_variance(model, x, y)``
draws the gradient ``draws`` times for each estimator, number of samples S and form of the
complexity cost (Monte-Carlo ``"mc"`` or ``"closed_form"``), at the model's current
parameters and on the same data, and reports for every mu and rho

- the variance of the estimates over the draws (ddof 1), and
- the signal-to-noise ratio |mean| / std: above 1 a single step points the right way more
  often than not; far below 1 it is mostly noise.

The result prints as a table (one block per parameter tensor: the mean over its elements
of the variance, the median SNR, and the variance relative to the plain estimator with the
same S and KL) and draws one panel per parameter tensor (``plot``). docs/gradient_variance.md
reads the numbers of the question's 3-32-1 setting.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import checks
from .estimators import ESTIMATORS
from .estimators import check as check_estimator
from .priors import GaussianPrior

KLS = ("mc", "closed_form")
COLOURS = {"reparam": "0.6", "local": "tab:blue", "flipout": "tab:orange"}


class Setting(NamedTuple):
    """One way of estimating the gradient: the estimator, S samples, the complexity cost."""

    estimator: str
    n_samples: int
    kl: str

    def label(self) -> str:
        """e.g. ``"local S=1 mc"``."""
        return f"{self.estimator} S={self.n_samples} {self.kl}"


@dataclass
class GradientVariance:
    """Per setting and parameter (by its dotted name): the ``mean`` and the ``variance``
    (ddof 1) of the gradient over ``draws`` draws, arrays of the parameter's shape."""

    settings: list[Setting]
    names: list[str]
    mean: dict[Setting, dict[str, np.ndarray]]
    variance: dict[Setting, dict[str, np.ndarray]]
    draws: int

    def snr(self, setting: Setting, name: str) -> np.ndarray:
        """|mean| / std elementwise (inf where the std is 0 and the mean is not, nan at 0/0)."""
        mean, std = np.abs(self.mean[setting][name]), np.sqrt(self.variance[setting][name])
        with np.errstate(divide="ignore", invalid="ignore"):
            return mean / std

    def rows(self) -> list[dict[str, Any]]:
        """One row per parameter and setting: its mean variance over the elements, the median
        SNR and the mean variance over that of "reparam" with the same S and KL (or None)."""
        rows = []
        for name in self.names:
            for setting in self.settings:
                plain = Setting("reparam", setting.n_samples, setting.kl)
                mean_variance = float(self.variance[setting][name].mean())
                ratio = None
                if plain in self.variance:
                    ratio = mean_variance / float(self.variance[plain][name].mean())
                snr = float(np.nanmedian(self.snr(setting, name)))
                row = {"parameter": name, "setting": setting, "mean_variance": mean_variance}
                rows.append(row | {"median_snr": snr, "vs_reparam": ratio})
        return rows

    def table(self) -> str:
        """The rows as text, one block per parameter tensor."""
        width = max(len(s.label()) for s in self.settings) + 2
        lines = [
            f"gradient of each mu and rho over {self.draws} draws",
            f"{'':2}{'setting':<{width}}{'mean var':>11}{'median SNR':>12}{'var / reparam':>15}",
        ]
        shapes = {name: self.mean[self.settings[0]][name].shape for name in self.names}
        for row in self.rows():
            if row["setting"] == self.settings[0]:
                lines.append(f"{row['parameter']} {shapes[row['parameter']]}")
            ratio = "" if row["vs_reparam"] is None else f"{row['vs_reparam']:.3g}"
            lines.append(
                f"{'':2}{row['setting'].label():<{width}}{row['mean_variance']:>11.3e}"
                f"{row['median_snr']:>12.3g}{ratio:>15}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: Any = None, title: str | None = None) -> Any:
        """One panel per parameter tensor: for each setting, the variances of its elements
        as a box (log scale, coloured by estimator) and their mean, the table's number, as a
        black dot; "MC" / "closed" under a box is the complexity cost. Saved to ``path``
        when given (``title`` above the panels); returns the matplotlib figure (matplotlib
        is imported here, only when plotting)."""
        import matplotlib.pyplot as plt

        columns = min(4, len(self.names))
        rows = -(-len(self.names) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
        for ax, name in zip(axes.ravel(), self.names, strict=False):
            self._panel(ax, name)
        for ax in axes.ravel()[len(self.names) :]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("variance of the gradient")
        handles = [
            plt.Rectangle((0, 0), 1, 1, facecolor=COLOURS[e], label=e)
            for e in dict.fromkeys(s.estimator for s in self.settings)
        ]
        handles.append(plt.Line2D([], [], color="black", marker="o", ls="", label="mean"))
        fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=9)
        title = title or f"Variance of each gradient element over {self.draws} draws"
        fig.suptitle(title, x=0.35)
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig

    def _panel(self, ax: Any, name: str) -> None:
        values = [np.maximum(self.variance[s][name].ravel(), 1e-300) for s in self.settings]
        positions = np.arange(1, len(self.settings) + 1)
        boxes = ax.boxplot(values, positions=positions, patch_artist=True, widths=0.6)
        for box, setting in zip(boxes["boxes"], self.settings, strict=True):
            box.set_facecolor(COLOURS[setting.estimator])
        ax.plot(positions, [v.mean() for v in values], "o", color="black", ms=4, zorder=3)
        ax.set_yscale("log")
        shape = "x".join(str(n) for n in self.mean[self.settings[0]][name].shape)
        ax.set_title(f"{name} ({shape})", fontsize=10)
        ax.set_xticks(positions)
        ticks = [f"S={s.n_samples} {'MC' if s.kl == 'mc' else 'closed'}" for s in self.settings]
        ax.set_xticklabels(ticks, rotation=90, fontsize=7)


def gradient_variance(
    model: Any,
    x: Any,
    y: Any,
    estimators: Sequence[str] = ESTIMATORS,
    n_samples: Sequence[int] = (1,),
    kl: Sequence[str] = KLS,
    draws: int = 200,
    complexity_weight: float = 1.0,
    seed: int | None = 0,
) -> GradientVariance:
    """The variance and the SNR of the gradient of every mu and rho, for each estimator,
    number of samples and form of the complexity cost (see the module docstring).

    The model is not changed: each setting runs on a copy (its estimator set, its generator
    seeded with ``seed``), drawing the gradient of ``model.loss(x, y, S, complexity_weight,
    kl)`` ``draws`` times (with a ``LossProgram``: the same numbers as eager steps).
    ``"closed_form"`` needs a ``GaussianPrior``.
    """
    settings = _settings(model, estimators, n_samples, kl)
    draws = checks.count(draws, "draws", "the number of gradient draws per setting")
    if draws < 2:
        raise ValueError(f"draws must be at least 2 to estimate a variance; got {draws}")
    names = [name for name, _ in model.named_parameters()]
    mean, variance = {}, {}
    for setting in settings:
        twin = copy.deepcopy(model)
        twin.estimator, twin.rng = setting.estimator, np.random.default_rng(seed)
        for layer in twin.layers:
            layer.rng = twin.rng
        samples = _draw_gradients(twin, x, y, setting, complexity_weight, draws)
        mean[setting] = {n: g.mean(axis=0) for n, g in samples.items()}
        variance[setting] = {n: g.var(axis=0, ddof=1) for n, g in samples.items()}
    return GradientVariance(settings, names, mean, variance, draws)


def _settings(model: Any, names: Sequence[str], counts: Sequence[int], kls: Sequence[str]) -> list:
    if isinstance(names, str) or isinstance(kls, str) or not isinstance(counts, Sequence):
        raise TypeError(
            "estimators, n_samples and kl are sequences: e.g. estimators=('reparam', 'local'),"
            " n_samples=(1, 4), kl=('mc',)"
        )
    names = [check_estimator(name) for name in names]
    counts = [checks.n_samples(count) for count in counts]
    kls = [checks.choice(form, "kl", KLS) for form in kls]
    if "closed_form" in kls and not isinstance(model.prior, GaussianPrior):
        raise ValueError(
            f"kl='closed_form' needs a GaussianPrior; this model's prior is {model.prior}."
            " Pass kl=('mc',)."
        )
    if not names or not counts or not kls:
        raise ValueError("estimators, n_samples and kl each need at least one entry")
    return [Setting(e, s, k) for e in names for s in counts for k in kls]


def _draw_gradients(
    model: Any, x: Any, y: Any, setting: Setting, complexity_weight: float, draws: int
) -> dict[str, np.ndarray]:
    """``draws`` gradients of every parameter, stacked: name -> (draws, *shape)."""
    program = model.loss_program(x, y, setting.n_samples, complexity_weight, setting.kl)
    params = list(model.named_parameters())
    samples = {name: np.empty((draws, *p.shape)) for name, p in params}
    for d in range(draws):
        model.zero_grad()
        program()
        for name, p in params:
            samples[name][d] = p.grad
    return samples
