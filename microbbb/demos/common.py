"""Shared pieces of the demos: report templates, output folders, the deterministic baseline.

Every demo is built in three parts: one computes the numbers (plain data, no printing),
one draws the pictures from those numbers, and one fills the demo's report template,
``templates/NAME.txt`` beside this file, with them. ``Template`` below says how a
template is written.
"""

from __future__ import annotations

import os
import re
import string
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
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


def save_figure(plt: Any, fig: Any, path: str, dpi: int = 100) -> str:
    """Lay ``fig`` out, write it to ``path`` and close it; returns ``path``."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def stage(text: str, enabled: bool = True) -> None:
    """Say on stderr what a demo computes now (the report comes when everything is done)."""
    if enabled:
        sys.stderr.write(f"... {text}\n")
        sys.stderr.flush()


TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
SECTION = re.compile(r"\[(\w+)\]")  # a line "[name]" starts a section
BLOCK = re.compile(r"( *)(\{[^{}]*\})")  # a line that holds one field only
LABEL = re.compile(r" *(?:\S+: {2,}|\(\w\) )")  # "  mistake:   " or "(a) " before the text
FORMATTER = string.Formatter()


class Template:
    """A demo's report text: named sections of plain text, filled with the demo's numbers.

    A line ``[name]`` starts a section. Lines before the first section are notes for the
    reader; blank lines at the end of a section are dropped (a blank line to print goes at
    the start of the next section). Within a section:

    - ``{name}`` or ``{name:.3f}`` is a field, filled as ``str.format`` does (``{{`` and
      ``}}`` are braces). A value of several lines goes on under the column of its field.
    - A line that holds one field only is a block (a table, a listing, another section
      filled): its lines are placed as they are, each indented like the field, never
      wrapped; an empty block leaves no line.
    - With a ``width``, any other line longer than it is wrapped. Its wrapped lines go on
      two columns to the right of where the line's text starts: after its indentation, or
      after a label such as ``  mistake:   `` (a word, a colon and two or more spaces) or
      ``(a) ``.
    """

    def __init__(self, text: str, width: int | None = None, name: str = "template"):
        self.width, self.name = width, name
        self.sections: dict[str, list[str]] = {}
        lines: list[str] = []  # the notes before the first section
        for line in text.splitlines():
            header = SECTION.fullmatch(line)
            if header:
                lines = self.sections[header.group(1)] = []
            else:
                lines.append(line)
        for body in self.sections.values():
            while body and not body[-1].strip():
                body.pop()

    @classmethod
    def of(cls, demo: str, width: int | None = None) -> Template:
        """The template ``templates/<demo>.txt``."""
        with open(os.path.join(TEMPLATES, f"{demo}.txt"), encoding="utf-8") as file:
            return cls(file.read(), width, name=f"templates/{demo}.txt")

    def fields(self, section: str) -> set[str]:
        """The names of the numbers that a section's fields take."""
        names = (name for line in self.sections[section] for _, name, _, _ in FORMATTER.parse(line))
        return {re.split(r"[.\[]", name)[0] for name in names if name is not None}

    def fill(self, section: str, values: Mapping[str, Any], wrap: bool = True) -> str:
        """The section with its fields filled from ``values``, and wrapped if ``wrap``."""
        missing = self.fields(section) - set(values)
        if missing:
            raise KeyError(
                f"{self.name} [{section}] names numbers it is not given: {sorted(missing)}"
            )
        lines = []
        for line in self.sections[section]:
            block = BLOCK.fullmatch(line)
            if block:
                text = block.group(2).format_map(values)
                lines += [block.group(1) + part for part in text.splitlines()]
                continue
            for part in _format(line, values).split("\n"):
                lines += _wrap(part, self.width) if wrap and self.width else [part]
        return "\n".join(lines)


def _format(line: str, values: Mapping[str, Any]) -> str:
    """``line.format_map(values)``, where a value of several lines goes on under its field."""
    text = ""
    for literal, name, spec, conversion in FORMATTER.parse(line):
        text += literal
        if name is not None:
            value = FORMATTER.convert_field(FORMATTER.get_field(name, (), values)[0], conversion)
            column = len(text) - text.rfind("\n") - 1
            text += format(value, spec).replace("\n", "\n" + " " * column)
    return text


def _wrap(line: str, width: int) -> list[str]:
    """A line longer than ``width`` cut into lines that go on under its text, 2 columns in."""
    if len(line) <= width:
        return [line]
    label = LABEL.match(line)
    start = label.end() if label else len(line) - len(line.lstrip(" "))
    lines = textwrap.wrap(line[start:], width - start, subsequent_indent="  ")
    return [line[:start] + lines[0]] + [" " * start + rest for rest in lines[1:]]


class Report:
    """Collects the lines a demo prints, and writes them to ``report.txt`` in ``out``."""

    def __init__(self, out: str, echo: Callable[[str], Any] = print):
        os.makedirs(out, exist_ok=True)
        self.out, self.echo, self.lines = out, echo, []
        self.start = time.monotonic()

    def __call__(self, text: str = "") -> None:
        """Print text, line by line, and keep it for the report."""
        for line in text.split("\n"):
            self.lines.append(line)
            self.echo(line)

    def path(self, name: str) -> str:
        """A file name inside the output folder."""
        return os.path.join(self.out, name)

    def save(self, timed: bool = True) -> str:
        """Write report.txt (ending with the run time if ``timed``) and return its path."""
        if timed:
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
