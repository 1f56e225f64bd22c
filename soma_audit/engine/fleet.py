"""Many clusters in one audit: each context scanned on its own, one combined result.

A cluster that cannot be audited at all (unreachable, bad credentials) becomes a
:class:`ClusterScan` with an ``error`` instead of a report; the others are unaffected.
Each context gets its own session, hence its own ClusterSource and connection pool: one pool
must never serve two contexts.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from soma_audit.core.errors import AuditError
from soma_audit.results.fleet import ClusterScan, FleetReport

if TYPE_CHECKING:
    from soma_audit.engine.session import AuditSession

log = logging.getLogger(__name__)

#: Clusters scanned at once. Each ClusterSource already runs its own LISTs in parallel,
#: so a few clusters at a time keep the machine and the network busy without thrashing.
DEFAULT_WORKERS = 4


def kube_contexts(kubeconfig: str | None) -> list[str]:
    """Every context name of the kubeconfig, in file order; AuditError when unreadable."""
    from soma_audit.sources.kubeconfig import kube_contexts as read_contexts
    from soma_audit.sources.kubeconfig import kubeconfig_path

    path = kubeconfig_path(kubeconfig)
    names, _current = read_contexts(path)
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
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(names))),
                              thread_name_prefix="soma-fleet")
    try:
        scans = list(pool.map(lambda name: _scan_one(name, open_session), names))
    except BaseException:
        # Ctrl-C/SIGTERM: leave now; waiting for the workers would wait for the slowest
        # cluster's timeouts (the CLI exits without joining them).
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return FleetReport(scans)
