"""Many clusters in one audit: each context scanned on its own, one combined result.

A cluster that cannot be audited at all (unreachable, bad credentials) becomes a
:class:`ClusterScan` with an ``error`` instead of a report; the others are unaffected.
Each context gets its own session, hence its own ClusterSource and connection pool: one pool
must never serve two contexts.

Where this process may fork (:func:`~soma_audit.core.forking.can_fork`: the CLI, on two
cores or more), each context is scanned in a forked child of its own, so the clusters'
decoding and checks run on every core instead of taking turns in one interpreter; the
exporter, which runs an HTTP server's threads, scans them in threads.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from soma_audit.core.errors import AuditError
from soma_audit.core.forking import ForkedCall, can_fork
from soma_audit.core.pools import result_of, unwaited_on_error
from soma_audit.engine.forked import stop_tools
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
    workers = max(1, min(workers, len(names)))
    if len(names) > 1 and can_fork():
        return FleetReport(_scan_in_children(names, open_session, workers))
    # Ctrl-C/SIGTERM leaves now: waiting for the workers would wait for the slowest
    # cluster's timeouts.
    with unwaited_on_error(workers, "soma-fleet") as pool:
        futures = [pool.submit(_scan_one, name, open_session) for name in names]
        scans = [result_of(future) for future in futures]
    return FleetReport(scans)


def _scan_in_children(names: list[str], open_session: Callable[[str], AuditSession],
                      workers: int) -> list[ClusterScan]:
    """Each context scanned in a forked child, at most ``workers`` at once, the next one
    started as the oldest ends. A child that ends without a result (killed, crashed) gives
    its context an error entry; on Ctrl-C or SIGTERM every child still running is
    stopped (asked first, so that it stops the tools it runs; killed if it does not
    leave)."""
    _import_before_forking()
    waiting = deque(names)
    running: deque[tuple[str, dt.datetime, float, ForkedCall[ClusterScan]]] = deque()
    scans: list[ClusterScan] = []
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                name = waiting.popleft()
                running.append((name, dt.datetime.now(dt.UTC), time.perf_counter(),
                                ForkedCall.start(partial(_scan_one, name, open_session),
                                                 on_stop=stop_tools)))
            name, started, clock, call = running.popleft()
            scan = call.result()  # interrupted, it has stopped its child
            scans.append(scan or ClusterScan(
                name, started=started, duration_seconds=time.perf_counter() - clock,
                error="internal error: the audit process ended without a result"))
    except BaseException:
        for *_, call in running:
            call.stop()
        raise
    return scans


def _import_before_forking() -> None:
    """Import, once, the modules every cluster's scan imports on first use (the session,
    the scan, the probes, the cluster source, its HTTP client and its decoder): each child
    inherits them instead of importing them again."""
    from soma_audit.engine import scan, session  # noqa: F401
    from soma_audit.probes import load_probes
    from soma_audit.sources import cluster

    load_probes()
    cluster.import_transport()
