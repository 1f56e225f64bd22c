"""The result of a fleet audit: one report per cluster, or why a cluster has none.

Renderers read these; producing them (scanning contexts concurrently) is the engine's
``fleet`` module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from soma_audit import __version__
from soma_audit.core.model import ExitCode, Severity, Status
from soma_audit.results.report import Report


@dataclass
class ClusterScan:
    """One cluster's part of a fleet audit: its report, or why there is none."""

    cluster: str
    report: Report | None = None
    error: str | None = None
    #: When this cluster's audit began and how long it took (also for a failed one).
    started: dt.datetime | None = None
    duration_seconds: float = 0.0

    def exit_code(self, fail_on: Severity = Severity.LOW) -> ExitCode:
        if self.report is None:
            return ExitCode.CANNOT_RUN
        return self.report.exit_code(fail_on)

    def to_dict(self, fail_on: Severity = Severity.LOW) -> dict[str, Any]:
        """This cluster's entry in the fleet JSON's ``clusters`` list (docs/fleet.md)."""
        report = self.report
        return {
            "name": self.cluster,
            "source": ({"kind": report.source.kind, "ref": report.source.ref} if report
                       else {"kind": "cluster", "ref": self.cluster}),
            "summary": report.summary() if report else None,
            "exit_code": int(self.exit_code(fail_on)),
            "error": self.error,
            "started": (self.started.isoformat(timespec="milliseconds") if self.started
                        else None),
            "duration_seconds": round(self.duration_seconds, 3),
        }


@dataclass
class FleetReport:
    """The combined result; its exit code is the worst of its clusters'."""

    clusters: list[ClusterScan] = field(default_factory=list)

    def exit_code(self, fail_on: Severity = Severity.LOW) -> ExitCode:
        return max((c.exit_code(fail_on) for c in self.clusters), default=ExitCode.CANNOT_RUN)

    @property
    def audited(self) -> list[ClusterScan]:
        """The clusters that produced a report."""
        return [c for c in self.clusters if c.report is not None]

    @property
    def failed(self) -> list[ClusterScan]:
        """The clusters that could not be audited at all."""
        return [c for c in self.clusters if c.report is None]

    def summary(self) -> dict[str, int]:
        """Check statuses summed over the audited clusters."""
        totals = dict.fromkeys((s.value for s in Status), 0)
        for scan in self.clusters:
            for status, count in (scan.report.summary() if scan.report else {}).items():
                totals[status] += count
        return totals

    def to_dict(self, fail_on: Severity = Severity.LOW) -> dict[str, Any]:
        """The fleet JSON: the single-cluster contract, each check tagged with its
        ``cluster``, plus a ``clusters`` list (an additive extension, docs/fleet.md)."""
        return {
            "tool": {"name": "soma-audit", "version": __version__},
            "source": {"kind": "cluster", "ref": ", ".join(c.cluster for c in self.clusters)},
            "summary": self.summary(),
            "checks": [
                {**result.to_dict(), "cluster": scan.cluster}
                for scan in self.clusters
                for result in (scan.report.results if scan.report else [])
            ],
            "clusters": [c.to_dict(fail_on) for c in self.clusters],
        }
