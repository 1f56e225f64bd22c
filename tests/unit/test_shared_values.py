"""A live scan keeps equal values once (``share_equal_values``): one structure may then
serve many objects, which is only safe because nothing writes to the inventory.

Every check fixture case and the demo are audited twice, as read and with every equal
value shared across the whole inventory: the results must be identical, and the
inventory must be exactly what was loaded once every check has run.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from soma_audit.config import load_config
from soma_audit.kube.inventory import Inventory
from soma_audit.sources import Source, SourceInfo
from soma_audit.sources.cluster import share_equal_values
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import CHECK_CASES, REPO, CheckCase, comparable_outcomes


class Shared:
    """Another source's inventory with every equal value shared, as a live scan keeps it;
    remembers a deep copy of what it handed out."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.info: SourceInfo = inner.info
        self.loaded: list[dict[str, Any]] = []
        self.handed: list[dict[str, Any]] = []

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        inventory = self.inner.load(kinds, status_of)
        table: dict[Any, Any] = {}
        for resource in inventory:
            share_equal_values(resource.body, table)
        self.handed = [r.body for r in inventory]
        self.loaded = copy.deepcopy(self.handed)
        return inventory


@pytest.mark.parametrize("case", CHECK_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sharing_changes_no_result_and_nothing_writes_to_the_inventory(case: Path) -> None:
    audited = CheckCase(case)
    plain = audited.outcomes()
    shared = Shared(audited.source())
    assert audited.outcomes(shared) == plain
    assert shared.handed == shared.loaded


def test_the_whole_demo_with_shared_values() -> None:
    demo = REPO / "demo" / "soma-gitops"
    plain = comparable_outcomes(ManifestsSource(demo, config=load_config()), {}, None)
    shared = Shared(ManifestsSource(demo, config=load_config()))
    assert comparable_outcomes(shared, {}, None) == plain
    assert shared.handed == shared.loaded


def test_equal_values_become_one_object_and_types_stay_apart() -> None:
    table: dict[Any, Any] = {}
    first = {"metadata": {"name": "a", "labels": {"app": "x"}},
             "spec": {"resources": {"cpu": "1"}, "flags": [True, 1, 1.0], "n": 1}}
    second = {"metadata": {"name": "b", "labels": {"app": "x"}},
              "spec": {"resources": {"cpu": "1"}, "flags": [1, 1, 1.0], "n": 1}}
    share_equal_values(first, table)
    share_equal_values(second, table)
    assert first["metadata"]["labels"] is second["metadata"]["labels"]
    assert first["spec"]["resources"] is second["spec"]["resources"]
    assert first["metadata"] is not second["metadata"]  # an object's own, never shared
    assert first["spec"] is not second["spec"]  # [True, 1, 1.0] is not [1, 1, 1.0]
    assert first["spec"]["flags"] == [True, 1, 1.0] and type(second["spec"]["flags"][0]) is int
