"""Report renderers over one synthetic report: every format says the same thing."""

from __future__ import annotations

import datetime as dt
import json
from xml.etree import ElementTree as ET

import pytest

from soma_audit.catalog.checklists import load_plan
from soma_audit.catalog.checks import load_catalog
from soma_audit.core import escape
from soma_audit.core.model import Evidence, Result, Status
from soma_audit.reports import render
from soma_audit.results.report import Report
from soma_audit.sources import SourceInfo

STATUSES = {
    "pss.no-privileged": Status.FAIL,
    "fga.model-valid": Status.ERROR,
    "fga.decision-audit-log": Status.PASS,
    "argocd.apps-healthy": Status.SKIP,
    "ops.documentation": Status.MANUAL,
    "k6.ci": Status.WAIVED,
}
EVIDENCE = {
    "pss.no-privileged": (Evidence("Deployment/soma-agent-hub/billing-service",
                                   "container billing-service: privileged=true",
                                   "k8s/services/billing-service/deployment.yaml:1"),),
    "fga.model-valid": (Evidence("", "fga not found; install the OpenFGA CLI"),),
    "fga.decision-audit-log": (Evidence("soma-audit.attestations.yaml",
                                        "attested by a.lee until 2027-02-01: SIEM pipeline"),),
    "k6.ci": (Evidence("config", "waived until 2027-01-01: CI runners pending"),),
}


@pytest.fixture(scope="module")
def report() -> Report:
    results = [
        Result(c, STATUSES.get(c.id, Status.PASS), EVIDENCE.get(c.id, ()))
        for c in load_catalog()
    ]
    return Report(SourceInfo("manifests", "/tmp/soma-gitops", label="demo: soma-gitops"),
                  results, started=dt.datetime(2026, 11, 28, 12, 4, tzinfo=dt.UTC))


def test_json_follows_the_contract(report: Report) -> None:
    data = json.loads(render(report, "json"))
    assert set(data) == {"tool", "source", "summary", "checks"}
    assert data["tool"]["name"] == "soma-audit"
    assert data["source"] == {"kind": "manifests", "ref": "/tmp/soma-gitops"}
    assert set(data["summary"]) == {"pass", "fail", "error", "skip", "manual", "waived"}
    assert sum(data["summary"].values()) == len(data["checks"])
    keys = {"id", "phase", "area", "title", "criterion", "severity", "status", "evidence",
            "remediation"}
    for check in data["checks"]:
        assert set(check) == keys
        assert check["phase"] in (1, 2, 3)
        assert check["id"].split(".")[0] == check["area"]
        assert all(set(e) == {"object", "message"} for e in check["evidence"])
    failing = next(c for c in data["checks"] if c["id"] == "pss.no-privileged")
    assert failing["status"] == "fail"
    assert failing["evidence"][0]["object"] == "Deployment/soma-agent-hub/billing-service"


def test_markdown_ticks_only_done_items_and_shows_gap_evidence(report: Report) -> None:
    text = render(report, "markdown")
    assert text.startswith("# Production readiness — SomaAgentHub production readiness "
                           "(demo: soma-gitops), 2026-11-28 12:04 UTC")
    assert "- [ ] No privileged containers deployed — `pss.no-privileged`" in text
    assert "Deployment/soma-agent-hub/billing-service: container billing-service" in text
    assert ("- [x] All authorization decisions logged — `fga.decision-audit-log` "
            "(attested by a.lee until 2027-02-01: SIEM pipeline)") in text
    assert "- [ ] Argo CD apps syncing services" in text  # apps-healthy was skipped
    assert "- [ ] Production readiness checklist 100% complete" in text
    for section in ("## Production Readiness Checklist", "## Success criteria",
                    "### Week 4 (Validation)", "### Event Pipeline"):
        assert section in text


def test_every_check_appears_in_the_plan_and_every_plan_id_exists() -> None:
    catalog = {c.id for c in load_catalog()}
    assert load_plan().check_ids() == catalog


def test_junit_has_a_case_per_check_with_failures_and_errors(report: Report) -> None:
    root = ET.fromstring(render(report, "junit"))
    cases = root.findall(".//testcase")
    assert len(cases) == len(report.results)
    by_name = {c.get("name").split(":")[0]: c for c in cases}
    assert by_name["pss.no-privileged"].find("failure") is not None
    assert by_name["fga.model-valid"].find("error") is not None
    assert by_name["argocd.apps-healthy"].find("skipped") is not None
    suites = {s.get("name").split(":")[0]: s for s in root.findall("testsuite")}
    assert suites["pss"].get("failures") == "1"


def test_sarif_points_at_the_manifest_line(report: Report) -> None:
    sarif = json.loads(render(report, "sarif"))
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == {r.check.id for r in report.results}
    results = {r["ruleId"]: r for r in run["results"]}
    assert set(results) == {"pss.no-privileged", "fga.model-valid"}
    physical = results["pss.no-privileged"]["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "k8s/services/billing-service/deployment.yaml"},
                        "region": {"startLine": 1}}
    assert results["pss.no-privileged"]["level"] == "error"


def test_table_lists_gaps_first_with_the_headline(report: Report) -> None:
    text = render(report, "table")
    lines = text.splitlines()
    first_row = next(i for i, line in enumerate(lines) if "pss.no-privileged" in line)
    passing = next(i for i, line in enumerate(lines) if "fga.model-file" in line)
    assert first_row < passing
    assert "ready " in lines[-1] and "P1 " in lines[-1]
    assert "\x1b[" not in text  # no colour codes unless asked


def test_rendered_sources_and_origins_in_json_markdown_and_sarif() -> None:
    """The sources list and where a rendered object came from, in every format that has
    room for them (additive to the JSON contract)."""
    from soma_audit.kube.inventory import SourceEntry

    check = next(c for c in load_catalog() if c.id == "pss.no-privileged")
    how = ("helm k8s/helm/soma (release soma-dev, namespace soma-dev, values values.yaml, "
           "k8s/helm/soma/values-dev.yaml; Application/argocd/soma-dev)")
    evidence = Evidence("Deployment/soma-dev/gateway-api", "privileged=true",
                        "k8s/helm/soma/templates/deployment.yaml", how)
    sources = [
        SourceEntry("files", ".", "read", "3 files read as manifests", objects=5),
        SourceEntry("helm", "k8s/helm/soma", "rendered", how, "Application/argocd/soma-dev", 6),
        SourceEntry("kustomize", "k8s/base", "skipped", "base of k8s/overlays/dev"),
    ]
    report = Report(SourceInfo("manifests", "/tmp/repo"),
                    [Result(check, Status.FAIL, (evidence,))], sources=sources)
    data = json.loads(render(report, "json"))
    assert data["sources"][1] == {"kind": "helm", "path": "k8s/helm/soma",
                                  "status": "rendered", "via": "Application/argocd/soma-dev",
                                  "objects": 6, "detail": how}
    assert data["checks"][0]["evidence"] == [{
        "object": "Deployment/soma-dev/gateway-api", "message": "privileged=true",
        "origin": "k8s/helm/soma/templates/deployment.yaml", "rendered": how}]
    markdown = render(report, "markdown")
    assert "## Sources" in markdown
    assert "Rendered: helm 1 rendered · kustomize 1 skipped." in markdown
    assert ("- helm `k8s/helm/soma` — **rendered** via Application/argocd/soma-dev, 6 objects"
            in markdown)
    # untrusted text is markdown-escaped in the export (no link, heading or box can start)
    assert f"(from `k8s/helm/soma/templates/deployment.yaml`, {escape.markdown(how)})" \
        in markdown
    (result,) = json.loads(render(report, "sarif"))["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "k8s/helm/soma/templates/deployment.yaml"
    assert "region" not in location
    assert result["properties"] == {"rendered": how}


@pytest.mark.parametrize("data", [
    {"checks": [{"id": "a", "evidence": [{"message": "é \u2028 \x00 \" \\ /"}]}], "n": 0.5},
    {"too big for orjson": 2 ** 70},
    {"lone surrogate": "\ud800"},
    {1: "non-string key"},
])
def test_json_report_text_is_what_json_writes(data: dict) -> None:
    """orjson writes the report faster; the text is json's, and what orjson refuses is
    written by json."""
    from soma_audit.reports.jsonfmt import _dumps

    assert _dumps(data) == json.dumps(data, indent=2, ensure_ascii=False) + "\n"
