"""Fixtures of the reliability tier: the integration fixtures, the audit log, the figures,
a Toxiproxy server (``proxies``) for fault injection.

Every test here runs the real tool (the CLI in a subprocess, or the real loaders) against
the real test environment; figures the tests measure go to ``results.json`` beside this
file, from which ``python -m tests.reliability.report`` writes docs/reliability.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from soma_audit import __version__
from testenv import toxiproxy
from tests.helpers import sigint_as_a_terminal_sends_it
from tests.integration.conftest import (  # noqa: F401 - fixtures re-exported
    _testenv_session,
    kafka_env,
    kube_admin_client,
    kube_env,
    openfga_env,
    prometheus_env,
    unique_name,
)

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).with_name("results.json")
SOMA_AUDIT = ROOT / ".venv" / "bin" / "soma-audit"
USER_AGENT = f"soma-audit/{__version__}"
MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test below this folder is in the reliability tier."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


class Figures:
    """Figures measured by the tests, merged into ``results.json`` at the end of a session."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def add(self, section: str, key: str, value: Any) -> None:
        """Set one figure."""
        self.data.setdefault(section, {})[key] = value

    def count(self, section: str, key: str, amount: int = 1) -> None:
        """Add ``amount`` to a counter."""
        bucket = self.data.setdefault(section, {})
        bucket[key] = bucket.get(key, 0) + amount

    def save(self) -> None:
        """Merge this session's figures into results.json."""
        old: dict[str, Any] = {}
        if RESULTS.exists():
            old = json.loads(RESULTS.read_text(encoding="utf-8"))
        for section, values in self.data.items():
            old.setdefault(section, {}).update(values)
        old["generated"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        RESULTS.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    """The session's figure recorder, saved at the end."""
    recorder = Figures()
    yield recorder
    if recorder.data:
        recorder.save()


@dataclass
class Run:
    """One finished CLI run."""

    argv: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float = 0.0


def run_cli(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 300,
            while_running: Callable[[subprocess.Popen[str]], None] | None = None) -> Run:
    """Run ``soma-audit`` in a subprocess with exactly ``env`` (plus PATH/HOME/TZ).

    ``while_running(process)`` runs in a thread meanwhile (the fault tests cut a proxy
    mid-scan from there). A run still going after ``timeout`` is killed and raises.
    """
    full = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    full.update(env)
    began = time.monotonic()
    with subprocess.Popen([str(SOMA_AUDIT), *argv], env=full, cwd=cwd, text=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        helper = None
        if while_running is not None:
            helper = threading.Thread(target=while_running, args=(proc,), daemon=True)
            helper.start()
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            if helper is not None:
                helper.join(timeout=10)
    return Run(argv, proc.returncode, stdout, stderr, time.monotonic() - began)


@dataclass
class Measured:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


def run_measured(argv: list[str], folder: Path, timeout: float = 120,
                 signal_after: float | Path | None = None, signum: int = signal.SIGINT,
                 env: dict[str, str] | None = None, to_a_worker: bool = False) -> Measured:
    """``soma-audit argv`` with its wall time and peak RSS; ``signal_after`` seconds in,
    or once the file ``signal_after`` exists, ``signum`` is sent (the time then counts from
    the signal). ``to_a_worker``: it is sent to one of the process's other threads, which
    Linux may pick for a signal sent to the process (``kill`` with a thread's id tries
    that thread first)."""
    full = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    full.update(env or {})
    out, err = folder / "stdout", folder / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        began = time.monotonic()
        proc = subprocess.Popen([str(SOMA_AUDIT), *argv], env=full, cwd=folder,
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                preexec_fn=sigint_as_a_terminal_sends_it)
        if isinstance(signal_after, Path):
            while not signal_after.exists() and time.monotonic() - began < timeout:
                time.sleep(0.01)
        elif signal_after is not None:
            time.sleep(signal_after)
        if signal_after is not None:
            os.kill(_a_worker_thread(proc.pid) if to_a_worker else proc.pid, signum)
            began = time.monotonic()
        while (time.monotonic() - began) < timeout:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            proc.kill()
            proc.wait()
            raise AssertionError(f"still running after {timeout}s: {argv}")
        seconds = time.monotonic() - began
    code = os.waitstatus_to_exitcode(status)
    return Measured(code, out.read_text(errors="replace"), err.read_text(errors="replace"),
                    seconds, usage.ru_maxrss / 1024)


def _a_worker_thread(pid: int) -> int:
    """The id of a thread of ``pid`` other than its main thread, once the process is idle
    (its CPU time has not moved for 0.3 s): every thread waits, the main one on a worker."""
    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    ticks, still_since = cpu_ticks(), time.monotonic()
    while time.monotonic() - still_since < 0.3:
        time.sleep(0.02)
        if (now := cpu_ticks()) != ticks:
            ticks, still_since = now, time.monotonic()
    workers = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()
               if int(task.name) != pid]
    assert workers, "the process has no other thread"
    return workers[0]


def service_env(kube: Any, fga: Any, kafka: Any, prom: Any) -> dict[str, str]:
    """The SOMA_AUDIT_* variables of the live services, with the read-only kubeconfig."""
    env = {
        "KUBECONFIG": str(kube.readonly_kubeconfig),
        "SOMA_AUDIT_OPENFGA_URL": fga.url,
        "SOMA_AUDIT_OPENFGA_STORE": fga.store_id,
        "SOMA_AUDIT_PROMETHEUS_URL": prom.url,
        "SOMA_AUDIT_KAFKA_BOOTSTRAP": kafka.bootstrap,
    }
    env.update({
        "SOMA_AUDIT_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
        "SOMA_AUDIT_KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
        "SOMA_AUDIT_KAFKA_SASL_USERNAME": kafka.admin_user,
        "SOMA_AUDIT_KAFKA_SASL_PASSWORD": kafka.users[kafka.admin_user],
    })
    return env


class AuditLog:
    """The API server's audit log (requests of the read-only identity, Metadata level)."""

    def __init__(self, path: Path, user: str) -> None:
        self.path = path
        self.user = user

    def now(self) -> dt.datetime:
        """The current UTC time (the server's clock: both run on this machine)."""
        return dt.datetime.now(dt.UTC)

    def events(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        """Completed requests of the tool (user and User-Agent) received in [start, end]."""
        time.sleep(0.5)  # the log backend writes batches asynchronously
        found = []
        with self.path.open(encoding="utf-8", errors="replace") as stream:
            for line in stream:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("stage") != "ResponseComplete":
                    continue
                if event.get("user", {}).get("username") != self.user:
                    continue
                if not str(event.get("userAgent", "")).startswith(USER_AGENT):
                    continue
                received = dt.datetime.fromisoformat(
                    event["requestReceivedTimestamp"].replace("Z", "+00:00"))
                if start <= received <= end:
                    found.append(event)
        return found


def mutating(events: list[dict[str, Any]]) -> list[str]:
    """``verb URI`` of every mutating request in ``events`` (server-side dry-runs included)."""
    return [f"{e['verb']} {e['requestURI']}" for e in events if e.get("verb") in MUTATING]


def persisting(events: list[dict[str, Any]]) -> list[str]:
    """The mutating requests that are not server-side dry-runs (``dryRun=All``)."""
    return [w for w in mutating(events) if "dryRun=All" not in w]


def scan_dry_runs(events: list[dict[str, Any]]) -> list[str]:
    """Server-side dry-runs in ``events``: a scan sends none (``pss.admission-verdict``'s
    namespace-label PATCH needs ``--probe-writes``); ``diff`` may."""
    return [w for w in mutating(events) if "dryRun=All" in w]


@pytest.fixture(scope="session")
def audit_log(kube_env: Any) -> AuditLog:  # noqa: F811 - the fixture above
    """The test API server's audit log, filtered to the read-only identity."""
    return AuditLog(Path(kube_env.audit_log), kube_env.readonly_user)


def python() -> str:
    """The interpreter running the tests (for measured subprocesses)."""
    return sys.executable


def demo_tree(base: Path) -> Path:
    """A scratch copy of the bundled demo GitOps repository."""
    from soma_audit.engine.demo import prepare_demo

    return prepare_demo(base)


def write_snapshot(tree: Path, path: Path) -> Path:
    """A ``kind: List`` dump of every object in ``tree`` (what ``kubectl get -o yaml`` gives)."""
    import yaml

    items = []
    for file in sorted(tree.rglob("*.y*ml")):
        try:
            docs = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            continue
        items.extend(d for d in docs if isinstance(d, dict) and "kind" in d and "apiVersion" in d)
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}),
                    encoding="utf-8")
    return path


class Toxiproxy:
    """The few calls of Toxiproxy's HTTP API the tests need, and its log."""

    def __init__(self, server: toxiproxy.Server) -> None:
        self.server = server
        self.api = server.api
        self.log = server.log

    def create(self, name: str, upstream: str) -> str:
        """A proxy to ``upstream`` on a free loopback port; returns its host:port."""
        return self.server.create_proxy(name, upstream)

    def add(self, name: str, kind: str, stream: str, **attributes: Any) -> None:
        """Add a toxic (latency, bandwidth, reset_peer, timeout ...) on one direction."""
        self.server.add_toxic(name, kind, stream, **attributes)

    def enable(self, name: str, enabled: bool) -> None:
        """Disabling closes every connection and stops listening: the server is gone."""
        self.server.call("POST", f"/proxies/{name}", {"enabled": enabled})

    def heal(self, name: str) -> None:
        """Remove every toxic and listen again."""
        self.server.remove_toxics(name)
        self.enable(name, True)

    def log_size(self) -> int:
        """Where the log ends now (to read only what comes after)."""
        return self.log.stat().st_size

    def accepted(self, name: str, since: int) -> int:
        """How many clients proxy ``name`` accepted after log offset ``since``."""
        with self.log.open("rb") as stream:
            stream.seek(since)
            return sum('"Accepted client"' in line and f'"name":"{name}"' in line
                       for line in stream.read().decode("utf-8", "replace").splitlines())

    def delivered(self, name: str) -> int:
        """Bytes the proxy passed from the server to the tool on connections closed so far
        (Toxiproxy counts a connection's bytes when it ends)."""
        with urllib.request.urlopen(f"{self.api}/metrics", timeout=10) as response:
            text = response.read().decode()
        pattern = re.compile(r'^toxiproxy_proxy_sent_bytes_total\{direction="downstream",'
                             rf'[^}}]*proxy="{re.escape(name)}"[^}}]*\}} (\S+)$', re.MULTILINE)
        found = pattern.search(text)
        return int(float(found.group(1))) if found else 0


@pytest.fixture(scope="session")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    """A Toxiproxy server for the session, stopped (its process group) at the end."""
    with toxiproxy.running(tmp_path_factory.mktemp("toxiproxy")) as server:
        yield Toxiproxy(server)
