"""Save/load (microbbb/bbb/io.py) and SNR pruning (microbbb/bbb/pruning.py)."""

import json
import zipfile

import numpy as np
import pytest

from microbbb.bbb import (
    BayesianMLP,
    Bernoulli,
    Categorical,
    Gaussian,
    GaussianPrior,
    ModelFileError,
    ScaleMixturePrior,
    prune,
    pruned_fraction,
    snr,
)

X = np.random.default_rng(0).standard_normal((10, 3))


def _model(**kwargs):
    options = dict(likelihood=Gaussian(0.4, learn_sigma=True), seed=2, rho_init=-2.0)
    options.update(kwargs)
    model = BayesianMLP([3, 6, 1], activation="tanh", **options)
    for p in model.parameters():  # make every parameter non-trivial
        p.data += np.random.default_rng(7).standard_normal(p.shape) * 0.1
    return model


# --- save and load -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"prior": GaussianPrior(0.3), "likelihood": Bernoulli()},
        {"prior": ScaleMixturePrior(0.25, 0.5, 1e-3), "dtype": np.float32},
    ],
)
def test_round_trip_is_bit_exact(tmp_path, kwargs):
    model = _model(**kwargs)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = BayesianMLP.load(path)
    assert repr(loaded) == repr(model)
    for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters(), strict=True):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(
        model.forward(X, mode="mean").data, loaded.forward(X, mode="mean").data
    )
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed away


def test_a_file_is_written_without_pickles(tmp_path):
    path = tmp_path / "model.npz"
    _model().save(path)
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
    assert meta["format"] == "microbbb.BayesianMLP" and meta["sizes"] == [3, 6, 1]


def _corrupt(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    good = tmp_path / "good.npz"
    _model().save(good)
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:300])
    elif kind == "text":
        path.write_text("this is not a model")
    elif kind == "pickle":
        with open(path, "wb") as file:  # a pickled object array: must never be unpickled
            np.save(file, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "foreign_npz":
        np.savez(path, weights=np.ones(3))
    elif kind == "other_format":
        np.savez(path, metadata=np.array(json.dumps({"format": "something.else"})))
    elif kind == "newer_version":
        with np.load(good) as data:
            arrays = dict(data)
        meta = json.loads(str(arrays["metadata"]))
        meta["version"] = 99
        arrays["metadata"] = np.array(json.dumps(meta))
        np.savez(path, **arrays)
    elif kind == "wrong_shape":
        with np.load(good) as data:
            arrays = dict(data)
        arrays["layers.0.weight_mu"] = np.ones((2, 2))
        np.savez(path, **arrays)
    elif kind == "zip_of_junk":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.npy", b"junk")
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated", "not a readable microbbb file"),
        ("text", "not a readable microbbb file"),
        ("pickle", "not a readable microbbb file"),
        ("foreign_npz", "no microbbb metadata"),
        ("other_format", "holds 'something.else'"),
        ("newer_version", "format version 99"),
        ("wrong_shape", r"layers.0.weight_mu: the file has float64\(2, 2\)"),
        ("zip_of_junk", "not a readable microbbb file|metadata is not valid JSON"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, kind, message):
    with pytest.raises(ModelFileError, match=message):
        BayesianMLP.load(_corrupt(tmp_path, kind))


# --- pruning -----------------------------------------------------------------------------


def test_snr_is_abs_mu_over_sigma():
    model = _model()
    for layer, ratio in zip(model.layers, snr(model), strict=True):
        sigma = np.logaddexp(0, layer.weight_rho.data)
        np.testing.assert_allclose(ratio, np.abs(layer.weight_mu.data) / sigma)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.75, 0.9, 0.98, 1.0])
def test_prune_removes_exactly_the_lowest_snr_fraction(fraction):
    model = BayesianMLP([3, 6, 4], likelihood=Categorical(), seed=0, rho_init=-2.0)
    n = sum(layer.weight_mu.size for layer in model.layers)
    ratios = np.concatenate([r.ravel() for r in snr(model)])
    pruned = prune(model, fraction)
    n_removed = round(fraction * n)
    assert pruned_fraction(pruned) == n_removed / n
    removed = np.concatenate([(layer.weight_mask == 0).ravel() for layer in pruned.layers])
    if 0 < n_removed < n:
        assert ratios[removed].max() <= ratios[~removed].min()
    # pruned weights are exactly zero in every mode; the original model is untouched
    pruned(X)
    for layer in pruned.layers:
        assert (layer.weight.data[layer.weight_mask == 0] == 0).all()
    assert all(layer.weight_mask is None for layer in model.layers)


def test_pruning_survives_save_and_load(tmp_path):
    pruned = prune(_model(), 0.5)
    pruned.save(tmp_path / "pruned.npz")
    assert pruned_fraction(BayesianMLP.load(tmp_path / "pruned.npz")) == 0.5


def test_prune_after_a_mean_mode_pass():
    model = _model()
    model.predict(X, mode="mean")  # layer.weight is then mu itself
    pruned = prune(model, 0.5)
    assert pruned_fraction(pruned) == 0.5
    assert model.layers[0].weight_mu is not None and model.layers[0].weight_mask is None


def test_a_loaded_model_samples_like_the_saved_one(tmp_path):
    model = _model()
    model.save(tmp_path / "model.npz")
    loaded = BayesianMLP.load(tmp_path / "model.npz")
    a = model.predict(X, n_samples=5)
    b = loaded.predict(X, n_samples=5)
    np.testing.assert_array_equal(a.mean, b.mean)  # same generator state, same eps
