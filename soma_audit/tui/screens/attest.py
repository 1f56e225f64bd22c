"""The attestation form (key ``m``): a person vouches for a manual check until a date."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from soma_audit.core.errors import AuditError
from soma_audit.engine.attestations import Attestation

if TYPE_CHECKING:
    from soma_audit.core.model import Check
    from soma_audit.engine.session import AuditSession

#: How long an attestation holds unless the author says otherwise.
DEFAULT_VALIDITY = dt.timedelta(days=90)


class AttestScreen(ModalScreen[Attestation | None]):
    """Author, note and expiry; the session validates and stores the attestation.

    The form stays open with the session's message when it refuses (no author, a past
    expiry, an unwritable file), so nothing typed is lost. Dismisses with the
    :class:`~soma_audit.engine.attestations.Attestation` written, or None when cancelled.
    """

    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, session: AuditSession, check: Check, today: dt.date,
                 author: str = "") -> None:
        super().__init__()
        self.session = session
        self.check = check
        self.expires = today + DEFAULT_VALIDITY
        self.author = author

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as dialog:
            dialog.border_title = f"Attest {self.check.id}"
            yield Static(self.check.criterion, classes="lead")
            with Horizontal(classes="field"):
                yield Label("Author")
                yield Input(self.author, placeholder="who verified it", id="author",
                            compact=True)
            with Horizontal(classes="field"):
                yield Label("Note")
                yield Input(placeholder="what was verified, and where the proof is",
                            id="note", compact=True)
            with Horizontal(classes="field"):
                yield Label("Expires")
                yield Input(self.expires.isoformat(), placeholder="YYYY-MM-DD", id="expires",
                            compact=True)
            yield Static(id="error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Attest", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#note" if self.author else "#author", Input).focus()

    @on(Input.Submitted)
    def _next_field(self, event: Input.Submitted) -> None:
        if event.input.id == "expires":
            self.submit()
        else:
            self.focus_next()

    @on(Button.Pressed, "#ok")
    def submit(self) -> None:
        try:
            expires = dt.date.fromisoformat(self._value("expires").strip())
        except ValueError:
            self._error("The expiry must be a date written YYYY-MM-DD.")
            return
        try:
            attestation = self.session.attest(self.check.id, self._value("author"),
                                              self._value("note"), expires)
        except AuditError as exc:
            self._error(str(exc))
            return
        except OSError as exc:
            self._error(f"Cannot write {self.session.attestations_path}: {exc.strerror}")
            return
        self.dismiss(attestation)

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    def _error(self, message: str) -> None:
        self.query_one("#error", Static).update(message)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
