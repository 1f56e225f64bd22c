"""A live scan lists its largest kinds (``FORKED_KINDS``) in a forked child on a second
core: on the real API server, the inventory, its order and the requests sent are those of
a scan in one process — and a child that dies leaves its kinds to the parent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from soma_audit.core import forking
from soma_audit.sources import cluster
from soma_audit.sources.kinds import KINDS
from tests.integration.cluster.kube_helpers import cluster_source

pytestmark = pytest.mark.integration

#: Every kind soma-audit knows, a few Pods among them on the shared test server.
ALL_KINDS = frozenset(KINDS)


def _listed(kubeconfig: Path) -> tuple[list[tuple[str, Any]], dict[str, int]]:
    source = cluster_source(kubeconfig)
    inventory = source.load(ALL_KINDS)
    objects = [(r.ref, r.body) for r in inventory]
    reasons = {**inventory.absent, **inventory.unavailable}
    return objects + sorted(reasons.items()), dict(source.requests)


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the children the source starts (the test process has one thread: it forks)."""
    started: list[int] = []
    start = forking.ForkedCall.start

    def counted(work: Any) -> Any:
        call = start(work)
        started.append(call._pid)
        return call

    monkeypatch.setattr(cluster.ForkedCall, "start", counted)
    monkeypatch.setattr(cluster, "can_fork", lambda: True)
    return started


def test_forked_listing_gives_the_inventory_of_one_process(
        kube_env: Any, forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    forked, forked_requests = _listed(kube_env.readonly_kubeconfig)
    assert len(forks) == 1
    assert any(ref.startswith("Pod/") for ref, _ in forked)
    monkeypatch.setattr(cluster, "can_fork", lambda: False)
    alone, alone_requests = _listed(kube_env.readonly_kubeconfig)
    assert len(forks) == 1
    assert [ref for ref, _ in forked] == [ref for ref, _ in alone]
    assert forked == alone
    assert forked_requests == alone_requests


def test_the_kinds_of_a_child_that_dies_are_listed_by_the_parent(
        kube_env: Any, forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    def dies(self: Any, jobs: Any) -> Any:
        os._exit(9)

    monkeypatch.setattr(cluster.ClusterSource, "_fetched_for_parent", dies)
    died, _ = _listed(kube_env.readonly_kubeconfig)
    assert len(forks) == 1
    monkeypatch.setattr(cluster, "can_fork", lambda: False)
    alone, _ = _listed(kube_env.readonly_kubeconfig)
    assert died == alone
