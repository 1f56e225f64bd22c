"""Merging a recipe's output into an existing non-Kubernetes file (FGA model and tests,
k6 profiles and scripts) without dropping what the team wrote.

Placeholder until the format-aware strategies land: every strategy keeps the current text
(``create-only`` behaviour), so an existing file is never overwritten.
"""

from __future__ import annotations


def merge_text(strategy: str, path: str, current: str, rendered: str) -> str:
    """The file's new text: ``current`` with what ``rendered`` adds that it lacks."""
    return current
