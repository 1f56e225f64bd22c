"""No leaks: known secrets put everywhere the tool could see them appear nowhere it writes.

The cluster holds Secrets with a known token (the tool must never read Secrets: checked in
the audit log); the kubeconfig's bearer token, the Kafka SASL password, the OpenFGA API
token and the Prometheus bearer token are known values. Every mode, every report format
(stdout and ``--output``), ``render``/``diff``/``rollback`` run with ``--debug``: none of
the values is in stdout, stderr, a report, a backup or the attestations file.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.reliability.conftest import (
    AuditLog,
    Figures,
    Run,
    demo_tree,
    run_cli,
    service_env,
    write_snapshot,
)

pytestmark = pytest.mark.reliability

FORMATS = ("table", "json", "markdown", "junit", "sarif")


@pytest.fixture
def seeded(kube_env: Any, kube_admin_client: Any, unique_name: Any) -> dict[str, str]:
    """A fresh namespace with two Secrets holding a known token; returns the markers."""
    from kubernetes import client

    core = client.CoreV1Api(kube_admin_client)
    namespace = unique_name("leaks")
    token = f"secret-marker-{uuid.uuid4().hex}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    for name, kind in (("api-token", "Opaque"), ("registry", "Opaque")):
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, annotations={"note": token}),
            type=kind, string_data={"token": token, "url": f"https://u:{token}@example"}))
    return {"namespace": namespace, "secret": token}


def test_no_secret_leaks(seeded: dict[str, str], kube_env: Any, openfga_env: Any,
                         kafka_env: Any, prometheus_env: Any, tmp_path: Path,
                         audit_log: AuditLog, figures: Figures) -> None:
    work = tmp_path / "work"
    work.mkdir()
    kubeconfig = shutil.copy(kube_env.readonly_kubeconfig, tmp_path / "kubeconfig")
    kube_token = yaml.safe_load(Path(kubeconfig).read_text())["users"][0]["user"]["token"]
    markers = {
        "secret data": seeded["secret"],
        "kubeconfig bearer token": kube_token,
        "Kafka SASL password": f"kafka-marker-{uuid.uuid4().hex}",
        "OpenFGA API token": f"fga-marker-{uuid.uuid4().hex}",
        "Prometheus bearer token": f"prom-marker-{uuid.uuid4().hex}",
    }
    env = service_env(kube_env, openfga_env, kafka_env, prometheus_env) | {
        "KUBECONFIG": str(kubeconfig),
        "SOMA_AUDIT_KAFKA_SASL_PASSWORD": markers["Kafka SASL password"],
        "SOMA_AUDIT_OPENFGA_API_TOKEN": markers["OpenFGA API token"],
        "SOMA_AUDIT_PROMETHEUS_BEARER_TOKEN": markers["Prometheus bearer token"],
        "SOMA_AUDIT_STATE": str(tmp_path / "state"),
        "SOMA_AUDIT_DEBUG": "1",
    }
    tree = demo_tree(tmp_path / "repo")
    snapshot = write_snapshot(tree, tmp_path / "dump.yaml")
    out = tmp_path / "out"
    out.mkdir()
    runs: list[Run] = []
    start = audit_log.now()
    runs.append(run_cli(["--debug", "--ci"], env, work))
    for fmt in FORMATS:
        runs.append(run_cli(["--debug", "--ci", "--format", fmt, "--output",
                             str(out / f"cluster.{fmt}")], env, work))
    runs.append(run_cli(["--debug", "--ci", "--format", "json", "--manifests", str(tree),
                         "--output", str(out / "manifests.json")], env, work))
    runs.append(run_cli(["--debug", "--ci", "--format", "sarif", "--snapshot", str(snapshot),
                         "--output", str(out / "snapshot.sarif")], env, work))
    runs.append(run_cli(["--debug", "--ci", "--format", "markdown", "--demo"], env, work))
    runs.append(run_cli(["--debug", "render", "pss-namespaces", "-o", str(out / "render")],
                        env, work))
    runs.append(run_cli(["--debug", "diff", "pss-namespaces"], env, work))
    runs.append(run_cli(["--debug", "diff", "netpol-baseline", "--manifests", str(tree)],
                        env, work))
    runs.append(run_cli(["--debug", "apply", "kafka-topics", "--manifests", str(tree),
                         "--yes"], env, work))
    runs.append(run_cli(["--debug", "rollback"], env, work))
    events = audit_log.events(start, audit_log.now())

    assert any("DEBUG" in run.stderr for run in runs), "debug logging never switched on"
    for run in runs:
        assert "Traceback" not in run.stderr, (run.argv, run.stderr)
    leaks = []
    for run in runs:
        for stream, text in (("stdout", run.stdout), ("stderr", run.stderr)):
            leaks += [f"{label} in {stream} of {run.argv}" for label, value in markers.items()
                      if value in text]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != Path(kubeconfig)]
    written = sum(1 for p in files if out in p.parents or (tmp_path / "state") in p.parents)
    for path in files:
        data = path.read_bytes()
        leaks += [f"{label} in {path.relative_to(tmp_path)}" for label, value in markers.items()
                  if value.encode() in data]
    secret_requests = [e["requestURI"] for e in events
                       if e.get("objectRef", {}).get("resource") == "secrets"]

    figures.add("leaks", "runs", len(runs))
    figures.add("leaks", "markers", len(markers))
    figures.add("leaks", "files_checked", len(files))
    figures.add("leaks", "report_and_state_files", written)
    figures.add("leaks", "requests_audited", len(events))
    assert (tmp_path / "state" / "backups").is_dir(), "the apply left no backup to check"
    assert written >= len(FORMATS) + 3
    assert not leaks, leaks
    assert not secret_requests, secret_requests
