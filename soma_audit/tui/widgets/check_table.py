"""The right-top pane: the checks of the selection, one row each."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from soma_audit.core.model import Check, Result
from soma_audit.tui.widgets._style import SEVERITY_STYLES, status_icon

_FIXED = {"status": 1, "severity": 8}
_ID_MAX = 30
_TITLE_MIN = 16
#: Below this width the severity column is dropped (the detail pane still shows it).
_WIDE = 64


class CheckTable(DataTable[Text | str]):
    """Status icon, id, title and severity; rows are keyed by check id.

    The title column takes the width that is left, so the table never needs a horizontal
    scrollbar. Use :attr:`selected_id` to read the row under the cursor.
    """

    DEFAULT_CSS = """
    CheckTable { scrollbar-size-vertical: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._rows: list[Check] = []
        self._results: Mapping[str, Result] = {}
        self._pending: AbstractSet[str] = frozenset()
        self._layout_width = 0

    def show(self, checks: list[Check], results: Mapping[str, Result],
             pending: AbstractSet[str], keep: str | None = None) -> None:
        """Replace the rows; the cursor stays on ``keep`` when that check is still listed.
        The same checks again (a scan's end, a rescan) only get their marks redrawn: a
        refill would lay the whole screen out again."""
        same = [c.id for c in checks] == self.check_ids and self.row_count == len(checks)
        self._rows = checks
        self._results = results
        self._pending = pending
        if not same:
            self._fill(keep)
            return
        for check in checks:
            self.update_cell(check.id, "status", self._icon(check))
        self._keep_cursor(keep)

    def _fill(self, keep: str | None) -> None:
        self.clear(columns=True)
        # One cell stays free for the vertical scrollbar; each column has a cell of
        # padding on either side.
        room = (self.scrollable_content_region.width or 80) - 1
        wide = room >= _WIDE
        fixed = _FIXED["status"] + (_FIXED["severity"] if wide else 0)
        free = room - fixed - 2 * (4 if wide else 3)
        id_width = min(max((len(c.id) for c in self._rows), default=10), _ID_MAX,
                       max(free - _TITLE_MIN, free // 2))
        self.add_column("", width=_FIXED["status"], key="status")
        self.add_column("check", width=id_width, key="id")
        self.add_column("title", width=max(free - id_width, 1), key="title")
        if wide:
            self.add_column("severity", width=_FIXED["severity"], key="severity")
        self._layout_width = room + 1
        for check in self._rows:
            cells: list[Text | str] = [self._icon(check), check.id, check.title]
            if wide:
                cells.append(Text(check.severity.value,
                                  style=SEVERITY_STYLES[check.severity]))
            self.add_row(*cells, key=check.id)
        self._keep_cursor(keep)

    def _keep_cursor(self, keep: str | None) -> None:
        ids = self.check_ids
        if keep in ids:
            self.move_cursor(row=ids.index(keep), animate=False)

    def _icon(self, check: Check) -> Text:
        return status_icon(self._results.get(check.id), check.id in self._pending)

    def update_check(self, check: Check) -> None:
        """Redraw one row's status icon as its result arrives during a scan."""
        if check.id not in self.check_ids:
            return  # not shown in this selection or filter
        self.update_cell(check.id, "status", self._icon(check))

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._layout_width:
            self._fill(self.selected_id)

    @property
    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return key.value

    @property
    def check_ids(self) -> list[str]:
        return [c.id for c in self._rows]
