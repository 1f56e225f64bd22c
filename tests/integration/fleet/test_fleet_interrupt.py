"""Ctrl-C or SIGTERM stops a fleet audit while one cluster never answers.

Context ``a`` is the test API server, ``silent`` a socket that accepts connections and
never answers (with timeouts far beyond the test's patience, only the signal can end that
cluster's audit). The real command in a subprocess is signalled once its audit of ``a``
began; it must leave at once with exit 130, no traceback, no report written.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.apiservers import write_kubeconfig
from tests.helpers import sigint_as_a_terminal_sends_it

REPO = Path(__file__).resolve().parents[3]
#: Only a signal can end an audit of the silent server within the test's 30 s.
PATIENT = "cluster: {connect_timeout_seconds: 120, read_timeout_seconds: 120, retries: 0}\n"


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))  # listens; never accepts or answers
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("to_group", [False, True],
                         ids=["SIGTERM to the process", "SIGINT to its process group"])
def test_a_signal_stops_the_fleet_at_once(kube_env: Any, silent: socket.socket,
                                          tmp_path: Path, to_group: bool) -> None:
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"a": kube_env.server, "silent": f"https://127.0.0.1:{silent.getsockname()[1]}"},
        kube_env.admin_kubeconfig.parent / "kube" / "pki")
    config = tmp_path / "config.yaml"
    config.write_text(PATIENT, encoding="utf-8")
    report = tmp_path / "report.json"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SOMA_AUDIT_") and k != "KUBECONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "soma_audit", "--ci", "--kubeconfig", str(kubeconfig),
         "--config", str(config), "--only", "pss.*", "--format", "json", "-o", str(report),
         "--context", "a", "--context", "silent"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=clean,
        stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=sigint_as_a_terminal_sends_it)
    connection = None
    try:
        silent.settimeout(60)
        connection, _ = silent.accept()  # the audit of `silent` has begun: kept waiting
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if connection is not None:
            connection.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-2000:]
    assert not report.exists()
