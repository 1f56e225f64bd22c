"""Fleet audits and their rendering in every format, from real engine runs.

Three "clusters": `prod` (a namespace labelled restricted, nothing to fault), `staging`
(a bare namespace running a privileged Deployment) — both real audits of small manifest
trees by the engine — and `gone`, a real ClusterSource whose API server port is closed, so
its audit fails the way an unreachable cluster does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.model import ExitCode, Severity
from soma_audit.engine import fleet as fleet_engine
from soma_audit.engine.fleet import audit_fleet
from soma_audit.engine.session import AuditSession
from soma_audit.reports import render, render_fleet
from soma_audit.results.fleet import ClusterScan, FleetReport
from soma_audit.sources.cluster import ClusterSource, Timeouts
from soma_audit.sources.manifests import ManifestsSource
from testenv.proc import free_port

CONTRACT_KEYS = {"id", "phase", "area", "title", "criterion", "severity", "status",
                 "evidence", "remediation"}
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted"
              for mode in ("enforce", "audit", "warn")}


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}}}


def _privileged_deployment(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "billing", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "billing"}},
                 "template": {"metadata": {"labels": {"app": "billing"}},
                              "spec": {"containers": [{
                                  "name": "billing", "image": "billing:1",
                                  "securityContext": {"privileged": True}}]}}},
    }


def _tree(root: Path, *objects: dict[str, object]) -> Path:
    root.mkdir()
    (root / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    return root


@pytest.fixture(scope="module")
def open_session(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], AuditSession]:
    base = tmp_path_factory.mktemp("fleet")
    trees = {
        "prod": _tree(base / "prod", _namespace("shop", RESTRICTED)),
        "staging": _tree(base / "staging", _namespace("shop"),
                         _privileged_deployment("shop")),
    }
    kubeconfig = base / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {
            "server": f"https://127.0.0.1:{free_port()}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "nothing-answers-on-this-port"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
    }))
    config = load_config(None)
    checks = [c for c in load_catalog() if c.area == "pss"]

    def open_session(context: str) -> AuditSession:
        source = (ManifestsSource(trees[context], label=context) if context in trees
                  else ClusterSource(str(kubeconfig), context, timeouts=Timeouts(retries=0)))
        return AuditSession(source=source, config=config, checks=checks,
                            attestations_path=base / f"{context}.attestations.yaml")

    return open_session


@pytest.fixture(scope="module")
def fleet(open_session: Callable[[str], AuditSession]) -> FleetReport:
    return audit_fleet(["prod", "staging", "gone"], open_session)


def _outcomes(fleet: FleetReport) -> list[tuple[object, ...]]:
    """What each cluster's audit found, without its times."""
    return [(scan.cluster, scan.error, scan.report and [
        (r.check.id, r.status, r.evidence) for r in scan.report.results])
        for scan in fleet.clusters]


def test_clusters_in_forked_children_or_in_threads_give_the_same_fleet(
        open_session: Callable[[str], AuditSession], monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI scans each cluster in a forked child, the exporter in a thread."""
    started: list[str] = []
    start = fleet_engine.ForkedCall.start

    def counted(work: Callable[[], ClusterScan],
                on_stop: Callable[[], None]) -> fleet_engine.ForkedCall[ClusterScan]:
        started.append(work.args[0])  # type: ignore[attr-defined]
        return start(work, on_stop)

    monkeypatch.setattr(fleet_engine.ForkedCall, "start", counted)
    monkeypatch.setattr(fleet_engine, "can_fork", lambda: True)
    forked = audit_fleet(["prod", "staging", "gone"], open_session, workers=2)
    monkeypatch.setattr(fleet_engine, "can_fork", lambda: False)
    threaded = audit_fleet(["prod", "staging", "gone"], open_session)
    assert started == ["prod", "staging", "gone"]
    assert _outcomes(forked) == _outcomes(threaded)
    assert [s.cluster for s in forked.failed] == ["gone"]


def test_a_cluster_whose_process_dies_gets_an_error_entry(
        open_session: Callable[[str], AuditSession], monkeypatch: pytest.MonkeyPatch) -> None:
    parent = os.getpid()

    def dying(context: str) -> AuditSession:
        if context == "staging" and os.getpid() != parent:
            os._exit(3)  # the child auditing staging dies
        return open_session(context)

    monkeypatch.setattr(fleet_engine, "can_fork", lambda: True)
    fleet = audit_fleet(["prod", "staging"], dying)
    prod, staging = fleet.clusters
    assert prod.error is None and prod.report is not None
    assert staging.report is None and staging.cluster == "staging"
    assert staging.error == "internal error: the audit process ended without a result"
    assert staging.exit_code() is ExitCode.CANNOT_RUN


def _scan(fleet: FleetReport, name: str) -> ClusterScan:
    return next(c for c in fleet.clusters if c.cluster == name)


def test_clusters_keep_their_order_and_a_failure_stays_local(fleet: FleetReport) -> None:
    assert [c.cluster for c in fleet.clusters] == ["prod", "staging", "gone"]
    gone = _scan(fleet, "gone")
    assert gone.report is None and "cannot reach the API server" in (gone.error or "")
    assert [c.cluster for c in fleet.failed] == ["gone"]
    for name in ("prod", "staging"):
        scan = _scan(fleet, name)
        assert scan.error is None and scan.report is not None
        assert {r.check.area for r in scan.report.results} == {"pss"}
        assert scan.started is not None and scan.duration_seconds > 0


def test_exit_code_is_the_worst_of_the_clusters(fleet: FleetReport) -> None:
    prod, staging, gone = fleet.clusters
    assert prod.exit_code() is ExitCode.READY
    assert staging.exit_code() is ExitCode.NOT_READY
    assert gone.exit_code() is ExitCode.CANNOT_RUN
    assert FleetReport([prod]).exit_code() is ExitCode.READY
    assert FleetReport([prod, staging]).exit_code() is ExitCode.NOT_READY
    assert FleetReport([staging, gone, prod]).exit_code() is ExitCode.CANNOT_RUN
    assert FleetReport([]).exit_code() is ExitCode.CANNOT_RUN
    # staging's privileged container is critical; its missing limits are only medium.
    assert staging.report is not None
    failing = {r.check.id: r.check.severity for r in staging.report.results
               if r.status.value == "fail"}
    assert "pss.no-privileged" in failing
    assert staging.exit_code(Severity.CRITICAL) is ExitCode.NOT_READY


def test_json_extends_the_single_cluster_contract(fleet: FleetReport) -> None:
    data = json.loads(render_fleet(fleet, "json"))
    assert set(data) == {"tool", "source", "summary", "checks", "clusters"}
    assert data["source"] == {"kind": "cluster", "ref": "prod, staging, gone"}
    for check in data["checks"]:
        assert set(check) == CONTRACT_KEYS | {"cluster"}
    per_cluster: dict[str, int] = {}
    for check in data["checks"]:
        per_cluster[check["cluster"]] = per_cluster.get(check["cluster"], 0) + 1
    clusters = {c["name"]: c for c in data["clusters"]}
    assert [c["name"] for c in data["clusters"]] == ["prod", "staging", "gone"]
    assert {c["exit_code"] for c in data["clusters"]} == {0, 1, 2}
    assert clusters["gone"]["summary"] is None and "gone" not in per_cluster
    assert "cannot reach the API server" in clusters["gone"]["error"]
    assert clusters["gone"]["source"] == {"kind": "cluster", "ref": "gone"}
    for name in ("prod", "staging"):
        assert clusters[name]["error"] is None
        assert sum(clusters[name]["summary"].values()) == per_cluster[name]
    assert data["summary"] == {
        status: clusters["prod"]["summary"][status] + clusters["staging"]["summary"][status]
        for status in data["summary"]}
    # Each cluster's checks are exactly its single-cluster report's checks.
    staging = _scan(fleet, "staging").report
    assert staging is not None
    single = json.loads(render(staging, "json"))["checks"]
    assert [{k: v for k, v in c.items() if k != "cluster"} for c in data["checks"]
            if c["cluster"] == "staging"] == single


def test_markdown_has_a_section_per_cluster(fleet: FleetReport) -> None:
    text = render_fleet(fleet, "markdown")
    lines = text.splitlines()
    assert lines[0].startswith("# Production readiness — 3 clusters, ")
    assert [line for line in lines if line.startswith("# ")] == [lines[0]]
    assert "| `gone` | not audited | — | — | — | — | — | — | 2 |" in text
    staging_report = _scan(fleet, "staging").report
    assert staging_report is not None
    counts = " | ".join(str(n) for n in staging_report.summary().values())
    assert f"| `staging` | 0% | {counts} | 1 |" in text
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[0].endswith("(prod), " + headings[0].rsplit(", ", 1)[1])
    assert "(staging)" in headings[1] and headings[2] == "## `gone` — not audited"
    # The single-cluster checklist, one level down, inside each audited cluster's section.
    staging = _scan(fleet, "staging").report
    assert staging is not None
    nested = render(staging, "markdown").replace("\n#", "\n##")
    assert "#" + nested.rstrip("\n") in text
    gone_section = text.split("## `gone` — not audited", 1)[1]
    assert "cannot reach the API server" in gone_section


def test_table_has_a_section_per_cluster_and_a_fleet_line(fleet: FleetReport) -> None:
    text = render_fleet(fleet, "table")
    assert text.index("soma-audit — prod") < text.index("soma-audit — staging")
    assert "soma-audit — gone (cluster): not audited: cannot reach the API server" in text
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith("fleet of 3 (2 audited): prod: ready ")
    assert "staging: ready" in last and "gone: not audited, exit 2" in last
    assert last.endswith("→ exit 2")


def test_junit_has_suites_per_cluster(fleet: FleetReport) -> None:
    root = ET.fromstring(render_fleet(fleet, "junit"))
    suites = root.findall("testsuite")
    names = [s.get("name", "") for s in suites]
    assert names == ["prod / pss: Pod Security", "staging / pss: Pod Security",
                     "gone / not audited"]
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("errors", "")) == len(suite.findall("testcase/error"))
    staging_cases = suites[1].findall("testcase")
    assert {c.get("classname") for c in staging_cases} == {"soma-audit.staging.pss"}
    assert any(c.get("name", "").startswith("pss.no-privileged") and c.find("failure")
               is not None for c in staging_cases)
    (gone_case,) = suites[2].findall("testcase")
    error = gone_case.find("error")
    assert error is not None and "cannot reach the API server" in error.get("message", "")


def test_sarif_has_a_run_per_cluster(fleet: FleetReport) -> None:
    data = json.loads(render_fleet(fleet, "sarif"))
    assert data["version"] == "2.1.0"
    runs = data["runs"]
    assert [r["properties"]["cluster"] for r in runs] == ["prod", "staging", "gone"]
    ids = [r["automationDetails"]["id"] for r in runs]
    assert ids == ["soma-audit/prod/", "soma-audit/staging/", "soma-audit/gone/"]
    for run in runs:
        assert run["tool"]["driver"]["name"] == "soma-audit"
        rules = {rule["id"] for rule in run["tool"]["driver"]["rules"]}
        assert {result["ruleId"] for result in run["results"]} <= rules
    assert runs[0]["results"] == []
    assert "pss.no-privileged" in {r["ruleId"] for r in runs[1]["results"]}
    (invocation,) = runs[2]["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and "cannot reach the API server" in note["message"]["text"]
