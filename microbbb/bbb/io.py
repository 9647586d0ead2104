"""Files: saving and loading ``BayesianMLP`` models, and training checkpoints.

A model file is an ``.npz`` archive holding every parameter as a numpy array plus a JSON
string ``metadata`` (format name and version, sizes, activation, prior, likelihood,
dtype, gradient estimator; a file without an estimator, written before there was a choice,
is read as "reparam"). A checkpoint adds the optimiser's state, the random generators'
states, the epoch and the history, so that ``fit(..., resume=True)`` continues
bit-identically. Every write is atomic: a temporary file, then a rename.

Reading trusts nothing in the file. Pickles are never read, so loading never executes
anything. Each member's .npy header (shape, dtype) is read and checked against the bytes
the member holds before any of its data is read, so a forged header cannot make numpy
allocate terabytes. Then every array is checked against the model: names (none missing,
none unknown), shapes and dtypes, parameters finite, pruning masks of the weights' shape
and holding only 0 and 1; only then is anything written into the model. A file that
fails any check (corrupt, truncated, forged, foreign, another version, a plain .npy)
raises ``ModelFileError`` saying what is wrong.

Parameters with NaN or inf are refused, not loaded with a warning: such a model computes
NaN for every input, and a warning is easily missed while the NaN travels far from its
cause. ``save`` refuses to write them for the same reason (the file could not be loaded).
"""

from __future__ import annotations

import json
import math
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
NPY_MAGIC = b"\x93NUMPY"  # how every .npy file (and every member of an .npz) begins
DEFLATE_MAX_RATIO = 1032  # deflate never expands data more than this


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
        "estimator": model.estimator,
        "rho_init": model.rho_init,
        "mu_init": model.mu_init,
        "seed": model.seed,
        "rng": model.rng.bit_generator.state,  # so sampling after load continues the same
    }


def model_arrays(model: BayesianMLP) -> dict[str, np.ndarray]:
    """Every parameter by its dotted name, plus pruning masks; ValueError (naming them)
    if a parameter holds NaN or inf: such a file could not be loaded."""
    arrays = {name: p.data for name, p in model.named_parameters()}
    for name, value in arrays.items():
        _check_finite(value, f"parameter {name}", ValueError)
    for i, layer in enumerate(model.layers):
        if layer.weight_mask is not None:
            arrays[f"layers.{i}.weight_mask"] = layer.weight_mask
    return arrays


def set_model_arrays(model: BayesianMLP, arrays: dict[str, np.ndarray]) -> None:
    """Copy saved arrays into the model's parameters and masks, after checking them all
    (``check_model_arrays``): a refused file leaves the model as it was."""
    write_model_arrays(model, check_model_arrays(model, arrays))


def check_model_arrays(model: BayesianMLP, arrays: dict[str, np.ndarray]) -> dict:
    """The arrays to write into ``model`` (pruning masks in the model's dtype, None for an
    unpruned layer), or ``ModelFileError`` naming the first array that does not fit."""
    params = dict(model.named_parameters())
    masks = {f"layers.{i}.weight_mask": layer for i, layer in enumerate(model.layers)}
    missing = sorted(set(params) - set(arrays))
    if missing:
        raise ModelFileError(f"the file lacks parameters {missing}")
    unknown = sorted(set(arrays) - set(params) - set(masks))
    if unknown:
        raise ModelFileError(f"the file has arrays this model does not have: {unknown}")
    for name, p in params.items():
        value = arrays[name]
        if value.shape != p.shape or value.dtype != p.dtype:
            raise ModelFileError(
                f"parameter {name}: the file has {value.dtype}{value.shape}, the model"
                f" expects {p.dtype}{p.shape}"
            )
        _check_finite(value, f"parameter {name}", ModelFileError)
    checked = {name: arrays[name] for name in params}
    for i, (name, layer) in enumerate(masks.items()):
        mask = arrays.get(name)
        checked[name] = None if mask is None else _checked_mask(name, mask, i, layer.weight_mu)
    return checked


def write_model_arrays(model: BayesianMLP, checked: dict) -> None:
    """Write arrays checked by ``check_model_arrays`` into the model (through the engine:
    a recorded op may have made a parameter's array read-only)."""
    for name, p in model.named_parameters():
        with writing(p):
            p.data[...] = checked[name]
    for i, layer in enumerate(model.layers):
        layer.weight_mask = checked[f"layers.{i}.weight_mask"]


def _checked_mask(name: str, mask: np.ndarray, i: int, weight_mu: Any) -> np.ndarray:
    """A pruning mask of the weights' shape holding only 0 and 1, in their dtype."""
    if mask.shape != weight_mu.shape:
        raise ModelFileError(
            f"{name}: the pruning mask of layer {i} has shape {mask.shape}, but the layer's"
            f" weights have shape {weight_mu.shape}. A mask of another shape would be"
            " broadcast (a (1,) mask of 0 would remove every weight)."
        )
    if mask.dtype.kind not in "biuf" or not np.isin(mask, (0, 1)).all():
        odd = mask[~np.isin(mask, (0, 1))] if mask.dtype.kind in "biuf" else mask.ravel()
        raise ModelFileError(
            f"{name}: a pruning mask holds only 0 (removed) and 1 (kept); this one holds"
            f" {np.unique(odd)[:5].tolist()}"
        )
    return mask.astype(weight_mu.dtype)


def _check_finite(value: np.ndarray, what: str, error: type[Exception]) -> None:
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        n_bad = int(value.size - np.isfinite(value).sum())
        raise error(
            f"{what} holds NaN or inf ({n_bad} of its {value.size} values): it comes from a"
            " run that diverged, and would make every number computed from it NaN."
            " Refused (see microbbb.bbb.io)."
        )


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
    arrays = read_npz(path)
    if "metadata" not in arrays:
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


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the .npz archive at ``path``, by name. Each member's .npy header is
    checked (``_member_header``) before any data is read; pickles are never read."""
    with open(path, "rb") as file:  # a missing file is a FileNotFoundError, as usual
        if file.read(len(NPY_MAGIC)) == NPY_MAGIC:
            raise ModelFileError(
                f"{path} is a single numpy array (an .npy file), not a microbbb model file"
                " (an .npz archive written by model.save or a checkpoint)"
            )
    try:
        with zipfile.ZipFile(path) as archive:
            size = os.path.getsize(path)
            for info in archive.infolist():
                _member_header(archive, info, size)
            arrays = {}
            for info in archive.infolist():
                with archive.open(info) as member:
                    arrays[info.filename[:-4]] = np.lib.format.read_array(member)
            return arrays
    except ModelFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise ModelFileError(
            f"{path} is not a readable microbbb file (expected an .npz archive written by"
            f" microbbb): {error}"
        ) from error


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int) -> None:
    """Refuse a member that is not an .npy array, holds Python objects, or whose header
    claims more data than the member holds (or the member more than the file can)."""
    name = info.filename
    if not name.endswith(".npy"):
        raise ModelFileError(f"member {name} of the archive is not a numpy array (.npy)")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0)):
            raise ModelFileError(f"member {name}: .npy format version {version} is not read")
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, _, dtype = read_header(member)
        header_size = member.tell()
    if dtype.hasobject:
        raise ModelFileError(f"member {name} holds Python objects (pickles): never read")
    claimed = math.prod(shape) * dtype.itemsize
    stored = info.compress_type == zipfile.ZIP_STORED
    most = file_size if stored else DEFLATE_MAX_RATIO * info.compress_size
    if claimed > info.file_size - header_size or info.file_size > most:
        held = info.file_size - header_size
        whole = f", more than the whole file ({file_size} bytes)" if stored else ""
        raise ModelFileError(
            f"member {name} claims a {dtype} array of shape {shape} ({claimed} bytes) but"
            f" holds {held} bytes{whole}: the file is corrupt or was edited"
        )


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
            estimator=meta.get("estimator", "reparam"),
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
    (its lists are extended); return the number of epochs it had completed.

    Everything is checked before anything is restored: a refused checkpoint
    (``ModelFileError``) leaves all four as they were."""
    arrays, meta = load_arrays(path, "microbbb.checkpoint")
    if meta.get("optimizer") != type(optimizer).__name__:
        raise ModelFileError(
            f"{path}: the checkpoint was written with {meta.get('optimizer')}, not"
            f" {type(optimizer).__name__}"
        )
    unknown = sorted(k for k in arrays if not k.startswith(("model/", "optimizer/")))
    if unknown:
        raise ModelFileError(f"{path}: the checkpoint has arrays it should not: {unknown}")
    checked = check_model_arrays(model, {k[6:]: v for k, v in arrays.items() if k[:6] == "model/"})
    state = {k[10:]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    for key, value in state.items():
        _check_finite(value, f"optimizer state optimizer/{key}", ModelFileError)
    epoch, rng_states = _checkpoint_description(path, meta, history, (model.rng, shuffle_rng))
    try:
        optimizer.load_state_dict(state)  # checks every array before it changes anything
    except (KeyError, ValueError, TypeError) as error:
        raise ModelFileError(
            f"{path}: the checkpoint's optimiser state does not fit this optimiser ({error})"
        ) from error
    write_model_arrays(model, checked)
    model.rng.bit_generator.state, shuffle_rng.bit_generator.state = rng_states
    for key, values in meta["history"].items():
        getattr(history, key).extend(values)
    return epoch


def _checkpoint_description(path: Any, meta: dict, history: Any, generators: tuple) -> tuple:
    """The epoch and the two generators' states of a checkpoint, each checked (on copies
    of the generators) along with the history's names, or ``ModelFileError``."""
    try:
        epoch = meta["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch {epoch!r} is not a count of epochs")
        states = (meta["model_rng"], meta["shuffle_rng"])
        for generator, state in zip(generators, states, strict=True):
            type(generator.bit_generator)().state = state  # raises if it does not fit
        for key, values in meta["history"].items():
            if not isinstance(getattr(history, key), list) or not isinstance(values, list):
                raise ValueError(f"history {key!r} is not a list")
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise ModelFileError(
            f"{path}: the checkpoint's description is incomplete or invalid ({error})"
        ) from error
    return epoch, states
