"""What forward mode by the double-VJP trick costs, next to a real tangent column.

mb.jvp gets J u from the VJPs (microbbb/engine/forward.py): one forward, then two reverse
sweeps, the first recorded. torch has both designs, so one run can put them side by side:
torch.func.jvp carries a tangent along the forward pass (dual numbers), and
torch.autograd.functional.jvp uses the same double-VJP trick as microbbb. Times are
interleaved in one process, medians of many runs; only the ratios to each library's own
forward pass mean anything (the machine is noisy and shared).

Two functions: the survey's f(x1, x2) = ln x1 + x1 x2 - sin x2 on scalars (five tiny ops:
the per-op overhead dominates) and a layer, sum(tanh(x @ W + b)) with x 256x64, W 64x64
(the arithmetic dominates).

Run:  python benchmarks/jvp.py [--repeats 500]
"""

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


import numpy as np  # noqa: E402
import torch  # noqa: E402
from ops import measure  # noqa: E402  (interleaved timing, shared with ops.py)

import microbbb as mb  # noqa: E402

torch.set_num_threads(1)


def survey(x1, x2, lib):
    return lib.log(x1) + x1 * x2 - lib.sin(x2)


def layer(x, w, b, lib):
    return lib.tanh(x @ w + b).sum()


def candidates(fn, arrays: list, tangents: list) -> dict:
    """name -> a function that runs it once."""
    leaves = [mb.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a) for a in arrays]
    t_leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
    t_dirs = [torch.tensor(u) for u in tangents]

    def mb_forward():
        return fn(*leaves, mb)

    def mb_reverse():
        return mb.grad(fn(*leaves, mb), leaves)

    def mb_jvp():
        return mb.jvp(lambda *xs: fn(*xs, mb), tuple(arrays), tuple(tangents))

    def torch_forward():
        return fn(*t_leaves, torch)

    def torch_reverse():
        return torch.autograd.grad(fn(*t_leaves, torch), t_leaves)

    def torch_tangent():
        return torch.func.jvp(lambda *xs: fn(*xs, torch), tuple(t_in), tuple(t_dirs))

    def torch_double_vjp():
        return torch.autograd.functional.jvp(lambda *xs: fn(*xs, torch), tuple(t_in), tuple(t_dirs))

    return {
        "microbbb forward": mb_forward,
        "microbbb reverse (grad)": mb_reverse,
        "microbbb jvp (double VJP)": mb_jvp,
        "torch forward": torch_forward,
        "torch reverse (grad)": torch_reverse,
        "torch.func.jvp (tangent)": torch_tangent,
        "torch functional.jvp (double VJP)": torch_double_vjp,
    }


def check(fn, arrays: list, tangents: list) -> None:
    """The three J u agree before anything is timed (float64, rtol 1e-10)."""
    _, dot = mb.jvp(lambda *xs: fn(*xs, mb), tuple(arrays), tuple(tangents))
    ts, us = tuple(torch.tensor(a) for a in arrays), tuple(torch.tensor(u) for u in tangents)
    _, tangent = torch.func.jvp(lambda *xs: fn(*xs, torch), ts, us)
    _, double = torch.autograd.functional.jvp(lambda *xs: fn(*xs, torch), ts, us)
    for other in (tangent, double):
        np.testing.assert_allclose(dot.data, other.numpy(), rtol=1e-10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = {
        "survey f(2, 5), scalars": (survey, [np.array(2.0), np.array(5.0)]),
        "layer sum(tanh(x @ W + b)), 256x64": (
            layer,
            [
                rng.standard_normal((256, 64)),
                rng.standard_normal((64, 64)) / 8,
                rng.standard_normal(64),
            ],
        ),  # fmt: skip
    }
    print(f"median of {args.repeats} interleaved runs, one thread")
    print("x = the time over the same library's forward")
    for title, (fn, arrays) in cases.items():
        tangents = [rng.standard_normal(a.shape) for a in arrays]
        check(fn, arrays, tangents)
        times = measure(candidates(fn, arrays, tangents), args.repeats)
        print(f"\n{title}")
        for name, us in times.items():
            base = times[name.split(" ")[0].split(".")[0] + " forward"]
            print(f"  {name:36s} {us:9.1f} us  {us / base:5.1f}x")


if __name__ == "__main__":
    main()
