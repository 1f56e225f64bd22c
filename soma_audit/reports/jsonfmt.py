"""The JSON report (DESIGN.md §3 — a contract other tools parse)."""

from __future__ import annotations

import json

from soma_audit.report import Report


def render(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
