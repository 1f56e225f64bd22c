"""Remediation recipes as data: ``remediations/<id>.yaml`` → typed :class:`Recipe`.

Recipes are data so that a reviewer reads what a fix touches (templates, output paths,
the checks it repairs) without reading code; loading is strict so a typo in a recipe is
one clear :class:`ConfigError`, never a half-rendered remediation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from soma_audit.core.errors import ConfigError
from soma_audit.core.paths import data_path
from soma_audit.core.typed import build

Target = Literal["kubernetes", "openfga", "kafka"]


@dataclass(frozen=True)
class TemplateSpec:
    """One template (under ``manifests/``) and where its output goes in the repository."""

    template: str
    path: str
    #: Render once per element of this list (a context key such as ``services``).
    for_each: str | None = None


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


def _read(path: Path) -> Recipe:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path}: invalid YAML: {exc}") from None
    recipe = build(Recipe, data, path.name)
    if recipe.id != path.stem:
        raise ConfigError(f"recipe {path.name}: id {recipe.id!r} must match the file name")
    if not recipe.templates and recipe.transform is None:
        raise ConfigError(f"recipe {path.name}: needs templates or a transform")
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
