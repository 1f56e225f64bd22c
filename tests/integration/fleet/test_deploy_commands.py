"""The commands manifests/deploy runs, run for real on this host (no image is built here).

The Deployment's and the CronJob's container args are read from the manifests and run
with the installed soma-audit as the testenv's read-only identity: ServiceAccount
soma-audit/soma-audit bound to soma-audit-readonly, the identity the pods get, through its
kubeconfig instead of a mounted token. Changed for a shared test machine only: serve
listens on 127.0.0.1 and a free port instead of 0.0.0.0:9464, the /reports mount becomes a
temporary folder, and ``--only`` keeps each scan of the shared API server short.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import http_get, wait_until
from tests.unit.test_cli import BIN, CLEAN_ENV
from tests.unit.test_deploy import deploy_objects, one, pod_templates

pytestmark = pytest.mark.integration

SCOPE = ("--only", "ops.*")


def _container(ref: str) -> dict[str, Any]:
    (container,) = pod_templates(deploy_objects())[ref]["spec"]["containers"]
    return container


def _expanded(container: dict[str, Any]) -> list[str]:
    """The args as the kubelet passes them: ``$(VAR)`` replaced by the container's env."""
    args = list(container["args"])
    for var in container.get("env", []):
        args = [arg.replace(f"$({var['name']})", var["value"]) for arg in args]
    assert not [arg for arg in args if "$(" in arg], args
    return args


def _with(args: list[str], option: str, value: str) -> list[str]:
    """``args`` with the value after ``option`` replaced."""
    at = args.index(option) + 1
    return [*args[:at], value, *args[at + 1:]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, done: Any, timeout: float = 90.0) -> tuple[int, str]:
    """The first (status, body) of ``url`` that is ``done`` (a test failure at timeout)."""
    return wait_until(url, lambda: (answer if done(*(answer := http_get(url)[:2])) else None),
                      timeout=timeout, step=0.5)


def test_the_deployment_command_serves_what_the_probes_and_monitor_read(
        kube_env: Any, tmp_path: Path) -> None:
    container = _container("Deployment/soma-audit")
    args = _expanded(container)
    cluster_name = args[args.index("--cluster-name") + 1]
    port = _free_port()
    args = _with(_with(args, "--port", str(port)), "--bind", "127.0.0.1")
    health = container["readinessProbe"]["httpGet"]["path"]
    assert container["livenessProbe"]["httpGet"]["path"] == health
    metrics = one(deploy_objects(), "ServiceMonitor")["spec"]["endpoints"][0]["path"]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN), *args, "--kubeconfig", str(kube_env.readonly_kubeconfig), *SCOPE],
        env=CLEAN_ENV, cwd=tmp_path, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        status, body = _wait_for(base + health, lambda s, _: s == 200)
        assert (status, body) == (200, "ok\n"), server.poll()
        scanned = f'cluster="{cluster_name}"'
        status, text = _wait_for(base + metrics, lambda s, b: s == 200 and scanned in b)
        assert status == 200 and scanned in text, text[-2000:]
        assert any(line.startswith("soma_audit_check_status{") and scanned in line
                   for line in text.splitlines()), text[-2000:]
        status, report, _ = http_get(base + "/report.json")
        assert status == 200
        data = json.loads(report)
        assert data["source"]["kind"] == "cluster"
        assert {c["id"].split(".")[0] for c in data["checks"]} == {"ops"}
        # A pod is stopped with SIGTERM and 30 s of grace: serve must leave in time.
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        output = server.communicate(timeout=30)[0]
    assert "Traceback" not in output, output


def test_the_cronjob_command_writes_its_report_and_metrics(kube_env: Any,
                                                           tmp_path: Path) -> None:
    container = _container("CronJob/soma-audit-report")
    (mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "reports"]
    reports = tmp_path / "reports"
    reports.mkdir()
    args = [arg.replace(mount, str(reports)) for arg in _expanded(container)]
    assert all(str(reports) in args[args.index(o) + 1] for o in ("-o", "--metrics-file"))
    proc = subprocess.run(
        [str(BIN), *args, "--kubeconfig", str(kube_env.readonly_kubeconfig), *SCOPE],
        env=CLEAN_ENV, cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300, check=False,
    )
    # The CronJob's podFailurePolicy reads exit code 1 as "report written, not ready".
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(Path(args[args.index("-o") + 1]).read_text())
    summary = report["summary"]
    assert proc.returncode == (1 if summary["fail"] + summary["error"] else 0)
    assert report["source"]["kind"] == "cluster"
    metrics = Path(args[args.index("--metrics-file") + 1]).read_text()
    checks = {c["id"] for c in report["checks"]}
    for check_id in checks:
        assert f'check="{check_id}"' in metrics, check_id
    assert "Traceback" not in proc.stderr
