"""Remediation recipes as data: ``remediations/<id>.yaml`` → typed :class:`Recipe`.

Recipes are data so that a reviewer reads what a fix touches (templates, output paths,
the checks it repairs) without reading code; loading is strict so a typo in a recipe is
one clear :class:`ConfigError`, never a half-rendered remediation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from soma_audit.core.errors import ConfigError
from soma_audit.core.paths import data_path
from soma_audit.core.typed import build
from soma_audit.core.yamlload import Loader

Target = Literal["kubernetes", "openfga", "kafka"]
#: How an existing non-Kubernetes file is merged with what the recipe renders
#: (:mod:`soma_audit.remediation.textmerge`); ``create-only`` writes a missing file only.
MergeStrategy = Literal["fga-model", "fga-tests", "k6-profiles", "create-only"]
#: Predicates a removal rule may use to pick the list items it removes.
Predicate = Literal["wildcard-acl", "unintended-pod-rule"]
_PATH = re.compile(r"^(\*\*|[^.\[\]?]+|\[[^\]]+\])(\.(\*\*|[^.\[\]?]+)|\[[^\]]+\])*\??$")


@dataclass(frozen=True)
class TemplateSpec:
    """One template (under ``manifests/``) and where its output goes in the repository."""

    template: str
    path: str
    #: Render once per element of this list (a context key such as ``services``).
    for_each: str | None = None
    #: How to merge into an existing non-Kubernetes file; without it such a file is kept.
    merge: MergeStrategy | None = None


@dataclass(frozen=True)
class RemovalRule:
    """What a recipe may remove from an existing object, and the check whose evidence
    justifies it (``when``: only the list items this predicate flags)."""

    kind: str
    path: str
    check: str
    reason: str
    when: Predicate | None = None


@dataclass(frozen=True)
class Recipe:
    """A remediation: what it renders and which checks must pass after it is applied."""

    id: str
    title: str
    description: str
    fixes: list[str]
    target: Target
    templates: list[TemplateSpec] = field(default_factory=list)
    #: Name of a registered function in :mod:`soma_audit.remediation.transforms` that
    #: patches objects already in the inventory (hardening, migrations).
    transform: str | None = None
    #: Per kind, the paths of an existing object the recipe may change (``*`` any kind;
    #: ``path?``: only filled in where missing); a kind not listed is only ever created.
    owns: dict[str, list[str]] = field(default_factory=dict)
    #: What it may remove from existing objects, each with its justifying check.
    removes: list[RemovalRule] = field(default_factory=list)

    def owned(self, kind: str) -> list[str]:
        return [*self.owns.get(kind, []), *self.owns.get("*", [])]


def _read(path: Path) -> Recipe:
    try:
        # The C loader when installed: the TUI reads every recipe before its first frame.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path}: invalid YAML: {exc}") from None
    recipe = build(Recipe, data, path.name)
    if recipe.id != path.stem:
        raise ConfigError(f"recipe {path.name}: id {recipe.id!r} must match the file name")
    if not recipe.templates and recipe.transform is None:
        raise ConfigError(f"recipe {path.name}: needs templates or a transform")
    for kind, paths in recipe.owns.items():
        for path_text in paths:
            if not _PATH.match(path_text):
                raise ConfigError(f"recipe {path.name}: owns.{kind}: bad path {path_text!r}")
    for rule in recipe.removes:
        if not _PATH.match(rule.path):
            raise ConfigError(f"recipe {path.name}: removes: bad path {rule.path!r}")
        if rule.check not in recipe.fixes:
            raise ConfigError(f"recipe {path.name}: removes: {rule.check!r} is not one of "
                              "the checks it fixes")
    if not recipe.fixes:
        raise ConfigError(f"recipe {path.name}: fixes is empty (which checks does it repair?)")
    return recipe


def load_recipes(directory: Path | None = None) -> dict[str, Recipe]:
    """Every recipe in ``remediations/`` (or ``directory``), by id."""
    folder = directory or data_path("remediations")
    recipes: dict[str, Recipe] = {}
    for path in sorted(folder.glob("*.yaml")):
        recipe = _read(path)
        recipes[recipe.id] = recipe
    return recipes


def get_recipe(recipe_id: str) -> Recipe:
    """The recipe ``recipe_id``; a ConfigError naming the known ids otherwise."""
    recipes = load_recipes()
    if recipe_id not in recipes:
        known = ", ".join(sorted(recipes))
        raise ConfigError(f"unknown remediation {recipe_id!r}; known: {known}")
    return recipes[recipe_id]
