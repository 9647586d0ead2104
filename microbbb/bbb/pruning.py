"""Weight pruning by signal-to-noise ratio (Blundell et al. 2015, section 5.1).

The signal-to-noise ratio of a weight is ``|mu| / sigma``. Weights with a low SNR are the
ones the posterior is least sure are away from zero; removing them first costs little.
``prune(model, fraction)`` returns a copy in which exactly ``round(fraction * n)`` of the n
weights (weight matrices only; biases are kept, as in the paper) are set to zero, lowest
SNR first (ties broken by position, so the count is exact). A pruned weight is zero in
every mode: its mu is set to 0 and a mask removes its noise.
"""

from __future__ import annotations

import copy

import numpy as np

from ..engine.extend import writing
from .layers import BayesianMLP


def snr(model: BayesianMLP) -> list[np.ndarray]:
    """``|mu| / sigma`` of every weight, one array per layer (shape of ``weight_mu``)."""
    return [np.abs(layer.weight_mu.data) / layer.weight_sigma() for layer in model.layers]


def prune(model: BayesianMLP, fraction: float) -> BayesianMLP:
    """A copy of ``model`` with the lowest-SNR ``fraction`` of its weights set to zero."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    ratios = snr(model)
    flat = np.concatenate([r.ravel() for r in ratios])
    n_remove = int(round(fraction * flat.size))
    removed = np.zeros(flat.size, dtype=bool)
    removed[np.argsort(flat, kind="stable")[:n_remove]] = True
    pruned = copy.deepcopy(model)  # without the last forward pass's graph (see the layers)
    start = 0
    for layer, ratio in zip(pruned.layers, ratios, strict=True):
        mask = ~removed[start : start + ratio.size].reshape(ratio.shape)
        start += ratio.size
        keep = mask.astype(layer.weight_mu.dtype)
        if layer.weight_mask is not None:
            keep *= layer.weight_mask
        with writing(layer.weight_mu):
            layer.weight_mu.data *= keep
        layer.weight_mask = keep
    return pruned


def pruned_fraction(model: BayesianMLP) -> float:
    """The fraction of weights that are masked out."""
    total = sum(layer.weight_mu.size for layer in model.layers)
    removed = sum(
        int((layer.weight_mask == 0).sum())
        for layer in model.layers
        if layer.weight_mask is not None
    )
    return removed / total
