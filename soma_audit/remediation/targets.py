"""Where a remediation is applied, and the directory target (manifests mode, ``--demo``).

Every target plans changes from rendered files, captures the before-state of what it will
change (for the backup), writes one change, and restores one backed-up item. The
directory target writes the rendered files into the repository layout and never touches
anything outside its root: absolute paths, ``..`` and symlinks leading out are refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from soma_audit import fileio
from soma_audit.fileio import write_atomically
from soma_audit.remediation.plan import Change, RemediationError, StaleError, unified

if TYPE_CHECKING:
    from soma_audit.remediation.render import RenderedFile


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

    def __init__(self, root: str | os.PathLike[str]) -> None:
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

    def plan(self, files: Sequence[RenderedFile]) -> tuple[list[Change], list[str]]:
        changes: list[Change] = []
        seen: set[Path] = set()
        for rendered in files:
            path = self.resolve(rendered.path)
            if path in seen:
                raise RemediationError(f"the recipe renders {rendered.path} twice")
            seen.add(path)
            where = path.relative_to(self.root).as_posix()
            current = self._read(path)
            after = rendered.text
            if current is not None and current == after.encode("utf-8"):
                changes.append(Change("unchanged", where, after, after, "", token=sha256(current)))
                continue
            before = _text(current)
            changes.append(Change(
                "create" if current is None else "update", where, before, after,
                unified(before, after, where), payload=after, token=sha256(current)))
        return changes, []

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
        if current is None:
            return BackupItem(change.where, False, {"created_dirs": created_dirs})
        mode = stat.S_IMODE(path.stat().st_mode)
        return BackupItem(change.where, True, {"mode": mode, "sha256": sha256(current)},
                          blob=current)

    def write(self, change: Change) -> None:
        path = self.resolve(change.where)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = _default_mode()
        try:
            write_atomically(path, str(change.payload))
            os.chmod(path, mode)
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
        before, after = _text(current), _text(saved)
        kind = "update" if current is not None else "create"
        note = "" if saved is not None else "delete: the apply created it"
        return Change(kind, item.where, before, after, unified(before, after, item.where),
                      note=note)
