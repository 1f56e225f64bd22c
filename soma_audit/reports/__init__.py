"""Report renderers: the same :class:`~soma_audit.results.report.Report` as table, JSON, markdown,
JUnit XML or SARIF. Each renderer is a pure function of the report; each format module also
has ``render_fleet(fleet, fail_on)`` for a :class:`~soma_audit.engine.fleet.FleetReport`, built
from the same pieces (docs/fleet.md)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from soma_audit.core.model import Severity
from soma_audit.results.fleet import FleetReport
from soma_audit.results.report import Report

#: format name → module under soma_audit.reports providing ``render(report) -> str``
FORMATS: dict[str, str] = {
    "table": "table",
    "json": "jsonfmt",
    "markdown": "markdown",
    "junit": "junit",
    "sarif": "sarif",
}

SUFFIXES = {"table": ".txt", "json": ".json", "markdown": ".md", "junit": ".xml",
            "sarif": ".sarif"}


def _module(fmt: str) -> ModuleType:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return importlib.import_module(f"soma_audit.reports.{FORMATS[fmt]}")


def renderer(fmt: str) -> Callable[[Report], str]:
    return _module(fmt).render


def render(report: Report, fmt: str) -> str:
    return renderer(fmt)(report)


def render_fleet(fleet: FleetReport, fmt: str, fail_on: Severity = Severity.LOW) -> str:
    """Many clusters in one document of ``fmt``: a section, suite or run per cluster."""
    return _module(fmt).render_fleet(fleet, fail_on)
