"""The diff preview (key ``d``): what applying a check's remediation would change.

The remediation engine renders the recipe and plans it against the audited target
(:func:`soma_audit.remediation.workflow.prepare`, the CLI's ``diff``) in a thread worker
— a cluster plan is a server-side dry-run of every object. The screen lists the changes
(create, update, unchanged, conflict, rejected, refused) and the engine's notes, and shows
per object and field what each change does, then its minimal unified diff.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, LoadingIndicator, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from soma_audit.core.errors import AuditError
from soma_audit.remediation.ownership import LiveOptions
from soma_audit.remediation.plan import Change, Plan
from soma_audit.remediation.workflow import prepare
from soma_audit.tui.view import apply_refusal, only_unjustified_removals, target_label

if TYPE_CHECKING:
    from soma_audit.core.model import Check
    from soma_audit.engine.session import AuditSession
    from soma_audit.remediation.recipes import Recipe

#: How each kind of change is marked in the list and in the headings of the diff.
MARKS = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "unchanged": ("=", "dim"),
    "conflict": ("!", "bold red"),
    "rejected": ("!", "bold red"),
    "refused": ("!", "bold red"),
    "recreate": ("^", "magenta"),
    "managed": ("-", "cyan"),
}


class DiffScreen(Screen["Plan | None"]):
    """The preview of one remediation; ``a`` dismisses with the plan to apply it.

    Dismisses with None when closed. The plan is the one the confirmation and the apply
    use, so what was previewed is what is written (the engine refuses a stale preview).
    """

    CSS_PATH = "diff.tcss"
    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the audit"),
        Binding("a", "apply", "Apply",
                tooltip="Apply this remediation after a confirmation (backup first)"),
    ]

    def __init__(self, session: AuditSession, recipe: Recipe, check: Check) -> None:
        super().__init__()
        self.session = session
        self.recipe = recipe
        self.check = check
        self.plan: Plan | None = None
        self.error = ""
        self._worker: Worker[Plan] | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((" Diff ", "bold reverse"), "  ",
                                   (self.recipe.id, "bold"), f" — {self.recipe.title}"),
                     id="diff-header")
        with Vertical(id="diff-body"):
            yield Static(Text(self.recipe.description, style="italic"), id="diff-about")
            yield Static(id="diff-status")
            yield LoadingIndicator(id="diff-loading")
            yield ProgressBar(id="diff-progress", show_eta=False)
            yield OptionList(id="diff-changes")
            yield VerticalScroll(id="diff-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#diff-changes").display = False
        self.query_one("#diff-text").display = False
        self.query_one("#diff-progress").display = False
        self._status(Text.assemble(
            "Rendering ", (self.recipe.id, "bold"), " from the config and comparing it with "
            "the audited target (a cluster is asked for a server-side dry-run)…"))
        live = LiveOptions(progress=self._progress_from_thread)
        self._worker = self.run_worker(partial(prepare, self.session, self.recipe.id,
                                               live=live),
                                       name="plan", thread=True, exit_on_error=False)

    def _progress_from_thread(self, done: int, total: int) -> None:
        """The cluster's dry-runs, counted by the plan's workers."""
        self.app.call_from_thread(self._progress, done, total)

    def _progress(self, done: int, total: int) -> None:
        bar = self.query_one("#diff-progress", ProgressBar)
        bar.display = done < total
        bar.update(total=total, progress=done)

    # -- the plan arrives -------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker or not event.worker.is_finished:
            return
        self.query_one("#diff-loading").display = False
        self.query_one("#diff-progress").display = False
        result = event.worker.result
        if event.state is WorkerState.SUCCESS and isinstance(result, Plan):
            self._show(result)
            return
        error = event.worker.error
        if isinstance(error, AuditError):
            self.error = str(error)
            title = "Diff failed"
        else:
            self.error = f"{type(error).__name__}: {error}"
            title = "Diff crashed (a bug)"
        self._status(Text.assemble(("✗ ", "bold red"), (self.error, "red")))
        self.notify(self.error, title=title, severity="error", timeout=10)

    def _status(self, text: Text) -> None:
        self.query_one("#diff-status", Static).update(text)

    def _show(self, plan: Plan) -> None:
        self.plan = plan
        target = target_label(plan.target.kind, plan.target.ref)
        changes = self.query_one("#diff-changes", OptionList)
        changes.border_title = f"Changes — {target}"
        counts = [f"{n} {kind}" for kind in MARKS
                  if (n := sum(c.kind == kind for c in plan.changes))]
        changes.border_subtitle = ", ".join(counts) or "no files or objects"
        changes.add_options([self._option(i, c) for i, c in enumerate(plan.changes)])
        changes.add_options([Option(Text(f"note: {note}", style="italic"), disabled=True)
                             for note in plan.notes])
        refusal = apply_refusal(plan)
        status = (Text(refusal, style="bold red" if plan.blocked else "dim") if refusal
                  else Text.assemble(f"{len(plan.pending)} change(s) to apply. Press ",
                                     ("a", "bold cyan"), " to apply them (a backup is "
                                     "saved first), esc to go back."))
        self._status(Text.assemble((plan.scope, "bold"), "\n", status) if plan.scope
                     else status)
        diff = self.query_one("#diff-text", VerticalScroll)
        diff.border_title = "Diff"
        diff.mount_all(self._sections(plan))
        changes.display = True
        diff.display = True
        changes.highlighted = 0
        changes.focus()

    @staticmethod
    def _option(index: int, change: Change) -> Option:
        mark, style = MARKS[change.kind]
        text = Text.assemble((f"{mark} {change.kind:<10}", style), change.where)
        if change.note:
            text.append(f"  {change.note}", style="dim")
        return Option(text, id=f"change-{index}")

    @staticmethod
    def _sections(plan: Plan) -> list[Static]:
        sections: list[Static] = []
        for index, change in enumerate(plan.changes):
            if change.kind == "unchanged":
                continue
            mark, style = MARKS[change.kind]
            head = Text.assemble((f"{mark} {change.kind} ", style), (change.where, "bold"))
            if change.note:
                head.append(f"  ({change.note})", style="dim")
            sections.append(Static(head, id=f"section-change-{index}", classes="heading"))
            if change.fields:
                sections.append(Static(Text("\n".join(change.fields)), classes="fields"))
            if change.pending or change.kind == "recreate":
                sections.append(Static(_highlight(change.diff), classes="patch"))
            else:
                sections.append(Static(Text(change.note, style="red"), classes="patch"))
        for note in plan.notes:
            sections.append(Static(Text(f"note: {note}", style="italic"), classes="heading"))
        if not sections:
            sections.append(Static(Text("Nothing to change: the target already matches.",
                                        style="dim")))
        return sections

    @property
    def text(self) -> str:
        """The diff as plain text, section by section (what a reader of the screen sees)."""
        lines = []
        for widget in self.query("#diff-text Static").results(Static):
            content = widget.content
            lines.append(content.code if isinstance(content, Syntax) else str(content))
        return "\n".join(lines)

    @on(OptionList.OptionSelected, "#diff-changes")
    def _jump(self, event: OptionList.OptionSelected) -> None:
        """Enter on a change scrolls its diff to the top."""
        section = self.query(f"#section-{event.option.id}")
        if section:
            self.query_one("#diff-text", VerticalScroll).scroll_to_widget(
                section.first(), top=True, animate=False)

    # -- actions ----------------------------------------------------------------------

    def action_close(self) -> None:
        self.dismiss(None)

    def action_apply(self) -> None:
        if self.plan is None:
            self.notify(self.error or "The diff is still being computed.",
                        severity="error" if self.error else "warning")
            return
        refusal = apply_refusal(self.plan)
        if refusal and not only_unjustified_removals(self.plan):
            self.notify(refusal, severity="error" if self.plan.blocked else "information")
            return
        self.dismiss(self.plan)  # removals no check flagged: the apply flow asks to type


def _highlight(diff: str) -> Syntax:
    return Syntax(diff.rstrip("\n"), "diff", theme="ansi_dark", background_color="default",
                  word_wrap=True)
