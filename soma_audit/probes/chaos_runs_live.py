"""Chaos Mesh run history (checks/chaos.yaml ``chaos.recent-runs``, ``requires:
[status]``): every Schedule has really fired recently — read live, or from a snapshot dump
that kept the Schedules' status (its ages are measured up to the time of the audit).

Chaos Mesh records a Schedule's last firing in ``status.time`` (Go field LastScheduleTime;
``status.lastScheduleTime`` is accepted too). A run is recent when it is no older than the
schedule's longest gap between two firings
(:func:`soma_audit.domain.chaos.cron.max_gap`, so a weekday
schedule is not blamed on Monday morning) plus ``params.slack`` (default 1h: the controller
and the clock may lag). A Schedule that has never fired is fine only while it is younger
than that bound. Separate module from ``chaos_live.py`` (SLO verification, another owner).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from soma_audit.core.durations import DurationError, format_duration, parse_go_duration
from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.chaos import mesh as chaosmesh
from soma_audit.domain.chaos.cron import max_gap
from soma_audit.kube.inventory import Resource
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    as_of,
    ev,
    failed,
    probe,
    verdict,
    with_status,
)


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _last_run(resource: Resource) -> tuple[dt.datetime | None, str]:
    status = resource.body.get("status")
    status = status if isinstance(status, dict) else {}
    for key in ("time", "lastScheduleTime"):
        if status.get(key):
            return _time(status[key]), f"status.{key}={status[key]}"
    return None, "status.time unset"


def judge(resource: Resource, now: dt.datetime, slack: dt.timedelta) -> tuple[bool, str]:
    """Whether the Schedule fired recently enough, and the evidence message."""
    schedule = chaosmesh.read_schedule(resource)
    expression = resource.spec.get("schedule")
    if schedule.cron is None:
        return False, "; ".join(schedule.problems) or "spec.schedule cannot be parsed"
    gap = max_gap(schedule.cron)
    if gap is None:
        return False, f"spec.schedule {expression!r} never fires"
    bound = gap + slack
    limit = f"{format_duration(gap)} interval + {format_duration(slack)} slack"
    paused = " (paused)" if schedule.paused else ""
    last, found = _last_run(resource)
    if last is None and found != "status.time unset":
        return False, f"{found} is not an RFC 3339 time"
    if last is None:
        created = _time(resource.metadata.get("creationTimestamp"))
        if created is not None and now - created <= bound:
            return True, (f"{found}: created {format_duration(now - created)} ago, first run "
                          f"not due yet ({limit})")
        return False, f"{found}: never ran since creation, expected a run every {limit}{paused}"
    age = now - last
    if age < -slack:
        return False, f"{found} is in the future"
    if age <= bound:
        return True, f"{found}, {format_duration(max(age, dt.timedelta()))} ago, within {limit}"
    return False, (f"{found}, last run {format_duration(age)} ago, expected within {limit} "
                   f"of schedule {expression!r}{paused}")


@probe("chaos.recent-runs", kinds=["Schedule"])
def recent_runs(ctx: ProbeContext, params: Params) -> Outcome:
    """Each Chaos Mesh Schedule's last run is within its cron interval plus slack."""
    try:
        slack = parse_go_duration(str(params.get("slack", "1h")))
    except DurationError as exc:
        raise ProbeError(f"params.slack: {exc}") from None
    schedules = sorted((r for r in ctx.inventory.of_kind("Schedule")
                        if r.group == chaosmesh.GROUP), key=lambda r: r.ref)
    if not schedules:
        namespace = ctx.config.chaos.namespace
        return failed(ev(f"Schedule/{namespace}", "no Chaos Mesh Schedule in the cluster: "
                                                  "no experiment runs on a schedule"))
    schedules, unknown = with_status(ctx, schedules, "Schedules")
    if unknown:
        return unknown
    now = dt.datetime.now(dt.UTC)
    when = as_of(ctx)
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for resource in schedules:
        recent, message = judge(resource, now, slack)
        (ok if recent else problems).append(ev(resource.ref, message + when))
    return verdict(problems, ok)
