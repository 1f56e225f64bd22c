"""Probes for the slo area (see checks/slo.yaml).

The PromQL reasoning lives in :mod:`soma_audit.domain.slo.rules` (what a rule computes) and
:mod:`soma_audit.domain.slo.alertmanager` (where an alert is routed); these functions gather the
objects, apply the expectations of ``config.slo`` and word the evidence.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soma_audit.core.model import Evidence, Outcome
from soma_audit.core.yamlload import load_json, safe_load, safe_load_all
from soma_audit.domain.ops.runbooks import runbook_url
from soma_audit.domain.slo import alertmanager, promql
from soma_audit.domain.slo.rules import (
    BurnCondition,
    Interpreter,
    Kind,
    Rule,
    Sli,
    SliSpec,
    burn_clauses,
    covers,
    per_service_problem,
    records_of,
    rules_of,
)
from soma_audit.kube.inventory import Resource
from soma_audit.kube.labels import namespace_selector_labels
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    failed,
    passed,
    probe,
    repofiles,
    verdict,
)

RULE_KIND = "PrometheusRule"
#: Grafana template variables that stand for a rate window (``[$__rate_interval]``).
_WINDOW_VARIABLE = re.compile(r"\[\s*\$(?:\{\s*)?\w+\s*\}?\s*]")


def _spec(ctx: ProbeContext) -> SliSpec:
    slo = ctx.config.slo
    return SliSpec(slo.request_metric, slo.latency_metric, slo.service_label)


def _rules(ctx: ProbeContext) -> list[Rule]:
    return [
        rule
        for obj in ctx.inventory.of_kind(RULE_KIND)
        for rule in rules_of(obj.ref, obj.namespace, obj.spec)
    ]


def _critical(ctx: ProbeContext) -> list[str]:
    return [s.name for s in ctx.config.critical_services]


def _no_rules() -> Outcome:
    return failed(ev(RULE_KIND, "no PrometheusRule objects found (monitoring.coreos.com/v1)"))


# -- slo.recording-rules ---------------------------------------------------------------

_SLI_NAMES = {
    "availability": "availability SLI (good/total request ratio)",
    "error-rate": "error-rate SLI (5xx/total request ratio)",
    "latency": "p99 latency SLI (histogram_quantile by le and service)",
}


def _sli_name(sli: Sli, quantile: float) -> str | None:
    if sli.kind == Kind.RATIO:
        return "availability" if sli.cls == "good" else "error-rate"
    if sli.kind == Kind.QUANTILE and sli.quantile == quantile:
        return "latency"
    return None


def _defects(sli: Sli, quantile: float) -> list[str]:
    """What is wrong with a recorded SLI-like series, apart from not being per service."""
    defects = list(sli.problems)
    if sli.kind == Kind.RATIO and sli.scale != 1:
        defects.append(f"multiplied by {sli.scale:g}: a percentage, not a 0-1 ratio")
    if sli.kind == Kind.QUANTILE and sli.quantile != quantile:
        defects.append(f"quantile {sli.quantile}, expected {quantile}")
    return defects


@probe("slo.recording-rules", kinds=[RULE_KIND])
def recording_rules(ctx: ProbeContext, params: Params) -> Outcome:
    """Every critical service has availability, error-rate and p99 SLIs recorded, each
    computed correctly and per service (see the decisions in :mod:`soma_audit.domain.slo.rules`)."""
    if not ctx.inventory.of_kind(RULE_KIND):
        return _no_rules()
    quantile = float(params.get("quantile", 0.99))
    service_label = ctx.config.slo.service_label
    rules = _rules(ctx)
    interpreter = Interpreter(_spec(ctx), records_of(rules))
    critical = _critical(ctx)
    covered: dict[str, dict[str, list[Rule]]] = {k: {s: [] for s in critical} for k in _SLI_NAMES}
    problems: list[Evidence] = []
    notes: list[Evidence] = []
    for rule in (r for r in rules if not r.is_alert):
        try:
            sli = interpreter.interpret_text(rule.expr, rule.mapping("labels"))
        except promql.PromQLError as exc:
            notes.append(ev(rule.ref, f"{rule.where}: expression not analysed ({exc})"))
            continue
        if not sli.metrics or sli.kind in (Kind.OTHER, Kind.NUMBER):
            continue
        defects = _defects(sli, quantile)
        not_per_service = per_service_problem(sli, service_label)
        if defects:
            problems.append(ev(rule.ref, f"{rule.where}: " + "; ".join(
                [*defects, not_per_service] if not_per_service else defects)))
        elif not_per_service:
            notes.append(ev(rule.ref, f"{rule.where}: {not_per_service}"))
        name = _sli_name(sli, quantile)
        if name and not defects:
            for service in critical:
                if covers(sli, service, service_label):
                    covered[name][service].append(rule)
    ok = []
    for name, by_service in covered.items():
        missing = [s for s, found in by_service.items() if not found]
        if missing:
            problems.append(ev(RULE_KIND, f"no correct {_SLI_NAMES[name]} recorded per "
                                          f"{service_label} for: {', '.join(missing)}"))
            continue
        by_ref: dict[str, set[str]] = {}
        for rule in (r for found in by_service.values() for r in found):
            by_ref.setdefault(rule.ref, set()).add(rule.name)
        ok += [ev(ref, f"{_SLI_NAMES[name]} for all {len(by_service)} critical services: "
                       f"{', '.join(sorted(names))}") for ref, names in by_ref.items()]
    return failed(*problems, *notes) if problems else passed(*ok)


# -- slo.rules-valid -------------------------------------------------------------------

def _rule_file(spec: dict[str, Any]) -> dict[str, Any]:
    """The plain ``groups:`` file Prometheus would load from a PrometheusRule spec.
    The operator drops the Thanos-only ``partial_response_strategy`` for Prometheus."""
    groups = [
        {k: v for k, v in g.items() if k != "partial_response_strategy"}
        if isinstance(g, dict) else g
        for g in spec["groups"]
    ]
    return {"groups": groups}


def _promtool_message(output: str, path: str, ref: str) -> str:
    lines = [line.strip().replace(path, ref) for line in output.splitlines()]
    kept = [line for line in lines if line and not line.startswith("Checking ")]
    return " | ".join(kept) or "no output"


#: PrometheusRules checked per promtool run (one process for many files, not one each).
_PROMTOOL_BATCH = 100


def _promtool_blocks(stdout: str) -> dict[str, str]:
    """promtool prints a ``Checking <file>`` block per file on stdout; errors go to stderr."""
    blocks: dict[str, list[str]] = {}
    current: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("Checking "):
            current = blocks.setdefault(line.removeprefix("Checking ").strip(), [])
        else:
            current.append(line)
    return {path: "\n".join(lines) for path, lines in blocks.items()}


@probe("slo.rules-valid", kinds=[RULE_KIND])
def rules_valid(ctx: ProbeContext, params: Params) -> Outcome:
    """Each PrometheusRule's spec, as the plain rule file Prometheus loads, passes the real
    ``promtool check rules``."""
    objects = ctx.inventory.of_kind(RULE_KIND)
    if not objects:
        return _no_rules()
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    with tempfile.TemporaryDirectory(prefix="soma-audit-rules-") as tmp:
        # Identical specs (one PrometheusRule copied into many namespaces) share one file,
        # so promtool checks each distinct rule file once; each object gets its verdict.
        path_of: dict[str, str] = {}
        checked: list[tuple[Resource, str]] = []
        for obj in objects:
            if not isinstance(obj.spec.get("groups"), list):
                problems.append(ev(obj.ref, "spec.groups is missing or not a list"))
                continue
            rule_file = _rule_file(obj.spec)
            key = repr(rule_file)  # exact: 1 and "1" differ, order kept
            if key not in path_of:
                path = Path(tmp, f"rules-{len(path_of)}.yaml")
                path.write_text(yaml.safe_dump(rule_file, sort_keys=False), encoding="utf-8")
                path_of[key] = str(path)
            checked.append((obj, path_of[key]))
        paths = list(path_of.values())
        results: dict[str, tuple[str | None, list[str], str]] = {}
        for start in range(0, len(paths), _PROMTOOL_BATCH):
            batch = paths[start : start + _PROMTOOL_BATCH]
            run = ctx.tools.run("promtool", "check", "rules", *batch)
            blocks = _promtool_blocks(run.stdout)
            for path in batch:
                errors = [line for line in run.stderr.splitlines() if path in line]
                results[path] = (blocks.get(path), errors, run.output)
        for obj, path in checked:
            block, errors, output = results[path]
            if block is not None and "SUCCESS" in block and not errors:
                message = _promtool_message(block, path, obj.ref)
                ok.append(ev(obj.ref, f"promtool check rules: {message}"))
                continue
            output = "\n".join(["FAILED:", *errors]) if errors else output
            message = _promtool_message(output, path, obj.ref)
            problems.append(ev(obj.ref, f"promtool check rules failed: {message}"))
    return verdict(problems, ok)


# -- SLO alerts --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Alert:
    rule: Rule
    node: promql.Node | None
    sli: Sli | None


def _slo_alerts(rules: list[Rule], interpreter: Interpreter) -> list[_Alert]:
    """Alerts on the SLIs: their expression reads the request or latency metric, directly
    or through recorded series (by text when it does not parse)."""
    spec = interpreter.spec
    words = {spec.request_metric, spec.latency_metric}
    for record in records_of(rules):
        try:
            if interpreter.interpret_text(record.expr).metrics:
                words.add(record.name)
        except promql.PromQLError:
            continue
    found = []
    for rule in (r for r in rules if r.is_alert):
        try:
            node = promql.parse(rule.expr)
        except promql.PromQLError:
            if any(re.search(rf"(?<![\w:]){re.escape(w)}", rule.expr) for w in words):
                found.append(_Alert(rule, None, None))
            continue
        sli = interpreter.interpret(node)
        if sli.metrics:
            found.append(_Alert(rule, node, sli))
    return found


@dataclass(frozen=True)
class _Pair:
    long: float
    short: float
    factor: float

    def __str__(self) -> str:
        return (f"{promql.format_duration(self.long)} and {promql.format_duration(self.short)} "
                f"above {self.factor:g}x budget")


def _pairs(params: Params, key: str) -> list[_Pair]:
    try:
        return [
            _Pair(promql.parse_duration(str(p["long"])), promql.parse_duration(str(p["short"])),
                  float(p["factor"]))
            for p in params.get(key, [])
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProbeError(f"check params {key}: each needs long, short and factor ({exc})") from None


def _holds(clause: list[BurnCondition], window: float, factor: float, tolerance: float,
           service: str | None, service_label: str) -> bool:
    return any(
        c.window == window
        and math.isclose(c.factor, factor, rel_tol=tolerance)
        and not c.sli.problems
        and (service is None or covers(c.sli, service, service_label))
        for c in clause
    )


def _pair_services(alerts: list[tuple[_Alert, list[list[BurnCondition]]]], pair: _Pair,
                   services: list[str], tolerance: float, service_label: str
                   ) -> tuple[list[_Alert], list[str]]:
    """Alerts holding ``pair`` in one ``and`` branch, and the services none covers."""
    holding = [
        alert for alert, clauses in alerts
        if any(_holds(c, pair.long, pair.factor, tolerance, None, service_label)
               and _holds(c, pair.short, pair.factor, tolerance, None, service_label)
               for c in clauses)
    ]
    missing = [
        s for s in services
        if not any(_holds(c, pair.long, pair.factor, tolerance, s, service_label)
                   and _holds(c, pair.short, pair.factor, tolerance, s, service_label)
                   for _, clauses in alerts for c in clauses)
    ]
    return holding, missing


def _describe(clauses: list[list[BurnCondition]], service_label: str) -> str:
    branches = [" and ".join(map(str, c)) for c in clauses if c]
    if not branches:
        return "no burn-rate condition (an error ratio over a rate window compared with a " \
               "multiple of the error budget)"
    flawed = sorted({p for c in clauses for cond in c
                     for p in (*cond.sli.problems, per_service_problem(cond.sli, service_label))
                     if p})
    text = "burn-rate conditions: " + " or ".join(f"({b})" for b in branches)
    return text + (f"; flawed: {'; '.join(flawed)}" if flawed else "")


@probe("slo.burn-rate-alerts", kinds=[RULE_KIND])
def burn_rate_alerts(ctx: ProbeContext, params: Params) -> Outcome:
    """The SRE-workbook page condition exists for every critical service, and every SLO
    alert carries labels.severity and annotations.runbook_url."""
    if not ctx.inventory.of_kind(RULE_KIND):
        return _no_rules()
    page = _pairs(params, "page")
    ticket = _pairs(params, "ticket")
    tolerance = float(params.get("tolerance", 0.01))
    budget = 1 - ctx.config.slo.availability_target
    service_label = ctx.config.slo.service_label
    rules = _rules(ctx)
    interpreter = Interpreter(_spec(ctx), records_of(rules))
    alerts = _slo_alerts(rules, interpreter)
    if not alerts:
        return failed(ev(RULE_KIND, "no alerting rule reads the SLIs "
                                    f"({ctx.config.slo.request_metric} or recorded SLI series)"))
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    analysed = []
    for alert in alerts:
        rule = alert.rule
        if not rule.mapping("labels").get("severity", "").strip():
            problems.append(ev(rule.ref, f"{rule.where}: labels.severity is missing"))
        if runbook_url(dict(rule.body)) is None:
            problems.append(ev(rule.ref, f"{rule.where}: annotations.runbook_url is missing"))
        if alert.node is not None:
            clauses = burn_clauses(alert.node, interpreter, budget, rule.mapping("labels"))
            analysed.append((alert, clauses))
    critical = _critical(ctx)
    for pair in page:
        holding, missing = _pair_services(analysed, pair, critical, tolerance, service_label)
        if not holding:
            problems.append(ev(RULE_KIND, f"no alert pages on the error ratio over {pair} "
                                          f"(threshold {pair.factor * budget:g}, budget "
                                          f"{budget:g} from availability_target)"))
            problems += [ev(a.rule.ref, f"{a.rule.where}: {_describe(c, service_label)}")
                         for a, c in analysed
                         if a.sli and ctx.config.slo.request_metric in a.sli.metrics]
        elif missing:
            names = ", ".join(a.rule.name for a in holding)
            problems.append(ev(holding[0].rule.ref, f"page condition {pair} ({names}) does "
                                                    f"not cover: {', '.join(missing)}"))
        else:
            ok += [ev(a.rule.ref, f"{a.rule.where}: pages on {pair}; severity="
                                  f"{a.rule.mapping('labels').get('severity')}, runbook_url="
                                  f"{a.rule.mapping('annotations').get('runbook_url')}")
                   for a in holding]
    for pair in ticket:
        holding, _ = _pair_services(analysed, pair, critical, tolerance, service_label)
        ok += [ev(a.rule.ref, f"{a.rule.where}: tickets on {pair}") for a in holding]
    return verdict(problems, ok)


# -- slo.alert-routing -------------------------------------------------------------------

def _alert_labels(ctx: ProbeContext, alert: _Alert) -> dict[str, str]:
    """The labels the alert fires with that routing can see: alertname, the rule's labels,
    and the namespace the Prometheus operator enforces (``enforcedNamespaceLabel``)."""
    labels = {"alertname": alert.rule.name}
    for prometheus in ctx.inventory.of_kind("Prometheus"):
        enforced = prometheus.spec.get("enforcedNamespaceLabel")
        if enforced and alert.rule.namespace:
            labels[str(enforced)] = alert.rule.namespace
    labels.update(alert.rule.mapping("labels"))
    return labels


def _namespace_labels(ctx: ProbeContext, namespace: str) -> dict[str, str]:
    ns = ctx.inventory.get("Namespace", namespace)
    return namespace_selector_labels(namespace, ns.labels if ns else None)


def _selected_configs(ctx: ProbeContext, am: Resource) -> Iterator[tuple[Resource, bool]]:
    """AlertmanagerConfigs the Alertmanager ``am`` merges, and whether each is its global
    configuration (``spec.alertmanagerConfiguration``, no namespace matcher)."""
    spec = am.spec
    configuration = spec.get("alertmanagerConfiguration")
    global_name = configuration.get("name") if isinstance(configuration, dict) else None
    selector = spec.get("alertmanagerConfigSelector")
    ns_selector = spec.get("alertmanagerConfigNamespaceSelector")
    for amc in ctx.inventory.of_kind("AlertmanagerConfig"):
        if global_name and amc.name == global_name and amc.namespace == am.namespace:
            yield amc, True
            continue
        if selector is None or not alertmanager.selects(selector, amc.labels):
            continue
        if ns_selector is None:
            in_scope = amc.namespace == am.namespace
        else:
            labels = _namespace_labels(ctx, amc.namespace or "")
            in_scope = alertmanager.selects(ns_selector, labels)
        if in_scope:
            yield amc, False


def _namespace_matcher(am: Resource, amc: Resource) -> promql.Matcher | None:
    strategy = am.spec.get("alertmanagerConfigMatcherStrategy")
    kind = strategy.get("type", "OnNamespace") if isinstance(strategy, dict) else "OnNamespace"
    if kind == "None" or (
        kind == "OnNamespaceExceptForAlertmanagerNamespace" and amc.namespace == am.namespace
    ):
        return None
    return promql.Matcher("namespace", "=", amc.namespace or "")


def _trees(ctx: ProbeContext, params: Params) -> tuple[list[tuple[alertmanager.Tree, bool]],
                                                        list[Evidence]]:
    """Every routing tree we may read, with whether its top route's matchers apply; and
    evidence of sources that cannot be used."""
    trees: list[tuple[alertmanager.Tree, bool]] = []
    notes: list[Evidence] = []
    managers = ctx.inventory.of_kind("Alertmanager")
    used: set[str] = set()
    for am in managers:
        selected = list(_selected_configs(ctx, am))
        for amc, is_global in selected:
            used.add(amc.ref)
            matcher = None if is_global else _namespace_matcher(am, amc)
            tree = alertmanager.from_alertmanager_config(amc.spec, amc.ref, matcher)
            trees.append((tree, not is_global))
        if not selected:
            notes.append(ev(am.ref, "selects no AlertmanagerConfig (alertmanagerConfigSelector "
                                    "unset or matching none); its own routes live in a Secret, "
                                    "which is not read"))
    for amc in ctx.inventory.of_kind("AlertmanagerConfig"):
        if amc.ref not in used:
            notes.append(ev(amc.ref, "not selected by any Alertmanager (alertmanagerConfigSelector"
                                     " / alertmanagerConfigNamespaceSelector), so never loaded"))
    for cm in ctx.inventory.of_kind("ConfigMap"):
        data = cm.body.get("data")
        for key, text in (data.items() if isinstance(data, dict) else []):
            if key not in ("alertmanager.yml", "alertmanager.yaml"):
                continue
            where = cm.ref
            try:
                tree = alertmanager.from_alertmanager_yaml(safe_load(str(text)), where)
            except yaml.YAMLError as exc:
                notes.append(ev(cm.ref, f"data.{key}: invalid YAML ({exc.__class__.__name__})"))
                continue
            if tree is None:
                notes.append(ev(cm.ref, f"data.{key}: no route"))
            else:
                trees.append((tree, False))
    trees += _repo_trees(ctx, str(params.get("files", "infra/alertmanager")), notes)
    return trees, notes


def _repo_trees(ctx: ProbeContext, folder: str, notes: list[Evidence]
                ) -> list[tuple[alertmanager.Tree, bool]]:
    root = ctx.repo_file(folder)
    if ctx.source.repo is None or root is None or not root.exists():
        return []
    trees = []
    for path in repofiles.walk(root, (".yml", ".yaml")):
        where = repofiles.relative(ctx.source.repo, path)
        try:
            docs = safe_load_all(repofiles.read_text(ctx.source.repo, path))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            notes.append(ev(f"{where}:{mark.line + 1}" if mark else where, "invalid YAML"))
            continue
        for doc in docs:
            if isinstance(doc, dict) and "kind" not in doc:
                tree = alertmanager.from_alertmanager_yaml(doc, where)
                if tree is not None:
                    trees.append((tree, False))
    return trees


def _route_alert(labels: dict[str, str], trees: list[tuple[alertmanager.Tree, bool]]
                 ) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Where one alert is routed well ((tree, receiver, advice) triples), and why not
    elsewhere. A catch-all route to a receiver with an integration routes the alert; that
    no route is dedicated to its severity is advice, not a failure."""
    good, bad = [], []
    severity = labels.get("severity", "")
    for tree, match_top in trees:
        deliveries = alertmanager.deliver(tree, labels, match_top)
        if not deliveries:
            matchers = ", ".join(map(str, tree.route.matchers))
            bad.append(f"{tree.where}: its route only takes alerts with {matchers}")
            continue
        for delivery in deliveries:
            if delivery.problems:
                bad.append(f"{tree.where}: {'; '.join(delivery.problems)}")
                continue
            advice = ""
            if not alertmanager.severity_routed(delivery, "severity", match_top):
                advice = (f"note: no route matches severity={severity}, it reaches receiver "
                          f"{delivery.receiver!r} through the catch-all route; a "
                          "per-severity route is advised")
            good.append((tree.where, str(delivery.receiver), advice))
        bad += [f"{tree.where}: {p}" for p in tree.problems]
    return good, bad


@probe("slo.alert-routing", kinds=[RULE_KIND, "Alertmanager", "AlertmanagerConfig", "ConfigMap",
                                   "Prometheus", "Namespace"])
def alert_routing(ctx: ProbeContext, params: Params) -> Outcome:
    """Each SLO alert reaches a receiver with an integration (a route for its severity,
    or a catch-all route — then with a note advising a per-severity route): read from
    AlertmanagerConfigs an Alertmanager selects, ``alertmanager.yml`` in a ConfigMap, or
    plain files under ``infra/alertmanager/`` (never from Secrets)."""
    trees, notes = _trees(ctx, params)
    rules = _rules(ctx)
    alerts = _slo_alerts(rules, Interpreter(_spec(ctx), records_of(rules)))
    targets = [(f"alert {a.rule.name}", a.rule.ref, _alert_labels(ctx, a)) for a in alerts]
    if not targets:
        targets = [(f"an alert with severity={s}", "", {"severity": str(s)})
                   for s in params.get("severities", ["critical"])]
    if not trees:
        return failed(
            ev(str(params.get("files", "infra/alertmanager")),
               "no Alertmanager routing found: no AlertmanagerConfig selected by an "
               "Alertmanager, no ConfigMap with alertmanager.yml, no routing file"),
            *notes,
        )
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for name, ref, labels in targets:
        good, bad = _route_alert(labels, trees)
        if good:
            where = "; ".join(f"{tree} -> receiver {receiver!r}" for tree, receiver, _ in good)
            advice = next((a for _, _, a in good if a), "")
            ok.append(ev(ref or good[0][0], f"{name}: routed by {where}"
                         + (f" ({advice})" if advice else "")))
        else:
            severity = labels.get("severity") or "unset"
            problems.append(ev(ref or RULE_KIND,
                               f"{name} (severity={severity}) is not routed: {' | '.join(bad)}"))
    return failed(*problems, *notes) if problems else passed(*ok)


# -- slo.dashboard -----------------------------------------------------------------------

def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those in (collapsed) rows and the old ``rows[]`` layout."""
    stack = [p for key in ("panels", "rows") for p in dashboard.get(key) or []
             if isinstance(p, dict)]
    while stack:
        panel = stack.pop(0)
        yield panel
        stack += [p for p in panel.get("panels") or [] if isinstance(p, dict)]


def _dashboard_kinds(dashboard: dict[str, Any], interpreter: Interpreter,
                     quantile: float) -> set[str]:
    """Which SLIs the dashboard's panel queries show ("availability", "latency")."""
    shown = set()
    for panel in _panels(dashboard):
        for target in panel.get("targets") or []:
            expr = target.get("expr") if isinstance(target, dict) else None
            if not isinstance(expr, str):
                continue
            try:
                sli = interpreter.interpret_text(_WINDOW_VARIABLE.sub("[5m]", expr))
            except promql.PromQLError:
                continue
            name = _sli_name(sli, quantile)
            if name and not _defects(sli, quantile):
                shown.add("latency" if name == "latency" else "availability")
    return shown


def _mentions(dashboard: dict[str, Any], pattern: re.Pattern[str]) -> bool:
    texts = [dashboard.get("title"), *(dashboard.get("tags") or [])]
    texts += [p.get("title") for p in _panels(dashboard)]
    return any(isinstance(t, str) and pattern.search(t) for t in texts)


@probe("slo.dashboard", kinds=[RULE_KIND, "ConfigMap"])
def dashboard(ctx: ProbeContext, params: Params) -> Outcome:
    """A ConfigMap the Grafana sidecar loads (``config.slo.dashboard_label``) holds a valid
    JSON dashboard about SLOs whose panels query the availability and p99 latency SLIs."""
    label = ctx.config.slo.dashboard_label
    pattern = re.compile(str(params.get("mentions", r"(?i)\b(slo|availability)")))
    quantile = float(params.get("quantile", 0.99))
    interpreter = Interpreter(_spec(ctx), records_of(_rules(ctx)))
    maps = [cm for cm in ctx.inventory.of_kind("ConfigMap") if label in cm.labels]
    if not maps:
        return failed(ev("ConfigMap", f"no ConfigMap labelled {label} (Grafana sidecar "
                                      "dashboards)"))
    broken: list[Evidence] = []
    partial: list[Evidence] = []
    found: list[Evidence] = []
    for cm in maps:
        data = cm.body.get("data")
        files = {k: v for k, v in (data.items() if isinstance(data, dict) else [])
                 if str(k).endswith(".json")}
        for key, text in files.items():
            try:
                board = load_json(str(text))
            except json.JSONDecodeError as exc:
                broken.append(ev(cm.ref, f"data.{key}: invalid JSON at line {exc.lineno} "
                                         f"column {exc.colno}: {exc.msg}"))
                continue
            except ValueError as exc:
                broken.append(ev(cm.ref, f"data.{key}: invalid JSON: {exc}"))
                continue
            if isinstance(board, dict) and isinstance(board.get("dashboard"), dict):
                board = board["dashboard"]
            if not isinstance(board, dict):
                broken.append(ev(cm.ref, f"data.{key}: not a dashboard object"))
                continue
            if not _mentions(board, pattern):
                continue
            title = board.get("title", key)
            shown = _dashboard_kinds(board, interpreter, quantile)
            lacking = [k for k in ("availability", "latency") if k not in shown]
            if lacking:
                partial.append(ev(cm.ref, f"data.{key}: dashboard {title!r} has no panel "
                                          f"querying the {' or '.join(lacking)} SLI"))
            else:
                found.append(ev(cm.ref, f"data.{key}: dashboard {title!r} shows the "
                                        "availability and p99 latency SLIs"))
    if found and not broken:
        return passed(*found)
    if not (found or partial or broken):
        partial.append(ev("ConfigMap", f"no dashboard in the {len(maps)} ConfigMap(s) labelled "
                                       f"{label} is about SLOs (title, tags or panel titles "
                                       f"matching {pattern.pattern})"))
    return failed(*broken, *partial)
