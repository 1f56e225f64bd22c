"""A session's first scan in a child process, so that the TUI can start beside it.

A scan is Python work: in a thread of the TUI's process it would share one core (the GIL)
with Textual's own start, and the first results would wait for both. The TUI's process
forks before it imports Textual; the child scans and sends each result, then the report,
through a pipe, and the parent's scan worker hands them on as an in-process scan would.
Later scans (a rescan, the re-run after an attestation or an apply) run in the process.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from typing import IO, TYPE_CHECKING, Any

from soma_audit.core.errors import AuditError

if TYPE_CHECKING:
    from soma_audit.core.model import Result
    from soma_audit.engine.scan import Progress
    from soma_audit.engine.session import AuditSession
    from soma_audit.results.report import Report


#: How much lower the child's priority is than the TUI's (CFS gives it about a tenth of a
#: shared core).
CHILD_NICENESS = 10


class ScanCrashed(Exception):
    """The child's scan raised something other than an :class:`AuditError` (a bug)."""


class ForkedScan:
    """The first scan of ``session``, running in a child process from :meth:`start` on."""

    def __init__(self, session: AuditSession, pid: int, pipe: IO[bytes]) -> None:
        self.session = session
        self._pid = pid
        self._pipe = pipe
        self._lock = threading.Lock()
        self._reaped = False

    @classmethod
    def start(cls, session: AuditSession) -> ForkedScan | None:
        """Fork the scan; None where processes cannot fork (the caller scans in-process).
        Call it before any thread is started: a fork copies only the calling thread."""
        if not hasattr(os, "fork"):
            return None
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _scan_and_send(session, write_end)
        os.close(write_end)
        return cls(session, pid, os.fdopen(read_end, "rb"))

    def result(self, progress: Progress | None = None) -> Report:
        """Pass on each result to ``progress`` as the child sends it; the report. Raises
        the scan's :class:`AuditError`, :class:`ScanCrashed`, or what ``progress`` raises
        (the child is then stopped)."""
        try:
            while True:
                try:
                    kind, *payload = pickle.load(self._pipe)
                except (EOFError, pickle.UnpicklingError):
                    raise AuditError("the scan process ended without a report") from None
                if kind == "result":
                    if progress:
                        progress(*payload)
                elif kind == "report":
                    report: Report = payload[0]
                    self.session.last_report = report
                    return report
                elif kind == "error":
                    raise AuditError(payload[0])
                else:
                    raise ScanCrashed(payload[0])
        finally:
            self.close()

    def stop(self) -> None:
        """Kill the child, from any thread: a reader waiting in :meth:`result` gets to the
        end of the pipe."""
        with self._lock:
            if not self._reaped:
                with contextlib.suppress(ProcessLookupError):  # a zombie can be killed
                    os.kill(self._pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop and reap the child and close the pipe (once)."""
        self.stop()
        with self._lock:
            if not self._reaped:
                os.waitpid(self._pid, 0)
                self._reaped = True
        self._pipe.close()


def _scan_and_send(session: AuditSession, write_end: int) -> None:
    """The child: scan, send every result and the report (or the error), and leave
    without running the parent's exit handlers (they remove the parent's demo copy)."""
    try:
        # Behind the TUI where the two share a core (a busy machine): the first frame comes
        # first. On a free core the child runs at full speed all the same.
        os.nice(CHILD_NICENESS)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the terminal's input is the TUI's, not the tools'
        with os.fdopen(write_end, "wb") as pipe:

            def send(*message: Any) -> None:
                pickle.dump(message, pipe, pickle.HIGHEST_PROTOCOL)
                pipe.flush()

            def progress(result: Result, done: int, total: int) -> None:
                send("result", result, done, total)

            try:
                send("report", session.scan(progress))
            except AuditError as exc:
                send("error", str(exc))
            except Exception as exc:
                send("crash", f"{type(exc).__name__}: {exc}")
    finally:
        os._exit(0)
