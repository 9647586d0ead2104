"""The benchmark scripts still run, and their built-in checks still pass.

benchmarks/bbb_step.py first checks, with the same eps, that the hand-written numpy step,
the LossProgram and torch compute microbbb's loss and gradients (float64 rtol 1e-9; the
program exactly), and exits non-zero otherwise; a tiny --scale keeps this run to seconds.
No timing is asserted here: timings come from full runs of the scripts, not from tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
