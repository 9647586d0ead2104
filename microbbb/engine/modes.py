"""Grad mode and scopes: whether ops are recorded, and under which group name.

``no_grad()`` switches recording off (inference, optimiser updates), ``enable_grad()`` back
on; both work as ``with`` blocks and as decorators. ``scope("layer1")`` names the ops
recorded inside it, for drawings. A ``Cut`` remembers where ``no_grad`` or ``detach()`` cut
a tensor from its graph.

Modes belong to the thread that sets them, as in PyTorch: ``THREAD.modes`` is
thread-local, so a ``no_grad`` block or a running backward in one thread changes
nothing in another, and a new thread starts with the defaults (grad mode on).
``modes.on_forward`` holds the hooks that run after every op (anomaly mode's check);
``CLOCK`` numbers the records of all threads in the order they are made.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from typing import Any, NamedTuple


class Modes:
    """One thread's modes (``THREAD.modes``), with their defaults."""

    __slots__ = ("grad_enabled", "scope", "on_forward", "anomaly_start")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.scope: str | None = None  # "outer/inner" or None
        self.on_forward: tuple = ()  # hook(op, inputs, out, record), run after every op
        self.anomaly_start: int | None = None  # the record clock when detect_anomaly() began


class _Thread(threading.local):
    """Per-thread storage: each thread gets its own ``Modes`` on first use. (Every op
    reads ``THREAD.modes`` once: one thread-local lookup, cheaper than a ContextVar.)"""

    def __init__(self) -> None:
        self.modes = Modes()


THREAD = _Thread()
CLOCK = itertools.count(1)  # next(CLOCK): a record's position in recording order


class _Setting:
    """Set one of this thread's modes for a ``with`` block or a decorated function."""

    def __init__(self, mode: str, value: Any):
        self.mode, self.value, self.before = mode, value, []

    def __enter__(self) -> None:
        modes = THREAD.modes
        self.before.append(getattr(modes, self.mode))
        setattr(modes, self.mode, self.value)

    def __exit__(self, *exc: object) -> None:
        setattr(THREAD.modes, self.mode, self.before.pop())

    def __call__(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with _Setting(self.mode, self.value):
                return function(*args, **kwargs)

        return wrapped


def no_grad(function: Callable | None = None) -> Any:
    """Ops inside record nothing and their outputs need no grad: ``with no_grad():``,
    ``@no_grad()`` or ``@no_grad`` on a function."""
    setting = _Setting("grad_enabled", False)
    return setting if function is None else setting(function)


def enable_grad(function: Callable | None = None) -> Any:
    """Switch recording back on (inside a ``no_grad`` block); a ``with`` block or a
    decorator, as ``no_grad``."""
    setting = _Setting("grad_enabled", True)
    return setting if function is None else setting(function)


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad are being recorded (in this thread)."""
    return THREAD.modes.grad_enabled


class scope:
    """Context manager that names a group of ops (``with scope("layer1"): ...``).

    Records made inside it carry the name (nested scopes are joined with "/"); drawings use
    it to draw the group as a cluster. It changes nothing in the math.
    """

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        modes = THREAD.modes
        self.outer = outer = modes.scope
        modes.scope = f"{outer}/{self.name}" if outer else self.name

    def __exit__(self, *exc: object) -> None:
        THREAD.modes.scope = self.outer


class Cut(NamedTuple):
    """Where a tensor was cut from the graph: by ``detach()`` or by an op under
    ``no_grad()``. ``sources`` are weak references to the tensors it came from (weak, so a
    cut tensor does not keep the old graph alive)."""

    reason: str
    op: str | None
    sources: tuple
