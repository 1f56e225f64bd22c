"""A live scan keeps an object's ``status`` only for the kinds of checks that require
"status" (``kinds_read``): the other kinds' status is dropped as it is decoded.

That is only truthful if no other check reads a status. Every check fixture case is
audited twice, as read and with every status the engine did not ask for removed: the
results must be identical; and audited once more with every read of such an object's
status recorded: there must be none. The live source's dropping is tested against the real API
server (tests/integration/cluster/test_cluster_status_kept.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from soma_audit.catalog.checks import load_catalog
from soma_audit.engine.scan import kinds_read
from soma_audit.kube.inventory import Inventory
from soma_audit.probes import load_probes
from soma_audit.sources import Source, SourceInfo
from tests.helpers import CHECK_CASES, CheckCase


class StatusOnlyWhereRead:
    """Another source's inventory without the status of kinds the engine did not name in
    ``status_of`` (as a live scan keeps it); counts the statuses it removed."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.info: SourceInfo = inner.info
        self.removed = 0

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        inventory = self.inner.load(kinds)
        assert status_of is not None, "the engine names the kinds whose status it reads"
        for resource in inventory:
            if resource.kind not in status_of and "status" in resource.body:
                del resource.body["status"]
                self.removed += 1
        return inventory


@pytest.mark.parametrize("case", CHECK_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_dropping_unread_status_changes_no_result(case: Path) -> None:
    audited = CheckCase(case)
    assert audited.outcomes(StatusOnlyWhereRead(audited.source())) == audited.outcomes()


class StatusWatched(dict):  # type: ignore[type-arg]
    """An object's body that records every read of its ``status`` key."""

    reads: ClassVar[list[str]] = []

    def _saw(self, key: object) -> None:
        if key == "status":
            self.reads.append(str(self.get("kind")))

    def __getitem__(self, key: object) -> Any:
        self._saw(key)
        return super().__getitem__(key)

    def get(self, key: object, default: Any = None) -> Any:
        self._saw(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._saw(key)
        return super().__contains__(key)


class WatchedSource(StatusOnlyWhereRead):
    """Bodies of the kinds whose status the engine did not ask for are watched."""

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        inventory = super().load(kinds, status_of)
        for resource in inventory:
            if resource.kind not in (status_of or ()):
                # Resource is frozen; only this test swaps the body for a watched copy.
                object.__setattr__(resource, "body", StatusWatched(resource.body))
        return inventory


@pytest.mark.parametrize("case", CHECK_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_check_reads_a_status_it_did_not_ask_for(case: Path) -> None:
    """Stronger than comparing results (few fixtures carry status): any read of the
    ``status`` key of an object whose status the engine let go is caught."""
    audited = CheckCase(case)
    StatusWatched.reads.clear()
    audited.outcomes(WatchedSource(audited.source()))
    assert StatusWatched.reads == []


def test_a_read_status_is_caught() -> None:
    body = StatusWatched({"kind": "Pod", "status": {"phase": "Running"}})
    StatusWatched.reads.clear()
    assert body.get("status") and "status" in body and body["status"]
    assert StatusWatched.reads == ["Pod", "Pod", "Pod"]
    StatusWatched.reads.clear()


def test_status_is_kept_for_the_kinds_of_status_checks_only() -> None:
    probes = load_probes()
    checks = load_catalog()
    kinds, status_of = kinds_read([c for c in checks if not c.manual], probes)
    assert {"Application", "Schedule"} <= status_of <= kinds
    assert not {"Pod", "ReplicaSet", "Deployment", "StatefulSet"} & status_of
    without = [c for c in checks if not c.manual and "status" not in c.requires]
    assert kinds_read(without, probes)[1] == frozenset()
