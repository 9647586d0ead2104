"""One Bayes by Backprop training step: hand-written numpy vs microbbb vs torch (CPU, eager).

The step and its four implementations (hand numpy, eager microbbb, microbbb's recorded
LossProgram, torch) are in bbb_step_impls.py; this script is the harness that times them.

Before timing, each size and dtype is checked once: with the same eps, the hand step's, the
program's and torch's loss and gradients must equal microbbb's (float64: rtol 1e-9), so all
do the same work; the script aborts otherwise. The steps then run interleaved round-robin
in one process (the machine is noisy: only ratios from one run mean something), after a
warm-up. Reported: median time, spread (IQR / median), the ratios of the medians, the peak
memory of one step, and microbbb's memory growth over 1000 steps (eager and program).

Run:  python benchmarks/bbb_step.py [--sizes 3-32-1 ...] [--dtype float64|float32|both]
      [--threads 1] [--scale 1.0] [--growth small|all|none] [--markdown] [--profile]
"""

import argparse
import os
import sys

SIZES = {  # name: (layer sizes, batch, likelihood, timed rounds at --scale 1)
    "3-32-1": ([3, 32, 1], 100, "gaussian", 3000),
    "64-100-10": ([64, 100, 10], 128, "categorical", 2000),
    "784-400-400-10": ([784, 400, 400, 10], 128, "categorical", 120),
}
SMALL = ("3-32-1", "64-100-10")  # sizes whose 1000-step memory check is cheap
GROWTH_STEPS = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="numpy/OpenBLAS and torch threads (default 1). With as many threads as cores,"
        " any other load on the machine stalls torch's OpenMP threads (steps 10-100x slower)",
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the number of timed rounds"
    )
    parser.add_argument(
        "--growth",
        choices=["small", "all", "none"],
        default="small",
        help=f"measure microbbb's memory growth over {GROWTH_STEPS} steps for the small"
        " sizes (default), every size, or none",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of timing, cProfile microbbb's step (top 15 functions by tottime)",
    )
    return parser


# Threads must be pinned before numpy (OpenBLAS) and torch are imported: they read these
# variables once, when loaded. So everything that imports them, bbb_step_impls included,
# is imported only below the pinning; the check refuses to run if that no longer holds.
ARGS = build_parser().parse_args() if __name__ == "__main__" else None
if ARGS is not None and {"numpy", "torch", "bbb_step_impls"} & set(sys.modules):
    sys.exit("numpy or torch was imported before the threads were pinned: import it below")
THREADS = ARGS.threads if ARGS is not None else 1
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bbb_step_impls import NAMES, Microbbb, Torch, build  # noqa: E402

import microbbb  # noqa: E402

torch.set_num_threads(THREADS)


# ----------------------------------------------------------------------------- check

TOLERANCE = {"float64": (1e-9, 1e-12), "float32": (1e-4, 1e-5)}  # rtol, floor * max|b|


def rel_err(a: np.ndarray, b: np.ndarray, rtol: float, floor: float) -> float:
    """max |a - b| / (rtol |b| + floor max|b|): at most 1 means equal within tolerance."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    bound = rtol * np.abs(b) + floor * max(float(np.abs(b).max()), 1e-300)
    return float((np.abs(a - b) / bound).max())


def check(impls: dict, size: str, dtype_name: str) -> dict:
    """Same eps for all: loss and every gradient must match microbbb's. Returns the
    worst |difference| / tolerance per implementation."""
    rtol, floor = TOLERANCE[dtype_name]
    eps = impls["hand numpy"].draw_eps()
    ref_loss, ref_grads = impls["microbbb"].loss_and_grads(eps)
    worst = {}
    for name in ("hand numpy", "mbb program", "torch"):
        loss, grads = impls[name].loss_and_grads(eps)
        errors = {"loss": rel_err(loss, ref_loss, rtol, 0.0)}
        for i, (layer, ref_layer) in enumerate(zip(grads, ref_grads, strict=True)):
            for n, g, ref in zip(NAMES, layer, ref_layer, strict=True):
                if g.shape != ref.shape or g.dtype != ref.dtype:
                    sys.exit(
                        f"CHECK FAILED ({size}, {dtype_name}): {name} layer{i + 1}.{n} has"
                        f" shape {g.shape} {g.dtype}, microbbb {ref.shape} {ref.dtype}"
                    )
                errors[f"layer{i + 1}.{n}"] = rel_err(g, ref, rtol, floor)
        bad = {k: v for k, v in errors.items() if not v <= 1.0}
        if bad:
            sys.exit(
                f"CHECK FAILED ({size}, {dtype_name}): {name} differs from microbbb beyond"
                f" rtol {rtol:g} (+ {floor:g} max|g|), |diff|/tolerance: {bad}."
                f" Loss {loss!r} vs microbbb {ref_loss!r}. The timings would not compare"
                " equal work; aborting."
            )
        worst[name] = max(errors.values())
    return worst


# ----------------------------------------------------------------------------- measurement


def interleave(steps: dict[str, Callable], rounds: int, warmup: int) -> dict:
    """Time every step ``rounds`` times, round-robin (the order rotates each round)."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times = {name: np.empty(rounds) for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = steps[name]
            start = time.perf_counter_ns()
            fn()
            times[name][r] = time.perf_counter_ns() - start
    return times


def peak_tracemalloc(impl: Any) -> int:
    """Bytes allocated above the starting level at the peak of one step (numpy, Python)."""
    impl.clear_grads()
    gc.collect()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    impl.step()
    return tracemalloc.get_traced_memory()[1] - start


def peak_torch_profiler(impl: Torch) -> int | None:
    """Torch's CPU allocator bypasses tracemalloc: replay the allocations and frees of one
    step recorded by torch.profiler(profile_memory=True). None if that is unavailable."""
    from torch.profiler import ProfilerActivity, profile

    impl.clear_grads()  # else torch warns about freeing blocks allocated before profiling
    try:
        with (
            quiet_stderr(),
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
        ):
            impl.step()
        events = prof.profiler.kineto_results.events()
        changes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    except Exception:  # a private API: report n/a rather than fail the benchmark
        return None
    current = peak = 0
    for _, nbytes in changes:
        current += nbytes
        peak = max(peak, current)
    return peak


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ start/stop messages)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def growth(impl: Microbbb, steps: int) -> tuple[int, int]:
    """tracemalloc current after ``steps`` more steps minus after 10 warm-up steps, and
    the same over the second half of those steps only (the steady state)."""
    for _ in range(10):
        impl.step()
    start = tracemalloc.get_traced_memory()[0]
    for _ in range(steps // 2):
        impl.step()
    half = tracemalloc.get_traced_memory()[0]
    for _ in range(steps - steps // 2):
        impl.step()
    end = tracemalloc.get_traced_memory()[0]
    return end - start, end - half


def profile_microbbb(impl: Microbbb, steps: int) -> str:
    for _ in range(20):
        impl.step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        impl.step()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


# ----------------------------------------------------------------------------- output


def fmt_time(ns: float) -> str:
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us" if ns < 1e5 else f"{ns / 1e3:.0f} us"
    return f"{ns / 1e6:.2f} ms" if ns < 1e8 else f"{ns / 1e6:.0f} ms"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    if abs(n) < 1024:
        return f"{n} B"
    if abs(n) < 1024**2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024**2:.1f} MiB"


def spread(t: np.ndarray) -> str:
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return f"{100 * (q3 - q1) / med:.0f}%"


TIME_COLUMNS = [
    ("size (batch)", "<"),
    ("dtype", "<"),
    ("hand numpy", ">"),
    ("iqr", ">"),
    ("microbbb", ">"),
    ("iqr", ">"),
    ("mbb program", ">"),
    ("iqr", ">"),
    ("torch", ">"),
    ("iqr", ">"),
    ("mbb/np", ">"),
    ("mbb/torch", ">"),
    ("prog/np", ">"),
    ("prog/torch", ">"),
]
MEMORY_COLUMNS = [
    ("size (batch)", "<"),
    ("dtype", "<"),
    ("peak np", ">"),
    ("peak mbb", ">"),
    ("peak prog", ">"),
    ("peak torch", ">"),
    ("mbb/np", ">"),
    ("prog/np", ">"),
    (f"mem 10->{GROWTH_STEPS + 10} mbb, prog", ">"),
    (f"{GROWTH_STEPS // 2 + 10}->{GROWTH_STEPS + 10} mbb, prog", ">"),
]


def table(columns: list[tuple[str, str]], rows: list[list[str]], markdown: bool) -> str:
    heads = [c[0] for c in columns]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |"]
        lines.append("|" + "|".join("---:" if a == ">" else ":---" for _, a in columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]

    def line(cells: list[str]) -> str:
        parts = [f"{c:{a}{w}}" for c, (_, a), w in zip(cells, columns, widths, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(heads))
    return "\n".join([line(heads), rule] + [line(r) for r in rows])


def header(args: argparse.Namespace) -> list[str]:
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    blas = "BLAS threads: see OPENBLAS_NUM_THREADS"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{i['internal_api']} {i['version']} {i['num_threads']} thread(s)"
            for i in threadpool_info()
        )
    except ImportError:
        pass
    env = " ".join(
        f"{v}={os.environ[v]}"
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    )
    return [
        "One BBB training step (draw eps, forward, f = log q - log P(w) - log P(D|w) with the"
        " scale-mixture prior pi=0.5 sigma1=1 sigma2=e^-6, backward, SGD lr=1e-4 on every mu"
        " and rho), ReLU MLP, one sample",
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__},"
        f" microbbb {microbbb.__version__} (git {commit}); {os.cpu_count()} CPUs,"
        f" {platform.machine()}",
        f"threads: {env}; numpy: {blas}; torch.get_num_threads()={torch.get_num_threads()}",
        "times: median over interleaved rounds (the order rotates each round) after warm-up;"
        " iqr = interquartile range / median; mbb/np and mbb/torch = ratios of the medians",
        "peak: memory allocated above the starting level during one step (grads cleared"
        " first); numpy and microbbb via tracemalloc, torch via torch.profiler memory events"
        " (tracemalloc does not see torch's allocator)",
        "mem a->b: microbbb's tracemalloc current after step b minus after step a,"
        " eager, program"
        f" ({GROWTH_STEPS} steps after 10 warm-up steps; '-' = not measured, see --growth)",
    ]


# ----------------------------------------------------------------------------- main


def main(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    cases = [(s, d) for s in args.sizes for d in dtypes]

    if args.profile:
        for size, dtype_name in cases:
            layer_sizes, batch, likelihood, base_rounds = SIZES[size]
            impl = build(layer_sizes, batch, likelihood, np.dtype(dtype_name))["microbbb"]
            steps = max(20, int(base_rounds * args.scale) // 3)
            print(f"== cProfile of {steps} microbbb steps, {size}, {dtype_name}")
            print(profile_microbbb(impl, steps))
        print(f"total runtime {time.perf_counter() - t_start:.1f} s")
        return

    lines = header(args)
    time_rows, memory_rows, checks = [], [], []
    for size, dtype_name in cases:
        layer_sizes, batch, likelihood, base_rounds = SIZES[size]
        impls = build(layer_sizes, batch, likelihood, np.dtype(dtype_name))
        worst = check(impls, size, dtype_name)
        checks.append(
            f"{size} {dtype_name}: max |diff|/tolerance hand numpy {worst['hand numpy']:.2g},"
            f" mbb program {worst['mbb program']:.2g}, torch {worst['torch']:.2g}"
        )
        rounds = max(10, int(base_rounds * args.scale))
        times = interleave(
            {name: impl.step for name, impl in impls.items()}, rounds, max(5, rounds // 10)
        )
        med = {name: float(np.median(t)) for name, t in times.items()}

        tracemalloc.start()
        peak = {name: peak_tracemalloc(impls[name]) for name in ("hand numpy", "microbbb")}
        peak["mbb program"] = peak_tracemalloc(impls["mbb program"])
        grow = {}
        if args.growth == "all" or (args.growth == "small" and size in SMALL):
            grow = {name: growth(impls[name], GROWTH_STEPS) for name in ("microbbb", "mbb program")}
        tracemalloc.stop()
        peak["torch"] = peak_torch_profiler(impls["torch"])

        label = f"{size} ({batch})"
        time_rows.append(
            [label, dtype_name]
            + [
                cell
                for name in ("hand numpy", "microbbb", "mbb program", "torch")
                for cell in (fmt_time(med[name]), spread(times[name]))
            ]
            + [
                f"{med[name] / med[base]:.2f}"
                for name in ("microbbb", "mbb program")
                for base in ("hand numpy", "torch")
            ]
        )
        memory_rows.append(
            [label, dtype_name]
            + [fmt_bytes(peak[name]) for name in ("hand numpy", "microbbb", "mbb program", "torch")]
            + [f"{peak[name] / peak['hand numpy']:.2f}" for name in ("microbbb", "mbb program")]
            + [
                ", ".join(fmt_bytes(grow[name][k]) for name in ("microbbb", "mbb program"))
                if grow
                else "-"
                for k in (0, 1)
            ]
        )
        print(f"[{size} {dtype_name}: {rounds} rounds done]", file=sys.stderr, flush=True)

    tol = ", ".join(f"{k} rtol {r:g} + {f:g} max|g|" for k, (r, f) in TOLERANCE.items())
    lines.append(
        "check (once, same eps): loss and every gradient of hand numpy, the program and torch"
        f" equal microbbb's ({tol}); worst |diff|/tolerance (<= 1 passes):"
    )
    lines += ["  " + c for c in checks]
    if args.markdown:
        print("\n".join(f"  - {ln.strip()}" if ln[:1] == " " else f"- {ln}" for ln in lines))
        print()
    else:
        print("\n".join(lines))
        print()
    print(table(TIME_COLUMNS, time_rows, args.markdown))
    print()
    print(table(MEMORY_COLUMNS, memory_rows, args.markdown))
    print(f"\ntotal runtime {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main(ARGS)
