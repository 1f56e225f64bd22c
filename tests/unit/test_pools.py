"""The main thread, waiting on a worker, still handles a stop signal another thread caught,
and an interrupt leaves a pool without waiting for its workers."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import Future

import pytest

from soma_audit.core.pools import result_of, unwaited_on_error


class Stopped(Exception):
    pass


def _raise_stopped(signum: int, frame: object) -> None:
    raise Stopped


@pytest.fixture
def stop_handler() -> object:
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_a_signal_a_worker_caught_ends_the_wait_on_it(stop_handler: object) -> None:
    """The SIGTERM is sent to the worker thread itself, as Linux may hand a process's
    signal to any thread; the main thread, asleep on the worker's future, handles it."""
    release = threading.Event()
    with pytest.raises(Stopped), unwaited_on_error(1, "test-pool") as pool:
        future = pool.submit(release.wait, 30)
        worker = next(t for t in threading.enumerate() if t.name.startswith("test-pool"))
        threading.Timer(0.2, signal.pthread_kill, (worker.ident, signal.SIGTERM)).start()
        began = time.monotonic()
        try:
            result_of(future)
        finally:
            waited = time.monotonic() - began
            release.set()
    assert waited < 10, "the wait outlived the signal by far"


def test_the_result_and_the_exception_of_the_future_come_back() -> None:
    done: Future[int] = Future()
    done.set_result(7)
    assert result_of(done) == 7
    failed: Future[int] = Future()
    failed.set_exception(TimeoutError("the worker's own"))
    with pytest.raises(TimeoutError, match="the worker's own"):
        result_of(failed)


def test_an_interrupt_leaves_the_pool_without_waiting_for_its_workers() -> None:
    release = threading.Event()
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt), unwaited_on_error(1) as pool:
        pool.submit(release.wait, 30)
        raise KeyboardInterrupt
    assert time.monotonic() - began < 10
    release.set()
