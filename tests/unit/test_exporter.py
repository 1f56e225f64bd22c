"""`soma-audit serve` and `--ci --metrics-file` on a manifests tree (no services needed).

The server runs as the real installed command in a subprocess: it re-audits the directory
on its interval, so editing the files changes what /metrics says, and emptying the
directory makes real scans fail. The health and 503 paths run the Exporter in-process
against a kube API endpoint that accepts connections and never answers (a real hang).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.engine.fleet import audit_fleet
from soma_audit.engine.session import AuditSession
from soma_audit.exporter.server import Exporter, _handler
from soma_audit.sources.cluster import ClusterSource, Timeouts
from testenv import certs
from testenv.proc import free_port
from tests.helpers import http_get, wait_until
from tests.unit.test_cli import BIN, CLEAN_ENV, run
from tests.unit.test_metrics import MANIFESTS

ONLY = ["--only", "pss.no-privileged", "--only", "pss.audit-label"]


def _status_body(url: str) -> tuple[int, str]:
    return http_get(url)[:2]


def _series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _value(text: str, name: str, **labels: str) -> float | None:
    found = [v for (n, have), v in _series(text).items()
             if n == name and labels.items() <= dict(have).items()]
    return found[0] if len(found) == 1 else None


def _write_shop(root: Path, privileged: bool) -> None:
    (root / "shop.yaml").write_text(MANIFESTS % str(privileged).lower())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """`soma-audit serve --manifests DIR` on a free loopback port, re-auditing every 0.3 s."""
    root = tmp_path / "gitops"
    root.mkdir()
    _write_shop(root, privileged=True)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--manifests", str(root), "--port", str(port),
             "--bind", "127.0.0.1", "--interval", "0.3", "--cluster-name", "shop", *ONLY],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=CLEAN_ENV,
            stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("/healthz", lambda: _reachable(base) or proc.poll() is not None)
        assert proc.poll() is None, log.read_text()
        yield base, proc, root
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _reachable(base: str) -> bool:
    return http_get(f"{base}/healthz").status == 200


def test_serve_reaudits_on_its_interval_and_stops_cleanly_on_sigterm(
        served: tuple[str, subprocess.Popen[str], Path], tmp_path: Path) -> None:
    base, proc, root = served
    status, body, content_type = http_get(f"{base}/healthz")
    assert (status, body) == (200, "ok\n")
    metrics = wait_until("a first scan", lambda: http_get(f"{base}/metrics").body)
    assert http_get(f"{base}/metrics").content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert _value(metrics, "soma_audit_up", cluster="shop") == 1.0
    assert _value(metrics, "soma_audit_check_status", cluster="shop",
                  check="pss.no-privileged", status="fail") == 1.0
    status, body, content_type = http_get(f"{base}/report.json")
    report = json.loads(body)
    assert (status, content_type) == (200, "application/json")
    assert report["source"]["kind"] == "manifests"
    assert {c["id"]: c["status"] for c in report["checks"]}["pss.no-privileged"] == "fail"
    assert http_get(f"{base}/nothing-here").status == 404

    # Harden the pod: the next scan sees it.
    _write_shop(root, privileged=False)
    wait_until("pss.no-privileged to pass", lambda: _value(
        http_get(f"{base}/metrics").body, "soma_audit_check_status", check="pss.no-privileged",
        status="pass") == 1.0)

    # An empty directory cannot be audited: up 0, errors counted, last results kept.
    (root / "shop.yaml").unlink()
    metrics = wait_until("a failed scan", lambda: (
        text if _value(text := http_get(f"{base}/metrics").body, "soma_audit_up") == 0.0 else ""))
    assert _value(metrics, "soma_audit_scan_errors_total") >= 1.0
    assert _value(metrics, "soma_audit_check_status", check="pss.no-privileged",
                  status="pass") == 1.0
    assert http_get(f"{base}/report.json").status == 200  # the last report that ran
    assert http_get(f"{base}/healthz").status == 200  # scans fail, but the loop is alive

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log
    assert "scan of shop ran in" in log and "1 pass, 1 fail" in log
    assert "scan of shop failed after" in log and "manifests directory is empty" in log
    assert "SIGTERM received: stopping" in log


def test_sigint_stops_the_server_with_exit_code_0(
        served: tuple[str, subprocess.Popen[str], Path]) -> None:
    _, proc, _ = served
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0


def test_health_and_report_while_scans_hang(unanswering_kubeconfig: Path,
                                            tmp_path: Path) -> None:
    config = load_config()
    checks = [c for c in load_catalog() if c.id == "pss.no-privileged"]

    def open_session(_: str) -> AuditSession:
        source = ClusterSource(str(unanswering_kubeconfig),
                               timeouts=Timeouts(connect=4, read=1, retries=0))
        return AuditSession(source, config, checks, tmp_path / "attestations.yaml")

    # The TLS handshake, bounded by the connect timeout, hangs 4 s: longer than three
    # intervals (1.5 s).
    exporter = Exporter(lambda: audit_fleet(["hang"], open_session), interval=0.5,
                        single=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(exporter))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert _status_body(f"{base}/healthz") == (503, "the scan loop is not running\n")
        assert _status_body(f"{base}/report.json") == (503, "no scan has finished yet\n")
        assert _status_body(f"{base}/metrics") == (200, "")
        exporter.start()
        assert http_get(f"{base}/healthz").status == 200  # the first scan is young
        status, reason, _ = wait_until("an unhealthy answer", lambda: (
            answer if (answer := http_get(f"{base}/healthz"))[0] == 503 else None), timeout=10)
        assert "the first scan has been running for" in reason
        text = wait_until("the failed scan", lambda: http_get(f"{base}/metrics").body, timeout=15)
        assert _value(text, "soma_audit_up", cluster="hang") == 0.0
        assert _value(text, "soma_audit_scan_errors_total", cluster="hang") >= 1.0
        assert _value(text, "soma_audit_scan_interval_seconds", cluster="hang") == 0.5
        status, body, _ = http_get(f"{base}/report.json")
        assert status == 503 and "cannot reach the API server" in body
    finally:
        server.shutdown()
        server.server_close()
        exporter.stop()


# ------------------------------------------------------------------ --ci --metrics-file


def test_ci_metrics_file_is_written_beside_the_report(tmp_path: Path) -> None:
    root = tmp_path / "gitops"
    root.mkdir()
    _write_shop(root, privileged=True)
    out = tmp_path / "textfile"
    out.mkdir()
    prom = out / "soma_audit.prom"
    prom.write_text("# an older run\n")
    before = prom.stat().st_ino
    proc = run("--ci", "--manifests", str(root), *ONLY, "--format", "json", "-o",
               str(tmp_path / "report.json"), "--metrics-file", str(prom),
               "--cluster-name", "shop")
    assert proc.returncode == 1, proc.stderr  # a check fails: not ready
    report = json.loads((tmp_path / "report.json").read_text())
    text = prom.read_text()
    for check in report["checks"]:
        assert _value(text, "soma_audit_check_status", cluster="shop", check=check["id"],
                      status=check["status"]) == 1.0
    assert _value(text, "soma_audit_up", cluster="shop") == 1.0
    assert _value(text, "soma_audit_scan_interval_seconds") is None
    # Replaced in one step (a new inode, nothing left beside it), with an ordinary mode.
    assert prom.stat().st_ino != before
    assert sorted(p.name for p in out.iterdir()) == ["soma_audit.prom"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(prom.stat().st_mode) == 0o666 & ~umask


def _unreachable_kubeconfig(path: Path, contexts: list[str]) -> dict[str, str]:
    """A kubeconfig whose contexts each name a loopback port nothing listens on; returns
    context → server."""
    servers = {name: f"https://127.0.0.1:{free_port()}" for name in contexts}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": n, "cluster": {"server": url}} for n, url in servers.items()],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in contexts],
    }))
    return servers


def test_serve_scans_each_context_as_its_own_cluster(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "fleet.kubeconfig"
    servers = _unreachable_kubeconfig(kubeconfig, ["east", "west"])
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "serve", "--kubeconfig", str(kubeconfig), "--context", "east",
         "--context", "west", "--port", str(port), "--bind", "127.0.0.1", "--interval",
         "0.5", *ONLY], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=CLEAN_ENV, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("/healthz", lambda: _reachable(base) or proc.poll() is not None)
        text = wait_until("failed scans of both", lambda: (
            text if _value(text := http_get(f"{base}/metrics").body, "soma_audit_up",
                           cluster="west") == 0.0 else ""), timeout=60)
        assert _value(text, "soma_audit_up", cluster="east") == 0.0
        status, body, _ = http_get(f"{base}/report.json")
        # Each cluster was asked at its own server, not the current context's.
        assert status == 503
        assert f"east: cannot reach the API server at {servers['east']}" in body
        assert f"west: cannot reach the API server at {servers['west']}" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert "Traceback" not in proc.stderr.read()
    rejected = run("serve", "--kubeconfig", str(kubeconfig), "--context", "east", "--context",
                   "west", "--cluster-name", "one")
    assert rejected.returncode == 2
    assert rejected.stderr.startswith("soma-audit: error: --cluster-name labels one cluster")


def test_ci_metrics_file_records_a_cluster_that_cannot_be_reached(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "gone.kubeconfig"
    _unreachable_kubeconfig(kubeconfig, ["gone"])
    prom = tmp_path / "soma_audit.prom"
    proc = run("--ci", "--kubeconfig", str(kubeconfig), *ONLY, "--metrics-file", str(prom))
    assert proc.returncode == 2
    assert proc.stderr.startswith("soma-audit: error: cannot reach the API server")
    assert "Traceback" not in proc.stderr
    text = prom.read_text()
    assert _value(text, "soma_audit_up", cluster="gone") == 0.0
    assert _value(text, "soma_audit_scan_errors_total", cluster="gone") == 1.0
    assert _value(text, "soma_audit_check_status") is None


def test_serve_rejects_bad_flags_with_one_line(tmp_path: Path) -> None:
    for args, message in (
            (["--interval", "0"], "--interval must be a positive number of seconds"),
            (["--interval", "inf"], "--interval must be a positive number of seconds"),
            (["--port", "70000"], "--port must be 0 to 65535"),
            (["--manifests", str(tmp_path / "missing")], "manifests directory not found")):
        proc = run("serve", *(["--demo"] if "--manifests" not in args else []), *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith(f"soma-audit: error: {message}"), proc.stderr
        assert "Traceback" not in proc.stderr
    proc = run("--demo", "--metrics-file", str(tmp_path / "m.prom"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("soma-audit: error: --metrics-file goes with --ci")
    assert not (tmp_path / "m.prom").exists()


def test_in_cluster_mode_reads_the_service_account_dir_of_the_environment(
        tmp_path: Path) -> None:
    """SOMA_AUDIT_SERVICEACCOUNT_DIR stands in for the pod's mounted token and CA; the API
    server is KUBERNETES_SERVICE_HOST/PORT (here a port nothing listens on)."""
    port = free_port()
    account = tmp_path / "serviceaccount"
    account.mkdir()
    env = {**CLEAN_ENV, "KUBECONFIG": str(tmp_path / "none"), "KUBERNETES_SERVICE_HOST":
           "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port),
           "SOMA_AUDIT_SERVICEACCOUNT_DIR": str(account)}
    missing = run("--ci", *ONLY, env=env)
    assert missing.returncode == 2
    assert missing.stderr == ("soma-audit: error: cannot use the in-cluster service account: "
                              f"no token file at {account / 'token'}\n")
    (account / "token").write_text("a-token")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    broken = run("--ci", *ONLY, env=env)
    assert broken.returncode == 2
    assert broken.stderr == ("soma-audit: error: cannot use the in-cluster service account: "
                             "certificate-authority is not a valid PEM certificate\n")
    (account / "ca.crt").write_bytes(certs.ensure(tmp_path / "pki")["ca_crt"].read_bytes())
    prom = tmp_path / "soma_audit.prom"
    unreachable = run("--ci", *ONLY, "--metrics-file", str(prom), env=env)
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith(
        f"soma-audit: error: cannot reach the API server at https://127.0.0.1:{port}")
    assert _value(prom.read_text(), "soma_audit_up", cluster="in-cluster") == 0.0

