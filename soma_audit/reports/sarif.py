"""SARIF 2.1.0, so code-scanning UIs show each gap at the manifest that causes it."""

from __future__ import annotations

import json
import re
from typing import Any

from soma_audit import __version__
from soma_audit.model import Evidence, Result, Severity, Status
from soma_audit.report import Report

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
    physical: dict[str, Any] = {"artifactLocation": {"uri": path}}
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
        }
        for e in evidence
    ]


def render(report: Report) -> str:
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
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "soma-audit", "version": __version__,
                                    "informationUri": "https://github.com/somatechlat/soma-audit",
                                    "rules": rules}},
                "automationDetails": {"id": f"soma-audit/{report.source.kind}"},
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2) + "\n"
