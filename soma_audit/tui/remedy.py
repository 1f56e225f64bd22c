"""Diff, apply and rollback (keys ``d``, ``a``, ``u``): the audit screen's flows over the
remediation engine.

Each flow is one coroutine run as a worker: the engine's blocking calls (plan, backup and
apply, restore) run in a thread, a :class:`WorkingScreen` says what is happening
meanwhile, the confirmation is awaited in between, and at the end the checks the recipe
fixes are re-run through :meth:`MainScreen.scan` — the path an attestation takes. No
remediation logic lives here: what to change, what blocks an apply, the backup, which
backup to offer and how to restore it are the engine's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from rich.text import Text
from textual.worker import Worker, WorkerState

from soma_audit.core.errors import AuditError
from soma_audit.remediation.apply import (
    InterruptedApply,
    apply_plan,
    restore_preview,
    rollback,
)
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.workflow import (
    backup_target,
    confirmation_name,
    last_backup,
    prepare,
)
from soma_audit.tui.screens.confirm import ConfirmScreen, WorkingScreen
from soma_audit.tui.screens.diff import MARKS, DiffScreen
from soma_audit.tui.view import (
    affected_checks,
    apply_refusal,
    only_unjustified_removals,
    target_label,
)
from soma_audit.tui.widgets._style import status_icon

if TYPE_CHECKING:
    from soma_audit.core.model import Check
    from soma_audit.remediation.backup import Backup
    from soma_audit.remediation.plan import Change, Plan
    from soma_audit.remediation.recipes import Recipe
    from soma_audit.remediation.targets import Target
    from soma_audit.tui.screens.main import MainScreen

T = TypeVar("T")

#: Changes listed by name in a confirmation; the rest are counted.
LISTED = 8
#: What must be typed to allow removals no check's evidence justifies.
REMOVE_WORD = "remove"


class Remedies:
    """The remediation flows of one audit screen; one apply or rollback at a time."""

    def __init__(self, screen: MainScreen, store: Callable[[], BackupStore] = BackupStore):
        self.screen = screen
        self.store = store
        #: The backup of this session's last apply: what ``u`` offers first.
        self.last_backup = ""
        self._flow: Worker[None] | None = None

    @property
    def busy(self) -> bool:
        return self._flow is not None and not self._flow.is_finished

    # -- entry points (the screen's actions) ------------------------------------------

    def diff(self, check: Check, recipe: Recipe) -> None:
        """Open the preview; its ``a`` comes back here as :meth:`apply` with its plan."""

        def chosen(plan: Plan | None) -> None:
            if plan is not None:
                self.apply(check, recipe, plan)

        self.screen.app.push_screen(DiffScreen(self.screen.session, recipe, check), chosen)

    def apply(self, check: Check, recipe: Recipe, plan: Plan | None = None) -> None:
        self._start(self._apply(check, recipe, plan))

    def rollback(self) -> None:
        self._start(self._rollback())

    def _start(self, flow: Coroutine[Any, Any, None]) -> None:
        if self.busy:
            flow.close()
            self.screen.notify("An apply or rollback is already running.",
                               severity="warning")
            return
        self._flow = self.screen.run_worker(self._guarded(flow), name="remedy",
                                            group="remedy", exit_on_error=False)

    async def _guarded(self, flow: Coroutine[Any, Any, None]) -> None:
        """Errors of a flow are notifications, never a crash."""
        try:
            await flow
        except AuditError as exc:
            hint = " (u offers that rollback here)" if isinstance(exc, InterruptedApply) else ""
            self.screen.notify(f"{exc}{hint}", title="Remediation failed", severity="error",
                               timeout=15, markup=False)
        except Exception as exc:  # a bug: say so, keep the app alive
            self.screen.notify(f"{type(exc).__name__}: {exc}",
                               title="Remediation crashed (a bug)", severity="error",
                               timeout=15, markup=False)

    # -- the flows --------------------------------------------------------------------

    async def _apply(self, check: Check, recipe: Recipe, plan: Plan | None) -> None:
        session = self.screen.session
        if plan is None:
            plan = await self._work(f"Planning {recipe.id} against the audited target…",
                                    prepare, session, recipe.id)
        target = target_label(plan.target.kind, plan.target.ref)
        if only_unjustified_removals(plan):
            if not await self._allow_removals(recipe, target, plan):
                self.screen.notify(f"{recipe.id} was not applied.")
                return
            plan = await self._work(f"Planning {recipe.id} again, removals allowed…",
                                    partial(prepare, allow_removals=True), session,
                                    recipe.id)
        refusal = apply_refusal(plan)
        if refusal:
            self.screen.notify(refusal, severity="error" if plan.blocked else "information",
                               timeout=10, markup=False)
            return
        lines = [_change_line(c, c.kind) for c in plan.pending[:LISTED]]
        if len(plan.pending) > LISTED:
            lines.append(Text(f"… and {len(plan.pending) - LISTED} more", style="dim"))
        lines += ["", Text("What is there now is backed up first; u rolls the apply back.",
                           style="dim")]
        if not await self._confirm(f"Apply {recipe.id}", target, lines, "Apply"):
            self.screen.notify(f"{recipe.id} was not applied.")
            return
        result = await self._work(f"Backing up, then applying {recipe.id} to {target}…",
                                  apply_plan, plan, self.store())
        backup = result.backup
        self.last_backup = backup.id if backup else self.last_backup
        self.screen.notify(f"{len(result.written)} change(s) written to {target}; backup "
                           f"{backup.id if backup else '-'} (u rolls it back).",
                           title=f"Applied {recipe.id}", markup=False)
        await self._rescan(recipe.id, plan.fixes, check.id)

    async def _rollback(self) -> None:
        found = await self._work("Looking for the last apply…", self._find)
        if found is None:
            self.screen.notify("Nothing to roll back: no apply of this target is waiting "
                               "for a rollback.", severity="warning")
            return
        backup, target, preview = found
        where = _backup_target_label(backup)
        lines: list[Text | str] = [Text.assemble(("Backup  ", "dim"), backup.id,
                                                 (f" ({backup.status})", "dim"), "\n")]
        restore = [c for c in preview if c.pending]
        lines += [_change_line(c, "delete" if c.after is None else "restore")
                  for c in restore[:LISTED]]
        if len(restore) > LISTED:
            lines.append(Text(f"… and {len(restore) - LISTED} more", style="dim"))
        if not restore:
            lines.append(Text("Everything already matches the backup.", style="dim"))
        if not await self._confirm(f"Roll back {backup.recipe}", where, lines, "Roll back"):
            self.screen.notify(f"{backup.id} was not rolled back.")
            return
        problems = await self._work(f"Rolling back {backup.recipe} on {where}…", rollback,
                                    backup, target, self.store())
        if problems:
            self.screen.notify(f"rollback {backup.id} incomplete: {'; '.join(problems)}",
                               title="Rollback incomplete", severity="error", timeout=15,
                               markup=False)
        else:
            self.screen.notify(f"{len(restore)} item(s) restored on {where}.",
                               title=f"Rolled back {backup.recipe}", markup=False)
        fixes: list[str] = []
        recipe = self.screen.recipes.get(backup.recipe)
        if recipe is not None:
            fixes = recipe.fixes
        await self._rescan(backup.recipe, fixes)

    def _find(self) -> tuple[Backup, Target, list[Change]] | None:
        """In a thread: the backup to offer, its target, and what restoring it changes."""
        session = self.screen.session
        backup = last_backup(session, self.store(), self.last_backup)
        if backup is None:
            return None
        target = backup_target(session, backup)
        return backup, target, restore_preview(backup, target)

    # -- steps ------------------------------------------------------------------------

    async def _work(self, message: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a thread while a dialog says what is happening."""
        app = self.screen.app
        working = WorkingScreen(message)
        await app.push_screen(working)
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            if working in app.screen_stack:  # the help may have been opened over it
                working.pop_until_active()
                app.pop_screen()

    async def _confirm(self, title: str, target: str, lines: list[Text | str],
                       action: str) -> bool:
        session = self.screen.session
        guard = confirmation_name(session)
        dialog = ConfirmScreen(title, target, lines, action=action, guard=guard,
                               pattern=session.config.production_pattern)
        return bool(await self.screen.app.push_screen_wait(dialog))

    async def _allow_removals(self, recipe: Recipe, target: str, plan: Plan) -> bool:
        """A typed confirmation before removing what no check's evidence flagged."""
        lines: list[Text | str] = []
        for change in plan.blocked[:LISTED]:
            lines.append(Text.assemble(("! ", "bold red"), change.where))
            lines += [Text(f"  {line}", style="dim") for line in change.fields
                      if "no flagged evidence" in line]
        dialog = ConfirmScreen(f"Allow removals by {recipe.id}", target, lines,
                               action="Allow", guard=REMOVE_WORD,
                               reason="These removals are not justified by any check's "
                               "evidence: the team may need what they delete.")
        return bool(await self.screen.app.push_screen_wait(dialog))

    async def _rescan(self, recipe: str, fixes: list[str], also: str = "") -> None:
        """Re-run the checks the recipe fixes, and say how they came out."""
        screen = self.screen
        wanted = affected_checks(screen.session.checks, recipe, fixes)
        if also:
            wanted.add(also)
        if not wanted:
            return
        while screen.scanning:  # a scan the user started meanwhile: let it finish first
            await asyncio.sleep(0.05)
        worker = screen.scan(only=wanted)
        if worker is None:
            return
        while not worker.is_finished:
            await asyncio.sleep(0.05)
        report = worker.result
        if worker.state is not WorkerState.SUCCESS or report is None:
            return  # the screen has already said why
        outcome = []
        for check_id in sorted(wanted):
            result = report.result(check_id)
            outcome.append(f"{status_icon(result).plain} {check_id} "
                           f"{result.status.value if result else 'not scanned'}")
        screen.notify(", ".join(outcome), title="Re-audit", markup=False)


#: Marks of the rollback's verbs (the apply's are the diff's).
VERBS = {"delete": ("-", "red"), "restore": ("~", "yellow")}


def _change_line(change: Change, verb: str) -> Text:
    mark, style = MARKS.get(verb) or VERBS[verb]
    return Text.assemble((f"{mark} {verb:<9}", style), change.where)


def _backup_target_label(backup: Backup) -> str:
    described = backup.target
    if described.get("kind") == "directory":
        return target_label("directory", str(described.get("root")))
    return backup.describe_target()
