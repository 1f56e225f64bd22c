"""The JSON report (docs/contracts.md — a contract other tools parse)."""

from __future__ import annotations

import json
from typing import Any

from soma_audit.core.fastjson import orjson
from soma_audit.core.model import Severity
from soma_audit.results.fleet import FleetReport
from soma_audit.results.report import Report


def render(report: Report) -> str:
    return _dumps(report.to_dict())


def render_fleet(fleet: FleetReport, fail_on: Severity = Severity.LOW) -> str:
    """The same contract for many clusters, extended additively (docs/fleet.md)."""
    return _dumps(fleet.to_dict(fail_on))


def _dumps(data: Any) -> str:
    """Indented UTF-8 JSON. orjson (the `live` extra) writes the same text as
    ``json.dumps(indent=2, ensure_ascii=False)`` about ten times faster — a cluster's
    report runs to megabytes — except that it spells a few floats differently (1e-05 as
    0.00001, the same number); what it refuses (integers over 64 bits, lone surrogates,
    non-string keys) is written by json."""
    fast = orjson()
    if fast is not None:
        try:
            return fast.dumps(data, option=fast.OPT_INDENT_2).decode() + "\n"
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
