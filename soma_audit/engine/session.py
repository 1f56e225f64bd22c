"""An audit session: one target, scanned as often as asked — what the CLI and TUI drive.

It keeps what the views need between scans (config, catalog, attestations file) so that
neither view holds audit logic of its own. Opening one is cheap: the scan machinery (probes
and the domain modules behind them) is imported by the first scan, so the TUI can paint the
check list before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma_audit.config import Config
from soma_audit.core.errors import AuditError
from soma_audit.core.fileio import write_atomically
from soma_audit.core.model import Check
from soma_audit.engine import attestations as attest_store
from soma_audit.engine.attestations import Attestation
from soma_audit.results.report import Report
from soma_audit.sources import Source

if TYPE_CHECKING:
    from soma_audit.engine.scan import Progress


@dataclass
class AuditSession:
    source: Source
    config: Config
    checks: list[Check]
    attestations_path: Path
    services: dict[str, Any] = field(default_factory=dict)
    last_report: Report | None = None

    def scan(self, progress: Progress | None = None, only: set[str] | None = None) -> Report:
        """Audit the target; with ``only``, re-run those checks and keep the others' results."""
        from soma_audit.engine.scan import AuditRequest, run_audit

        checks = [c for c in self.checks if only is None or c.id in only]
        request = AuditRequest(
            source=self.source,
            config=self.config,
            checks=checks,
            attestations=attest_store.load(self.attestations_path),
            attestations_file=str(self.attestations_path),
            services=self.services,
        )
        report = run_audit(request, progress)
        if only is not None and self.last_report is not None:
            fresh = {r.check.id: r for r in report.results}
            report.results = [fresh.get(r.check.id, r) for r in self.last_report.results]
        self.last_report = report
        return report

    def check(self, check_id: str) -> Check:
        for check in self.checks:
            if check.id == check_id:
                return check
        raise AuditError(f"unknown check: {check_id}")

    def attest(self, check_id: str, by: str, note: str, expires: dt.date) -> Attestation:
        """Record that a person verified a manual check; stored in the attestations file."""
        check = self.check(check_id)
        if not check.manual:
            raise AuditError(f"{check_id} is automated; only manual checks can be attested")
        if not by.strip() or not note.strip():
            raise AuditError("an attestation needs an author and a note")
        if expires <= dt.date.today():
            raise AuditError("the expiry must be in the future")
        attestation = Attestation(check_id, by.strip(), note.strip(), expires)
        attest_store.attest(self.attestations_path, attestation)
        return attestation

    def export(self, report: Report, fmt: str, path: Path) -> Path:
        """Write a report in ``fmt`` atomically to ``path`` (same content as the CLI)."""
        from soma_audit.reports import render

        text = render(report, fmt)
        write_atomically(path, text)
        return path
