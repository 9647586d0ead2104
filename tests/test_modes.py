"""Grad mode, scopes and anomaly mode (microbbb/engine/modes.py, anomaly.py) are per thread,
as in PyTorch: a no_grad block, a scope, anomaly mode or a running backward in one thread
changes nothing in another. Each test runs two real threads that meet at barriers, so the
interleaving it describes is the one that happens."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

import microbbb as mb
from microbbb.engine.extend import Primitive

TIMEOUT = 10  # seconds a barrier waits before the test fails instead of hanging


def run_threads(*targets: Callable[[], None]) -> None:
    """Run the targets in threads; re-raise the first exception any of them raised."""
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # noqa: BLE001 - reported to the main thread
                errors.append(error)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_no_grad_in_one_thread_does_not_stop_recording_in_another():
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    seen = {}

    def quiet() -> None:
        with mb.no_grad():
            barrier.wait()  # 1: inside no_grad
            barrier.wait()  # 2: the other thread has recorded

    def recording() -> None:
        x = mb.tensor([1.0, 2.0], requires_grad=True)
        barrier.wait()  # 1
        seen["enabled"] = mb.is_grad_enabled()
        seen["recorded"] = (x * x).requires_grad
        barrier.wait()  # 2

    run_threads(quiet, recording)
    assert seen == {"enabled": True, "recorded": True}


def test_overlapping_no_grad_blocks_in_two_threads_leave_grad_mode_on():
    barrier = threading.Barrier(2, timeout=TIMEOUT)

    def first() -> None:
        with mb.no_grad():
            barrier.wait()  # 1: both inside
        barrier.wait()  # 2: first has left
        barrier.wait()  # 3: second has left

    def second() -> None:
        barrier.wait()  # 1
        with mb.no_grad():
            barrier.wait()  # 2: first left while second is inside
        barrier.wait()  # 3

    run_threads(first, second)
    assert mb.is_grad_enabled()
    x = mb.tensor(1.0, requires_grad=True)
    assert (x * 2).requires_grad

    def after() -> None:
        assert mb.is_grad_enabled()

    run_threads(after)


def test_a_running_backward_does_not_switch_grad_mode_off_elsewhere():
    barrier = threading.Barrier(2, timeout=TIMEOUT)

    def waiting_vjp(xp, g, out, x):
        barrier.wait()  # 1: the backward is running
        barrier.wait()  # 2: the other thread has recorded
        return g

    identity = Primitive("identity", lambda x: x.copy(), [waiting_vjp], rules=["g"])
    seen = {}

    def backward() -> None:
        x = mb.tensor([1.0], requires_grad=True)
        identity(x).sum().backward()
        seen["grad"] = x.grad.tolist()

    def recording() -> None:
        barrier.wait()  # 1
        y = mb.tensor([3.0], requires_grad=True)
        seen["recorded"] = (y * y).requires_grad
        barrier.wait()  # 2

    run_threads(backward, recording)
    assert seen == {"grad": [1.0], "recorded": True}


def test_scopes_and_anomaly_mode_belong_to_their_thread():
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    seen = {}

    def scoped() -> None:
        with mb.scope("layer1"), mb.detect_anomaly():
            barrier.wait()  # 1
            barrier.wait()  # 2

    def plain() -> None:
        x = mb.tensor([1.0], requires_grad=True)
        barrier.wait()  # 1
        seen["scope"] = (x * 2).record.scope
        with np.errstate(all="ignore"):
            seen["nan"] = bool(np.isnan(mb.log(x - 2).data).all())  # no AnomalyError here
        barrier.wait()  # 2

    run_threads(scoped, plain)
    assert seen == {"scope": None, "nan": True}


@pytest.mark.parametrize("decorator", [mb.no_grad, mb.no_grad()], ids=["bare", "called"])
def test_no_grad_decorates_a_function(decorator):
    @decorator
    def step(x):
        return x * 2

    x = mb.tensor([1.0], requires_grad=True)
    assert not step(x).requires_grad and step.__name__ == "step"
    assert (x * 2).requires_grad  # switched back on after the call


def test_enable_grad_decorates_a_function_inside_no_grad():
    @mb.enable_grad()
    def recorded(x):
        return x * 2

    x = mb.tensor([1.0], requires_grad=True)
    with mb.no_grad():
        assert recorded(x).requires_grad
        assert not (x * 2).requires_grad
