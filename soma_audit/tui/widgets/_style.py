"""Shared drawing helpers for the widgets: status icons, severity and score colours.

The icons are the CLI table's (:data:`soma_audit.reports.table.ICONS`), so a check looks
the same in the terminal report and in the TUI.
"""

from __future__ import annotations

from rich.text import Text

from soma_audit.core.model import Result, Severity, Status
from soma_audit.reports.table import ICONS

#: Shown for a check whose result has not arrived yet in the running scan.
PENDING = ("…", "cyan")
#: Shown for a check no scan has evaluated (the first scan failed).
UNSCANNED = ("·", "dim")

SEVERITY_STYLES = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "dim",
}


def status_icon(result: Result | None, pending: bool = False) -> Text:
    if pending:
        icon, style = PENDING
    else:
        icon, style = UNSCANNED if result is None else ICONS[result.status]
    return Text(icon, style=style)


def status_style(status: Status) -> str:
    return ICONS[status][1]


def score_style(ratio: float | None) -> str:
    """Green when done, yellow past half way, red below; dim when nothing counts."""
    if ratio is None:
        return "dim"
    if ratio >= 1:
        return "green"
    return "yellow" if ratio >= 0.5 else "red"


def bar(ratio: float, width: int = 5) -> str:
    filled = round(ratio * width)
    return "█" * filled + "░" * (width - filled)
