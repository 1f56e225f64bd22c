"""SARIF 2.1.0, so code-scanning UIs show each gap at the manifest that causes it."""

from __future__ import annotations

import json
import re
from typing import Any

from soma_audit import __version__
from soma_audit.core.escape import uri
from soma_audit.core.model import Evidence, Result, Severity, Status
from soma_audit.results.fleet import FleetReport
from soma_audit.results.report import Report

_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note"}
_RESOURCE = re.compile(r"^[A-Z][A-Za-z0-9]*/")


def _split_line(target: str) -> tuple[str, int | None]:
    path, sep, line = target.rpartition(":")
    return (path, int(line)) if sep and line.isdigit() else (target, None)


def _location(evidence: Evidence) -> dict[str, Any]:
    """A file (with line) when the evidence names one, else a logical resource."""
    is_file_object = bool(evidence.object) and not _RESOURCE.match(evidence.object)
    target = evidence.location or (evidence.object if is_file_object else "")
    if not target:
        return {"logicalLocations": [{"name": evidence.object or "cluster", "kind": "resource"}]}
    path, line = _split_line(target)
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri(path)}}
    if line:
        physical["region"] = {"startLine": line}
    location: dict[str, Any] = {"physicalLocation": physical}
    if evidence.location and evidence.object:
        location["logicalLocations"] = [{"name": evidence.object, "kind": "resource"}]
    return location


def _results(result: Result) -> list[dict[str, Any]]:
    level = _LEVEL[result.check.severity] if result.status is Status.FAIL else "error"
    evidence = result.evidence or (Evidence("", result.status.value),)
    return [
        {
            "ruleId": result.check.id,
            "level": level,
            "message": {"text": f"{result.status.value}: {e.message}"},
            "locations": [_location(e)],
            # A rendered object's file is its template: say which rendering made it.
            **({"properties": {"rendered": e.rendered}} if e.rendered else {}),
        }
        for e in evidence
    ]


def _driver(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"driver": {"name": "soma-audit", "version": __version__,
                       "informationUri": "https://github.com/somatechlat/soma-audit",
                       "rules": rules}}


def _run(report: Report, automation_id: str) -> dict[str, Any]:
    rules = [
        {
            "id": r.check.id,
            "name": r.check.title,
            "shortDescription": {"text": r.check.title},
            "fullDescription": {"text": r.check.criterion},
            "defaultConfiguration": {"level": _LEVEL[r.check.severity]},
            "properties": {"phase": r.check.phase, "area": r.check.area,
                           "tags": [r.check.area, f"phase-{r.check.phase}"],
                           "remediation": r.check.remediation},
        }
        for r in report.results
    ]
    results = [
        item
        for r in report.results
        if r.status in (Status.FAIL, Status.ERROR)
        for item in _results(r)
    ]
    return {
        "tool": _driver(rules),
        "automationDetails": {"id": automation_id},
        "results": results,
    }


def _document(runs: list[dict[str, Any]]) -> str:
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": runs,
    }
    return json.dumps(sarif, indent=2) + "\n"


def render(report: Report) -> str:
    return _document([_run(report, f"soma-audit/{report.source.kind}")])


def _fleet_id(cluster: str) -> str:
    """The category is everything before the last '/': one per cluster, so code-scanning
    UIs keep each cluster's results apart instead of replacing one with another."""
    return f"soma-audit/{cluster}/"


def render_fleet(fleet: FleetReport, fail_on: Severity = Severity.LOW) -> str:
    """One run per cluster; a cluster that could not be audited is a failed invocation
    whose notification says why. (``fail_on`` does not apply: SARIF has no exit code.)"""
    runs = []
    for scan in fleet.clusters:
        if scan.report is not None:
            run = _run(scan.report, _fleet_id(scan.cluster))
        else:
            notification = {"level": "error", "message": {"text": scan.error or "not audited"},
                            "descriptor": {"id": "not-audited"}}
            run = {"tool": _driver([]), "automationDetails": {"id": _fleet_id(scan.cluster)},
                   "invocations": [{"executionSuccessful": False,
                                    "toolExecutionNotifications": [notification]}],
                   "results": []}
        run["properties"] = {"cluster": scan.cluster}
        runs.append(run)
    return _document(runs)
