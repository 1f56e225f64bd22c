"""The readiness-review export: the plan's checklists with boxes ticked from real evidence."""

from __future__ import annotations

from soma_audit.catalog.checklists import PlanItem, load_plan
from soma_audit.core.escape import markdown, markdown_code
from soma_audit.core.model import PHASES, Result, Severity, Status
from soma_audit.results.fleet import FleetReport
from soma_audit.results.report import DONE, Report, percent

#: Evidence lines shown per gap before "… and N more".
MAX_EVIDENCE = 8


def _note(result: Result) -> str:
    """Why a done check is done when it is not a plain pass (attested, waived)."""
    first = result.evidence[0].message if result.evidence else ""
    if result.status is Status.WAIVED or (result.check.manual and result.status is Status.PASS):
        return f" ({markdown(first)})"
    return ""


def _item_lines(item: PlanItem, results: dict[str, Result], report: Report) -> list[str]:
    if item.all:
        finished = sum(r.status in DONE for r in report.results)
        done = finished == len(report.results)
        detail = f"{finished} of {len(report.results)} checks done"
        return [f"- [{'x' if done else ' '}] {item.text} — {detail}"]
    members = [results[c] for c in item.checks if c in results]
    done = bool(members) and all(r.status in DONE for r in members)
    ids = ", ".join(f"`{r.check.id}`" for r in members)
    notes = "".join(_note(r) for r in members)
    lines = [f"- [{'x' if done else ' '}] {item.text} — {ids}{notes}"]
    for result in members:
        if result.status in DONE:
            continue
        lines.append(f"  - `{result.check.id}`: **{result.status.value}**")
        shown = result.evidence[:MAX_EVIDENCE]
        for evidence in shown:
            where = f"{markdown(evidence.object)}: " if evidence.object else ""
            origin = (f" (from `{markdown_code(evidence.location)}`, "
                      f"{markdown(evidence.rendered)})") if evidence.rendered else ""
            lines.append(f"    - {where}{markdown(evidence.message)}{origin}")
        if len(result.evidence) > len(shown):
            lines.append(f"    - … and {len(result.evidence) - len(shown)} more")
    return lines


def _sources_lines(report: Report, deeper: str) -> list[str]:
    """What the repository source rendered, read, skipped or failed, and why."""
    if not report.sources:
        return []
    lines = ["", f"{deeper}## Sources", "", f"Rendered: {report.sources_summary() or 'nothing'}.",
             ""]
    for entry in report.sources:
        via = f" via {markdown(entry.via)}" if entry.via and entry.via != "defaults" else ""
        count = f", {entry.objects} objects" if entry.status in ("rendered", "read") else ""
        lines.append(f"- {entry.kind} `{markdown_code(entry.path)}` — **{entry.status}**{via}"
                     f"{count}: {markdown(entry.detail)}")
    return lines


def render(report: Report, heading_level: int = 1) -> str:
    """The checklist; ``heading_level`` 2 nests it under a fleet page's title."""
    deeper = "#" * (heading_level - 1)
    plan = load_plan()
    results = {r.check.id: r for r in report.results}
    when = report.started.strftime("%Y-%m-%d %H:%M UTC")
    source = report.source.label or report.source.ref
    phases = " · ".join(
        f"Phase {p} ({name}) {percent(report.phase_score(p))}" for p, name in PHASES.items()
    )
    counts = ", ".join(f"{n} {s}" for s, n in report.summary().items())
    lines = [
        f"{deeper}# Production readiness — {plan.title} ({markdown(source)}), {when}",
        "",
        f"Ready: {percent(report.overall_score)} · {phases}",
        "",
        f"Source: {report.source.kind} `{markdown_code(report.source.ref)}` · "
        f"{len(report.results)} checks: "
        f"{counts}. A box is ticked only when every check behind it passed, was attested "
        "or was waived; skipped checks (need live access) leave it open.",
    ]
    lines += _sources_lines(report, deeper)
    for section in plan.sections:
        lines += ["", f"{deeper}## {section.name}"]
        for group in section.groups:
            lines += ["", f"{deeper}### {group.name}"]
            for item in group.items:
                lines += _item_lines(item, results, report)
    if report.problems:
        lines += ["", f"{deeper}## Files the audit could not read", ""]
        lines += [f"- `{markdown_code(p.where)}`: {markdown(p.message)}" for p in report.problems]
    return "\n".join(lines) + "\n"


def render_fleet(fleet: FleetReport, fail_on: Severity = Severity.LOW) -> str:
    """An overview table of the clusters, then each cluster's checklist one level down."""
    when = min((c.started for c in fleet.clusters if c.started), default=None)
    stamp = f", {when.strftime('%Y-%m-%d %H:%M UTC')}" if when else ""
    lines = [
        f"# Production readiness — {len(fleet.clusters)} clusters{stamp}",
        "",
        f"Exit code {int(fleet.exit_code(fail_on))} (the worst of the clusters'). "
        f"{len(fleet.audited)} of {len(fleet.clusters)} clusters audited.",
        "",
        "| cluster | ready | " + " | ".join(s.value for s in Status) + " | exit |",
        "|---|---|" + "---|" * len(Status) + "---|",
    ]
    for scan in fleet.clusters:
        exit_code = int(scan.exit_code(fail_on))
        if scan.report is None:
            empty = " | ".join("—" for _ in Status)
            lines.append(f"| `{markdown_code(scan.cluster)}` | not audited | {empty} "
                         f"| {exit_code} |")
            continue
        counts = " | ".join(str(n) for n in scan.report.summary().values())
        lines.append(f"| `{markdown_code(scan.cluster)}` | {percent(scan.report.overall_score)} "
                     f"| {counts} "
                     f"| {exit_code} |")
    for scan in fleet.clusters:
        lines.append("")
        if scan.report is None:
            lines += [f"## `{markdown_code(scan.cluster)}` — not audited", "",
                      f"> {markdown(scan.error)}"]
        else:
            lines.append(render(scan.report, heading_level=2).rstrip("\n"))
    return "\n".join(lines) + "\n"
