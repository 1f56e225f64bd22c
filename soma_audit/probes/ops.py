"""Probes for operations and readiness (see checks/ops.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

from soma_audit.core.model import Evidence, Outcome, Status
from soma_audit.core.yamlload import load_json
from soma_audit.domain.k6 import duration_stats
from soma_audit.domain.ops.cost import AUTOSCALER_KINDS, autoscaling, resource_gaps
from soma_audit.domain.ops.runbooks import alert_rules, resolve, runbook_url
from soma_audit.kube.selection import selector_text, service_workloads
from soma_audit.kube.workloads import WORKLOAD_KINDS
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

#: The http_req_duration statistics a baseline's evidence quotes, when present.
_SHOWN_STATS = ("p(99)", "p(95)", "med", "avg")


@probe("ops.manifests-parse")
def manifests_parse(ctx: ProbeContext, params: Params) -> Outcome:
    """Every file the source offered was read and every chart and overlay rendered; a file
    it could not parse or a rendering that failed hides objects. A renderer that is not
    installed leaves the repository not evaluable: ``error`` with the install hint."""
    problems = ctx.inventory.problems
    missing = [ev(p.where, p.message) for p in problems if p.unevaluable]
    if missing:
        return Outcome(Status.ERROR, tuple(missing))
    if problems:
        return failed(*(ev(p.where, p.message) for p in problems))
    rendered = [s for s in ctx.inventory.sources if s.status == "rendered"]
    how = f" ({len(rendered)} charts/overlays rendered)" if rendered else ""
    return passed(ev(ctx.source.ref, f"{len(ctx.inventory)} objects read{how}, no problems"))


@probe("ops.runbooks", kinds=["PrometheusRule"])
def runbooks(ctx: ProbeContext, params: Params) -> Outcome:
    """An alert without a runbook leaves the person paged guessing: every alert's
    ``runbook_url`` must lead to a runbook kept in the repository."""
    folder = ctx.config.layout.runbooks
    _, root, _ = repofiles.locate(ctx, folder)
    files = [
        path.relative_to(root).as_posix()
        for path in (repofiles.walk(root) if root.is_dir() else [])
        if path.stat().st_size > 0
    ]
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for rule_object in ctx.inventory.of_kind("PrometheusRule"):
        resolved = []
        for alert, rule in alert_rules(rule_object.spec):
            url = runbook_url(rule)
            if url is None:
                problems.append(ev(rule_object.ref, f"alert {alert}: no runbook_url annotation"))
            elif (runbook := resolve(url, folder, files)) is None:
                problems.append(
                    ev(rule_object.ref,
                       f"alert {alert}: runbook_url {url} does not lead to a runbook in {folder}")
                )
            else:
                resolved.append(f"{alert} → {runbook}")
        if resolved:
            ok.append(ev(rule_object.ref, f"runbooks in {folder}: {', '.join(resolved)}"))
    if not problems and not ok:
        return failed(ev(ctx.source.ref, "no alerting rules found in PrometheusRule objects"))
    return verdict(problems, ok)


def _baseline(repo: Path, path: Path) -> tuple[dict[str, float] | None, str]:
    """(http_req_duration statistics, or None and why) of one summary export."""
    try:
        summary = load_json(repofiles.read_text(repo, path))
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON at line {exc.lineno}: {exc.msg}"
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"
    stats = duration_stats(summary)
    if stats is None:
        return None, "no metrics.http_req_duration: not a k6 summary export"
    return stats, ""


@probe("ops.baselines")
def baselines(ctx: ProbeContext, params: Params) -> Outcome:
    """A baseline per load profile (``<profile>.json`` or ``<profile>-<date>.json``, as
    ``k6 run --summary-export`` writes) makes a later regression visible."""
    repo, folder, _ = repofiles.locate(ctx, ctx.config.layout.baselines)
    names = [p.name for p in ctx.config.k6.profiles]
    if not names:
        raise ProbeError("no load profiles configured (k6.profiles): no baseline to look for")
    exports = list(repofiles.walk(folder, (".json",))) if folder.is_dir() else []
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for name in names:
        candidates = [
            p for p in exports if p.stem == name or p.stem.startswith((f"{name}-", f"{name}_"))
        ]
        reasons = []
        for path in sorted(candidates, key=lambda p: p.name, reverse=True):
            where = repofiles.relative(repo, path)
            stats, why = _baseline(repo, path)
            if stats is None:
                reasons.append(ev(where, f"profile {name}: {why}"))
                continue
            shown = ", ".join(
                f"{key}={stats[key]:.1f}ms" for key in _SHOWN_STATS if key in stats
            )
            ok.append(ev(where, f"profile {name}: http_req_duration {shown}"))
            break
        else:
            expected = repofiles.relative(repo, folder / f"{name}.json")
            problems += reasons or [ev(expected, f"missing: no baseline for profile {name}")]
    return verdict(problems, ok)


@probe("ops.cost-controls", kinds=[*WORKLOAD_KINDS, *AUTOSCALER_KINDS])
def cost_controls(ctx: ProbeContext, params: Params) -> Outcome:
    """Requests make scheduling honest, limits cap the bill, an autoscaler sizes each
    service to its load: every configured service needs all three."""
    namespace = ctx.config.namespace
    if not ctx.config.services:
        raise ProbeError("no services configured: nothing to check")
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for service in ctx.config.services:
        found = service_workloads(ctx.inventory, service, namespace)
        if not found:
            problems.append(
                ev(f"Deployment/{namespace}/{service.name}",
                   f"not found: no workload with pods labelled {selector_text(service)}")
            )
        for workload in found:
            ref = workload.resource.ref
            gaps = resource_gaps(workload)
            scaler, scaling = autoscaling(ctx.inventory, workload.resource)
            problems += [ev(ref, gap) for gap in [*gaps, *scaling]]
            if not gaps and scaler:
                ok.append(ev(ref, f"cpu/memory requests and limits set; {scaler}"))
    return verdict(problems, ok)
