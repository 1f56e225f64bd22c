"""The audit screen: header, phase tree, check table, detail pane, footer.

It drives the engine through the session only — scans run in a thread worker and report
each result as a message, so the tree and the table fill in while the UI stays live.
Diff, apply and rollback are routed to :class:`~soma_audit.tui.remedy.Remedies`.

The first frame comes from the catalog alone: every check pending. The first scan's worker
starts with it but waits until that frame is on screen (Textual's ``Ready``, passed on by
the app; the GIL would otherwise share the start between the two); when the CLI already
started that scan in a child process (:class:`~soma_audit.engine.forked.ForkedScan`), the
worker only passes its results on. Results that arrive faster than the screen can show
them are drawn together.
"""

from __future__ import annotations

import datetime as dt
import gc
import threading
from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Tree
from textual.worker import Worker, WorkerState, get_current_worker

from soma_audit.core.errors import AuditError
from soma_audit.core.model import Check, Result
from soma_audit.remediation.recipes import Recipe, load_recipes
from soma_audit.results.report import Report
from soma_audit.tui.commands import AuditCommands
from soma_audit.tui.view import Filter, Scope, next_gap
from soma_audit.tui.widgets import AuditHeader, CheckDetail, CheckTable, FilterBar, PhaseTree

if TYPE_CHECKING:
    from soma_audit.engine.attestations import Attestation
    from soma_audit.engine.forked import ForkedScan
    from soma_audit.engine.session import AuditSession
    from soma_audit.tui.remedy import Remedies


#: Below this width the footer is compact and leaves out the keys in :data:`IN_DETAIL`.
NARROW = 100
#: Keys the detail pane shows beside a remediation.
IN_DETAIL = ("d", "a")


class ScanCancelled(Exception):
    """Raised from the progress callback to stop a scan nobody will look at any more."""


class MainScreen(Screen[None]):
    """Gaps by phase. Bindings below are also the command palette's and the help's."""

    #: Its styles (main.tcss) are the app's: see :attr:`SomaAuditApp.CSS_PATH`.
    COMMANDS = {AuditCommands}
    BINDINGS = [
        Binding("r", "rescan", "Rescan", tooltip="Scan the target again; the selection stays"),
        Binding("slash", "filter", "Filter", key_display="/",
                tooltip="Filter by status (fail, error…), severity (critical…) or text"),
        Binding("n", "next_gap", "Next gap", tooltip="Jump to the next failing or error check"),
        Binding("N", "previous_gap", "Prev gap", key_display="N", show=False,
                tooltip="Jump to the previous failing or error check"),
        Binding("d", "diff", "Diff",
                tooltip="Preview the selected check's remediation: the diff per file or object"),
        Binding("a", "apply", "Apply",
                tooltip="Apply the selected check's remediation after a confirmation "
                "(backup first); its checks are re-run"),
        Binding("m", "attest", "Attest",
                tooltip="Attest the selected manual check: author, note, expiry"),
        Binding("e", "export", "Export",
                tooltip="Write the report as markdown, JSON, JUnit XML or SARIF"),
        Binding("u", "rollback", "Undo",
                tooltip="Roll back the last apply (after a confirmation); its checks are "
                "re-run"),
        Binding("escape", "clear_filter", "Clear filter", show=False,
                tooltip="Remove the filter"),
    ]

    @dataclass
    class ScanProgress(Message):
        """One check evaluated (posted from the scan thread)."""

        result: Result
        done: int
        total: int

    def __init__(self, session: AuditSession, today: dt.date, author: str = "",
                 first_scan: ForkedScan | None = None) -> None:
        super().__init__()
        self.session = session
        #: The first scan, when it runs in a child process: taken by the first scan worker.
        self._forked_scan = first_scan
        self.today = today
        self.author = author
        self.results: dict[str, Result] = {}
        self.pending: set[str] = set()
        self.report: Report | None = None
        self.scope = Scope()
        self.filter = Filter()
        self.selected: str | None = None
        self._first_scan = True
        self._scan_worker: Worker[Report] | None = None
        #: Set once the first frame is on screen: the first scan's worker waits for it.
        self._painted = threading.Event()
        #: Results received but not drawn yet (see :meth:`_draw_arrivals`).
        self._arrivals: list[Check] = []
        self._progress = (0, 0)
        self._running_fork: ForkedScan | None = None
        try:
            self.recipes: dict[str, Recipe] = load_recipes()
            self._recipes_error = ""
        except AuditError as exc:
            self.recipes, self._recipes_error = {}, str(exc)

    @cached_property
    def remedies(self) -> Remedies:
        """The remediation flows, loaded on the first ``d``, ``a`` or ``u``."""
        from soma_audit.tui.remedy import Remedies  # it imports the screens package

        return Remedies(self)

    def compose(self) -> ComposeResult:
        yield AuditHeader(self.session.source.info, id="header")
        with Horizontal(id="body"):
            yield PhaseTree(self.session.checks, id="phases")
            with Vertical(id="right"):  # the filter bar joins on the first /
                yield CheckTable(id="checks")
                yield CheckDetail(id="detail")
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        footer = self.query_one(Footer)
        compact = event.size.width < NARROW
        if footer.compact != compact:  # the footer is rebuilt on each refresh of the keys
            footer.compact = compact
            self.refresh_bindings()

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """The footer's keys: below 100 columns ``d`` and ``a`` make room for the others
        (the detail pane names them beside the remediation; help and palette keep them)."""
        bindings = super().active_bindings
        if self.app.size.width >= NARROW:  # the terminal's: known before any layout
            return bindings
        return {key: active._replace(binding=replace(active.binding, show=False))
                if key in IN_DETAIL else active for key, active in bindings.items()}

    def on_mount(self) -> None:
        self.query_one(PhaseTree).border_title = "Phases"
        if self._recipes_error:
            self.notify(self._recipes_error, title="Remediations unavailable",
                        severity="error", markup=False)
        self.scan()  # it shows every check pending

    def first_frame_painted(self) -> None:
        """Called by the app once its first frame is on screen: let the first scan's
        worker go on, and turn the garbage collector back on (the TUI's start pauses it:
        :func:`soma_audit.tui.app_class`)."""
        gc.enable()
        self._painted.set()

    # -- scanning ---------------------------------------------------------------------

    @property
    def scanning(self) -> bool:
        return self._scan_worker is not None and not self._scan_worker.is_finished

    def scan(self, only: set[str] | None = None) -> Worker[Report] | None:
        """Start a scan (of ``only`` those checks) unless one is running; its worker."""
        if self.scanning:
            self.notify("A scan is already running.", severity="warning")
            return None
        self.pending = {c.id for c in self.session.checks if only is None or c.id in only}
        self.query_one(AuditHeader).show_progress(0, len(self.pending))
        self._refresh_rows()
        self._scan_worker = self.run_worker(
            partial(self._scan_in_thread, only), name="scan", group="scan", thread=True,
            exit_on_error=False,
        )
        return self._scan_worker

    def _scan_in_thread(self, only: set[str] | None) -> Report:
        """Runs in the worker thread: touches no widget, only posts messages."""
        worker = get_current_worker()
        forked, self._forked_scan = self._forked_scan, None
        try:
            while not self._painted.wait(0.05):
                if worker.is_cancelled:
                    raise ScanCancelled
        except ScanCancelled:
            if forked:
                forked.close()
            raise

        def progress(result: Result, done: int, total: int) -> None:
            if worker.is_cancelled or not self.post_message(
                self.ScanProgress(result, done, total)
            ):
                raise ScanCancelled
        if forked:  # the first scan: of every check
            self._running_fork = forked
            return forked.result(progress)
        return self.session.scan(progress, only)

    def on_unmount(self) -> None:
        """Leaving: a first scan still running in its child process is stopped (a worker
        waiting for it then ends)."""
        for forked in (self._forked_scan, self._running_fork):
            if forked:
                forked.stop()

    def on_main_screen_scan_progress(self, message: ScanProgress) -> None:
        check = message.result.check
        self.results[check.id] = message.result
        self.pending.discard(check.id)
        self._progress = (message.done, message.total)
        if not self._arrivals:
            # Drawn after the messages already queued: a burst is drawn once.
            self.call_later(self._draw_arrivals)
        self._arrivals.append(check)

    def _draw_arrivals(self) -> None:
        """Show the results received since the last drawing."""
        arrived, self._arrivals = self._arrivals, []
        if not arrived:
            return  # the scan ended meanwhile: its report was drawn whole
        self.query_one(AuditHeader).show_progress(*self._progress)
        self.query_one(PhaseTree).show(self.results, self.pending)
        table = self.query_one(CheckTable)
        for check in arrived:
            table.update_check(check)
        if self.selected in {check.id for check in arrived}:
            self._show_detail()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._scan_worker or not event.worker.is_finished:
            return
        self.pending = set()
        self._arrivals = []
        if event.state is WorkerState.SUCCESS and isinstance(event.worker.result, Report):
            self._scan_finished(event.worker.result)
            return
        self.query_one(AuditHeader).show_failure(dt.datetime.now())
        error = event.worker.error
        if isinstance(error, AuditError):
            self.notify(str(error), title="Scan failed", severity="error", timeout=10)
        elif error is not None and not isinstance(error, ScanCancelled):
            self.notify(f"{type(error).__name__}: {error}", title="Scan crashed (a bug)",
                        severity="error", timeout=10)
        self._refresh_rows()

    def _scan_finished(self, report: Report) -> None:
        self.report = report
        self.results = {r.check.id: r for r in report.results}
        self.query_one(AuditHeader).show_report(report)
        unreadable = report.problems
        if unreadable:
            self.notify(f"{len(unreadable)} source(s) could not be read: "
                        f"{', '.join(p.where for p in unreadable[:3])}",
                        title="Source problems", severity="warning")
        gap = self._first_gap() if self._first_scan else None
        self._first_scan = False
        if gap is None:
            self._refresh_rows()
            return
        self.query_one(PhaseTree).show(self.results, self.pending)
        self.select_check(gap.id)  # fills the table once, with the cursor on the gap

    def _first_gap(self) -> Check | None:
        """Where the first scan opens: its first gap, unless the user went elsewhere."""
        if self.filter or self.scope != Scope():
            return None
        return next_gap(self.session.checks, self.results, None)

    # -- showing ----------------------------------------------------------------------

    def _visible(self) -> list[Check]:
        return [c for c in self.session.checks
                if self.scope.contains(c) and self.filter.matches(c, self.results.get(c.id))]

    def _refresh_rows(self) -> None:
        self.query_one(PhaseTree).show(self.results, self.pending)
        self._show_table()

    def _show_table(self) -> None:
        table = self.query_one(CheckTable)
        rows = self._visible()
        table.show(rows, self.results, self.pending, keep=self.selected)
        title = f"Checks — {self.scope.title}"
        if self.filter:
            title += f" · filter “{self.filter.text}”"
        table.border_title = title
        table.border_subtitle = f"{len(rows)} of {len(self.session.checks)}"
        self.selected = table.selected_id
        self._show_detail()

    def _show_detail(self) -> None:
        check = self._selected_check()
        empty = "No check matches the filter." if self.filter else "No check selected."
        recipe = self.recipes.get(check.remediation or "") if check else None
        self.query_one(CheckDetail).show(check, self.results.get(self.selected or ""),
                                         self.selected in self.pending, empty, recipe)

    @on(Tree.NodeHighlighted, "#phases")
    def _scope_changed(self, event: Tree.NodeHighlighted[Scope]) -> None:
        scope = event.node.data or Scope()
        if scope != self.scope:
            self.scope = scope
            self._show_table()

    @on(DataTable.RowSelected, "#checks")
    def _row_chosen(self) -> None:
        """Enter on a check moves to its evidence (to scroll a long list)."""
        self.query_one(CheckDetail).focus()

    @on(DataTable.RowHighlighted, "#checks")
    def _row_changed(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value != self.selected:
            self.selected = event.row_key.value
            self._show_detail()

    def select_check(self, check_id: str) -> None:
        """Show ``check_id`` in its area, with the cursor on it (clears a hiding filter)."""
        check = self.session.check(check_id)
        if not self.filter.matches(check, self.results.get(check_id)):
            self._set_filter("")
        if not self.scope.contains(check):
            self.scope = Scope(check.phase, check.area)
            self.query_one(PhaseTree).select_scope(self.scope)
        self.selected = check_id
        self._show_table()
        self.query_one(CheckTable).focus()

    # -- actions ----------------------------------------------------------------------

    def action_rescan(self) -> None:
        self.scan()

    async def action_filter(self) -> None:
        """Open the filter bar, mounted above the table the first time: hidden until then,
        it would only cost the first frame its styles and its mount."""
        if not self.query(FilterBar):
            await self.query_one("#right").mount(FilterBar(id="filter"), before="#checks")
        self.query_one(FilterBar).open()

    def action_clear_filter(self) -> None:
        if self.filter:
            self._set_filter("")

    def _set_filter(self, text: str) -> None:
        bar = self.query_one(FilterBar)
        if bar.value != text:
            bar.value = text
        bar.set_class(bool(text.strip()), "-active")
        self.filter = Filter.parse(text)
        self._show_table()

    @on(FilterBar.Changed, "#filter")
    def _filter_typed(self, event: FilterBar.Changed) -> None:
        self.filter = Filter.parse(event.value)
        self._show_table()

    @on(FilterBar.Done)
    def _filter_done(self, event: FilterBar.Done) -> None:
        self._set_filter(event.value)
        self.query_one(CheckTable).focus()

    def action_next_gap(self) -> None:
        self._jump(forward=True)

    def action_previous_gap(self) -> None:
        self._jump(forward=False)

    def _jump(self, forward: bool) -> None:
        gap = next_gap(self.session.checks, self.results, self.selected, forward, self.filter)
        if gap is None:
            self.notify("No failing check" + (" matches the filter." if self.filter else "."))
            return
        self.select_check(gap.id)

    def _selected_check(self) -> Check | None:
        return next((c for c in self.session.checks if c.id == self.selected), None)

    def action_attest(self) -> None:
        check = self._selected_check()
        if check is None:
            self.notify("Select a manual check first.", severity="warning")
        elif not check.manual:
            self.notify(f"{check.id} is automated; only manual checks are attested.",
                        severity="warning")
        else:
            from soma_audit.tui.screens.attest import AttestScreen

            self.app.push_screen(AttestScreen(self.session, check, self.today, self.author),
                                 partial(self._attested, check))

    def _attested(self, check: Check, attestation: Attestation | None) -> None:
        if attestation is None:
            return
        self.author = attestation.by
        self.notify(f"{check.id} attested by {attestation.by} until {attestation.expires}.",
                    title="Attested")
        self.scan(only={check.id})

    def action_export(self) -> None:
        if self.report is None:
            self.notify("Nothing to export yet: wait for the scan to finish.",
                        severity="warning")
            return
        from soma_audit.tui.screens.export import ExportScreen

        self.app.push_screen(ExportScreen(self.session, self.report), self._exported)

    def _exported(self, written: Path | None) -> None:
        if written is not None:
            self.notify(str(written), title="Report written")

    # -- remediation (d, a, u): the engine's, through Remedies ---------------------------

    def _selected_recipe(self) -> tuple[Check, Recipe] | None:
        """The selected check and its bundled remediation, or None (and say why)."""
        check = self._selected_check()
        if check is None:
            self.notify("Select a check first.", severity="warning")
            return None
        if not check.remediation:
            self.notify(f"{check.id} has no bundled remediation.", severity="warning")
            return None
        recipe = self.recipes.get(check.remediation)
        if recipe is None:
            self.notify(f"{check.id} names the remediation {check.remediation!r}, which is "
                        "not bundled.", severity="error", markup=False)
            return None
        return check, recipe

    def action_diff(self) -> None:
        chosen = self._selected_recipe()
        if chosen:
            self.remedies.diff(*chosen)

    def action_apply(self) -> None:
        chosen = self._selected_recipe()
        if chosen:
            self.remedies.apply(*chosen)

    def action_rollback(self) -> None:
        self.remedies.rollback()
