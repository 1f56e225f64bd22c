"""Merging a recipe's output into a repository file that is not a Kubernetes manifest.

A team's FGA model, its scenario tests, its k6 profiles and scripts are theirs: a recipe
adds what is missing (a type, a relation, a test, a profile, a script) and keeps every line
the team wrote. Each template of a recipe names its strategy (``merge:`` in the recipe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from soma_audit.domain.fga import merge_models
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


def _fga_model(path: str, current: str, rendered: str) -> TextMerge:
    merged = merge_models(current, rendered)
    notes = []
    if merged.kept:
        notes.append(f"{path}: kept the team's definition of {', '.join(merged.kept)} "
                     "(differs from the bundled model)")
    return TextMerge(merged.text, notes)


STRATEGIES: dict[str, Callable[[str, str, str], TextMerge]] = {
    "create-only": _create_only,
    "fga-model": _fga_model,
}


def merge_text(strategy: str, path: str, current: str, rendered: str) -> TextMerge:
    """``rendered`` merged into the ``current`` text of ``path`` with ``strategy``."""
    merge = STRATEGIES.get(strategy)
    if merge is None:
        raise RemediationError(f"{path}: unknown merge strategy {strategy!r} "
                               f"(known: {', '.join(sorted(STRATEGIES))})")
    return merge(path, current, rendered)
