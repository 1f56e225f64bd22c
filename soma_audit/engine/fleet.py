"""Many clusters in one audit: each context scanned on its own, one combined result.

A cluster that cannot be audited at all (unreachable, bad credentials) becomes a
:class:`ClusterScan` with an ``error`` instead of a report; the others are unaffected.
Each context gets its own session, hence its own ClusterSource and ApiClient: one client
must never serve two contexts (FACTS.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from soma_audit import __version__
from soma_audit.core.errors import AuditError
from soma_audit.core.model import ExitCode, Severity, Status
from soma_audit.results.report import Report

if TYPE_CHECKING:
    from soma_audit.engine.session import AuditSession

log = logging.getLogger(__name__)

#: Clusters scanned at once. Each ClusterSource already runs its own LISTs in parallel,
#: so a few clusters at a time keep the machine and the network busy without thrashing.
DEFAULT_WORKERS = 4


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


def kube_contexts(kubeconfig: str | None) -> list[str]:
    """Every context name of the kubeconfig, in file order; AuditError when unreadable."""
    from soma_audit.sources import cluster

    path = cluster.kubeconfig_path(kubeconfig)
    names, _current = cluster.kube_contexts(path)
    if not names:
        raise AuditError(f"kubeconfig {path} has no contexts")
    return names


def fleet_contexts(kubeconfig: str | None, named: Iterable[str],
                   all_contexts: bool = False) -> list[str]:
    """The contexts to audit, each once in the order given (``all_contexts``: every
    context of the kubeconfig)."""
    names = kube_contexts(kubeconfig) if all_contexts else list(named)
    return list(dict.fromkeys(names))


def _scan_one(context: str, open_session: Callable[[str], AuditSession]) -> ClusterScan:
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    scan = ClusterScan(context, started=started)
    try:
        scan.report = open_session(context).scan()
    except AuditError as exc:
        scan.error = str(exc)
    except Exception as exc:  # a bug in one cluster's audit must not cost the others theirs
        log.debug("audit of context %s crashed", context, exc_info=True)
        scan.error = f"internal error: {exc!r}"
    scan.duration_seconds = time.perf_counter() - clock
    return scan


def audit_fleet(contexts: Iterable[str], open_session: Callable[[str], AuditSession],
                workers: int = DEFAULT_WORKERS) -> FleetReport:
    """Audit every context concurrently (at most ``workers`` at once).

    ``open_session(context)`` must build a fresh session, with its own ClusterSource, for
    that context. Results keep the order of ``contexts``.
    """
    names = list(contexts)
    if not names:
        raise AuditError("no kube context to audit")
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names))),
                            thread_name_prefix="soma-fleet") as pool:
        scans = list(pool.map(lambda name: _scan_one(name, open_session), names))
    return FleetReport(scans)
