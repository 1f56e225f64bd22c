"""Shared test helpers: run checks through the real engine on a directory or snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from soma_audit.catalog import load_catalog
from soma_audit.config import load_config
from soma_audit.engine import AuditRequest, run_audit
from soma_audit.model import Result
from soma_audit.report import Report
from soma_audit.sources.manifests import ManifestsSource

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def audit_dir(directory: Path, check_ids: list[str] | None = None,
              config: dict[str, Any] | None = None) -> Report:
    """Audit ``directory`` (manifests mode) with the given checks and config overrides."""
    checks = load_catalog()
    if check_ids is not None:
        checks = [c for c in checks if c.id in check_ids]
        assert {c.id for c in checks} == set(check_ids), "unknown check id"
    request = AuditRequest(
        source=ManifestsSource(directory),
        config=load_config(**(config or {})),
        checks=checks,
    )
    return run_audit(request)


def run_check(check_id: str, directory: Path, config: dict[str, Any] | None = None) -> Result:
    report = audit_dir(directory, [check_id], config)
    (result,) = report.results
    return result
