"""Many clusters in one audit: each context scanned on its own, one combined result.

A cluster that cannot be audited at all (unreachable, bad credentials) becomes a
:class:`ClusterScan` with an ``error`` instead of a report; the others are unaffected.
Each context gets its own session, hence its own ClusterSource and ApiClient: one client
must never serve two contexts.

Two ways to run the clusters side by side (docs/fleet.md, bench/fleet.py):

- **processes** (the CLI): one forked child per cluster, which opens the session, scans,
  and sends its pickled :class:`ClusterScan` back through a pipe. The clusters' parsing and
  probes then run on every core instead of taking turns on one interpreter; forking costs
  milliseconds (nothing is imported again, nothing but the result is pickled).
- **threads** (the exporter, and where ``fork`` does not exist): one thread per cluster
  in this process. Forking a process that runs other threads (the exporter's HTTP server)
  may copy a lock some other thread holds; a single-threaded CLI has none.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

from soma_audit.core.errors import AuditError
from soma_audit.results.fleet import ClusterScan, FleetReport

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from soma_audit.engine.session import AuditSession

log = logging.getLogger(__name__)

#: Clusters scanned at once. Each ClusterSource already runs its own LISTs in parallel,
#: so a few clusters at a time keep the machine and the network busy without thrashing.
DEFAULT_WORKERS = 4
#: Signals that stop a fleet audit; a child must never handle them itself (it dies).
_STOPPING = (signal.SIGINT, signal.SIGTERM)


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


def can_fork() -> bool:
    """Whether clusters can be audited in forked children: the platform forks, and this
    process runs no other thread (whose locks a child would inherit held)."""
    return ("fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1)


def audit_fleet(contexts: Iterable[str], open_session: Callable[[str], AuditSession],
                workers: int = DEFAULT_WORKERS, processes: bool = False) -> FleetReport:
    """Audit every context concurrently (at most ``workers`` at once).

    ``open_session(context)`` must build a fresh session, with its own ClusterSource, for
    that context. Results keep the order of ``contexts``. ``processes``: each context in
    a forked child when :func:`can_fork`, else each in a thread; the report is the same
    either way.
    """
    names = list(contexts)
    if not names:
        raise AuditError("no kube context to audit")
    workers = max(1, min(workers, len(names)))
    if processes and len(names) > 1 and can_fork():
        return FleetReport(_scan_in_processes(names, open_session, workers))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="soma-fleet") as pool:
        scans = list(pool.map(lambda name: _scan_one(name, open_session), names))
    return FleetReport(scans)


@dataclass
class _Child:
    """A forked child auditing one context, and when it began."""

    index: int
    context: str
    process: BaseProcess
    started: dt.datetime
    clock: float

    def receive(self, receiving: Connection) -> ClusterScan:
        """The child's scan, or an error entry when it ended without sending one."""
        try:
            scan: ClusterScan = receiving.recv()
        except EOFError:
            self.process.join()
            code = self.process.exitcode
            ending = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
                      else f"exit code {code}")
            return ClusterScan(self.context, started=self.started,
                               duration_seconds=time.perf_counter() - self.clock,
                               error=f"internal error: the audit process ended without a "
                                     f"result ({ending})")
        finally:
            receiving.close()
        self.process.join()
        return scan


def _child(context: str, open_session: Callable[[str], AuditSession],
           results: Connection) -> None:
    """In the forked child: die at once on Ctrl-C/SIGTERM (the parent reports the
    interruption), scan, send the scan back."""
    for signum in _STOPPING:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPPING)
    scan = _scan_one(context, open_session)
    try:
        results.send(scan)
    except Exception as exc:  # e.g. an unpicklable result: still an entry for this cluster
        log.debug("result of context %s not sent", context, exc_info=True)
        results.send(ClusterScan(context, error=f"internal error: {exc!r}",
                                 started=scan.started,
                                 duration_seconds=scan.duration_seconds))
    results.close()


def _start(index: int, context: str, open_session: Callable[[str], AuditSession],
           running: dict[Connection, _Child]) -> None:
    """Fork the child of one context and add it to ``running``.

    The stopping signals are blocked until it is there, so a Ctrl-C meanwhile reaches the
    parent (as KeyboardInterrupt, once unblocked) with every child known, and never a
    child before its own handlers are reset."""
    receiving, sending = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(
        target=_child, args=(context, open_session, sending), name=f"soma-fleet {context}",
        daemon=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        started = dt.datetime.now(dt.UTC)
        process.start()
        running[receiving] = _Child(index, context, process, started, time.perf_counter())
    finally:
        sending.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _import_before_forking() -> None:
    """Import here, once, what every cluster's audit imports on first use (the probes, the
    Kubernetes client, orjson): each forked child inherits it instead of paying for it
    again (about 0.4 s of CPU per child, which made the first process fleet 2.5 times
    slower than the thread one; bench/fleet.py)."""
    from soma_audit.probes import load_probes
    from soma_audit.sources.cluster import preload

    load_probes()
    preload()


def _scan_in_processes(names: list[str], open_session: Callable[[str], AuditSession],
                       workers: int) -> list[ClusterScan]:
    """At most ``workers`` forked children at a time, each scanning one context. A child
    that dies without a result (killed, crashed) gives its context an error entry. On
    any way out (Ctrl-C, SIGTERM, an error here) every child still running is killed."""
    _import_before_forking()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # a child must not write out the parent's buffered output again
    scans: dict[int, ClusterScan] = {}
    running: dict[Connection, _Child] = {}
    waiting = list(enumerate(names))
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                _start(*waiting.pop(0), open_session, running)
            for ready in wait(list(running)):
                assert isinstance(ready, Connection)
                child = running[ready]
                scans[child.index] = child.receive(ready)
                del running[ready]
    finally:
        for receiving, child in running.items():
            child.process.kill()
            child.process.join()
            receiving.close()
    return [scans[index] for index in range(len(names))]
