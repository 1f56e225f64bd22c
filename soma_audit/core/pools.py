"""Thread pools that an interrupt does not wait for.

``with ThreadPoolExecutor()`` waits for every worker on the way out, even when Ctrl-C or
SIGTERM is what ends the block: a worker blocked on a silent server or on a tool that
never ends would then hold the whole run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor


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
