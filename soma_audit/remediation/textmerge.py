"""Merging a recipe's output into a repository file that is not a Kubernetes manifest.

A team's FGA model, its scenario tests, its k6 profiles and scripts are theirs: a recipe
adds what is missing (a type, a relation, a test, a profile, a script) and keeps every line
the team wrote. Each template of a recipe names its strategy (``merge:`` in the recipe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from soma_audit.core.yamlload import safe_load
from soma_audit.domain.fga import merge_models
from soma_audit.remediation.plan import RemediationError
from soma_audit.remediation.yamledit import YamlFile, value_of


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


def _named_items(path: str, current: str, rendered: str, key: str,
                 adapt: Callable[[dict[str, Any], dict[str, Any], Any], dict[str, Any]]
                 ) -> TextMerge:
    """Append to the team's top-level list ``key`` the rendered items whose ``name`` it
    lacks (``adapt`` fits each to the team's file); the team's items stay as written."""
    try:
        wanted = safe_load(rendered)
    except yaml.YAMLError as exc:
        raise RemediationError(f"{path}: the recipe rendered invalid YAML: {exc}") from None
    items = wanted.get(key) if isinstance(wanted, dict) else None
    if not isinstance(items, list):
        return TextMerge(current)
    edited = YamlFile(path, current)
    root = edited.documents[0] if len(edited.documents) == 1 else None
    if not isinstance(root, yaml.MappingNode):
        raise RemediationError(f"{path}: not one YAML mapping; soma-audit adds to it only "
                               f"when it is (add the {key} by hand)")
    slot = next((i for i, (k, _) in enumerate(root.value) if k.value == key), None)
    present: set[str] = set()
    if slot is not None:
        node = root.value[slot][1]
        if not isinstance(node, yaml.SequenceNode):
            raise RemediationError(f"{path}:{node.start_mark.line + 1}: {key} is not a list")
        present = {str(item.get("name")) for item in value_of(node) if isinstance(item, dict)}
    team = value_of(root)
    missing = [adapt(item, wanted, team) for item in items
               if isinstance(item, dict) and str(item.get("name")) not in present]
    if not missing:
        return TextMerge(current)
    if slot is None:
        edited.add_key(root, key, missing)
    else:
        for item in missing:
            edited.append_item(root.value[slot][1], item)
    names = ", ".join(str(item.get("name")) for item in missing)
    return TextMerge(edited.text(), [f"{path}: adds {key} {names}"])


def _with_own_tuples(test: dict[str, Any], bundled: dict[str, Any], team: Any
                     ) -> dict[str, Any]:
    """A bundled scenario carries the bundled file's tuples itself, so it holds in the
    team's test file whatever tuples the team declares (``fga model test`` adds a test's
    tuples to the file's, and refuses one written twice: those the team's file already
    declares are left out)."""
    declared = team.get("tuples") if isinstance(team, dict) else None
    have = {_tuple_key(t) for t in declared or [] if isinstance(t, dict)}
    tuples = [t for t in [*(bundled.get("tuples") or []), *(test.get("tuples") or [])]
              if _tuple_key(t) not in have]
    rest = {k: v for k, v in test.items() if k not in ("name", "tuples")}
    return {"name": test["name"], **({"tuples": tuples} if tuples else {}), **rest}


def _tuple_key(tuple_: dict[str, Any]) -> tuple[str, str, str]:
    return (str(tuple_.get("user")), str(tuple_.get("relation")), str(tuple_.get("object")))


def _fga_tests(path: str, current: str, rendered: str) -> TextMerge:
    return _named_items(path, current, rendered, "tests", _with_own_tuples)


def _k6_profiles(path: str, current: str, rendered: str) -> TextMerge:
    return _named_items(path, current, rendered, "profiles", lambda item, _, __: item)


STRATEGIES: dict[str, Callable[[str, str, str], TextMerge]] = {
    "create-only": _create_only,
    "fga-model": _fga_model,
    "fga-tests": _fga_tests,
    "k6-profiles": _k6_profiles,
}


def merge_text(strategy: str, path: str, current: str, rendered: str) -> TextMerge:
    """``rendered`` merged into the ``current`` text of ``path`` with ``strategy``."""
    merge = STRATEGIES.get(strategy)
    if merge is None:
        raise RemediationError(f"{path}: unknown merge strategy {strategy!r} "
                               f"(known: {', '.join(sorted(STRATEGIES))})")
    return merge(path, current, rendered)
