"""The JSON report (docs/contracts.md — a contract other tools parse)."""

from __future__ import annotations

import json

from soma_audit.core.model import Severity
from soma_audit.results.fleet import FleetReport
from soma_audit.results.report import Report


def render(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_fleet(fleet: FleetReport, fail_on: Severity = Severity.LOW) -> str:
    """The same contract for many clusters, extended additively (docs/fleet.md)."""
    return json.dumps(fleet.to_dict(fail_on), indent=2, ensure_ascii=False) + "\n"
