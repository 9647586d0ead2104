"""Save/load (microbbb/bbb/io.py) and SNR pruning (microbbb/bbb/pruning.py)."""

import io
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
    elif kind == "pickle_member":  # the same inside an archive
        with zipfile.ZipFile(path, "w") as archive:
            with archive.open("weights.npy", "w") as member:
                np.save(member, np.array([{"a": 1}], dtype=object), allow_pickle=True)
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
    elif kind in CHANGED_ARRAYS:
        name, value = CHANGED_ARRAYS[kind]
        _rewrite(good, path, {name: value})
    elif kind == "npy":
        path = tmp_path / "weights.npy"
        np.save(path, np.ones((3, 6)))
    elif kind == "huge_header":  # 10^12 float64 claimed by a member that holds 144 bytes
        _forge_header(good, path, "layers.0.weight_mu.npy", (10**6, 10**6))
    elif kind == "huge_zip_entry":  # the zip directory says the member is huge, too
        _forge_header(good, path, "layers.0.weight_mu.npy", (10**6, 10**6), size=10**13)
    return path


def _rewrite(source, path, changes):
    """``source`` saved again to ``path`` with some arrays replaced (None: removed)."""
    with np.load(source) as data:
        arrays = dict(data)
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    np.savez(path, **arrays)


def _forge_header(source, path, member, shape, size=None):
    """Copy the archive ``source`` to ``path``, giving ``member`` an .npy header that claims
    ``shape`` over the member's real data (and, with ``size``, a zip entry that claims
    ``size`` bytes)."""
    with zipfile.ZipFile(source) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    original = io.BytesIO(members[member])
    np.lib.format.read_magic(original)
    _, _, dtype = np.lib.format.read_array_header_1_0(original)
    header = io.BytesIO()
    header_data = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                   "shape": shape}  # fmt: skip
    np.lib.format.write_array_header_1_0(header, header_data)
    members[member] = header.getvalue() + original.read()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    if size is not None:  # patch the sizes in the central directory and the local header
        raw = bytearray(path.read_bytes())
        name = member.encode()
        for signature, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
            at = 0
            while (at := raw.find(signature, at)) >= 0:
                name_at = at + (46 if signature == b"PK\x01\x02" else 30)
                if raw[name_at : name_at + len(name)] == name:
                    raw[at + offset : at + offset + 4] = (size % 2**32).to_bytes(4, "little")
                at += 4
        path.write_bytes(bytes(raw))


CHANGED_ARRAYS = {
    "nan_parameter": ("layers.0.weight_rho", np.full((3, 6), np.nan)),
    "inf_parameter": ("layers.1.bias_mu", np.array([np.inf])),
    "unknown_array": ("layers.5.weight_mask", np.ones((6, 1))),
    "missing_parameter": ("layers.1.weight_mu", None),
}


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated", "not a readable microbbb file"),
        ("text", "not a readable microbbb file"),
        ("pickle", r"pickle\.npz is a single numpy array \(an \.npy file\)"),
        ("pickle_member", r"member weights\.npy holds Python objects \(pickles\): never read"),
        ("foreign_npz", "no microbbb metadata"),
        ("other_format", "holds 'something.else'"),
        ("newer_version", "format version 99"),
        ("wrong_shape", r"layers.0.weight_mu: the file has float64\(2, 2\)"),
        ("zip_of_junk", "not a readable microbbb file|metadata is not valid JSON"),
        (
            "npy",
            r"weights\.npy is a single numpy array \(an \.npy file\), not a microbbb"
            r" model file",
        ),
        (
            "huge_header",
            r"member layers\.0\.weight_mu\.npy claims a float64 array of shape"
            r" \(1000000, 1000000\) \(8000000000000 bytes\) but holds 144 bytes",
        ),
        (
            "huge_zip_entry",
            r"member layers\.0\.weight_mu\.npy claims .* more than the whole"
            r" file",
        ),
        (
            "nan_parameter",
            r"parameter layers\.0\.weight_rho holds NaN or inf \(18 of its 18"
            r" values\).*diverged",
        ),
        ("inf_parameter", r"parameter layers\.1\.bias_mu holds NaN or inf \(1 of its 1"),
        ("unknown_array", r"arrays this model does not have: \['layers\.5\.weight_mask'\]"),
        ("missing_parameter", r"the file lacks parameters \['layers\.1\.weight_mu'\]"),
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


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros(1), r"layers\.0\.weight_mask: the pruning mask of layer 0 has shape \(1,\),"
                      r" but the layer's weights have shape \(3, 6\)"),
        (np.zeros(6), r"layer 0 has shape \(6,\), but the layer's weights have shape \(3, 6\)"),
        (np.full((3, 6), 0.5), r"layers\.0\.weight_mask: a pruning mask holds only 0 \(removed\)"
                               r" and 1 \(kept\); this one holds \[0\.5\]"),
        (np.where(np.eye(3, 6) > 0, np.nan, 1.0), r"holds only 0 .* this one holds \[nan\]"),
        (np.full((3, 6), 2), r"this one holds \[2\]"),
    ],
)  # fmt: skip
def test_a_bad_pruning_mask_is_refused_not_broadcast(tmp_path, mask, message):
    good, bad = tmp_path / "pruned.npz", tmp_path / "bad.npz"
    prune(_model(), 0.5).save(good)
    _rewrite(good, bad, {"layers.0.weight_mask": mask})
    with pytest.raises(ModelFileError, match=message):
        BayesianMLP.load(bad)


def test_a_model_with_nan_parameters_is_not_saved(tmp_path):
    model = _model()
    model.layers[1].weight_rho.data[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"parameter layers\.1\.weight_rho holds NaN or inf"):
        model.save(tmp_path / "model.npz")
    assert not list(tmp_path.iterdir())  # nothing written, no temporary file left


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"optimizer/m.0": np.zeros(1)}, r"optimiser state does not fit this optimiser \(m\.0"
                                         r" has shape \(1,\), but parameter 0 has shape \(3, 6\)"),
        ({"optimizer/v.2": np.full(6, np.inf)}, r"optimizer state optimizer/v\.2 holds NaN or"
                                                r" inf \(6 of its 6 values\)"),
        ({"model/layers.0.weight_mask": np.ones(3)}, r"pruning mask of layer 0 has shape \(3,\)"),
        ({"model/layers.0.bias_rho": np.full(6, np.nan)}, r"parameter layers\.0\.bias_rho holds"
                                                          r" NaN or inf"),
    ],
)  # fmt: skip
def test_a_refused_checkpoint_leaves_the_model_and_optimizer_untouched(tmp_path, changes, message):
    from microbbb.bbb import save_checkpoint
    from microbbb.bbb.io import load_checkpoint
    from microbbb.bbb.train import History
    from microbbb.optim import Adam

    model = _model()
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    save_checkpoint(good, model, Adam(model.parameters(), lr=0.01), np.random.default_rng(0),
                    History(), 3)  # fmt: skip
    _rewrite(good, bad, changes)
    fresh = _model(seed=5)
    optimizer = Adam(fresh.parameters(), lr=0.01)
    before = [p.data.copy() for p in fresh.parameters()]
    with pytest.raises(ModelFileError, match=message):
        load_checkpoint(bad, fresh, optimizer, np.random.default_rng(1), History())
    assert all(np.array_equal(p.data, b) for p, b in zip(fresh.parameters(), before, strict=True))
    assert optimizer.steps == 0 and not any(m.any() for m in optimizer.m)
