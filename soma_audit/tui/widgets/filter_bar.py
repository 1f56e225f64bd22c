"""The ``/`` filter input, shown above the check table while a filter is set."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    """Type status, severity or text words; the table narrows as you type.

    | Key | Action |
    | --- | --- |
    | enter | keep the filter and return to the table |
    | escape | clear the filter and return to the table |
    """

    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False)]

    DEFAULT_CSS = """
    FilterBar, FilterBar:focus {
        display: none; border: none; height: 1; padding: 0 1; background: $boost;
    }
    FilterBar.-active { display: block; }
    """

    @dataclass
    class Done(Message):
        """The user is done filtering (``value`` is the filter kept, maybe empty)."""

        value: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            placeholder="filter: fail, error, manual… critical, high… or any text "
            "(enter keeps, esc clears)",
            id=id,
        )

    def open(self) -> None:
        self.add_class("-active")
        self.focus()

    def action_clear(self) -> None:
        self.value = ""
        self.remove_class("-active")
        self.post_message(self.Done(""))

    async def action_submit(self) -> None:
        if not self.value.strip():
            self.remove_class("-active")
        self.post_message(self.Done(self.value))
