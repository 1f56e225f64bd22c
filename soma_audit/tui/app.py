"""The Textual application: it composes screens and routes; the audit lives in the session.

Kept small on purpose (Toolong's habit): the audit screen owns the scan, the dialogs own
their forms, and everything they know comes from :class:`~soma_audit.engine.session.AuditSession`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual.app import App
from textual.binding import Binding

from soma_audit.tui.screens.main import MainScreen

if TYPE_CHECKING:
    from soma_audit.engine.forked import ForkedScan
    from soma_audit.engine.session import AuditSession


class SomaAuditApp(App[int]):
    """The audit TUI over one session.

    ``today`` and ``author`` are parameters so that the attestation form's defaults
    (expiry in 90 days, last author) are deterministic in tests and snapshots;
    ``first_scan`` is the session's first scan when it already runs in a child process.
    """

    TITLE = "soma-audit"
    #: The audit screen's styles too: it is the default screen, whose own CSS_PATH Textual
    #: does not read.
    CSS_PATH = ["app.tcss", "screens/main.tcss"]
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-narrow"), (100, "-wide"),
    ]
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?",
                tooltip="This list of keys"),
        Binding("q", "quit", "Quit", tooltip="Leave soma-audit (a running scan is stopped)"),
    ]

    def __init__(self, session: AuditSession, *, today: Callable[[], dt.date] = dt.date.today,
                 author: str = "", first_scan: ForkedScan | None = None) -> None:
        super().__init__()
        self.session = session
        self.today = today
        self.author = author
        self.first_scan = first_scan

    def get_default_screen(self) -> MainScreen:
        """The audit screen, at the bottom of the stack: mounted once the app has started,
        its first frame is laid out and rendered once (pushed from ``on_mount``, it was
        also laid out and rendered during the start, where Textual shows no frame)."""
        return MainScreen(self.session, self.today(), self.author, self.first_scan)

    def on_ready(self) -> None:
        """Textual's first frame is displayed (the audit screen's, every check pending)."""
        self.main.first_frame_painted()

    def action_help(self) -> None:
        from soma_audit.tui.screens import DiffScreen, HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        groups = [("Audit", main.BINDINGS if main else []), ("Application", self.BINDINGS)]
        if isinstance(self.screen, DiffScreen):
            groups.insert(0, ("Diff", self.screen.BINDINGS))
        self.push_screen(HelpScreen(groups))

    @property
    def main(self) -> MainScreen:
        """The audit screen (under any open dialog)."""
        return next(s for s in self.screen_stack if isinstance(s, MainScreen))
