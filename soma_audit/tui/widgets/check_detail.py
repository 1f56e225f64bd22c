"""The right-bottom pane: one check's criterion, its evidence, and what fixes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from soma_audit.core.escape import visible
from soma_audit.core.model import AREAS, Check, Result, Status
from soma_audit.tui.widgets._style import SEVERITY_STYLES, status_icon, status_style

if TYPE_CHECKING:
    from soma_audit.remediation.recipes import Recipe


class CheckDetail(VerticalScroll):
    """Why a check has its status: every evidence item with the object and the message.

    The border title is the check id; the subtitle its status, severity, phase and area.
    Focusable, so long evidence lists scroll with the keyboard.
    """

    DEFAULT_CSS = """
    CheckDetail { scrollbar-size-vertical: 1; }
    CheckDetail > #detail-body { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.can_focus = True

    def compose(self) -> ComposeResult:
        yield Static(id="detail-body")

    @property
    def body(self) -> Static:
        return self.query_one("#detail-body", Static)

    def show(self, check: Check | None, result: Result | None, pending: bool = False,
             empty: str = "No check selected.", recipe: Recipe | None = None) -> None:
        """Describe ``check`` (``result`` None means not evaluated yet; ``recipe`` is its
        bundled remediation, summarised in the footer with the keys that use it)."""
        if check is None:
            self.border_title = "Detail"
            self.border_subtitle = ""
            self.body.update(Text(empty, style="dim"))
            return
        self.border_title = check.id
        status = "scanning…" if pending else (result.status.value if result else "not scanned")
        self.border_subtitle = (
            f"{status} · {check.severity.value} · Phase {check.phase} · "
            f"{AREAS.get(check.area, check.area)}"
        )
        self.body.update(self.describe(check, result, pending, recipe))
        self.scroll_home(animate=False)

    @staticmethod
    def describe(check: Check, result: Result | None, pending: bool,
                 recipe: Recipe | None = None) -> Text:
        text = Text.assemble((check.title, "bold"), "\n", (check.criterion, "italic"), "\n\n")
        if result is None or pending:
            text.append("Waiting for the scan…" if pending else "Not scanned yet.", style="dim")
        elif not result.evidence:
            text.append_text(status_icon(result))
            text.append(f" {result.status.value}: no evidence recorded\n")
        else:
            for evidence in result.evidence:
                text.append_text(status_icon(result))
                text.append(" ")
                if evidence.object:
                    text.append(visible(evidence.object), style="bold")
                    text.append(": ")
                text.append(visible(evidence.message))
                if evidence.location and evidence.location != evidence.object:
                    text.append(f"  ({visible(evidence.location)})", style="dim")
                if evidence.rendered:
                    text.append(f"\n    rendered by {visible(evidence.rendered)}", style="dim")
                text.append("\n")
        text.append("\n")
        text.append_text(_footer(check, result, recipe))
        return text


def _footer(check: Check, result: Result | None, recipe: Recipe | None = None) -> Text:
    """The way forward: the bundled remediation (its title, the keys that preview and
    apply it, what it does), or attesting a manual check."""
    severity = Text(check.severity.value, style=SEVERITY_STYLES[check.severity])
    if check.manual:
        done = result is not None and result.status is Status.PASS
        verb = "Re-attest" if done else "Verify by hand, then attest"
        return Text.assemble((f"{verb}: ", "bold"), "press ", ("m", "bold cyan"),
                             " (manual check, severity ", severity, ")")
    if check.remediation:
        style = status_style(result.status) if result else "dim"
        fix = Text.assemble(("Fix: ", "bold"), (check.remediation, f"bold {style}"))
        if recipe is None:
            fix.append(" (not a bundled remediation)", style="dim")
            return fix
        fix.append(f" — {recipe.title}\n")
        fix.append_text(Text.assemble(("[d]", "bold cyan"), " diff  ", ("[a]", "bold cyan"),
                                      " apply  ", ("[u]", "bold cyan"), " undo the last apply"))
        fix.append(f"\n{recipe.description}", style="dim")
        return fix
    return Text("No bundled remediation for this check.", style="dim")
