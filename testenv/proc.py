"""Process plumbing: detached starts, identity-checked stops, free ports, bounded waits.

Every process we start gets its own session (so a whole process group can be stopped) and
an environment marker, SOMA_TESTENV_HOME=<state dir>, so that `down` can find orphans of a
crashed `up` by that exact marker and never by a process name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MARKER = "SOMA_TESTENV_HOME"


class ComponentError(RuntimeError):
    """A component could not be obtained or started; carries its name and log tail."""

    def __init__(self, component: str, message: str, log: Path | None = None) -> None:
        self.component = component
        self.log = log
        detail = f"{component}: {message}"
        if log is not None:
            detail += f"\n--- last lines of {log} ---\n{tail(log)}"
        super().__init__(detail)


def tail(path: Path, lines: int = 25) -> str:
    """Last lines of a log file, for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


def free_port(taken: set[int] | None = None) -> int:
    """A loopback TCP port that is free now (and not already handed out in this run)."""
    taken = taken if taken is not None else set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now.

    SO_REUSEADDR, as Go, Java and Python servers set it: connections of a stopped server
    in TIME_WAIT do not keep its port from being reused on restart.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_time(pid: int) -> int | None:
    """The kernel start time of a pid (clock ticks since boot); None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        _reap(pid)
        return None
    return int(fields[19])


def _reap(pid: int) -> None:
    """Collect a zombie child of ours so that it stops looking alive."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int | None, started: int | None) -> bool:
    """Whether the process we recorded (pid and start time) still runs."""
    if not pid or started is None:
        return False
    return start_time(pid) == started


def spawn(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path,
) -> tuple[int, int]:
    """Start argv detached (own session, stdin closed, output to log); return (pid, start)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    full_env[MARKER] = str(home)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
            env=full_env,
            start_new_session=True,
            close_fds=True,
        )
    started = start_time(proc.pid)
    if started is None:
        raise ComponentError(Path(argv[0]).name, "exited at once", log)
    return proc.pid, started


def group_members(pgid: int) -> list[int]:
    """Pids whose process group is pgid (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_group(pid: int, started: int | None, grace: float = 10.0) -> bool:
    """Stop the process group led by our pid: TERM, then KILL after grace; verify it is gone.

    The start time guards against pid reuse: a pid that now belongs to someone else is left
    alone. Returns True when nothing of the group remains.
    """
    if started is not None and start_time(pid) not in (started, None):
        return True  # the pid was reused by an unrelated process: ours is long gone
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        members = group_members(pid)
        if not members:
            _reap(pid)
            return True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not group_members(pid):
                return True
            time.sleep(0.1)
    _reap(pid)
    return not group_members(pid)


def marked_processes(home: Path) -> list[int]:
    """Pids of running processes that carry our marker for this state dir (orphan sweep)."""
    needle = f"{MARKER}={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def wait_for(
    check: Callable[[], T | None],
    *,
    what: str,
    component: str,
    timeout: float,
    log: Path | None = None,
    pid: int | None = None,
    started: int | None = None,
    interval: float = 0.25,
) -> T:
    """Poll check() until it returns a truthy value, the process dies, or the deadline."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            result = check()
        except Exception as exc:  # any failure of a probe just means "not yet"
            result = None
            last_error = f" (last error: {exc})"
        if result:
            return result
        if pid is not None and not alive(pid, started):
            raise ComponentError(component, f"exited while waiting for {what}", log)
        if time.monotonic() > deadline:
            raise ComponentError(
                component, f"timed out after {timeout:.0f}s waiting for {what}{last_error}", log
            )
        time.sleep(interval)


def run(
    argv: Sequence[str],
    *,
    component: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float,
) -> None:
    """Run a build/setup command to completion with output to log; raise on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(cwd) if cwd else None,
                env=dict(env) if env is not None else None,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ComponentError(component, f"command not found: {argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            message = f"timed out after {timeout:.0f}s: {argv[0]}"
            raise ComponentError(component, message, log) from exc
    if proc.returncode != 0:
        raise ComponentError(component, f"`{' '.join(argv[:3])} ...` exited {proc.returncode}", log)


@contextlib.contextmanager
def file_lock(path: Path, *, what: str, timeout: float) -> Iterator[None]:
    """An exclusive flock, so that two `up`/`down` runs never race on one state dir or cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ComponentError(what, f"another testenv process holds {path}") from None
                if not announced:
                    print(f"[testenv] waiting for another testenv process ({path})", flush=True)
                    announced = True
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
