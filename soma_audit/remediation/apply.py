"""Apply a plan all-or-nothing, with a backup first; roll a backup back.

Order of an apply: every item's before-state is captured (each capture also checks that
nothing changed since the preview, so a stale preview writes nothing), the backup is
saved with status ``in-progress``, the changes are written one by one, and the status
becomes ``complete``. If a write fails (or the user interrupts), what was already written
— the failing item included — is restored from the backup before the error is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from soma_audit.remediation.backup import (
    COMPLETE,
    FAILED,
    IN_PROGRESS,
    ROLLED_BACK,
    Backup,
    BackupStore,
)
from soma_audit.remediation.plan import Change, Plan, RemediationError
from soma_audit.remediation.targets import BackupItem, Target


class ApplyFailed(RemediationError):
    """A write failed; what was written was rolled back (``restored`` says if fully)."""

    def __init__(self, message: str, backup: Backup, restored: bool) -> None:
        super().__init__(message)
        self.backup = backup
        self.restored = restored


class InterruptedApply(RemediationError):
    """An earlier apply never finished; it must be rolled back before a new one."""

    def __init__(self, backups: list[Backup]) -> None:
        names = ", ".join(f"{b.id} ({b.recipe} on {b.describe_target()})" for b in backups)
        super().__init__(f"an earlier apply was interrupted and left changes half-applied: "
                         f"{names}; roll it back first: soma-audit rollback {backups[0].id}")
        self.backups = backups


@dataclass
class ApplyResult:
    backup: Backup | None
    written: list[Change]


def _restore_all(target: Target, items: list[BackupItem]) -> list[str]:
    """Restore ``items`` newest first; every failure is collected, none stops the others."""
    problems = []
    for item in reversed(items):
        try:
            target.restore(item)
        except Exception as exc:  # one bad item must not leave the rest un-restored
            problems.append(f"{item.where}: {exc}")
    return problems


def apply_plan(plan: Plan, store: BackupStore) -> ApplyResult:
    """Write every pending change of ``plan``, or none of them."""
    if plan.conflicts:
        where = ", ".join(c.where for c in plan.conflicts)
        raise RemediationError(f"field-manager conflicts on {where}; nothing was applied "
                               "(see the diff: fix those fields where their controller "
                               "takes them from)")
    if plan.blocked:
        where = ", ".join(f"{c.where} ({c.kind})" for c in plan.blocked)
        raise RemediationError(f"blocked: {where}; nothing was applied (see the diff)")
    pending = plan.pending
    if not pending:
        return ApplyResult(None, [])
    target = plan.target
    with store.lock():
        interrupted = store.interrupted()
        if interrupted:
            raise InterruptedApply(interrupted)
        items = [target.capture(change) for change in pending]
        backup = store.create(plan.recipe, target.describe(), items)
        written: list[Change] = []
        try:
            for change in pending:
                target.write(change)
                written.append(change)
        except BaseException as exc:
            failed_at = pending[len(written)].where
            problems = _restore_all(target, items[: len(written) + 1])
            if problems:
                backup.set_status(IN_PROGRESS, "automatic rollback incomplete: "
                                  + "; ".join(problems))
            else:
                backup.set_status(FAILED, f"failed at {failed_at}: {exc}")
            if not isinstance(exc, Exception):
                raise
            how = ("rolled back the changes already written" if not problems else
                   f"the automatic rollback failed ({'; '.join(problems)}); "
                   f"run: soma-audit rollback {backup.id}")
            raise ApplyFailed(f"apply of {plan.recipe} failed at {failed_at}: {exc}; {how}",
                              backup, not problems) from None
        backup.set_status(COMPLETE)
        return ApplyResult(backup, written)


def restore_preview(backup: Backup, target: Target) -> list[Change]:
    """What ``rollback`` would change now, item by item."""
    return [target.preview_restore(item) for item in reversed(backup.items)]


def rollback(backup: Backup, target: Target, store: BackupStore) -> list[str]:
    """Restore every item of ``backup``; returns the problems (empty when exact)."""
    if backup.status == ROLLED_BACK:
        raise RemediationError(f"backup {backup.id} was already rolled back")
    if backup.status == FAILED:
        raise RemediationError(f"backup {backup.id} belongs to a failed apply that was "
                               "already rolled back automatically")
    changed = [c.where for c in restore_preview(backup, target) if c.kind == "conflict"]
    if changed:
        raise RemediationError(f"rollback {backup.id} refused: {', '.join(changed)} changed "
                               "after the apply (--force restores the backup anyway)")
    with store.lock():
        problems = _restore_all(target, backup.items)
        if problems:
            backup.set_status(backup.status, "rollback incomplete: " + "; ".join(problems))
        else:
            backup.set_status(ROLLED_BACK)
    return problems
