"""The one-line header: what is audited, when it was scanned, and how ready it is."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from soma_audit.core.escape import visible
from soma_audit.core.model import PHASES
from soma_audit.results.report import Report, percent
from soma_audit.sources import SourceInfo
from soma_audit.tui.widgets._style import score_style

#: Below this width the header drops the word "scanned" before the time.
_NARROW = 100


class AuditHeader(Horizontal):
    """Source on the left; scan time (or progress) and the scores on the right.

    The scores of the previous scan stay visible during a rescan, so the numbers never
    blank out while the engine works.
    """

    DEFAULT_CSS = """
    AuditHeader {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    AuditHeader #header-source {
        width: 1fr; margin-right: 2; text-wrap: nowrap; text-overflow: ellipsis;
    }
    AuditHeader #header-score { width: auto; }
    """

    def __init__(self, source: SourceInfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._source = source
        self._state = Text("not scanned yet", style="dim")
        self._scores: list[Text] = []
        #: What the repository source rendered (``helm 1 rendered · kustomize …``).
        self._rendered = ""
        #: Cells of the right part last laid out (see :meth:`_redraw`).
        self._right_width = 0

    def compose(self) -> ComposeResult:
        yield Static(self._left(), id="header-source")
        yield Static(self._right(), id="header-score")

    def _left(self) -> Text:
        label = visible(self._source.label or self._source.ref)
        left = Text.assemble((" soma-audit", "bold"), "  ", label, (f" ({self._source.kind})",
                                                                     "dim"))
        if self._rendered:
            left.append(f"  {self._rendered}", style="dim")
        return left

    def _right(self) -> Text:
        """Time and scores; narrow terminals get them tighter, to keep the source label."""
        narrow = bool(self.size.width) and self.size.width < _NARROW
        state = self._state
        if narrow and state.plain.startswith("scanned "):
            state = state[len("scanned "):]
        scores = Text(" " if narrow else "  ").join(self._scores)
        return Text.assemble(state, "  " if narrow else "   ", scores, " ")

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        if self.is_mounted:
            right = self._right()
            self.query_one("#header-score", Static).update(right)
            if right.cell_len != self._right_width:
                # Its width is auto: a layout already under way can keep the old width, so
                # lay it out once more after this refresh (else the scores can stay cut
                # off). Not when the width is the same: a layout is the whole screen's.
                self._right_width = right.cell_len
                self.call_after_refresh(self._relayout)

    def _relayout(self) -> None:
        if not self.is_mounted:
            return
        score = self.query_one("#header-score", Static)
        score.clear_cached_dimensions()
        score.refresh(layout=True)

    def show_progress(self, done: int, total: int) -> None:
        self._state = Text(f"scanning {done}/{total}", style="bold cyan")
        self._redraw()

    def show_report(self, report: Report) -> None:
        when = report.started.astimezone().strftime("%H:%M:%S")
        self._state = Text(f"scanned {when}", style="dim")
        if report.sources_summary() != self._rendered:
            self._rendered = report.sources_summary()
            if self.is_mounted:
                self.query_one("#header-source", Static).update(self._left())
        self._scores = [Text.assemble(("ready ", "bold"), (percent(report.overall_score),
                                      f"bold {score_style(report.overall_score)}"))]
        for phase in PHASES:
            value = report.phase_score(phase)
            self._scores.append(Text.assemble(f"P{phase} ", (percent(value),
                                                             score_style(value))))
        self._redraw()

    def show_failure(self, at: dt.datetime) -> None:
        self._state = Text(f"scan failed {at:%H:%M:%S}", style="bold red")
        self._redraw()

    @property
    def text(self) -> str:
        """The header as plain text (what a reader of the screen sees)."""
        label = visible(self._source.label or self._source.ref)
        scores = "  ".join(part.plain for part in self._scores)
        rendered = f"  {self._rendered}" if self._rendered else ""
        return (f"soma-audit  {label} ({self._source.kind}){rendered}  {self._state.plain}"
                f"   {scores}")
