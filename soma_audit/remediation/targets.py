"""Where a remediation is applied, and the directory target (manifests mode, ``--demo``).

Every target plans changes from rendered files, captures the before-state of what it will
change (for the backup), writes one change, and restores one backed-up item. The
directory target writes the rendered files into the repository layout and never touches
anything outside its root: absolute paths, ``..`` and symlinks leading out are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from soma_audit.core import fileio
from soma_audit.remediation.plan import (
    Change,
    ChangeKind,
    RemediationError,
    StaleError,
    unified,
)

if TYPE_CHECKING:
    from soma_audit.kube.inventory import Resource
    from soma_audit.remediation.output import RenderedFile
    from soma_audit.sources.rendering import Renderer


@dataclass
class BackupItem:
    """The before-state of one thing an apply changes (``existed`` False: it creates it)."""

    where: str
    existed: bool
    #: JSON-able description: an object's body, a file's mode, a model, topic configs ...
    state: dict[str, Any] = field(default_factory=dict)
    #: A file's exact bytes (kept beside the backup manifest, not inside it).
    blob: bytes | None = None


class Target(Protocol):
    kind: str
    ref: str

    def describe(self) -> dict[str, Any]:
        """What the backup manifest records to find the target again (never credentials)."""
        ...

    def plan(self, files: Sequence[RenderedFile]) -> tuple[list[Change], list[str]]:
        """The changes the rendered files make here, and notes for the user."""
        ...

    def capture(self, change: Change) -> BackupItem:
        """The current state of what ``change`` touches; StaleError if it moved since plan."""
        ...

    def write(self, change: Change) -> None:
        ...

    def restore(self, item: BackupItem) -> None:
        ...

    def preview_restore(self, item: BackupItem) -> Change:
        """What restoring ``item`` would change now (for the rollback preview)."""
        ...


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def write_bytes_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one step, with permission bits ``mode`` (a restore
    must give back the exact bytes and mode, which the text helper cannot)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class DirectoryTarget:
    """A GitOps repository on disk: files written in place, diffs against what is there."""

    kind = "directory"

    def __init__(self, root: str | os.PathLike[str], allow_removals: bool = False,
                 force: bool = False) -> None:
        #: Plan removals that no check's evidence justifies (``--allow-removals``).
        self.allow_removals = allow_removals
        #: Roll back files even when they changed after the apply (``--force``).
        self.force = force
        #: Identity → the audited object, for objects rendered from a chart or an overlay:
        #: never edited in place; offered as an overlay patch or refused (``rendered``).
        self.rendered_elsewhere: dict[Any, Resource] = {}
        #: Builds an overlay with the real kustomize to verify a patch before offering it.
        self.renderer: Renderer | None = None
        #: Check id → objects its evidence flags (what justifies a removal); None: unknown.
        self.flagged: dict[str, set[str]] | None = None
        path = Path(root)
        if not path.is_dir():
            raise RemediationError(f"target directory not found: {path}")
        self.root = path.resolve()
        self.ref = str(self.root)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root)}

    def resolve(self, relative: str) -> Path:
        """The real path of ``relative`` inside the root; RemediationError when it is
        absolute, uses ``..``, or leads out of the root through a symlink."""
        pure = PurePosixPath(relative.replace("\\", "/"))
        if not relative or pure.is_absolute() or relative.startswith("~"):
            raise RemediationError(f"refusing path {relative!r}: not relative to the target")
        if ".." in pure.parts:
            raise RemediationError(f"refusing path {relative!r}: '..' is not allowed")
        try:
            resolved = (self.root / Path(*pure.parts)).resolve()
        except (RuntimeError, OSError):  # a symlink loop (RuntimeError before 3.13)
            raise RemediationError(f"refusing path {relative!r}: a symlink loop") from None
        if resolved != self.root and self.root not in resolved.parents:
            raise RemediationError(
                f"refusing path {relative!r}: it leads outside {self.root} (symlink)")
        if resolved == self.root or resolved.is_dir():
            raise RemediationError(f"refusing path {relative!r}: it is a directory")
        return resolved

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes through the bounded reader (a FIFO or a device is refused);
        None when there is no file yet."""
        try:
            return fileio.read_bytes(path)
        except fileio.MissingFile:
            return None
        except fileio.UnreadableFile as exc:
            raise RemediationError(f"cannot read {path}: {exc}") from None

    def _read_relative(self, relative: str) -> bytes | None:
        return self._read(self.resolve(relative))

    def plan(self, files: Sequence[RenderedFile]) -> tuple[list[Change], list[str]]:
        """Kubernetes objects are found by identity and edited in place (owned paths only);
        other files are created, merged by their recipe's strategy, or left alone."""
        from soma_audit.remediation.repository import RepositoryPlanner, identity

        planner = RepositoryPlanner(self.root, self._read_relative, self.flagged)
        changes: list[Change] = []
        notes: list[str] = []
        elsewhere: list[tuple[Resource, dict[str, Any]]] = []
        seen: set[tuple[Path, bool]] = set()
        for rendered in files:
            key = (self.resolve(rendered.path), rendered.patch)
            if key in seen:
                raise RemediationError(f"the recipe renders {rendered.path} twice")
            seen.add(key)
            generated = [(self.rendered_elsewhere[identity(obj)], obj) for obj in rendered.objects
                         if identity(obj) in self.rendered_elsewhere]
            if generated:
                elsewhere += generated
                kept = [obj for obj in rendered.objects if identity(obj) not in
                        self.rendered_elsewhere]
                if not kept:
                    continue
                rendered = dataclasses.replace(rendered, objects=kept)
            if rendered.objects or rendered.patch:
                planner.plan(rendered)
            else:
                changes.append(self._plain_file(rendered, notes))
        for plan in planner.results():
            where = plan.path
            current = self._read(self.resolve(where))
            before = _text(current)
            after = plan.source.text() if plan.source is not None else plan.new_text
            if (plan.source is not None and not plan.source.changed) or after == before:
                changes.append(Change("unchanged", where, before, before, "",
                                      token=sha256(current), fields=plan.lines))
                continue
            kind: ChangeKind = "create" if current is None else "update"
            note = ""
            if plan.unjustified and not self.allow_removals:
                kind = "refused"
                note = ("removes what no check flagged: " + "; ".join(plan.unjustified)
                        + " (--allow-removals to allow)")
            changes.append(Change(kind, where, before, after, unified(before, after, where),
                                  note=note, payload=after, token=sha256(current),
                                  fields=plan.lines))
        self._plan_generated(elsewhere, changes, notes)
        return changes, notes

    def _plan_generated(self, elsewhere: list[tuple[Resource, dict[str, Any]]],
                        changes: list[Change], notes: list[str]) -> None:
        """Objects a chart or an overlay generates: a kustomize patch in the overlay
        (verified by building it) when one can be written, else a note saying why not."""
        from soma_audit.remediation.rendered import propose

        for resource, desired in elsewhere:
            fix = propose(resource, desired, self.root, self.renderer)
            if fix.refusal:
                notes.append(fix.refusal)
                continue
            taken = {c.where for c in changes}
            if any(edit.path in taken for edit in fix.edits):
                notes.append(f"{fix.resource} needs a patch in an overlay this plan already "
                             "edits: apply this plan, then run the remediation again")
                continue
            for edit in fix.edits:
                current = self._read(self.resolve(edit.path))
                changes.append(Change(
                    "create" if edit.before is None else "update", edit.path, edit.before,
                    edit.after, edit.diff, note=f"overlay patch for {fix.resource}",
                    payload=edit.after, token=sha256(current),
                    fields=[fix.note] if fix.note else []))

    def _plain_file(self, rendered: RenderedFile, notes: list[str]) -> Change:
        """A file that holds no Kubernetes object (FGA model, k6 script, data)."""
        where = self.resolve(rendered.path).relative_to(self.root).as_posix()
        current = self._read(self.resolve(where))
        after = rendered.text
        if current is None:
            return Change("create", where, None, after, unified(None, after, where),
                          payload=after, token=None)
        before = _text(current)
        if rendered.merge is None:
            if before != after:
                notes.append(f"{where} exists and is the team's: not overwritten")
            return Change("unchanged", where, before, before, "", token=sha256(current))
        from soma_audit.remediation.textmerge import merge_text

        result = merge_text(rendered.merge, where, before or "", after)
        notes.extend(result.notes)
        merged = result.text
        if merged == before:
            return Change("unchanged", where, before, before, "", token=sha256(current))
        return Change("update", where, before, merged, unified(before, merged, where),
                      payload=merged, token=sha256(current),
                      fields=[f"merge {where} ({rendered.merge}: adds what is missing)"])

    def capture(self, change: Change) -> BackupItem:
        path = self.resolve(change.where)
        current = self._read(path)
        if sha256(current) != change.token:
            raise StaleError(f"{change.where} changed since the diff was made")
        created_dirs = []
        parent = path.parent
        while parent != self.root and not parent.exists():
            created_dirs.append(parent.relative_to(self.root).as_posix())
            parent = parent.parent
        written = sha256(str(change.payload).encode("utf-8"))
        if current is None:
            return BackupItem(change.where, False, {"created_dirs": created_dirs,
                                                    "written_sha256": written})
        mode = stat.S_IMODE(path.stat().st_mode)
        return BackupItem(change.where, True, {"mode": mode, "sha256": sha256(current),
                                               "written_sha256": written}, blob=current)

    def write(self, change: Change) -> None:
        path = self.resolve(change.where)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = _default_mode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomically(path, str(change.payload).encode("utf-8"), mode)
        except OSError as exc:
            raise RemediationError(f"cannot write {change.where}: {exc.strerror}") from None

    def restore(self, item: BackupItem) -> None:
        path = self.resolve(item.where)
        try:
            if item.existed:
                assert item.blob is not None
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomically(path, item.blob, int(item.state.get("mode", 0o644)))
                return
            path.unlink(missing_ok=True)
            for directory in item.state.get("created_dirs", []):
                folder = self.resolve_dir(directory)
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        except OSError as exc:
            raise RemediationError(f"cannot restore {item.where}: {exc.strerror}") from None

    def resolve_dir(self, relative: str) -> Path:
        """Like :meth:`resolve`, for a folder the apply created (removed again on restore)."""
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts:
            raise RemediationError(f"refusing folder {relative!r}")
        resolved = (self.root / Path(*pure.parts)).resolve()
        if self.root not in resolved.parents:
            raise RemediationError(f"refusing folder {relative!r}: outside {self.root}")
        return resolved

    def preview_restore(self, item: BackupItem) -> Change:
        path = self.resolve(item.where)
        current = self._read(path)
        saved = item.blob if item.existed else None
        if current == saved:
            return Change("unchanged", item.where, _text(current), _text(saved), "")
        written = item.state.get("written_sha256")
        if written and sha256(current) != written:
            if not self.force:
                return Change("conflict", item.where, _text(current), _text(saved), "",
                              note="changed after the apply; rollback refused "
                              "(--force restores the backup over those changes)")
            forced = "--force: overwrites changes made after the apply"
        else:
            forced = ""
        before, after = _text(current), _text(saved)
        kind = "update" if current is not None else "create"
        note = "" if saved is not None else "delete: the apply created it"
        note = "; ".join(n for n in (note, forced) if n)
        return Change(kind, item.where, before, after, unified(before, after, item.where),
                      note=note)
