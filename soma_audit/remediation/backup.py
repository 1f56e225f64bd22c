"""Backups: the before-state of everything an apply changes, saved before the first write.

One folder per apply under ``${SOMA_AUDIT_STATE:-~/.local/state/soma-audit}/backups/``,
named ``<UTC timestamp>-<recipe>``, holding ``manifest.json`` (target, items, status) and
the exact bytes of changed files under ``files/``. The status goes ``in-progress`` →
``complete`` (or ``failed`` after an automatic rollback), ``rolled-back`` after a
rollback; the manifest is always replaced atomically, so a killed process leaves either
the old or the new status — an ``in-progress`` one found later is an interrupted apply.
Credentials are never written here: targets describe themselves without them.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soma_audit.core.fileio import write_atomically
from soma_audit.remediation.plan import RemediationError
from soma_audit.remediation.targets import BackupItem, sha256, write_bytes_atomically

STATE_ENV = "SOMA_AUDIT_STATE"
MANIFEST = "manifest.json"
FORMAT = 1

IN_PROGRESS, COMPLETE, FAILED, ROLLED_BACK = "in-progress", "complete", "failed", "rolled-back"
_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[a-z0-9][a-z0-9._-]*$")


def state_dir() -> Path:
    """``$SOMA_AUDIT_STATE``, else ``~/.local/state/soma-audit``."""
    return Path(os.environ.get(STATE_ENV) or "~/.local/state/soma-audit").expanduser()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Backup:
    id: str
    path: Path
    recipe: str
    target: dict[str, Any]
    created: str
    status: str
    items: list[BackupItem] = field(default_factory=list)
    pid: int = 0
    history: list[dict[str, str]] = field(default_factory=list)

    def save(self) -> None:
        """Rewrite the manifest atomically (blobs are written once, by the store)."""
        entries = []
        for index, item in enumerate(self.items):
            entries.append({
                "where": item.where,
                "existed": item.existed,
                "state": item.state,
                "blob": f"files/{index}" if item.blob is not None else None,
                "sha256": sha256(item.blob),
            })
        document = {
            "format": FORMAT,
            "id": self.id,
            "recipe": self.recipe,
            "target": self.target,
            "created": self.created,
            "status": self.status,
            "pid": self.pid,
            "history": self.history,
            "items": entries,
        }
        write_atomically(self.path / MANIFEST, json.dumps(document, indent=2, sort_keys=True)
                         + "\n")

    def set_status(self, status: str, detail: str = "") -> None:
        self.status = status
        entry = {"status": status, "at": _now().isoformat()}
        if detail:
            entry["detail"] = detail
        self.history.append(entry)
        self.save()

    def describe_target(self) -> str:
        target = self.target
        ref = target.get("root") or target.get("server") or target.get("url") or target.get(
            "bootstrap") or "?"
        extra = f" ({target['context']})" if target.get("context") else ""
        extra += f" store {target['store']}" if target.get("store") else ""
        return f"{target.get('kind', '?')} {ref}{extra}"


class BackupStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root else state_dir() / "backups"

    def _new_id(self, recipe: str) -> str:
        stem = f"{_now():%Y%m%dT%H%M%SZ}-{re.sub(r'[^a-z0-9._-]+', '-', recipe.lower())}"
        candidate, n = stem, 1
        while (self.root / candidate).exists():
            n += 1
            candidate = f"{stem}-{n}"
        return candidate

    def create(self, recipe: str, target: dict[str, Any], items: list[BackupItem]) -> Backup:
        """Save ``items`` (blobs first, then the manifest, status in-progress)."""
        # Backups hold copies of cluster objects and repository files: owner only.
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        backup_id = self._new_id(recipe)
        path = self.root / backup_id
        try:
            path.mkdir(mode=0o700)
            (path / "files").mkdir(mode=0o700)
            for index, item in enumerate(items):
                if item.blob is not None:
                    write_bytes_atomically(path / "files" / str(index), item.blob, 0o600)
            backup = Backup(backup_id, path, recipe, target, _now().isoformat(), IN_PROGRESS,
                            items, os.getpid())
            backup.set_status(IN_PROGRESS)
        except OSError as exc:
            raise RemediationError(f"cannot write the backup under {self.root}: "
                                   f"{exc.strerror}; nothing was applied") from None
        return backup

    def list(self) -> list[Backup]:
        """Every readable backup, newest first (unreadable folders are skipped)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if _ID.match(path.name) and (path / MANIFEST).is_file():
                try:
                    found.append(self.load(path.name, blobs=False))
                except RemediationError:
                    continue
        return sorted(found, key=lambda b: (b.created, b.id), reverse=True)

    def load(self, backup_id: str, blobs: bool = True) -> Backup:
        if not _ID.match(backup_id):
            raise RemediationError(f"not a backup id: {backup_id!r} (see `soma-audit rollback`)")
        path = self.root / backup_id
        try:
            data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RemediationError(f"no backup {backup_id} under {self.root}") from None
        except (OSError, ValueError) as exc:
            raise RemediationError(f"backup {backup_id} is unreadable: {exc}") from None
        try:
            items = []
            for entry in data["items"]:
                blob = None
                if entry.get("blob") and blobs:
                    blob = (path / entry["blob"]).read_bytes()
                    if sha256(blob) != entry.get("sha256"):
                        raise RemediationError(
                            f"backup {backup_id}: saved copy of {entry['where']} is corrupt")
                elif entry.get("blob"):
                    blob = b""
                items.append(BackupItem(str(entry["where"]), bool(entry["existed"]),
                                        dict(entry.get("state") or {}), blob))
            return Backup(backup_id, path, str(data["recipe"]), dict(data["target"]),
                          str(data["created"]), str(data["status"]), items,
                          int(data.get("pid", 0)), list(data.get("history") or []))
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise RemediationError(f"backup {backup_id} is malformed: {exc!r}") from None

    def interrupted(self) -> list[Backup]:
        """Applies that never finished (the process died); call while holding the lock."""
        return [b for b in self.list() if b.status == IN_PROGRESS]

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One apply or rollback at a time per state folder."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.root / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RemediationError("another soma-audit apply or rollback is running "
                                       f"(lock {self.root / '.lock'})") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
