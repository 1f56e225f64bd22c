"""Merging a recipe's output into a repository file that is not a Kubernetes manifest.

Placeholder for the branch that builds the in-place YAML editing: only ``create-only``
(the file the team already has is kept as a whole). The format-aware strategies
(``fga-model`` ...) are written separately with the same interface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from soma_audit.remediation.plan import RemediationError


@dataclass(frozen=True)
class TextMerge:
    """The merged text and what the user should know about it (kept differences)."""

    text: str
    notes: list[str] = field(default_factory=list)


def _create_only(path: str, current: str, rendered: str) -> TextMerge:
    """A file the team already has is theirs as a whole (a k6 script): never rewritten."""
    note = [] if current == rendered else [
        f"{path} exists and is kept as written (this recipe only creates it when missing)"]
    return TextMerge(current, note)


STRATEGIES: dict[str, Callable[[str, str, str], TextMerge]] = {"create-only": _create_only}


def merge_text(strategy: str, path: str, current: str, rendered: str) -> TextMerge:
    """``rendered`` merged into the ``current`` text of ``path`` with ``strategy``."""
    merge = STRATEGIES.get(strategy)
    if merge is None:
        raise RemediationError(f"{path}: unknown merge strategy {strategy!r} "
                               f"(known: {', '.join(sorted(STRATEGIES))})")
    return merge(path, current, rendered)
