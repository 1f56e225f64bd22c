"""The terminal summary printed by ``--ci``: one row per check, gaps first."""

from __future__ import annotations

import io
import shutil

from rich.console import Console
from rich.table import Table

from soma_audit.core.escape import terminal, visible
from soma_audit.core.model import PHASES, Severity, Status
from soma_audit.results.fleet import FleetReport
from soma_audit.results.report import Report, percent

ICONS = {
    Status.PASS: ("✓", "green"),
    Status.FAIL: ("✗", "red"),
    Status.ERROR: ("!", "magenta"),
    Status.SKIP: ("-", "dim"),
    Status.MANUAL: ("?", "yellow"),
    Status.WAIVED: ("~", "cyan"),
}
_ORDER = [Status.FAIL, Status.ERROR, Status.MANUAL, Status.WAIVED, Status.PASS, Status.SKIP]


def headline(report: Report) -> str:
    phases = "  ".join(f"P{p} {percent(report.phase_score(p))}" for p in PHASES)
    counts = ", ".join(f"{n} {s}" for s, n in report.summary().items() if n)
    return f"ready {percent(report.overall_score)}  {phases}  ({counts})"


def render(report: Report, color: bool = False) -> str:
    width = shutil.get_terminal_size((120, 40)).columns if color else 120
    console = Console(file=io.StringIO(), force_terminal=color, no_color=not color,
                      width=width, color_system="standard" if color else None)
    source = report.source.label or report.source.ref
    table = Table(title=f"soma-audit — {terminal(source)} ({report.source.kind})",
                  title_justify="left",
                  expand=False, show_lines=False)
    table.add_column("", width=1)
    table.add_column("check", no_wrap=True)
    table.add_column("severity")
    table.add_column("finding", overflow="fold")
    ordered = sorted(report.results, key=lambda r: (_ORDER.index(r.status), r.check.phase))
    for result in ordered:
        icon, style = ICONS[result.status]
        first = result.evidence[0] if result.evidence else None
        finding = result.check.title
        if first and result.status is not Status.PASS:
            where = f"{first.object}: " if first.object else ""
            more = f" (+{len(result.evidence) - 1} more)" if len(result.evidence) > 1 else ""
            finding = f"{where}{first.message}{more}"
        table.add_row(f"[{style}]{icon}[/]", terminal(result.check.id),
                      result.check.severity.value, terminal(finding))
    console.print(table)
    for problem in report.problems:
        kind = "not evaluable" if problem.unevaluable else "unreadable"
        console.print(f"[yellow]{kind}[/]: {terminal(problem.where)}: "
                      f"{terminal(problem.message)}")
    console.print(headline(report))
    return console.file.getvalue()  # type: ignore[attr-defined]


def fleet_headline(fleet: FleetReport, fail_on: Severity = Severity.LOW) -> str:
    """One line for the whole fleet: each cluster's readiness and exit code, then the worst."""
    parts = []
    for scan in fleet.clusters:
        state = (f"ready {percent(scan.report.overall_score)}" if scan.report
                 else "not audited")
        parts.append(f"{visible(scan.cluster)}: {state}, exit {int(scan.exit_code(fail_on))}")
    return (f"fleet of {len(fleet.clusters)} ({len(fleet.audited)} audited): "
            f"{' · '.join(parts)} → exit {int(fleet.exit_code(fail_on))}")


def render_fleet(fleet: FleetReport, fail_on: Severity = Severity.LOW,
                 color: bool = False) -> str:
    """Each cluster's table (its title names the context), then the fleet headline."""
    sections = []
    for scan in fleet.clusters:
        if scan.report is not None:
            sections.append(render(scan.report, color))
        else:
            sections.append(f"soma-audit — {visible(scan.cluster)} (cluster): not audited: "
                            f"{visible(scan.error)}\n")
    return "\n".join([*sections, fleet_headline(fleet, fail_on) + "\n"])
