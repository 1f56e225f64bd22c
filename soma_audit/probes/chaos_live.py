"""Live chaos verification (checks/chaos.yaml ``chaos.slo-verified``, ``requires: [status,
prometheus]``, the Schedules' status read live or from a snapshot dump): during the last
run of each Chaos Mesh Schedule that targets the platform, did the SLOs hold?

A run's window starts at the Schedule's ``status.time`` (Chaos Mesh's last schedule time)
and lasts the experiment's ``duration`` (``params.default_duration`` when it has none, as a
pod-kill; never less than ``params.min_window`` so that ``increase()`` sees samples), cut
at now. Over that window Prometheus gives, per targeted service, availability (good/total
requests) against ``slo.availability_target`` and p99 latency against
``slo.latency_p99_seconds``. A Schedule targets the services whose pods its selector picks
in the platform namespace; when that cannot be told from the selector, every critical
service is checked. Schedules that select nothing in the platform namespace are not ours.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from soma_audit.config import Service
from soma_audit.core.durations import DurationError, format_duration, parse_go_duration
from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.chaos import mesh as chaosmesh
from soma_audit.kube.inventory import Resource
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    failed,
    live_probe,
    probe,
    verdict,
    with_status,
)
from soma_audit.probes.ops_live import percent
from soma_audit.probes.slo_live import prometheus
from soma_audit.services.prometheus import (
    PrometheusService,
    availability_query,
    latency_query,
    seconds_text,
)


@dataclass(frozen=True)
class RunWindow:
    """When a Schedule's last run had its effect."""

    start: dt.datetime
    end: dt.datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def describe(self) -> str:
        start = self.start.strftime("%Y-%m-%d %H:%M:%SZ")
        return f"{start} + {format_duration(self.end - self.start)}"


def run_window(status: dict[str, Any], schedule: chaosmesh.ChaosSchedule,
               default: dt.timedelta, minimum: dt.timedelta,
               now: dt.datetime) -> RunWindow | str:
    """The window of the last run (from ``status.time`` for the experiment's duration),
    or why there is none, in words."""
    stamp = status.get("time") or status.get("lastScheduleTime")
    if not stamp:
        return "never ran (status.time unset): no run to verify the SLOs against"
    try:
        start = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return f"status.time={stamp!r} is not an RFC 3339 time"
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    if start > now:
        return f"status.time={stamp} is in the future"
    length = default
    experiment = schedule.experiment
    duration = experiment.spec.get("duration") if experiment else None
    if isinstance(duration, str) and duration:
        try:
            length = parse_go_duration(duration)
        except DurationError:
            length = default
    end = min(start + max(length, minimum), now)
    if end - start < dt.timedelta(seconds=1):
        return f"the last run started at {stamp}, less than a second ago: too early to verify"
    return RunWindow(start, end)


def _duration(params: Params, key: str, default: str) -> dt.timedelta:
    text = str(params.get(key, default))
    try:
        return parse_go_duration(text)
    except DurationError as exc:
        raise ProbeError(f"params.{key}: {exc}") from None


def _targets(schedule: chaosmesh.ChaosSchedule, namespace: str,
             services: list[Service]) -> list[Service] | None:
    """The configured services the schedule's experiment selects; None when the selector
    cannot be read (then every critical service is checked)."""
    experiment = schedule.experiment
    if experiment is None:
        return None
    verdicts = [(s, chaosmesh.selects(experiment, namespace, [s.selector])) for s in services]
    chosen = [s for s, v in verdicts if v is True]
    if chosen:
        return chosen
    return None if any(v is None for _, v in verdicts) else []


def _check_window(service: PrometheusService, ctx: ProbeContext, ref: str, window: RunWindow,
                  targets: list[str]) -> list[tuple[bool, Evidence]]:
    slo = ctx.config.slo
    label = slo.service_label
    length = seconds_text(window.seconds)
    availability = {s.labels.get(label, ""): s.value for s in service.query(
        availability_query(slo.request_metric, label, length, services=targets), at=window.end)}
    latency = {s.labels.get(label, ""): s.value for s in service.query(
        latency_query(slo.latency_metric, label, length, 0.99, services=targets), at=window.end)}
    found = []
    when = window.describe()
    for name in targets:
        value = availability.get(name)
        if value is None or not math.isfinite(value):
            found.append((False, ev(ref, f"{name}: no data during the last run ({when}): "
                                         "SLOs not verified")))
            continue
        words = [f"availability {percent(value)}"]
        held = value >= slo.availability_target
        if not held:
            words[0] += f" < target {percent(slo.availability_target)}"
        p99 = latency.get(name)
        if p99 is not None and math.isfinite(p99):
            words.append(f"p99 {p99:.3f}s")
            if p99 > slo.latency_p99_seconds:
                held = False
                words[-1] += f" > {slo.latency_p99_seconds:g}s"
        state = "held" if held else "broken"
        found.append((held, ev(ref, f"{name}: SLO {state} during the last run ({when}): "
                                    + ", ".join(words))))
    return found


@probe("chaos.slo-verified", kinds=["Schedule"])
@live_probe
def slo_verified(ctx: ProbeContext, params: Params) -> Outcome:
    """For each Schedule targeting the platform, the SLOs held during its last run."""
    service = prometheus(ctx)
    namespace = ctx.config.namespace
    default = _duration(params, "default_duration", "5m")
    minimum = _duration(params, "min_window", "1m")
    now = dt.datetime.now(dt.UTC)
    critical = ctx.config.critical_services
    schedules = [r for r in ctx.inventory.of_kind("Schedule") if r.group == chaosmesh.GROUP]
    if schedules:
        schedules, unknown = with_status(ctx, schedules, "Schedules")
        if unknown:
            return unknown
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    seen = 0
    for resource in schedules:
        schedule = chaosmesh.read_schedule(resource)
        targets = _targets(schedule, namespace, ctx.config.services)
        if targets == []:
            continue
        seen += 1
        names = [s.name for s in (targets if targets is not None else critical)]
        window = run_window(_status(resource), schedule, default, minimum, now)
        if isinstance(window, str):
            problems.append(ev(resource.ref, window))
            continue
        for held, evidence in _check_window(service, ctx, resource.ref, window, names):
            (ok if held else problems).append(evidence)
    if not seen:
        return failed(ev(f"Schedule/{namespace}", f"no Chaos Mesh Schedule targets the "
                                                  f"services in namespace {namespace}: "
                                                  "nothing ran to verify"))
    return verdict(problems, ok)


def _status(resource: Resource) -> dict[str, Any]:
    status = resource.body.get("status")
    return status if isinstance(status, dict) else {}
