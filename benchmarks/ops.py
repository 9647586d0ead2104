"""Per-op overhead: microbbb vs raw numpy vs torch (CPU, eager), one thread.

Times, interleaved in one process (the machine is noisy, so only ratios from one run are
meaningful), the median of many runs of:

- forward: one elementwise multiply of two float64 arrays of 10 and 10^6 elements, and one
  128x128 matmul; microbbb and torch with requires_grad=True (so the op is recorded);
- forward + backward: the same op followed by a backward pass with a given adjoint;
  "numpy" is the same forward plus the hand-written VJPs (g * y, g * x, or g @ y.T, x.T @ g).

Run:  python benchmarks/ops.py [--repeats 2000]
"""

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import microbbb as mb  # noqa: E402

torch.set_num_threads(1)


def cases(n_elementwise: int, matmul: bool):
    rng = np.random.default_rng(0)
    shape = (128, 128) if matmul else (n_elementwise,)
    a, b, g = (rng.standard_normal(shape) for _ in range(3))
    ma, mb_ = mb.tensor(a, requires_grad=True), mb.tensor(b, requires_grad=True)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    tg = torch.tensor(g)
    if matmul:
        forward = {
            "numpy": lambda: a @ b,
            "microbbb": lambda: ma @ mb_,
            "torch": lambda: ta @ tb,
        }

        def numpy_both():
            a @ b
            return g @ b.T, a.T @ g
    else:
        forward = {
            "numpy": lambda: a * b,
            "microbbb": lambda: ma * mb_,
            "torch": lambda: ta * tb,
        }

        def numpy_both():
            a * b
            return g * b, g * a

    def microbbb_both():
        ma.grad = mb_.grad = None
        (ma @ mb_ if matmul else ma * mb_).backward(g)

    def torch_both():
        ta.grad = tb.grad = None
        (ta @ tb if matmul else ta * tb).backward(tg)

    both = {"numpy": numpy_both, "microbbb": microbbb_both, "torch": torch_both}
    return forward, both


def measure(fns: dict, repeats: int) -> dict:
    for fn in fns.values():  # warm up
        for _ in range(20):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():  # interleaved: each round times every candidate
            start = time.perf_counter_ns()
            fn()
            times[name].append(time.perf_counter_ns() - start)
    return {name: np.median(t) / 1000 for name, t in times.items()}  # microseconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    print(f"numpy {np.__version__}, torch {torch.__version__}, 1 thread, float64")
    print(f"median of {args.repeats} interleaved runs, microseconds\n")
    header = f"{'case':34s} {'numpy':>9s} {'microbbb':>9s} {'torch':>9s}  mbb/np  mbb/torch"
    print(header)
    print("-" * len(header))
    for label, n, matmul in [
        ("mul, 10 elements", 10, False),
        ("mul, 10^6 elements", 10**6, False),
        ("matmul 128x128", 0, True),
    ]:
        repeats = args.repeats if n != 10**6 else max(args.repeats // 20, 50)
        forward, both = cases(n, matmul)
        for kind, fns in [("forward", forward), ("forward+backward", both)]:
            t = measure(fns, repeats)
            print(
                f"{label + ', ' + kind:34s} {t['numpy']:9.2f} {t['microbbb']:9.2f}"
                f" {t['torch']:9.2f}  {t['microbbb'] / t['numpy']:6.2f}"
                f"  {t['microbbb'] / t['torch']:9.2f}"
            )


if __name__ == "__main__":
    main()
