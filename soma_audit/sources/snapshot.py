"""A cluster dump: ``kubectl get ... -o yaml`` output (a ``kind: List``) or a YAML stream."""

from __future__ import annotations

import os
from pathlib import Path

from soma_audit.core.errors import AuditError
from soma_audit.core.fileio import UnreadableFile, read_bytes
from soma_audit.kube.inventory import Inventory
from soma_audit.sources import SourceInfo
from soma_audit.sources.documents import parse_bytes


class SnapshotSource:
    def __init__(self, file: str | os.PathLike[str], repo: Path | None = None) -> None:
        path = Path(file)
        if not path.exists():
            raise AuditError(f"snapshot file not found: {path}")
        self.path = path
        self.info = SourceInfo("snapshot", str(path), repo=repo, label=path.name)

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        try:
            data = read_bytes(self.path)
        except UnreadableFile as exc:
            raise AuditError(f"cannot read snapshot {self.path}: {exc}") from None
        parsed = parse_bytes(data, self.path.name, strict=True)
        if not parsed.resources:
            detail = f": {parsed.problems[0].where}: {parsed.problems[0].message}" if (
                parsed.problems
            ) else ""
            raise AuditError(f"snapshot {self.path} holds no Kubernetes objects{detail}")
        inventory = Inventory.of(parsed.resources)
        inventory.problems.extend(parsed.problems)
        return inventory
