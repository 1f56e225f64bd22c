"""The help screen (key ``?``): every binding, generated from the bindings themselves."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

#: Keys handled by the standard widgets, which have no binding of ours to read.
NAVIGATION = (
    ("tab / shift+tab", "Move between the phases, the checks and the detail"),
    ("↑ ↓ / enter", "Move in the phases or the checks; enter folds a phase"),
    ("ctrl+p", "Command palette: every action, and 'go to' any check"),
)


class HelpScreen(ModalScreen[None]):
    """A table of keys and what they do; any of escape, ? or enter closes it."""

    CSS_PATH = "modal.tcss"
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", key_display="?"),
        Binding("enter", "close", "Close"),
    ]

    def __init__(self, groups: Iterable[tuple[str, Iterable[Binding]]]) -> None:
        super().__init__()
        self.groups = [(title, [b for b in bindings if b.description]) for title, bindings
                       in groups]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "soma-audit — keys"
            dialog.border_subtitle = "esc closes"
            yield Static(self._table(), id="help")

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, expand=True, padding=(0, 1))
        table.add_column(style="bold cyan", no_wrap=True, width=16)
        table.add_column(no_wrap=True, width=14)
        table.add_column(style="dim", ratio=1)
        for title, bindings in self.groups:
            table.add_row(Text(title, style="bold"), "", "")
            for binding in bindings:
                key = binding.key_display or binding.key
                table.add_row(key, binding.description, binding.tooltip)
            table.add_row("", "", "")
        table.add_row(Text("Navigation", style="bold"), "", "")
        for key, what in NAVIGATION:
            table.add_row(key, "", what)
        return table

    @property
    def text(self) -> str:
        """The help as plain lines (what a reader of the screen sees)."""
        lines = [
            f"{b.key_display or b.key} {b.description} {b.tooltip}"
            for _, bindings in self.groups for b in bindings
        ]
        return "\n".join(lines + [f"{key} {what}" for key, what in NAVIGATION])

    def action_close(self) -> None:
        self.dismiss(None)
