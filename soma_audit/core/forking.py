"""A function run in a forked copy of this process, its result sent back through a pipe.

A scan is Python work, and Python threads take turns on one core; a fork is how a scan
gets a second one. The child starts with everything the parent had (pages are copied
only when written), runs one function and sends its picklable result back. It leaves
with ``os._exit``, so the parent's exit handlers (which remove the parent's scratch
folders) and buffered output never run twice; Ctrl-C ends it without a word (the parent
says it), and it stops on its own once the parent is gone.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Generic, NoReturn, TypeVar

T = TypeVar("T")

_LENGTH = struct.Struct("<Q")
#: How often a child looks whether its parent is still there.
_PARENT_POLL_SECONDS = 0.5
#: How long a child asked to stop has before it is killed.
STOP_GRACE_SECONDS = 0.5


def can_fork() -> bool:
    """Whether a fork is possible and safe here: a second core to run on, and no other
    thread (a fork copies only the calling thread; a lock another thread holds would stay
    locked in the child)."""
    return hasattr(os, "fork") and _cores() >= 2 and threading.active_count() == 1


def _cores() -> int:
    """The cores this process may run on (all of the machine's where that is not told)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def leave_when_asked(on_stop: Callable[[], None]) -> None:
    """In a child: on SIGTERM (the parent asks) or SIGINT (a terminal's Ctrl-C reaches the
    whole process group), run ``on_stop`` and leave at once. ``on_stop`` stops what killing
    the child would leave running (external tools, in sessions of their own)."""

    def leave(signum: int, frame: object) -> NoReturn:
        on_stop()
        os._exit(0)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, leave)


def stop_child(pid: int) -> None:
    """Ask the unreaped child ``pid`` to stop (SIGTERM), and kill it if it is still there
    after :data:`STOP_GRACE_SECONDS`. The caller reaps it."""
    os.kill(pid, signal.SIGTERM)  # unreaped, it is there (if only a zombie)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while not _ended(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)


def _ended(pid: int) -> bool:
    """Whether the child ``pid`` has ended (it is not reaped)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class ForkedCall(Generic[T]):
    """``work()`` running in a child process from :meth:`start` on."""

    def __init__(self, pid: int, pipe: int) -> None:
        self._pid = pid
        self._pipe = pipe

    @classmethod
    def start(cls, work: Callable[[], T],
              on_stop: Callable[[], None] | None = None) -> ForkedCall[T]:
        """Fork, and run ``work`` in the child; asked to stop, the child runs ``on_stop``
        first (:func:`leave_when_asked`). Check :func:`can_fork` first."""
        read_end, write_end = os.pipe()
        parent = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # a child that writes must not write the parent's buffer again
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _run_and_send(work, write_end, parent, on_stop)
        os.close(write_end)
        return cls(pid, read_end)

    def result(self) -> T | None:
        """What ``work`` returned; None if the child died or could not send it. Interrupted
        while waiting, the child is stopped (:func:`stop_child`) rather than waited for (it
        may be waiting on a silent server)."""
        try:
            with os.fdopen(self._pipe, "rb") as pipe:
                header = pipe.read(_LENGTH.size)
                if len(header) != _LENGTH.size:
                    return None
                (length,) = _LENGTH.unpack(header)
                data = pipe.read(length)
        except KeyboardInterrupt:
            stop_child(self._pid)
            raise
        finally:
            os.waitpid(self._pid, 0)
        if len(data) != length:
            return None
        value: T = pickle.loads(data)  # bytes of our own child
        return value

    def stop(self) -> None:
        """Stop the child (:func:`stop_child`) and reap it: its result is not wanted (the
        user interrupted)."""
        stop_child(self._pid)
        os.waitpid(self._pid, 0)
        os.close(self._pipe)


def _run_and_send(work: Callable[[], T], pipe: int, parent: int,
                  on_stop: Callable[[], None] | None) -> None:
    try:
        if on_stop is None:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        else:
            leave_when_asked(on_stop)
        threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()
        data = pickle.dumps(work(), pickle.HIGHEST_PROTOCOL)
        with os.fdopen(pipe, "wb") as out:
            out.write(_LENGTH.pack(len(data)) + data)
    finally:
        os._exit(0)


def _exit_without(parent: int) -> None:
    """End the child once its parent is gone (killed): nobody waits for its result."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(0)
