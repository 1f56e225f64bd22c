"""`soma-audit serve` in-cluster style on the real API server, scraped by a real Prometheus.

The exporter runs as the installed command in a subprocess, configured the way a pod is:
no kubeconfig, KUBERNETES_SERVICE_HOST/PORT pointing at the test API server, and the
read-only ServiceAccount's token and CA in a directory (SOMA_AUDIT_SERVICEACCOUNT_DIR
stands in for /var/run/secrets/kubernetes.io/serviceaccount). A test-scoped Prometheus
(Debian's binary, found as testenv finds it) scrapes it every second and evaluates the
rules of manifests/deploy/prometheusrule.yaml every second. Deleting the namespace's
default-deny NetworkPolicy with the admin client is a real regression: the query API and
then the alerts API must show it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.core.paths import data_path
from testenv import build
from testenv.proc import free_port, spawn, stop_group, wait_for
from tests.helpers import http_get, wait_until

SOMA_AUDIT = Path(sys.executable).parent / "soma-audit"
#: default-deny regresses; service-coverage fails throughout (no policy of the service's
#: own), so it must never alert.
CHECKS = ("netpol.default-deny", "netpol.service-coverage")
INTERVAL = 4  # seconds; a scan of the shared server takes about as long


def _default_deny(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}


def _service_account_dir(readonly_kubeconfig: Path, directory: Path) -> Path:
    """The files Kubernetes mounts in a pod, from the read-only ServiceAccount's kubeconfig."""
    config = yaml.safe_load(readonly_kubeconfig.read_text())
    directory.mkdir()
    (directory / "token").write_text(config["users"][0]["user"]["token"])
    (directory / "ca.crt").write_bytes(
        base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
    return directory


@dataclass
class ServeProcess:
    """The running `soma-audit serve`: its base URL, process and log file."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def namespace(kube_admin_client: Any, unique_name: Callable[[str], str]) -> str:
    """A fresh namespace with a default-deny NetworkPolicy: netpol.default-deny passes."""
    from kubernetes import client

    name = unique_name("exporter")
    client.CoreV1Api(kube_admin_client).create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    client.NetworkingV1Api(kube_admin_client).create_namespaced_network_policy(
        name, _default_deny(name))
    return name


@pytest.fixture
def exporter(kube_env: Any, namespace: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """`soma-audit serve` with in-cluster configuration, scoped to the fresh namespace."""
    server = urllib.parse.urlsplit(kube_env.server)
    config = tmp_path / "soma-audit.yaml"
    config.write_text(yaml.safe_dump({
        "namespace": namespace,
        "services": [{"name": f"{namespace}-web", "port": 8080}],
        "flows": [],
    }))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOMA_AUDIT_") and k != "KUBECONFIG"}
    env.update(
        KUBERNETES_SERVICE_HOST=str(server.hostname),
        KUBERNETES_SERVICE_PORT=str(server.port),
        SOMA_AUDIT_SERVICEACCOUNT_DIR=str(_service_account_dir(
            kube_env.readonly_kubeconfig, tmp_path / "serviceaccount")),
        # No kubeconfig anywhere, as in a pod.
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    port = free_port()
    log = tmp_path / "exporter.log"
    argv = [str(SOMA_AUDIT), "serve", "--bind", "127.0.0.1", "--port", str(port),
            "--interval", str(INTERVAL), "--config", str(config)]
    for check in CHECKS:
        argv += ["--only", check]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{url}/healthz").status == 200, what=f"{url}/healthz",
                 component="soma-audit serve", timeout=60, log=log)
        yield ServeProcess(url, proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def prometheus(exporter: ServeProcess, tmp_path: Path) -> Iterator[str]:
    """A Prometheus of this test only: scrapes the exporter and evaluates our rules every
    second. Its binary is the one the test environment uses (Debian's package)."""
    binary, _ = build.prometheus(tmp_path, lambda *_: None)
    rule = yaml.safe_load(data_path("manifests", "deploy", "prometheusrule.yaml").read_text())
    rules = tmp_path / "soma-audit.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    port = free_port()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{
            "job_name": "soma-audit",
            "static_configs": [{"targets": [exporter.url.removeprefix("http://")]}],
        }],
    }))
    (tmp_path / "tsdb").mkdir()
    log = tmp_path / "prometheus.log"
    pid, started = spawn([str(binary), f"--config.file={conf}",
                          f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                         log, home=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: "Ready" in http_get(f"{url}/-/ready").body, what="/-/ready",
                 component="prometheus", timeout=60, log=log, pid=pid, started=started)
        yield url
    finally:
        assert stop_group(pid, started), "prometheus would not stop"


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    status, body, _ = http_get(f"{prometheus}/api/v1/query?"
                        + urllib.parse.urlencode({"query": expr}))
    assert status == 200, body
    return list(json.loads(body)["data"]["result"])


def _alerts(prometheus: str, name: str) -> list[dict[str, Any]]:
    status, body, _ = http_get(f"{prometheus}/api/v1/alerts")
    assert status == 200, body
    return [a for a in json.loads(body)["data"]["alerts"] if a["labels"]["alertname"] == name]


def test_prometheus_scrapes_the_in_cluster_exporter_and_alerts_on_a_regression(
        exporter: ServeProcess, prometheus: str, namespace: str, kube_admin_client: Any) -> None:
    # The exporter's own endpoints.
    report = json.loads(wait_until("a first report", lambda: (
        body if (answer := http_get(f"{exporter.url}/report.json"))[0] == 200
        and (body := answer[1]) else None), timeout=90))
    assert report["source"] == {"kind": "cluster", "ref": "in-cluster"}
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses == {"netpol.default-deny": "pass", "netpol.service-coverage": "fail"}
    assert http_get(f"{exporter.url}/healthz")[:2] == (200, "ok\n")

    # Prometheus has every status of the check as a series, 1 for the current one.
    series = wait_until("soma_audit_check_status in Prometheus", lambda: (
        found if len(found := _query(
            prometheus, 'soma_audit_check_status{check="netpol.default-deny"}')) == 6
        else None), timeout=60)
    values = {s["metric"]["status"]: s["value"][1] for s in series}
    assert values == {"pass": "1", "fail": "0", "error": "0", "skip": "0", "manual": "0",
                      "waived": "0"}
    for one in series:
        assert {k: v for k, v in one["metric"].items() if k != "status"} == {
            "__name__": "soma_audit_check_status", "cluster": "in-cluster",
            "check": "netpol.default-deny", "phase": "1", "area": "netpol",
            "severity": "critical", "job": "soma-audit",
            "instance": exporter.url.removeprefix("http://")}
    (up,) = _query(prometheus, "soma_audit_up")
    assert up["metric"]["cluster"] == "in-cluster" and up["value"][1] == "1"
    (interval,) = _query(prometheus, "soma_audit_scan_interval_seconds")
    assert float(interval["value"][1]) == INTERVAL
    assert not _alerts(prometheus, "SomaAuditCheckRegressed")

    # A real regression: the admin deletes the default-deny policy.
    from kubernetes import client

    client.NetworkingV1Api(kube_admin_client).delete_namespaced_network_policy(
        "default-deny", namespace)
    firing = wait_until("SomaAuditCheckRegressed to fire", lambda: [
        a for a in _alerts(prometheus, "SomaAuditCheckRegressed")
        if a["state"] == "firing"], timeout=120)
    (alert,) = firing  # not the steadily failing service-coverage
    assert {k: alert["labels"][k] for k in ("cluster", "check", "severity", "phase", "area")
            } == {"cluster": "in-cluster", "check": "netpol.default-deny",
                  "severity": "critical", "phase": "1", "area": "netpol"}
    assert alert["annotations"]["runbook_url"] == "docs/exporter.md#somaauditcheckregressed"
    assert _query(prometheus, 'soma_audit_check_status{check="netpol.default-deny",'
                              'status="fail"} == 1')
    assert not _alerts(prometheus, "SomaAuditScanFailing")
    report = json.loads(http_get(f"{exporter.url}/report.json").body)
    assert {c["id"]: c["status"] for c in report["checks"]} == {
        "netpol.default-deny": "fail", "netpol.service-coverage": "fail"}

    # Graceful stop on SIGTERM, one log line per scan, no traceback.
    exporter.proc.send_signal(signal.SIGTERM)
    assert exporter.proc.wait(60) == 0
    log = exporter.log.read_text()
    assert "Traceback" not in log
    assert "scan of in-cluster ran in" in log
    assert "SIGTERM received: stopping" in log
