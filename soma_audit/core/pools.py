"""Thread pools that an interrupt does not wait for, and waits on them that it ends.

``with ThreadPoolExecutor()`` waits for every worker on the way out, even when Ctrl-C or
SIGTERM is what ends the block: a worker blocked on a silent server or on a tool that
never ends would then hold the whole run.

And the interrupt must reach the main thread at all. Linux hands a signal sent to the
process to any of its threads that does not block it (a worker starting a tool takes it,
for one), while Python runs the handler in the main thread only, once that thread runs
again: a main thread asleep on a worker's future would sleep through the interrupt until
the worker ends. :func:`result_of` wakes every :data:`WAKE_SECONDS`, so the handler runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")

#: How long the main thread sleeps at most, waiting on a worker, before it looks for a
#: signal to handle.
WAKE_SECONDS = 0.1


@contextlib.contextmanager
def unwaited_on_error(workers: int, name: str = "") -> Iterator[ThreadPoolExecutor]:
    """A pool of ``workers`` threads named after ``name``. Left normally, it waits for its
    workers; left by an exception (an interrupt), it cancels what has not started and
    leaves at once (the CLI exits without joining the workers still running)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def result_of(future: Future[T]) -> T:
    """The future's result (or its exception), waited for in sleeps of
    :data:`WAKE_SECONDS`."""
    while not wait([future], timeout=WAKE_SECONDS).done:
        pass
    return future.result()
