"""What a recipe produces: repository files holding Kubernetes objects (or other text),
with their output paths confined to the repository. Rendering (templates) and transforms
(patches of existing objects) both produce these; targets plan and write them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from soma_audit.core.errors import AuditError

if TYPE_CHECKING:
    from soma_audit.remediation.recipes import Recipe

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class RenderError(AuditError):
    """A recipe cannot be rendered: bad template, bad output path, invalid output."""


@dataclass(frozen=True)
class RenderedFile:
    """One output file of a remediation, ready to diff and write."""

    #: Repository-relative, normalised POSIX path; never absolute, never escaping.
    path: str
    text: str
    #: The Kubernetes objects in the file (empty for .fga, .js, plain data files).
    objects: list[dict[str, Any]] = field(default_factory=list)
    #: How to merge into an existing non-Kubernetes file (a recipe's ``merge:``).
    merge: str | None = None
    #: The objects are existing ones as a transform rewrote them: diffed exactly (each
    #: removal still needs a recipe rule), not desired state merged into owned paths.
    patch: bool = False
    #: Object index → (kind, namespace, name) of the existing object it replaces (a
    #: migration to another kind, justified by the check named in ``replaced_because``).
    replaces: dict[int, tuple[str, str | None, str]] = field(default_factory=dict)
    replaced_because: str = ""
    #: The recipe that rendered it: what it owns and may remove in existing objects.
    recipe: Recipe | None = None


def safe_path(path: str) -> str:
    """``path`` normalised, or a RenderError when it is absolute or leaves the repository."""
    raw = path.strip()
    if not raw:
        raise RenderError("rendered an empty output path")
    if raw.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(raw) or "\x00" in raw:
        raise RenderError(f"output path {path!r} is absolute: remediations write inside the "
                          "repository only")
    parts = raw.replace("\\", "/").split("/")
    if ".." in parts:
        raise RenderError(f"output path {path!r} escapes the repository ('..')")
    normal = posixpath.normpath("/".join(parts))
    if normal in (".", "") or normal.startswith("../"):
        raise RenderError(f"output path {path!r} does not name a file in the repository")
    return normal


class _PlainDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Never writes anchors/aliases: a manifest shows every value where it applies.
    libyaml's emitter when present: the same text, a quarter of the time."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_objects(objects: list[dict[str, Any]]) -> str:
    """A YAML stream of ``objects`` in order, keys in their given order."""
    return "---\n".join(
        yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False,
                  width=100, allow_unicode=True)
        for obj in objects
    )
