"""A GitOps directory: every YAML/JSON file below it, multi-document, recursively."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from soma_audit.errors import AuditError
from soma_audit.fileio import UnreadableFile, read_bytes
from soma_audit.inventory import Inventory, SourceProblem
from soma_audit.sources import SourceInfo
from soma_audit.sources.documents import parse_bytes

_SUFFIXES = (".yaml", ".yml", ".json")
_SKIP_DIRS = {".git", "node_modules", ".venv", "__pycache__"}
_KUSTOMIZE = {"kustomization.yaml", "kustomization.yml", "Kustomization"}


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(_SUFFIXES) or name in _KUSTOMIZE:
                yield Path(dirpath, name)


def _unrenderable(path: Path, root: Path) -> str | None:
    """Why a file cannot be read as plain manifests (Helm template, Kustomize), or None."""
    if path.name in _KUSTOMIZE:
        return "Kustomize kustomization, not rendered (run `kustomize build` and audit the output)"
    for parent in path.relative_to(root).parents:
        chart = root / parent
        if (chart / "Chart.yaml").is_file() and (chart / "templates") in path.parents:
            return "Helm template, not rendered (run `helm template` and audit the output)"
    return None


class ManifestsSource:
    """Reads a directory tree; it is also the repository for file-based checks."""

    def __init__(self, directory: str | os.PathLike[str], label: str = "") -> None:
        root = Path(directory)
        if not root.exists():
            raise AuditError(f"manifests directory not found: {root}")
        if not root.is_dir():
            raise AuditError(f"--manifests expects a directory, got a file: {root}")
        self.root = root
        self.info = SourceInfo("manifests", str(root), repo=root, label=label or root.name)

    def load(self, kinds: frozenset[str]) -> Inventory:
        if not any(self.root.iterdir()):
            raise AuditError(f"manifests directory is empty: {self.root}")
        inventory = Inventory()
        for path in _walk(self.root):
            where = str(path.relative_to(self.root))
            reason = _unrenderable(path, self.root)
            if reason:
                inventory.problems.append(SourceProblem(where, reason, skipped=True))
                continue
            try:
                data = read_bytes(path)
            except UnreadableFile as exc:
                inventory.problems.append(SourceProblem(where, str(exc)))
                continue
            parsed = parse_bytes(data, where)
            inventory.add_all(parsed.resources)
            inventory.problems.extend(parsed.problems)
        return inventory
