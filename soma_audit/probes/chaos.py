"""Probes for the chaos area (see checks/chaos.yaml). Logic: soma_audit/domain/chaos/mesh.py.

Only a valid, unpaused ``Schedule`` counts as a scheduled experiment: a standalone
experiment runs once, and the 1.x ``scheduler:`` field no longer exists in Chaos Mesh 2.x.
"""

from __future__ import annotations

import datetime as dt

from soma_audit.core.durations import format_duration
from soma_audit.core.model import Evidence, Outcome, Status
from soma_audit.domain.chaos import mesh as chaosmesh
from soma_audit.domain.chaos.cron import max_gap
from soma_audit.domain.chaos.mesh import ChaosSchedule
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.labels import has_labels
from soma_audit.kube.workloads import WORKLOAD_KINDS, workloads
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    failed,
    passed,
    probe,
    skipped,
    verdict,
)

_KINDS = ("Schedule", *chaosmesh.EXPERIMENT_KINDS)


def _read_schedules(inventory: Inventory) -> tuple[ChaosSchedule, ...]:
    return tuple(chaosmesh.read_schedule(r) for r in inventory.of_kind("Schedule")
                 if r.group == chaosmesh.GROUP)


def _schedules(ctx: ProbeContext) -> list[ChaosSchedule]:
    """Every Chaos Mesh Schedule, parsed once per inventory for the checks that read them."""
    return list(ctx.inventory.derived(_read_schedules))


def _experiments(ctx: ProbeContext) -> list[Resource]:
    """Experiment objects of any chaos kind (standalone or spawned)."""
    return [r for r in ctx.inventory.of_kind(*chaosmesh.EXPERIMENT_KINDS)
            if r.group == chaosmesh.GROUP]


def _unscheduled(ctx: ProbeContext, kinds: set[str]) -> list[Evidence]:
    """Why standalone experiments of ``kinds`` do not count as scheduled."""
    found = []
    for resource in _experiments(ctx):
        if resource.kind not in kinds or not chaosmesh.is_standalone(resource):
            continue
        what = chaosmesh.standalone_experiment(resource).describe()
        legacy = chaosmesh.legacy_scheduler(resource.spec)
        if legacy:
            found.append(ev(resource.ref, f"{what} uses the removed 1.x spec.scheduler "
                                          f"({legacy}): it never recurs in Chaos Mesh 2.x, "
                                          "wrap it in a Schedule"))
        else:
            found.append(ev(resource.ref, f"{what} is a one-off experiment, not wrapped in a "
                                          "Schedule: it does not count as scheduled"))
    return found


def _not_running(schedule: ChaosSchedule) -> list[Evidence]:
    """Why a Schedule does not count: invalid (with each reason) or paused."""
    ref = schedule.resource.ref
    if schedule.problems:
        return [ev(ref, f"invalid, does not count: {p}") for p in schedule.problems]
    if schedule.paused:
        return [ev(ref, f"paused ({chaosmesh.PAUSE_ANNOTATION}=true), does not count")]
    return []


def _scheduled_faults(ctx: ProbeContext, family: tuple[str, ...]) -> Outcome:
    """Each fault of ``family`` the config asks for is run by a valid, unpaused Schedule."""
    configured = ctx.config.chaos.experiments
    unknown = [e for e in configured if e not in chaosmesh.FAULTS]
    if unknown:
        raise ProbeError(f"config.chaos.experiments: unknown experiment {', '.join(unknown)}; "
                         f"known: {', '.join(chaosmesh.FAULTS)}")
    required = [f for f in family if f in configured]
    if not required:
        return skipped(f"config.chaos.experiments lists none of {', '.join(family)}", "config")
    kinds = {chaosmesh.FAULT_KINDS[f] for f in required}
    # A type of the wrong shape is reported by chaos.coverage (the schedule's problems).
    schedules = [s for s in _schedules(ctx) if str(s.resource.spec.get("type")) in kinds]
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for fault in required:
        running = [s for s in schedules
                   if s.runs and s.experiment and fault in s.experiment.faults()]
        ok += [ev(s.resource.ref, f"{fault}: {s.describe()}") for s in running]
        if not running:
            problems.append(ev(f"Schedule/{ctx.config.chaos.namespace}/{fault}",
                               f"missing: no valid Schedule runs {chaosmesh.FAULTS[fault]}"))
    if not problems:
        return passed(*ok)
    near_misses = [e for s in schedules for e in _not_running(s)]
    return failed(*problems, *near_misses, *_unscheduled(ctx, kinds))


@probe("chaos.stress", kinds=_KINDS)
def stress(ctx: ProbeContext, params: Params) -> Outcome:
    """CPU and memory stress run on a schedule."""
    return _scheduled_faults(ctx, ("cpu-stress", "memory-stress"))


@probe("chaos.network", kinds=_KINDS)
def network(ctx: ProbeContext, params: Params) -> Outcome:
    """Network latency and packet loss run on a schedule."""
    return _scheduled_faults(ctx, ("network-delay", "network-loss"))


@probe("chaos.pod-failure", kinds=_KINDS)
def pod_failure(ctx: ProbeContext, params: Params) -> Outcome:
    """Pod kill or pod failure runs on a schedule."""
    return _scheduled_faults(ctx, ("pod-failure",))


def _frequency(schedule: ChaosSchedule, limit: dt.timedelta) -> tuple[bool, Evidence]:
    """Whether the Schedule fires at least every ``limit``, with the evidence either way."""
    ref = schedule.resource.ref
    cron = schedule.cron
    if cron is None:
        reason = next(p for p in schedule.problems if p.startswith("spec.schedule"))
        return False, ev(ref, f"never fires: {reason}")
    if schedule.paused:
        return False, ev(ref, f"never fires: paused ({chaosmesh.PAUSE_ANNOTATION}=true)")
    gap = max_gap(cron)
    if gap is None:
        return False, ev(ref, f"spec.schedule {cron.expression!r} never fires (no such date)")
    zone = f" ({cron.timezone} wall-clock time)" if cron.timezone else ""
    if gap > limit:
        return False, ev(ref, f"spec.schedule {cron.expression!r} leaves up to "
                              f"{format_duration(gap)} between runs{zone}, expected at most "
                              f"{format_duration(limit)}")
    return True, ev(ref, f"spec.schedule {cron.expression!r} fires at least every "
                         f"{format_duration(gap)}{zone}")


@probe("chaos.daily", kinds=_KINDS)
def daily(ctx: ProbeContext, params: Params) -> Outcome:
    """Every Schedule fires at least every ``chaos.max_interval_hours``."""
    limit = dt.timedelta(hours=ctx.config.chaos.max_interval_hours)
    schedules = _schedules(ctx)
    verdicts = [_frequency(s, limit) for s in schedules]
    problems = [e for often, e in verdicts if not often]
    if not any(s.runs for s in schedules):
        problems.insert(0, ev("Schedule", "missing: no valid, unpaused Chaos Mesh Schedule, so "
                                          "no experiment runs daily"))
        problems += _unscheduled(ctx, set(chaosmesh.EXPERIMENT_KINDS))
    return verdict(problems, [e for often, e in verdicts if often])


def _service_pod_labels(ctx: ProbeContext, selector: dict[str, str]) -> list[dict[str, str]]:
    """Labels of the service's pod templates; its selector alone when none is declared."""
    found = [w.pod_labels for w in workloads(ctx.inventory, ctx.config.namespace)
             if has_labels(w.pod_labels, selector.items())]
    return found or [selector]


@probe("chaos.coverage", kinds=[*_KINDS, *WORKLOAD_KINDS])
def coverage(ctx: ProbeContext, params: Params) -> Outcome:
    """Every critical service is selected by at least one running Schedule."""
    services = ctx.config.critical_services
    if not services:
        return skipped("config marks no service as critical", "config")
    namespace = ctx.config.namespace
    schedules = [s for s in _schedules(ctx) if s.experiment is not None]
    running = [s for s in schedules if s.runs]
    idle = [s for s in schedules if not s.runs]
    problems: list[Evidence] = []
    undecided: list[Evidence] = []
    ok: list[Evidence] = []
    for service in services:
        labels = _service_pod_labels(ctx, service.selector)
        verdicts = [(s, chaosmesh.selects(s.experiment, namespace, labels))
                    for s in running if s.experiment is not None]
        hits = [s.resource.ref for s, selected in verdicts if selected]
        unknown = [s.resource.ref for s, selected in verdicts if selected is None]
        ref = f"Service/{namespace}/{service.name}"
        wanted = ",".join(f"{k}={v}" for k, v in service.selector.items())
        if hits:
            ok.append(ev(ref, f"targeted by {', '.join(hits)}"))
        elif unknown:
            undecided.append(ev(ref, (
                f"cannot tell offline whether {', '.join(unknown)} select it (selection by "
                "pod or node name, annotations, fields or pod phase)")))
        else:
            problems.append(ev(ref, f"no running Schedule selects pods {wanted} in namespace "
                                    f"{namespace}"))
            problems += [
                ev(s.resource.ref, f"would target {service.name} but does not run: "
                                   f"{'paused' if not s.problems else s.problems[0]}")
                for s in idle
                if s.experiment is not None and chaosmesh.selects(s.experiment, namespace, labels)
            ]
    if problems:
        return failed(*problems, *undecided)
    if undecided:
        return Outcome(Status.ERROR, tuple(undecided))
    return passed(*ok)


@probe("chaos.no-legacy-scheduler", kinds=_KINDS)
def no_legacy_scheduler(ctx: ProbeContext, params: Params) -> Outcome:
    """No experiment carries the Chaos Mesh 1.x ``scheduler:`` field."""
    problems: list[Evidence] = []
    experiments = _experiments(ctx)
    for resource in experiments:
        legacy = chaosmesh.legacy_scheduler(resource.spec)
        if legacy:
            key = chaosmesh.TEMPLATE_KEYS[resource.kind]
            problems.append(ev(resource.ref, (
                f"spec.scheduler ({legacy}) is the removed Chaos Mesh 1.x form: the API server "
                f"drops or rejects it; use a Schedule with spec.type {resource.kind}, the cron "
                f"in spec.schedule and this spec under spec.{key}")))
    schedules = [r for r in ctx.inventory.of_kind("Schedule") if r.group == chaosmesh.GROUP]
    for resource in schedules:
        key = chaosmesh.TEMPLATE_KEYS.get(str(resource.spec.get("type")))
        inline = resource.spec.get(key) if key else None
        legacy = chaosmesh.legacy_scheduler(inline) if isinstance(inline, dict) else None
        if legacy:
            problems.append(ev(resource.ref, (
                f"spec.{key}.scheduler ({legacy}) is the removed Chaos Mesh 1.x field: "
                "remove it, spec.schedule already sets when it runs")))
    checked = len(experiments) + len(schedules)
    return verdict(problems, [ev(ctx.source.ref, f"{checked} Chaos Mesh objects checked, none "
                                                 "uses the 1.x spec.scheduler field")])
