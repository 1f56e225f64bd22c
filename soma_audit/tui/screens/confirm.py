"""The confirmation before a remediation changes anything (keys ``a`` and ``u``), and the
small dialog shown while the engine works.

The confirmation names the target. When the target looks like production (the session's
kube context, or directory label, matches ``config.production_pattern``), a yes is not
enough: the name must be typed out.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, LoadingIndicator, Static


class ConfirmScreen(ModalScreen[bool]):
    """Say what will change where; dismisses with True to go ahead, False to cancel.

    Without a ``guard`` the Cancel button has the focus and ``y`` confirms; with one, the
    name has to be typed (a wrong name keeps the dialog open with the reason).
    """

    CSS_PATH = "modal.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm", show=False),
    ]

    def __init__(self, title: str, target: str, lines: Iterable[Text | str], *,
                 action: str = "Apply", guard: str = "", pattern: str = "",
                 reason: str = "") -> None:
        super().__init__()
        #: Why ``guard`` must be typed, when it is not the production pattern.
        self.reason = reason
        self.title_text = title
        self.target = target
        self.lines = list(lines)
        self.action = action
        self.guard = guard
        self.pattern = pattern

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = self.title_text
            dialog.border_subtitle = "esc cancels" if self.guard else "y confirms · esc cancels"
            yield Static(Text.assemble(("Target  ", "dim"), (self.target, "bold")),
                         id="target")
            yield Static(Text("\n").join(Text(line) if isinstance(line, str) else line
                                         for line in self.lines), id="changes")
            if self.guard and self.reason:
                yield Static(Text.assemble(self.reason, " Type ", (self.guard, "bold"),
                                           " to confirm."), classes="warning")
            elif self.guard:
                yield Static(Text.assemble(
                    (self.guard, "bold"), " matches the production pattern ",
                    (self.pattern, "bold"), ". Type its name to confirm.",
                ), classes="warning")
            if self.guard:
                with Horizontal(classes="field"):
                    yield Label("Name")
                    yield Input(placeholder=self.guard, id="name", compact=True)
            yield Static(id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.action, variant="error", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#name" if self.guard else "#cancel").focus()

    @property
    def text(self) -> str:
        """The dialog as plain text (what a reader of the screen sees)."""
        parts = [self.title_text, f"Target  {self.target}", *map(str, self.lines)]
        if self.guard:
            parts.append(f"Type {self.guard} to confirm")
        return "\n".join(parts)

    @on(Input.Submitted, "#name")
    @on(Button.Pressed, "#ok")
    def action_confirm(self) -> None:
        if self.guard and self.query_one("#name", Input).value.strip() != self.guard:
            error = self.query_one("#error", Static)
            error.update(f"That is not {self.guard}: type the name exactly, or press esc.")
            error.add_class("-shown")
            return
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class WorkingScreen(ModalScreen[None]):
    """What the engine is doing right now (planning, backing up and applying, rolling
    back); closed by the flow that opened it, not by a key."""

    CSS_PATH = "modal.tcss"

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = "Working"
            yield Static(self.message, classes="lead")
            yield LoadingIndicator()
