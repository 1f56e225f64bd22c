"""The result of one audit, and the scores derived from it (kept apart from rendering)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from soma_audit import __version__
from soma_audit.core.model import ExitCode, Result, Severity, Status
from soma_audit.kube.inventory import SourceEntry, SourceProblem
from soma_audit.sources import SourceInfo

#: Statuses that count as done when scoring readiness.
DONE = {Status.PASS, Status.WAIVED}


def score(results: Iterable[Result]) -> float | None:
    """Share of evaluated checks that are done; skipped ones do not count. None if none."""
    counted = [r for r in results if r.status is not Status.SKIP]
    if not counted:
        return None
    return sum(r.status in DONE for r in counted) / len(counted)


@dataclass
class Report:
    source: SourceInfo
    results: list[Result]
    problems: list[SourceProblem] = field(default_factory=list)
    #: What a repository source rendered, read, skipped or failed (manifests mode).
    sources: list[SourceEntry] = field(default_factory=list)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    duration_seconds: float = 0.0

    def summary(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.results)
        return {status.value: counts.get(status, 0) for status in Status}

    def by_phase(self, phase: int) -> list[Result]:
        return [r for r in self.results if r.check.phase == phase]

    def by_area(self, area: str) -> list[Result]:
        return [r for r in self.results if r.check.area == area]

    def result(self, check_id: str) -> Result | None:
        return next((r for r in self.results if r.check.id == check_id), None)

    @property
    def overall_score(self) -> float | None:
        return score(self.results)

    def phase_score(self, phase: int) -> float | None:
        return score(self.by_phase(phase))

    def exit_code(self, fail_on: Severity = Severity.LOW) -> ExitCode:
        """1 when a check at or above ``fail_on`` failed or could not be evaluated."""
        blocking = (
            r for r in self.results
            if r.status in (Status.FAIL, Status.ERROR) and r.check.severity.rank >= fail_on.rank
        )
        return ExitCode.NOT_READY if any(blocking) else ExitCode.READY

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (docs/contracts.md, a contract), with the additive ``sources`` list
        when the source renders charts and overlays (manifests mode)."""
        report: dict[str, Any] = {
            "tool": {"name": "soma-audit", "version": __version__},
            "source": {"kind": self.source.kind, "ref": self.source.ref},
            "summary": self.summary(),
            "checks": [r.to_dict() for r in self.results],
        }
        if self.sources:
            report["sources"] = [entry.to_dict() for entry in self.sources]
        return report

    def sources_summary(self) -> str:
        """``helm 2 rendered, 1 failed · kustomize 2 rendered, 1 skipped`` for headers:
        renderings per tool and status ("" when nothing was to render)."""
        counts: dict[str, Counter[str]] = {}
        for entry in self.sources:
            if entry.kind in ("helm", "kustomize"):
                counts.setdefault(entry.kind, Counter())[entry.status] += 1
        return " · ".join(
            f"{tool} " + ", ".join(f"{n} {status}" for status, n in statuses.items())
            for tool, statuses in counts.items())


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value * 100)}%"
