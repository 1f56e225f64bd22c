"""Live operations probe (checks/ops.yaml, ``requires: [prometheus]``): the platform was
stable over the last 24 hours, measured by Prometheus.

Availability per critical service is ``good / total`` requests over ``params.window``
(default 24h), computed by one PromQL query (see
:func:`soma_audit.services.prometheus.availability_query`). A window Prometheus holds only
part of is not proof of 24h stability: a service whose data starts later than the window
start fails with the hours actually covered.
"""

from __future__ import annotations

import datetime as dt
import math

from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.slo import promql
from soma_audit.probes import Params, ProbeContext, ProbeError, ev, live_probe, probe, verdict
from soma_audit.probes.slo_live import prometheus
from soma_audit.services.prometheus import availability_query, quote

#: Coverage is sampled at this many points over the window.
_COVERAGE_STEPS = 96


def percent(value: float) -> str:
    return f"{value * 100:.3f}%".replace(".000%", "%")


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h"


@probe("ops.stability-24h")
@live_probe
def stability(ctx: ProbeContext, params: Params) -> Outcome:
    """Each critical service's availability over the window is at least
    ``slo.availability_target``, and Prometheus has data for the whole window."""
    service = prometheus(ctx)
    slo = ctx.config.slo
    label = slo.service_label
    window = str(params.get("window", "24h"))
    try:
        seconds = promql.parse_duration(window)
    except promql.PromQLError as exc:
        raise ProbeError(f"params.window: {exc}") from None
    critical = [s.name for s in ctx.config.critical_services]
    if not critical:
        raise ProbeError("no critical services in the config")
    status_label = str(params.get("status_label", "code"))
    errors = str(params.get("error_pattern", "5.."))
    query = availability_query(slo.request_metric, label, window, status_label, errors, critical)
    now = dt.datetime.now(dt.UTC)
    availability = {s.labels.get(label, ""): s.value for s in service.query(query, at=now)}
    step = max(1.0, seconds / _COVERAGE_STEPS)
    scope = f"{label}=~{quote('|'.join(critical))}"
    series = service.query_range(f"group by ({label}) ({slo.request_metric}{{{scope}}})",
                                 now - dt.timedelta(seconds=seconds), now, f"{step:g}")
    first = {s.labels.get(label, ""): min(t for t, _ in s.points) for s in series if s.points}
    target = slo.availability_target
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for name in critical:
        ref = f"prometheus:{label}={name}"
        value = availability.get(name)
        if value is None or not math.isfinite(value) or name not in first:
            problems.append(ev(ref, f"no data: no {slo.request_metric} in the last {window}"))
            continue
        covered = now.timestamp() - first[name]
        if value < target:
            problems.append(ev(ref, f"availability {percent(value)} over {window} < target "
                                    f"{percent(target)}"))
        elif covered < seconds - 2 * step:
            problems.append(ev(ref, f"data covers only {hours(covered)} of the {window} window "
                                    f"(availability {percent(value)} so far): stability over "
                                    f"{window} not shown"))
        else:
            ok.append(ev(ref, f"availability {percent(value)} over {window} >= target "
                              f"{percent(target)}"))
    return verdict(problems, ok)
