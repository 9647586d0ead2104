"""Saved values cannot change under the tape.

A record keeps what its VJPs will read: the arrays of its inputs (``record.values``) and its
output (``record.out``). Three rules keep them as they were when the op ran:

1. **An array a recorded op used is read-only.** Recording an op sets numpy's ``writeable``
   flag to False on its output and on its inputs' arrays, so a raw write (``t.data[...] =
   v``, ``p.data -= lr * g``) fails at once with numpy's "assignment destination is
   read-only" / "output array is read-only", instead of silently changing a gradient.
   This cannot miss a write, and costs one flag per new array.
2. **Writes through the engine are allowed, and counted**: in-place operators under
   ``no_grad()`` (``p -= lr * p.grad``), ``t.copy_(values)``, ``t.zero_()``, and
   ``writing(...)`` (optimisers, ``LossProgram``, loading files). Each unlocks the
   arrays, writes, and gives them a new version number; the next recorded op that uses
   them locks them again. A backward through a record made before such a write refuses,
   naming the op, its tape position and the input (PyTorch's rule: "modified by an
   inplace operation").
3. **``t.data = new_array`` gives a tensor a new array**: records keep the old one, so what
   they saved does not change.

Otherwise the lock stays when the graph is gone (knowing when a graph dies would cost more
than a small op); use rule 2 or 3 to change such an array. A recorded program (``TapeProgram``)
reruns on the current values by design: its runs are not checked.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

VERSIONS: dict[int, int] = {}  # id(array) -> the number of its last write through the engine
_NUMBERS = itertools.count(1)


class _Writes:
    last = 0  # the number of the newest write through the engine (0: none yet)


WRITES = _Writes()


class writing:
    """``with writing(*tensors_or_arrays):`` change their arrays in place within the block:
    writable, then given a new version number (rule 2). Every record made before the write
    now refuses backward. A leaf's array stays writable (the next record to use it locks
    it); a computed tensor's is locked again (records lock only their leaves' arrays)."""

    def __init__(self, *items: Any):
        self.items = items

    def __enter__(self) -> None:
        self.arrays = [a if isinstance(a, np.ndarray) else a.data for a in self.items]
        for a in self.arrays:
            a.setflags(True)  # (refused for a view of a read-only array, as it should be)

    def __exit__(self, *exc: object) -> None:
        WRITES.last = number = next(_NUMBERS)
        for a in self.arrays:
            VERSIONS[id(a)] = number
        for t in self.items:  # (isinstance first: getattr with a default raises inside)
            if not isinstance(t, np.ndarray) and t.record is not None:
                t.data.setflags(False)


def check(records: Sequence[Any]) -> None:
    """Refuse a reverse sweep through ``records`` (newest first) if an array one of them
    saved was written through the engine after the record was made."""
    last = WRITES.last
    if not records or records[-1].written >= last:  # no write since the oldest record
        return
    for k, r in enumerate(records):
        if r.written >= last:
            continue
        for i, value in enumerate((*r.values, r.out, *_arrays(r.params))):
            if VERSIONS.get(id(value), 0) > r.written:
                raise RuntimeError(_modified(r, i, len(records) - k))


def _arrays(params: dict) -> list:
    """The arrays among an op's parameters (index arrays, masks)."""
    found = []
    for value in params.values():
        for part in value if isinstance(value, tuple) else (value,):
            if isinstance(part, np.ndarray):
                found.append(part)
    return found


def _modified(record: Any, i: int, position: int) -> str:
    inputs = record.inputs
    what = {len(inputs): "its output"}.get(i, f"its input {i}" if i < len(inputs) else "")
    what = what or "an array among its parameters (an index or a mask)"
    name = "" if i >= len(inputs) or not inputs[i].name else f" ('{inputs[i].name}')"
    return (
        f"one of the values needed for gradient computation has been modified by an in-place"
        f" operation: {what}{name} of op '{record.op.name}' (tape position {position}) was"
        " changed after the op was recorded, so its gradient would be computed from the new"
        " values. Change tensors after backward (as an optimiser step does), or compute the"
        " loss again after the change."
    )
