"""Fleet audits in one forked process per cluster, against a real API server of our own.

The contexts ``b1`` and ``b2`` both reach an extra kube-apiserver nobody else writes to
(so two audits of it must agree to the byte), ``down`` a closed port and ``silent`` a
socket that accepts connections and never answers. The process engine must give exactly
the report the thread engine gives, in context order; a cluster whose process dies gives
an error entry and costs the others nothing; Ctrl-C or SIGTERM stops every process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from soma_audit import cli
from soma_audit.core.model import ExitCode
from soma_audit.engine.fleet import audit_fleet, can_fork
from soma_audit.engine.session import AuditSession
from testenv.apiservers import start_extra_apiserver, write_kubeconfig
from testenv.proc import free_port
from tests.integration.cluster.kube_helpers import namespace

REPO = Path(__file__).resolve().parents[3]
#: Long enough that only a signal can end an audit of the silent server during a test.
PATIENT = "cluster: {connect_timeout_seconds: 120, read_timeout_seconds: 120, retries: 0}\n"


@dataclass(frozen=True)
class Clusters:
    kubeconfig: Path
    silent: socket.socket


@pytest.fixture(scope="module")
def clusters(kube_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    server = start_extra_apiserver(tmp_path_factory.mktemp("fleet-processes-apiserver"),
                                   prefix_name="soma-fleet-proc")
    silent = socket.create_server(("127.0.0.1", 0))  # listens; never accepts or answers
    try:
        tag = uuid.uuid4().hex[:8]
        namespace(server.admin, f"fleet-proc-bare-{tag}")
        namespace(server.admin, f"fleet-proc-labelled-{tag}",
                  {"pod-security.kubernetes.io/enforce": "restricted"})
        yield Clusters(
            kubeconfig=write_kubeconfig(
                tmp_path_factory.mktemp("fleet-processes") / "kubeconfig",
                {"b1": server.server, "down": f"https://127.0.0.1:{free_port()}",
                 "crash": server.server, "b2": server.server,
                 "silent": f"https://127.0.0.1:{silent.getsockname()[1]}"},
                kube_env.admin_kubeconfig.parent / "kube" / "pki"),
            silent=silent)
    finally:
        silent.close()
        server.stop()
    assert not server.running()


def _opener(clusters: Clusters, pids: Path) -> Callable[[str], AuditSession]:
    """The CLI's own session opener (``--only 'pss.*'``), noting which process opened
    each context's session; context ``crash`` kills its process instead."""
    args = cli._parser().parse_args(["--ci", "--kubeconfig", str(clusters.kubeconfig),
                                     "--only", "pss.*"])
    open_session = cli._session_opener(args)

    def opened(context: str) -> AuditSession:
        with pids.open("a") as out:
            out.write(f"{context} {os.getpid()}\n")
        if context == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        return open_session(context)

    return opened


def _untimed(node: Any) -> Any:
    """The fleet JSON without the times (when each audit began, how long it took)."""
    if isinstance(node, dict):
        return {k: _untimed(v) for k, v in node.items()
                if k not in ("started", "duration_seconds")}
    if isinstance(node, list):
        return [_untimed(v) for v in node]
    return node


def _opened_in(pids: Path) -> dict[str, int]:
    return dict((name, int(pid)) for name, pid in
                (line.split() for line in pids.read_text().splitlines()))


def test_processes_give_the_threads_report_in_context_order(clusters: Clusters,
                                                            tmp_path: Path) -> None:
    assert can_fork(), "the test process must be single-threaded for the process engine"
    names = ["b2", "down", "b1"]
    by_processes = audit_fleet(names, _opener(clusters, tmp_path / "forked"), processes=True)
    by_threads = audit_fleet(names, _opener(clusters, tmp_path / "threaded"), processes=False)
    forked = _opened_in(tmp_path / "forked")
    assert set(forked) == set(names) and os.getpid() not in forked.values()
    assert len(set(forked.values())) == len(names)  # one process per cluster
    assert set(_opened_in(tmp_path / "threaded").values()) == {os.getpid()}

    assert [c.cluster for c in by_processes.clusters] == names
    assert by_processes.clusters[0].report is not None
    assert "cannot reach the API server" in (by_processes.clusters[1].error or "")
    assert _untimed(by_processes.to_dict()) == _untimed(by_threads.to_dict())
    assert by_processes.exit_code() == by_threads.exit_code() == ExitCode.CANNOT_RUN
    for scan in by_processes.clusters:
        assert scan.started is not None and scan.duration_seconds > 0


def test_a_dead_cluster_process_costs_the_others_nothing(clusters: Clusters,
                                                         tmp_path: Path) -> None:
    fleet = audit_fleet(["b1", "crash", "b2"], _opener(clusters, tmp_path / "pids"),
                        processes=True)
    assert [c.cluster for c in fleet.clusters] == ["b1", "crash", "b2"]
    crashed = fleet.clusters[1]
    assert crashed.report is None and crashed.error == (
        "internal error: the audit process ended without a result (killed by SIGKILL)")
    assert crashed.started is not None
    b1, b2 = fleet.clusters[0].report, fleet.clusters[2].report
    assert b1 is not None and b2 is not None
    assert [(r.check.id, r.status) for r in b1.results] == \
        [(r.check.id, r.status) for r in b2.results]
    assert fleet.exit_code() == ExitCode.CANNOT_RUN


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.parametrize("to_group", [False, True],
                         ids=["SIGTERM to the process", "SIGINT to its process group"])
def test_interrupt_stops_every_cluster_process(clusters: Clusters, tmp_path: Path,
                                               to_group: bool) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(PATIENT, encoding="utf-8")
    report = tmp_path / "report.json"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SOMA_AUDIT_") and k != "KUBECONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "soma_audit", "--ci", "--kubeconfig", str(clusters.kubeconfig),
         "--config", str(config), "--only", "pss.*", "--format", "json", "-o", str(report),
         "--context", "b1", "--context", "silent", "--context", "b2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=clean,
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        children: set[int] = set()
        for _ in range(600):  # the silent cluster's process waits for an answer: found
            children = _children(proc.pid)
            if children:
                break
            time.sleep(0.05)
        assert children, "no cluster process was started"
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not report.exists()
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], children
