"""The export dialog (key ``e``): the same report files as the CLI, written from the TUI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from soma_audit.core.errors import AuditError
from soma_audit.reports import SUFFIXES

if TYPE_CHECKING:
    from soma_audit.engine.session import AuditSession
    from soma_audit.results.report import Report

#: Formats offered, the readiness-review one first.
FORMATS = ("markdown", "json", "junit", "sarif")
STEM = "soma-audit-report"


def default_name(fmt: str) -> str:
    return STEM + SUFFIXES[fmt]


class ExportScreen(ModalScreen[Path | None]):
    """Pick a format and a path (relative paths are taken from the working directory).

    Changing the format changes the suggested file name, unless the path was edited.
    Dismisses with the path written, or None when cancelled; a refused write leaves the
    dialog open with the reason.
    """

    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, session: AuditSession, report: Report) -> None:
        super().__init__()
        self.session = session
        self.report = report
        self.format = FORMATS[0]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Export report"
            with Horizontal(classes="field"):
                yield Label("Format")
                with RadioSet(id="format", compact=True):
                    for fmt in FORMATS:
                        yield RadioButton(fmt, value=fmt == self.format, name=fmt,
                                          compact=True)
            with Horizontal(classes="field"):
                yield Label("Path")
                yield Input(default_name(self.format), id="path", compact=True)
            yield Static(id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(RadioSet.Changed)
    def _format_changed(self, event: RadioSet.Changed) -> None:
        path = self.query_one("#path", Input)
        if path.value == default_name(self.format):
            path.value = default_name(event.pressed.name or FORMATS[0])
        self.format = event.pressed.name or FORMATS[0]

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        raw = self.query_one("#path", Input).value.strip()
        if not raw:
            self._error("Give a path to write the report to.")
            return
        path = Path(raw).expanduser()
        if path.is_dir():
            path = path / default_name(self.format)
        try:
            written = self.session.export(self.report, self.format, path.absolute())
        except (AuditError, ValueError) as exc:
            self._error(str(exc))
            return
        except OSError as exc:
            self._error(f"Cannot write {path}: {exc.strerror or exc}")
            return
        self.dismiss(written)

    def _error(self, message: str) -> None:
        self.query_one("#error", Static).update(message)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
