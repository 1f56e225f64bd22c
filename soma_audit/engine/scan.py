"""The audit engine: source → inventory → probes → results. Knows nothing of any UI."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from soma_audit.catalog.checks import validate_probes
from soma_audit.config import Config, Waiver
from soma_audit.core.model import Check, Evidence, Outcome, Result, Status
from soma_audit.core.pools import result_of, unwaited_on_error
from soma_audit.engine.attestations import Attestation
from soma_audit.engine.parallel import run_shared, worth_forking
from soma_audit.probes import NoRepository, Probe, ProbeContext, ProbeError, load_probes
from soma_audit.results.report import Report
from soma_audit.services.tools import ToolError, ToolRunner
from soma_audit.sources import Source

log = logging.getLogger(__name__)

#: Called after each check with (result, done, total) — the TUI shows progress with it.
Progress = Callable[[Result, int, int], None]

_NEEDS = {
    "cluster": "a live cluster (this audit reads a {source})",
    "status": "objects' status: a live cluster or a --snapshot dump (a {source} has none)",
    "openfga": "an OpenFGA endpoint (--openfga-url and --openfga-store)",
    "prometheus": "a Prometheus endpoint (--prometheus-url)",
    "kafka": "a Kafka endpoint (--kafka-bootstrap)",
}


@dataclass
class AuditRequest:
    """What to audit and against which expectations."""

    source: Source
    config: Config
    checks: list[Check]
    attestations: dict[str, Attestation] = field(default_factory=dict)
    attestations_file: str = ""
    services: dict[str, Any] = field(default_factory=dict)
    today: dt.date = field(default_factory=dt.date.today)


def _available_services(request: AuditRequest) -> set[str]:
    available = set(request.services)
    if request.source.info.kind == "cluster":
        available.add("cluster")
    if request.source.info.kind in ("cluster", "snapshot"):
        available.add("status")
    return available


def _skip_reason(check: Check, available: set[str], source_kind: str) -> str | None:
    missing = [s for s in check.requires if s not in available]
    if not missing:
        return None
    source = {"manifests": "manifests directory"}.get(source_kind, source_kind)
    return "needs " + " and ".join(_NEEDS[s].format(source=source) for s in missing)


def _unreadable_kinds(probe: Probe, ctx: ProbeContext) -> Outcome | None:
    """Kinds the source could not fetch make the check an error naming the cause; a probe
    whose every kind is not served fails: the product it checks is not installed."""
    inventory = ctx.inventory
    missing = [(k, inventory.unavailable[k]) for k in sorted(probe.kinds)
               if k in inventory.unavailable]
    if missing:
        return Outcome(Status.ERROR, tuple(Evidence(kind, why) for kind, why in missing))
    if probe.kinds and all(k in inventory.absent for k in probe.kinds):
        reasons = dict.fromkeys(inventory.absent[k] for k in sorted(probe.kinds))
        return Outcome(Status.FAIL, tuple(Evidence("cluster", why) for why in reasons))
    return None


def _run_probe(check: Check, probe: Probe, ctx: ProbeContext) -> Outcome:
    blocked = _unreadable_kinds(probe, ctx)
    if blocked:
        return blocked
    try:
        return probe.fn(ctx, check.params)
    except NoRepository as exc:
        return Outcome(Status.SKIP, (Evidence("", str(exc)),))
    except (ProbeError, ToolError) as exc:
        return Outcome(Status.ERROR, (Evidence("", str(exc)),))
    except Exception as exc:  # a probe bug must not take the whole report down
        log.debug("probe %s crashed", check.probe, exc_info=True)
        return Outcome(
            Status.ERROR, (Evidence("", f"internal error in probe {check.probe}: {exc!r}"),)
        )


#: Checks evaluated at the same time. Many wait on something else — ``fga``, ``k6`` and
#: ``promtool`` processes, dry-run requests — so running them side by side shortens a scan
#: (the GIL still serializes pure-Python work, so this is not about CPU-bound probes).
PROBE_WORKERS = 4
#: Services whose client may be shared between threads: the cluster source's HTTP pool
#: is. Checks needing any other live service run one at a time, in the calling thread.
_THREAD_SAFE_SERVICES = frozenset({"cluster", "status"})
#: What a check may need and still be shared with a forked process: objects' status is
#: in the inventory; anything else is a live connection.
_INVENTORY_ONLY = frozenset({"status"})


def _manual(check: Check, request: AuditRequest) -> Outcome:
    attestation = request.attestations.get(check.id)
    where = request.attestations_file
    if attestation is None:
        return Outcome(
            Status.MANUAL,
            (Evidence(where, "not attested: verify by hand, then attest (TUI key m)"),),
        )
    text = f"attested by {attestation.by} until {attestation.expires}: {attestation.note}"
    if attestation.expired(request.today):
        return Outcome(Status.FAIL, (Evidence(where, f"attestation expired — {text}"),))
    return Outcome(Status.PASS, (Evidence(where, text),))


def _apply_waiver(outcome: Outcome, waiver: Waiver | None, today: dt.date) -> Outcome:
    if waiver is None or outcome.status in (Status.PASS, Status.SKIP):
        return outcome
    who = f" by {waiver.by}" if waiver.by else ""
    if today > waiver.expires:
        note = Evidence("config", f"waiver{who} expired on {waiver.expires}: {waiver.reason}")
        return Outcome(outcome.status, (*outcome.evidence, note))
    note = Evidence("config", f"waived{who} until {waiver.expires}: {waiver.reason}")
    return Outcome(Status.WAIVED, (note, *outcome.evidence))


def _locate(evidence: tuple[Evidence, ...],
            origins: dict[str, tuple[str, str]]) -> tuple[Evidence, ...]:
    """Attach the defining file:line (and, for a rendered object, the rendering) to evidence
    about an object, when the source knows it."""
    return tuple(
        Evidence(e.object, e.message, *origins[e.object])
        if not e.location and e.object in origins else e
        for e in evidence
    )


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration of a scan.

    A live scan decodes and keeps millions of small dicts and lists; each allocation burst
    triggers collections that traverse everything kept so far: half of the CPU of a
    47k-object ``--ci`` (12.1 s → 6.4 s user time without them). Reference counting still
    frees what the scan drops; only reference cycles wait until the end of the scan. The
    collector is re-enabled only if it was enabled before (nested or concurrent scans).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def kinds_read(checks: Sequence[Check], probes: Mapping[str, Probe]
               ) -> tuple[frozenset[str], frozenset[str]]:
    """The kinds ``checks`` read, and the kinds whose ``status`` they read: only a check
    that requires "status" reads an object's status."""
    kinds = frozenset().union(*(probes[c.probe].kinds for c in checks))
    status_of = frozenset().union(*(probes[c.probe].kinds for c in checks
                                    if "status" in c.requires))
    return kinds, status_of


def run_audit(request: AuditRequest, progress: Progress | None = None) -> Report:
    """Evaluate every check of ``request``. Raises AuditError only if nothing can be read."""
    with cyclic_gc_paused():
        return _run_audit(request, progress)


def _run_audit(request: AuditRequest, progress: Progress | None) -> Report:
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    probes = load_probes()
    available = _available_services(request)
    runnable = [c for c in request.checks if not c.manual and not set(c.requires) - available]
    validate_probes(runnable, set(probes))
    inventory = request.source.load(*kinds_read(runnable, probes))
    services = dict(request.services)
    if request.source.info.kind == "cluster":
        # Live-only probes (dry-run admission) talk to the API server through the source.
        services.setdefault("cluster", request.source)
    ctx = ProbeContext(
        inventory=inventory,
        config=request.config,
        source=request.source.info,
        tools=ToolRunner(request.config.tools),
        services=services,
    )
    waivers = {w.check: w for w in request.config.waivers}
    origins = {r.ref: (r.origin, r.rendered.describe() if r.rendered else "")
               for r in inventory if r.origin}
    results: list[Result] = []
    total = len(request.checks)
    shareable = available & _THREAD_SAFE_SERVICES

    def run(index: int) -> Outcome:
        check = request.checks[index]
        return _run_probe(check, probes[check.probe], ctx)

    inventory_only = _INVENTORY_ONLY & available
    pure = [i for i, c in enumerate(request.checks)
            if not c.manual and set(c.requires) <= inventory_only]
    done = run_shared(pure, run) if pure and worth_forking(len(inventory)) else {}
    # Ctrl-C/SIGTERM leaves now: a probe still waiting on a tool or a server is not
    # waited for.
    with unwaited_on_error(PROBE_WORKERS, "soma-probe") as pool:
        # Results are still taken, waived and reported in catalog order.
        pending: dict[int, Future[Outcome]] = {
            index: pool.submit(run, index)
            for index, check in enumerate(request.checks)
            if index not in done and not check.manual and set(check.requires) <= shareable
        }
        for index, check in enumerate(request.checks):
            if index in done:
                outcome = done[index]
            elif index in pending:
                outcome = result_of(pending.pop(index))
            elif check.manual:
                outcome = _manual(check, request)
            elif reason := _skip_reason(check, available, request.source.info.kind):
                outcome = Outcome(Status.SKIP, (Evidence("", reason),))
            else:
                outcome = run(index)
            outcome = _apply_waiver(outcome, waivers.get(check.id), request.today)
            result = Result(check, outcome.status, _locate(outcome.evidence, origins))
            results.append(result)
            if progress:
                progress(result, len(results), total)
    return Report(
        source=request.source.info,
        results=results,
        problems=list(inventory.problems),
        sources=list(inventory.sources),
        started=started,
        duration_seconds=time.perf_counter() - clock,
    )
