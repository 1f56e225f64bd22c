"""Report renderers: the same :class:`~soma_audit.report.Report` as table, JSON, markdown,
JUnit XML or SARIF. Each renderer is a pure function of the report."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from soma_audit.report import Report

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


def renderer(fmt: str) -> Callable[[Report], str]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    module = importlib.import_module(f"soma_audit.reports.{FORMATS[fmt]}")
    return module.render


def render(report: Report, fmt: str) -> str:
    return renderer(fmt)(report)
