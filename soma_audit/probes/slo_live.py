"""Live Prometheus probes for the SLO area (checks/slo.yaml, ``requires: [prometheus]``):
the SLI series really exist, and the SLO alerts are loaded and have somewhere to go.

Which series and alerts are expected (decision, also in docs/live-probes.md):

- **SLI series** come from the recording rules of the PrometheusRule objects in the
  inventory — every rule that :mod:`soma_audit.domain.slo.rules` reads as an availability / error
  ratio or the p99 quantile, per service — and each must have a series for every critical
  service it covers. Only when the inventory holds no such rule do the check's
  ``params.series`` names apply (to every critical service). What is declared is what
  must be running: a recording rule in Git that Prometheus does not evaluate is a gap.
- **SLO alerts** are the inventory's alert rules that read the SLIs (directly or through
  recorded series); else ``params.alerts``; else any loaded alert that reads them.
"""

from __future__ import annotations

from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.slo import promql
from soma_audit.domain.slo.rules import (
    Interpreter,
    Kind,
    Record,
    Rule,
    Sli,
    SliSpec,
    covers,
    records_of,
    rules_of,
)
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    failed,
    live_client,
    live_probe,
    passed,
    probe,
    verdict,
)
from soma_audit.services.prometheus import LoadedRule, PrometheusService, quote

RULE_KIND = "PrometheusRule"


def prometheus(ctx: ProbeContext) -> PrometheusService:
    """The Prometheus client of the audit (shared by the slo, ops and chaos live probes)."""
    return live_client(ctx, "prometheus", PrometheusService,
                       "no Prometheus client (set --prometheus-url)")


def _spec(ctx: ProbeContext) -> SliSpec:
    slo = ctx.config.slo
    return SliSpec(slo.request_metric, slo.latency_metric, slo.service_label)


def _inventory_rules(ctx: ProbeContext) -> list[Rule]:
    return [rule for obj in ctx.inventory.of_kind(RULE_KIND)
            for rule in rules_of(obj.ref, obj.namespace, obj.spec)]


def _as_sli(interpreter: Interpreter, expr: str, labels: dict[str, str],
            quantile: float) -> Sli | None:
    """What the recording rule computes, when it is an SLI (a ratio of the request metric
    or the p99 of the latency metric); None otherwise."""
    try:
        sli = interpreter.interpret_text(expr, labels)
    except promql.PromQLError:
        return None
    if not sli.metrics:
        return None
    if sli.kind == Kind.RATIO or (sli.kind == Kind.QUANTILE and sli.quantile == quantile):
        return sli
    return None


def expected_series(ctx: ProbeContext, params: Params) -> tuple[dict[str, tuple[str, list[str]]],
                                                                 str]:
    """record name → (where it is declared, critical services it must have a series for),
    and a description of where the names came from."""
    critical = [s.name for s in ctx.config.critical_services]
    label = ctx.config.slo.service_label
    quantile = float(params.get("quantile", 0.99))
    rules = _inventory_rules(ctx)
    interpreter = Interpreter(_spec(ctx), records_of(rules))
    found: dict[str, tuple[str, list[str]]] = {}
    for rule in (r for r in rules if not r.is_alert):
        sli = _as_sli(interpreter, rule.expr, rule.mapping("labels"), quantile)
        if sli is None:
            continue
        services = [s for s in critical if covers(sli, s, label)]
        if services:
            where, known = found.get(rule.name, (rule.ref, []))
            found[rule.name] = (where, known + [s for s in services if s not in known])
    if found:
        return found, "the recording rules of the PrometheusRule objects"
    names = params.get("series") or []
    if not names:
        raise ProbeError("no SLI recording rules in the PrometheusRule objects and no "
                         "params.series to fall back on")
    origin = "params.series (no SLI recording rule in the PrometheusRule objects)"
    return {str(n): ("check params", critical) for n in names}, origin


@probe("slo.series-present", kinds=[RULE_KIND])
@live_probe
def series_present(ctx: ProbeContext, params: Params) -> Outcome:
    """Every SLI recording-rule series exists in Prometheus for every critical service
    its rule covers (declared rules first, ``params.series`` otherwise)."""
    service = prometheus(ctx)
    label = ctx.config.slo.service_label
    wanted, origin = expected_series(ctx, params)
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for name, (where, services) in sorted(wanted.items()):
        samples = service.query(f"group by ({label}) ({{__name__={quote(name)}}})")
        present = {s.labels.get(label, "") for s in samples}
        missing = [s for s in services if s not in present]
        if not samples:
            problems.append(ev(where, f"series {name}: none in Prometheus — the rule is not "
                                      "loaded or evaluates to nothing"))
        elif missing:
            problems.append(ev(where, f"series {name}: no series for {label}="
                                      f"{', '.join(missing)}"))
        else:
            ok.append(ev(where, f"series {name}: present for all {len(services)} critical "
                                "services"))
    return verdict(problems, [*ok, ev("prometheus", f"series names from {origin}")])


def _inventory_alerts(ctx: ProbeContext) -> dict[str, str]:
    """SLO alert name → where declared: alert rules of the inventory that read the SLIs."""
    rules = _inventory_rules(ctx)
    interpreter = Interpreter(_spec(ctx), records_of(rules))
    found: dict[str, str] = {}
    for rule in (r for r in rules if r.is_alert):
        try:
            sli = interpreter.interpret_text(rule.expr, rule.mapping("labels"))
        except promql.PromQLError:
            continue
        if sli.metrics:
            found.setdefault(rule.name, rule.ref)
    return found


def _loaded_slo_alerts(ctx: ProbeContext, loaded: list[LoadedRule]) -> dict[str, str]:
    """Loaded alert rules that read the SLIs, through the loaded recording rules."""
    records = [Record(r.name, r.query, r.labels) for r in loaded if r.kind == "recording"]
    interpreter = Interpreter(_spec(ctx), records)
    found: dict[str, str] = {}
    for rule in (r for r in loaded if r.kind == "alerting"):
        try:
            sli = interpreter.interpret_text(rule.query, rule.labels)
        except promql.PromQLError:
            continue
        if sli.metrics:
            found.setdefault(rule.name, f"prometheus:rules/{rule.group}")
    return found


@probe("slo.rules-loaded", kinds=[RULE_KIND])
@live_probe
def rules_loaded(ctx: ProbeContext, params: Params) -> Outcome:
    """The SLO alert rules are loaded and healthy (``/api/v1/rules``) and Prometheus has
    at least one active Alertmanager to send them to (``/api/v1/alertmanagers``)."""
    service = prometheus(ctx)
    loaded = service.rules()
    alerts: dict[str, list[LoadedRule]] = {}
    for rule in (r for r in loaded if r.kind == "alerting"):
        alerts.setdefault(rule.name, []).append(rule)
    wanted = _inventory_alerts(ctx)
    if not wanted and params.get("alerts"):
        wanted = {str(name): "check params" for name in params["alerts"]}
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    if not wanted:
        discovered = _loaded_slo_alerts(ctx, loaded)
        if not discovered:
            problems.append(ev("prometheus:rules", "no SLO alert rule is loaded: no alerting "
                                                   "rule reads the SLI metrics"))
        wanted = discovered
    for name, where in sorted(wanted.items()):
        found = alerts.get(name)
        if not found:
            problems.append(ev(where, f"alert {name} is not loaded in Prometheus"))
            continue
        broken = [r for r in found if r.health == "err"]
        if broken:
            problems.append(ev(where, f"alert {name} is loaded but fails to evaluate: "
                                      f"{broken[0].last_error}"))
        else:
            ok.append(ev(where, f"alert {name} loaded (group {found[0].group})"))
    active, dropped = service.alertmanagers()
    if active:
        ok.append(ev("prometheus:alertmanagers", f"active Alertmanager: {', '.join(active)}"))
    else:
        note = f" (dropped: {', '.join(dropped)})" if dropped else ""
        problems.append(ev("prometheus:alertmanagers", "no active Alertmanager: alerts fire "
                                                       f"but reach no one{note}"))
    return failed(*problems) if problems else passed(*ok)
