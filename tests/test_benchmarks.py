"""The benchmark scripts still run, and their built-in checks still pass.

benchmarks/bbb_step.py first checks, with the same eps, that the hand-written numpy step,
the LossProgram and torch compute microbbb's loss and gradients (float64 rtol 1e-9; the
program exactly), and exits non-zero otherwise; a tiny --scale keeps this run to seconds.
No timing is asserted here: timings come from full runs of the scripts, not from tests.
The four implementations are also imported directly from benchmarks/bbb_step_impls.py and
compared in float64, without the harness.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bbb_step_checks_and_reports_every_implementation(dtype):
    out = run(
        str(BENCHMARKS / "bbb_step.py"),
        *("--sizes", "3-32-1", "64-100-10", "--dtype", dtype, "--scale", "0.01"),
        *("--growth", "none"),
    )
    assert "mbb program 0," in out  # the program equals eager mode exactly
    # threads were pinned before numpy and torch loaded: every pool reported runs 1 thread
    assert "torch.get_num_threads()=1" in out
    assert set(re.findall(r"(\d+) thread\(s\)", out)) <= {"1"}, out
    for size in ("3-32-1 (100)", "64-100-10 (128)"):
        rows = [line for line in out.splitlines() if line.startswith(size)]
        assert len(rows) == 2, out  # one row in the time table, one in the memory table
        assert all(f" {dtype} " in row for row in rows)


def test_ops_benchmark_runs():
    out = run(str(BENCHMARKS / "ops.py"), "--repeats", "20")
    assert "matmul 128x128, forward+backward" in out


def test_jvp_benchmark_runs():
    # it checks, before timing, that mb.jvp agrees with both of torch's jvps (rtol 1e-10)
    out = run(str(BENCHMARKS / "jvp.py"), "--repeats", "5")
    assert out.count("microbbb jvp (double VJP)") == 2 and "torch.func.jvp (tangent)" in out


# ----------------------------------------------------------------------------- the impls

RTOL, FLOOR = 1e-9, 1e-12  # bbb_step.py's float64 check: rtol |ref| + FLOOR max|ref|


@functools.cache
def load_impls():
    path = BENCHMARKS / "bbb_step_impls.py"  # benchmarks/ is not a package
    spec = importlib.util.spec_from_file_location("bbb_step_impls", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_float64():
    """The four implementations on the script's smallest size, microbbb's loss and gradients
    for one eps, and that eps."""
    impls = load_impls().build([3, 32, 1], 100, "gaussian", np.dtype("float64"))
    eps = impls["hand numpy"].draw_eps()
    ref_loss, ref_grads = impls["microbbb"].loss_and_grads(eps)
    return impls, eps, ref_loss, ref_grads


def assert_agree(name, loss, grads, ref_loss, ref_grads):
    np.testing.assert_allclose(loss, ref_loss, rtol=RTOL, atol=0, err_msg=f"{name}: loss")
    assert len(grads) == len(ref_grads), name
    names = load_impls().NAMES
    for i, (layer, ref_layer) in enumerate(zip(grads, ref_grads, strict=True)):
        for n, g, ref in zip(names, layer, ref_layer, strict=True):
            where = f"{name}: layer{i + 1}.{n}"
            assert (g.shape, g.dtype) == (ref.shape, ref.dtype), where
            atol = FLOOR * float(np.abs(ref).max())
            np.testing.assert_allclose(g, ref, rtol=RTOL, atol=atol, err_msg=where)


def test_the_four_implementations_agree_in_float64():
    impls, eps, ref_loss, ref_grads = tiny_float64()
    assert list(impls) == ["hand numpy", "microbbb", "mbb program", "torch"]
    assert np.isfinite(ref_loss)
    assert len(ref_grads) == 2 and all(len(layer) == 4 for layer in ref_grads)
    assert all(np.abs(g).max() > 0 for layer in ref_grads for g in layer)
    for name in ("hand numpy", "mbb program", "torch"):
        loss, grads = impls[name].loss_and_grads(eps)
        assert_agree(name, loss, grads, ref_loss, ref_grads)


def test_the_comparison_catches_an_error_ten_times_the_tolerance():
    impls, eps, ref_loss, ref_grads = tiny_float64()
    loss, grads = impls["hand numpy"].loss_and_grads(eps)
    g = grads[0][1]  # layer1.weight_rho, at its largest entry
    g.flat[np.argmax(np.abs(g))] *= 1 + 10 * RTOL
    with pytest.raises(AssertionError, match="layer1.weight_rho"):
        assert_agree("hand numpy", loss, grads, ref_loss, ref_grads)


def test_fit_benchmark_checks_torch_against_microbbb_and_reports_every_setting():
    # before timing, the torch loop's loss and gradients on microbbb's eps must equal
    # microbbb's (float64, rtol 1e-9), or the script exits non-zero (run() asserts rc 0)
    out = run(str(BENCHMARKS / "fit.py"), "--scale", "0.01", "--repeats", "1")
    assert "torch.get_num_threads()=1" in out
    for name, checked in (("regression", 14), ("question", 9), ("digits", 9)):
        rows = [line for line in out.splitlines() if line.startswith(name)]
        assert len(rows) == 1, out
        assert f"checked {checked} numbers" in rows[0] and "fit/torch" in rows[0]
