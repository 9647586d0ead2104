"""Shared pieces of the demos: output folders, reports, the deterministic baseline."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..engine import Tensor, no_grad
from ..nn import MLP
from ..optim import Adam


def matplotlib_pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only), with a clear error if missing."""
    try:
        import matplotlib
    except ImportError as error:
        raise SystemExit(
            "the demos draw with matplotlib: pip install 'microbbb[demo]' (or matplotlib)"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Report:
    """Collects the lines a demo prints, and writes them to ``report.txt`` in ``out``."""

    def __init__(self, out: str, echo: Callable[[str], Any] = print):
        os.makedirs(out, exist_ok=True)
        self.out, self.echo, self.lines = out, echo, []
        self.start = time.monotonic()

    def __call__(self, text: str = "") -> None:
        """Print a line and keep it for the report."""
        self.lines.append(text)
        self.echo(text)

    def path(self, name: str) -> str:
        """A file name inside the output folder."""
        return os.path.join(self.out, name)

    def save(self) -> str:
        """Write report.txt (with the run time) and return its path."""
        self(f"\n(ran in {time.monotonic() - self.start:.1f} s; files in {self.out})")
        path = self.path("report.txt")
        with open(path, "w", encoding="utf-8") as file:
            file.write("\n".join(self.lines) + "\n")
        return path


def train_deterministic(
    model: MLP,
    x: np.ndarray,
    y: np.ndarray,
    nll: Callable[[Tensor, np.ndarray], Tensor],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
) -> list[float]:
    """Train a plain MLP by minimising the mean negative log-likelihood with Adam.

    ``nll(output, y_batch)`` returns the summed NLL of a batch. Returns the per-epoch mean.
    """
    optimizer = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    for _ in range(epochs):
        order, total = rng.permutation(len(x)), 0.0
        for start in range(0, len(x), batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = nll(model(x[rows]), y[rows]) / len(rows)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        history.append(total / len(x))
    return history


def predict_deterministic(model: MLP, x: np.ndarray) -> np.ndarray:
    """The plain MLP's output for x, as a numpy array."""
    with no_grad():
        return model(x).data
