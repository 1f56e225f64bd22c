"""A session's first scan in a child process, so that the TUI can start beside it.

A scan is Python work: in a thread of the TUI's process it would share one core (the GIL)
with Textual's own start, and the first results would wait for both. The TUI's process
forks before it imports Textual: the child opens the session and hands over what the
parent needs to open its own (the CLI's choice: the config and the catalog, read and
checked while the parent imports Textual, or nothing when the session was opened before
the fork), then scans and sends each result, then the report, through a pipe; the
parent's scan worker hands them on as an in-process scan would. Later scans (a rescan,
the re-run after an attestation or an apply) run in the process.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, NoReturn

from soma_audit.core.errors import AuditError
from soma_audit.core.forking import leave_when_asked, stop_child

if TYPE_CHECKING:
    from soma_audit.core.model import Result
    from soma_audit.engine.scan import Progress
    from soma_audit.engine.session import AuditSession
    from soma_audit.results.report import Report


#: How much lower the child's priority is than the TUI's (CFS gives it about a tenth of a
#: shared core).
CHILD_NICENESS = 10


class ScanCrashed(Exception):
    """The child's opening or scan raised something other than an :class:`AuditError`
    (a bug)."""


class ForkedScan:
    """The first scan of a session opened in a child process, from :meth:`start` on."""

    def __init__(self, pid: int, pipe: IO[bytes]) -> None:
        #: The parent's own session, once :meth:`opened` has opened it.
        self.session: AuditSession | None = None
        self._pid = pid
        self._pipe = pipe
        self._lock = threading.Lock()
        self._reaped = False

    @classmethod
    def start(cls, open_session: Callable[[], tuple[AuditSession, Any]]) -> ForkedScan | None:
        """Fork: the child calls ``open_session`` (the session to scan, and what to hand
        over to the parent, picklable), hands that over, then scans. None where processes
        cannot fork (the caller opens and scans in-process). Call it before any thread is
        started: a fork copies only the calling thread."""
        if not hasattr(os, "fork"):
            return None
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _open_scan_and_send(open_session, write_end)
        os.close(write_end)
        return cls(pid, os.fdopen(read_end, "rb"))

    def opened(self, open_own: Callable[[Any], AuditSession]) -> AuditSession:
        """The parent's session: ``open_own`` opens it from what the child handed over.
        Raises what the child's ``open_session`` raised (an :class:`AuditError` for bad
        input, else :class:`ScanCrashed`); the child is then reaped."""
        try:
            kind, *payload = self._receive()
            if kind != "opened":
                self._raise(kind, payload)
            self.session = open_own(payload[0])
        except BaseException:
            self.close()
            raise
        return self.session

    def result(self, progress: Progress | None = None) -> Report:
        """After :meth:`opened`: pass on each result to ``progress`` as the child sends
        it; the report. Raises the scan's :class:`AuditError`, :class:`ScanCrashed`, or
        what ``progress`` raises (the child is then stopped)."""
        try:
            while True:
                kind, *payload = self._receive()
                if kind == "result":
                    if progress:
                        progress(*payload)
                elif kind == "report":
                    report: Report = payload[0]
                    assert self.session is not None
                    self.session.last_report = report
                    return report
                else:
                    self._raise(kind, payload)
        finally:
            self.close()

    def _receive(self) -> list[Any]:
        try:
            message: list[Any] = list(pickle.load(self._pipe))
        except (EOFError, pickle.UnpicklingError):
            raise AuditError("the scan process ended without a report") from None
        return message

    @staticmethod
    def _raise(kind: str, payload: list[Any]) -> NoReturn:
        if kind == "error":
            raise AuditError(payload[0])
        raise ScanCrashed(payload[0])

    def stop(self) -> None:
        """Stop the child, from any thread: asked first (it stops the external tools it
        runs, which the parent cannot reach, and leaves), killed if it has not left in
        time (:func:`~soma_audit.core.forking.stop_child`). A reader waiting in
        :meth:`result` gets to the end of the pipe."""
        with self._lock:
            if not self._reaped:
                stop_child(self._pid)

    def close(self) -> None:
        """Stop and reap the child and close the pipe (once)."""
        self.stop()
        with self._lock:
            if not self._reaped:
                os.waitpid(self._pid, 0)
                self._reaped = True
        self._pipe.close()


def stop_tools() -> None:
    """A scanning child, asked to stop: the external tools it runs are in sessions of their
    own, which nothing else would stop. (Imported here: the TUI's process imports this
    module before anything else.)"""
    from soma_audit.services.tools import stop_running_tools

    stop_running_tools(leaving=True)


def _open_scan_and_send(open_session: Callable[[], tuple[AuditSession, Any]],
                        write_end: int) -> None:
    """The child: open the session and hand it over, scan, send every result and the
    report (or the error), and leave without running the parent's exit handlers (they
    remove the parent's demo copy)."""
    try:
        leave_when_asked(stop_tools)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the terminal's input is the TUI's, not the tools'
        with os.fdopen(write_end, "wb") as pipe:

            def send(*message: Any) -> None:
                pickle.dump(message, pipe, pickle.HIGHEST_PROTOCOL)
                pipe.flush()

            def progress(result: Result, done: int, total: int) -> None:
                send("result", result, done, total)

            try:
                session, handover = open_session()
                send("opened", handover)
                # Behind the TUI where the two share a core (a busy machine): the first
                # frame comes first. On a free core the child runs at full speed all the
                # same. Not before: the parent waits for the handover.
                os.nice(CHILD_NICENESS)
                send("report", session.scan(progress))
            except AuditError as exc:
                send("error", str(exc))
            except Exception as exc:
                send("crash", f"{type(exc).__name__}: {exc}")
    finally:
        os._exit(0)
