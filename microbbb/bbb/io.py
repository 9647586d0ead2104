"""Files: saving and loading ``BayesianMLP`` models, and training checkpoints.

A model file is an ``.npz`` archive holding every parameter as a numpy array plus a JSON
string ``metadata`` (format name and version, sizes, activation, prior, likelihood,
dtype). A checkpoint adds the optimiser's state, the random generators' states, the epoch
and the history, so that ``fit(..., resume=True)`` continues bit-identically. Files are
read with ``allow_pickle=False``, so loading never executes anything; a file that is not
a microbbb file (corrupt, truncated, foreign, another version) raises ``ModelFileError``
saying what is wrong. Every write is atomic: a temporary file, then a rename.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.extend import writing
from .likelihoods import likelihood_from_config
from .priors import prior_from_config

if TYPE_CHECKING:  # for type hints only: layers imports this module
    from ..optim import Optimizer
    from .layers import BayesianMLP

FORMAT = "microbbb.BayesianMLP"
VERSION = 1


class ModelFileError(ValueError):
    """A file could not be read as a microbbb model or checkpoint."""


def model_metadata(model: BayesianMLP) -> dict[str, Any]:
    """The JSON-able description of a model's architecture."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "sizes": model.sizes,
        "activation": model.activation,
        "prior": model.prior.config(),
        "likelihood": model.likelihood.config(),
        "dtype": str(model.dtype),
        "rho_init": model.rho_init,
        "mu_init": model.mu_init,
        "seed": model.seed,
        "rng": model.rng.bit_generator.state,  # so sampling after load continues the same
    }


def model_arrays(model: BayesianMLP) -> dict[str, np.ndarray]:
    """Every parameter by its dotted name, plus pruning masks."""
    arrays = {name: p.data for name, p in model.named_parameters()}
    for i, layer in enumerate(model.layers):
        if layer.weight_mask is not None:
            arrays[f"layers.{i}.weight_mask"] = layer.weight_mask
    return arrays


def set_model_arrays(model: BayesianMLP, arrays: dict[str, np.ndarray]) -> None:
    """Copy saved arrays into the model's parameters, checking names and shapes."""
    params = dict(model.named_parameters())
    missing = sorted(set(params) - set(arrays))
    if missing:
        raise ModelFileError(f"the file lacks parameters {missing}")
    for name, p in params.items():
        value = arrays[name]
        if value.shape != p.shape or value.dtype != p.dtype:
            raise ModelFileError(
                f"parameter {name}: the file has {value.dtype}{value.shape}, the model"
                f" expects {p.dtype}{p.shape}"
            )
        with writing(p):  # the engine made it read-only if a recorded op used it
            p.data[...] = value
    for i, layer in enumerate(model.layers):
        mask = arrays.get(f"layers.{i}.weight_mask")
        layer.weight_mask = None if mask is None else mask.astype(layer.weight_mu.dtype)


def save(model: BayesianMLP, path: str | os.PathLike) -> None:
    """Write the model to ``path`` (.npz, atomically)."""
    arrays = dict(model_arrays(model))
    arrays["metadata"] = np.array(json.dumps(model_metadata(model)))
    atomic_savez(path, arrays)


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` into a temporary file, then rename it to ``path``: readers see the old
    file or the new one, never half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic on POSIX
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_arrays(path: str | os.PathLike, expected_format: str) -> tuple[dict, dict]:
    """Read the arrays and the metadata of a microbbb file, or raise ``ModelFileError``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise ModelFileError(
            f"{path} is not a readable microbbb file (expected an .npz archive written by"
            f" microbbb): {error}"
        ) from error
    if not isinstance(arrays, dict) or "metadata" not in arrays:
        raise ModelFileError(f"{path} has no microbbb metadata: it is not a microbbb file")
    try:
        meta = json.loads(str(arrays.pop("metadata")))
    except (json.JSONDecodeError, TypeError) as error:
        raise ModelFileError(f"{path}: its metadata is not valid JSON ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != expected_format:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFileError(f"{path} holds {found!r}, not a {expected_format!r}")
    if meta.get("version") != VERSION:
        raise ModelFileError(
            f"{path} is format version {meta.get('version')}; this microbbb reads {VERSION}"
        )
    return arrays, meta


def model_from_metadata(meta: dict[str, Any], model_class: type) -> BayesianMLP:
    """An untrained ``model_class`` (``BayesianMLP``) with the architecture ``meta`` describes."""
    try:
        return model_class(
            meta["sizes"],
            activation=meta["activation"],
            prior=prior_from_config(meta["prior"]),
            likelihood=likelihood_from_config(meta["likelihood"]),
            mu_init=meta["mu_init"],
            rho_init=meta["rho_init"],
            dtype=meta["dtype"],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"the model description is incomplete or invalid: {error}") from error


def load(path: str | os.PathLike, model_class: type) -> BayesianMLP:
    """Read a model written by ``save`` as a ``model_class`` (``BayesianMLP``); the
    parameters are restored bit for bit."""
    arrays, meta = load_arrays(path, FORMAT)
    model = model_from_metadata(meta, model_class)
    set_model_arrays(model, arrays)
    try:
        model.seed = meta.get("seed")
        model.rng.bit_generator.state = meta["rng"]
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path}: the saved random generator is invalid ({error})") from error
    return model


# --- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike,
    model: BayesianMLP,
    optimizer: Optimizer,
    shuffle_rng: np.random.Generator,
    history: Any,
    epoch: int,
) -> None:
    """Save everything needed to continue training exactly, atomically (temp + rename)."""
    arrays = {f"model/{k}": v for k, v in model_arrays(model).items()}
    arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    meta = {
        "format": "microbbb.checkpoint",
        "version": 1,
        "epoch": epoch,
        "model": model_metadata(model),
        "optimizer": type(optimizer).__name__,
        "model_rng": model.rng.bit_generator.state,
        "shuffle_rng": shuffle_rng.bit_generator.state,
        "history": history.as_dict(),
    }
    arrays["metadata"] = np.array(json.dumps(meta))
    atomic_savez(path, arrays)


def load_checkpoint(
    path: str | os.PathLike,
    model: BayesianMLP,
    optimizer: Optimizer,
    shuffle_rng: np.random.Generator,
    history: Any,
) -> int:
    """Restore a checkpoint into ``model``, ``optimizer``, ``shuffle_rng`` and ``history``
    (its lists are extended); return the number of epochs it had completed."""
    arrays, meta = load_arrays(path, "microbbb.checkpoint")
    if meta["optimizer"] != type(optimizer).__name__:
        raise ModelFileError(
            f"{path}: the checkpoint was written with {meta['optimizer']}, not"
            f" {type(optimizer).__name__}"
        )
    set_model_arrays(model, {k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    optimizer.load_state_dict({k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")})
    model.rng.bit_generator.state = meta["model_rng"]
    shuffle_rng.bit_generator.state = meta["shuffle_rng"]
    for key, values in meta["history"].items():
        getattr(history, key).extend(values)
    return int(meta["epoch"])
