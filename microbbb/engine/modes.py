"""Grad mode and scopes: whether ops are recorded, and under which group name.

``no_grad()`` switches recording off (inference, optimiser updates), ``enable_grad()`` back
on; ``scope("layer1")`` names the ops recorded inside it, for drawings. A ``Cut`` remembers
where ``no_grad`` or ``detach()`` cut a tensor from its graph. ``STATE`` also counts the
records ever made (each record's position) and holds the hooks that run after every op
(anomaly mode's check).
"""

from __future__ import annotations

from typing import NamedTuple


class _State:
    """Process-wide switches and counters."""

    grad_enabled = True
    clock = 0  # how many records were ever made: gives each its position in order
    on_forward: tuple = ()  # called after every op as hook(op, inputs, out, record)
    scopes: list[str] = []  # the active scope() names, innermost last


STATE = _State()


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self) -> None:
        self.previous = STATE.grad_enabled
        STATE.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = self.previous


def no_grad() -> _GradMode:
    """Context manager: ops inside it record nothing and their outputs need no grad."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager: switch recording back on (inside a ``no_grad`` block)."""
    return _GradMode(True)


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad are being recorded."""
    return STATE.grad_enabled


class scope:
    """Context manager that names a group of ops (``with scope("layer1"): ...``).

    Records made inside it carry the name (nested scopes are joined with "/"); drawings use
    it to draw the group as a cluster. It changes nothing in the math.
    """

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        scopes = STATE.scopes
        scopes.append(f"{scopes[-1]}/{self.name}" if scopes else self.name)

    def __exit__(self, *exc: object) -> None:
        STATE.scopes.pop()


class Cut(NamedTuple):
    """Where a tensor was cut from the graph: by ``detach()`` or by an op under
    ``no_grad()``. ``sources`` are weak references to the tensors it came from (weak, so a
    cut tensor does not keep the old graph alive)."""

    reason: str
    op: str | None
    sources: tuple
