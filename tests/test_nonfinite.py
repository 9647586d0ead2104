"""numpy's floating-point warnings are the engine's (microbbb/engine/nonfinite.py): no numpy
RuntimeWarning escapes from engine code; an op that makes NaN or inf gives one microbbb
NonFiniteWarning naming the op, once per op and line; anomaly mode raises instead.

These tests must not use pytest's filterwarnings marks or warnings.simplefilter: they
would shadow the filter under test. They record with catch_warnings(record=True) only."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import microbbb as mb
from microbbb.engine.nonfinite import NonFiniteWarning


def recorded(action) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        action()
    return list(caught)


def test_an_overflowing_op_warns_once_naming_itself_and_numpy_stays_quiet():
    x = mb.tensor([1.0, 1000.0], requires_grad=True)
    results = []

    def steps() -> None:
        for _ in range(5):  # five training steps: one warning, not five
            results.append(mb.exp(x))

    caught = recorded(steps)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    (warning,) = [w for w in caught if w.category is NonFiniteWarning]
    assert "op 'exp'" in str(warning.message) and "detect_anomaly()" in str(warning.message)
    assert warning.filename == __file__  # the user's line, not an engine file
    assert results[-1].data[1] == np.inf  # the numbers go on as numpy gives them


def test_a_vjp_that_makes_inf_warns_once_in_backward():
    def step() -> None:
        x = mb.tensor([0.0, 4.0], requires_grad=True)
        mb.sqrt(x).sum().backward()  # d sqrt(x)/dx = 1 / (2 sqrt x): inf at 0
        assert x.grad[0] == np.inf and x.grad[1] == 0.25

    caught = recorded(step)
    assert [str(w.message).split(";")[0] for w in caught] == [
        "the backward of op 'sqrt' made NaN or inf (numpy: overflow, division by zero or an"
        " invalid value)"
    ]


def test_anomaly_mode_raises_and_nothing_warns():
    x = mb.tensor([1000.0], requires_grad=True)

    def step() -> None:
        with mb.detect_anomaly(), pytest.raises(mb.AnomalyError, match="op 'exp'"):
            mb.exp(x)

    assert recorded(step) == []


def test_a_tape_program_run_warns_once_and_numpy_stays_quiet():
    x = mb.tensor([1.0, 2.0], requires_grad=True)
    loss = mb.exp(x * 1.0).sum()
    program = mb.TapeProgram(loss)
    with mb.no_grad():
        x.copy_([1.0, 1000.0])  # the next run overflows

    def runs() -> None:
        for _ in range(3):
            x.grad = None
            program.run()

    caught = recorded(runs)
    assert [w.category for w in caught] == [NonFiniteWarning]
    assert "recorded op" in str(caught[0].message)
    assert loss.item() == np.inf and x.grad[1] == np.inf  # computed as numpy gives them


def test_training_that_diverges_prints_no_numpy_warning_from_engine_files():
    from microbbb.bbb import BayesianMLP, Gaussian, TrainingDiverged, fit
    from microbbb.optim import SGD

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 3)), rng.standard_normal(100)
    model = BayesianMLP([3, 32, 1], likelihood=Gaussian(1.0), seed=0)

    def train() -> None:
        with pytest.raises(TrainingDiverged):
            fit(model, x, y, epochs=50, optimizer=SGD(model.parameters(), lr=1.0), progress=False)

    caught = recorded(train)
    engine = [w for w in caught if "microbbb/engine" in w.filename.replace("\\", "/")]
    assert not [w for w in engine if issubclass(w.category, RuntimeWarning)], engine
