"""Grad mode and scopes: whether ops are recorded, and under which group name.

``no_grad()`` switches recording off (inference, optimiser updates), ``enable_grad()`` back
on; both work as ``with`` blocks and as decorators. ``scope("layer1")`` names the ops
recorded inside it, for drawings. A ``Cut`` remembers where ``no_grad`` or ``detach()`` cut
a tensor from its graph.

Modes belong to the thread (and asyncio task) that sets them, as in PyTorch: each is a
``contextvars.ContextVar``, so a ``no_grad`` block or a running backward in one thread
changes nothing in another, and a new thread starts with grad mode on. ``ON_FORWARD`` holds
the hooks that run after every op (anomaly mode's check); ``CLOCK`` numbers the records of
all threads in the order they are made.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, NamedTuple

GRAD_ENABLED: ContextVar[bool] = ContextVar("grad_enabled", default=True)
SCOPE: ContextVar[str | None] = ContextVar("scope", default=None)  # "outer/inner" or None
ON_FORWARD: ContextVar[tuple] = ContextVar("on_forward", default=())  # hook(op, ins, out, rec)
# the record clock when detect_anomaly() began in this thread; None: anomaly mode is off
ANOMALY_START: ContextVar[int | None] = ContextVar("anomaly_start", default=None)
CLOCK = itertools.count(1)  # next(CLOCK): a record's position in recording order


class _Setting:
    """Set a context variable for a ``with`` block or a decorated function."""

    def __init__(self, variable: ContextVar, value: Any):
        self.variable, self.value, self.tokens = variable, value, []

    def __enter__(self) -> None:
        self.tokens.append(self.variable.set(self.value))

    def __exit__(self, *exc: object) -> None:
        self.variable.reset(self.tokens.pop())

    def __call__(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with _Setting(self.variable, self.value):
                return function(*args, **kwargs)

        return wrapped


def no_grad(function: Callable | None = None) -> Any:
    """Ops inside record nothing and their outputs need no grad: ``with no_grad():``,
    ``@no_grad()`` or ``@no_grad`` on a function."""
    setting = _Setting(GRAD_ENABLED, False)
    return setting if function is None else setting(function)


def enable_grad(function: Callable | None = None) -> Any:
    """Switch recording back on (inside a ``no_grad`` block); a ``with`` block or a
    decorator, as ``no_grad``."""
    setting = _Setting(GRAD_ENABLED, True)
    return setting if function is None else setting(function)


def is_grad_enabled() -> bool:
    """True when ops on tensors that require grad are being recorded (in this thread)."""
    return GRAD_ENABLED.get()


class scope:
    """Context manager that names a group of ops (``with scope("layer1"): ...``).

    Records made inside it carry the name (nested scopes are joined with "/"); drawings use
    it to draw the group as a cluster. It changes nothing in the math.
    """

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> None:
        outer = SCOPE.get()
        self.token = SCOPE.set(f"{outer}/{self.name}" if outer else self.name)

    def __exit__(self, *exc: object) -> None:
        SCOPE.reset(self.token)


class Cut(NamedTuple):
    """Where a tensor was cut from the graph: by ``detach()`` or by an op under
    ``no_grad()``. ``sources`` are weak references to the tensors it came from (weak, so a
    cut tensor does not keep the old graph alive)."""

    reason: str
    op: str | None
    sources: tuple
