"""`python -m testenv` itself: env.sh, reuse of a running env, restart of a dead piece, down.

The restart/down test runs a second, private environment (its own state dir, Prometheus
group only: no build needed) so that it never disturbs the shared one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import testenv
from testenv.config import REPO

pytestmark = pytest.mark.integration


def _testenv(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:
        env["SOMA_TESTENV_DIR"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "testenv", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _sourced(env_sh: Path) -> dict[str, str]:
    out = subprocess.run(
        ["bash", "-c", f"source {env_sh} && env -0"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return dict(item.split("=", 1) for item in out.stdout.split("\0") if "=" in item)


def test_env_sh_exports_everything_a_shell_needs(
    kube_env: Any, openfga_env: Any, kafka_env: Any, prometheus_env: Any
) -> None:
    home = Path(testenv.state()["home"])
    env = _sourced(home / "env.sh")
    assert env["KUBECONFIG"] == str(kube_env.admin_kubeconfig)
    assert env["SOMA_TESTENV_READONLY_KUBECONFIG"] == str(kube_env.readonly_kubeconfig)
    assert env["SOMA_AUDIT_OPENFGA_URL"] == openfga_env.url
    assert env["SOMA_AUDIT_OPENFGA_STORE"] == openfga_env.store_id
    assert env["SOMA_AUDIT_KAFKA_BOOTSTRAP"] == kafka_env.bootstrap
    assert env["SOMA_AUDIT_KAFKA_SASL_USERNAME"] == "admin"
    assert env["SOMA_AUDIT_KAFKA_SASL_PASSWORD"] == kafka_env.users["admin"]
    assert env["SOMA_AUDIT_KAFKA_SASL_MECHANISM"] == "PLAIN"
    assert env["SOMA_AUDIT_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["SOMA_AUDIT_PROMETHEUS_URL"] == prometheus_env.url
    for tool in ("promtool", "openfga", "fga", "k6", "kube-apiserver", "etcd"):
        found = subprocess.run(
            ["bash", "-c", f"source {home / 'env.sh'} && command -v {tool}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert found.returncode == 0, f"{tool} not on PATH after sourcing env.sh"


def test_up_on_a_running_env_reuses_it(
    kube_env: Any, openfga_env: Any, kafka_env: Any, prometheus_env: Any
) -> None:
    before = {row["name"]: row["pid"] for row in testenv.status()}
    began = time.monotonic()
    result = _testenv("up")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 60
    for group in ("kube", "openfga", "kafka", "prometheus"):
        assert f"{group}: running (reused)" in result.stderr
    assert {row["name"]: row["pid"] for row in testenv.status()} == before
    status = _testenv("status", "--json")
    assert status.returncode == 0
    assert all(row["running"] for row in json.loads(status.stdout))


def test_private_env_restarts_a_dead_piece_and_down_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "env"
    first = _testenv("up", "--only", "prometheus", home=home)
    assert first.returncode == 0, first.stderr
    state = json.loads((home / "state.json").read_text())
    target = state["components"]["sli-target"]
    os.killpg(target["pid"], signal.SIGKILL)  # our own child's group, recorded by testenv

    second = _testenv("up", "--only", "prometheus", home=home)
    assert second.returncode == 0, second.stderr
    assert "running (reused)" not in second.stderr
    restarted = json.loads((home / "state.json").read_text())
    assert restarted["components"]["sli-target"]["pid"] != target["pid"]
    assert restarted["components"]["sli-target"]["ports"] == target["ports"]  # same port
    pids = [restarted["components"][name]["pid"] for name in ("sli-target", "prometheus")]

    down = _testenv("down", home=home)
    assert down.returncode == 0, down.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state_of(pid)
    assert not (home / "state.json").exists()
    assert (home / "logs/prometheus.log").exists()  # logs survive down, for debugging


def test_failed_component_is_named_with_its_log(tmp_path: Path) -> None:
    home = tmp_path / "broken"
    env = dict(os.environ, SOMA_TESTENV_DIR=str(home), PATH="/nonexistent")
    result = subprocess.run(
        [sys.executable, "-m", "testenv", "up", "--only", "prometheus"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "prometheus" in result.stderr
    assert "Traceback" not in result.stderr


def _state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
