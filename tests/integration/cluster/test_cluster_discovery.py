"""Discovery on the real API server: one aggregated answer tells which resources of an
installed group are served, so a kind whose CRD is missing is recorded absent without a
LIST — and the same reason a LIST's 404 gives when the server only names its groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from soma_audit.sources import discovery
from soma_audit.sources.kinds import KINDS, KindInfo
from tests.integration.cluster.kube_helpers import cluster_source

pytestmark = pytest.mark.integration


def _missing_in_served_group(kubeconfig: Path) -> KindInfo:
    """A kind whose group the test server serves without the kind's resource (the testenv
    installs part of Chaos Mesh's CRDs)."""
    served = cluster_source(kubeconfig).served()
    missing = [info for info in KINDS.values()
               if info.group in served.versions and served.locate(info)[0] is None]
    assert missing, "the test server serves every resource of every group it has"
    return missing[0]


def test_aggregated_discovery_names_the_resources_of_each_group_version(
        kube_env: Any) -> None:
    served = cluster_source(kube_env.readonly_kubeconfig).served()
    assert "deployments" in served.resources[("apps", "v1")]
    assert "schedules" in served.resources[("chaos-mesh.org", "v1alpha1")]
    assert served.locate(KINDS["Schedule"]) == ("v1alpha1", "")


def test_a_missing_resource_of_an_installed_group_is_absent_without_a_list(
        kube_env: Any) -> None:
    info = _missing_in_served_group(kube_env.readonly_kubeconfig)
    source = cluster_source(kube_env.readonly_kubeconfig)
    inventory = source.load(frozenset({info.kind}))
    assert inventory.absent == {info.kind: info.not_installed}
    assert source.requests["GET"] == 1  # discovery only


def test_a_server_naming_only_its_groups_gives_the_same_inventory(
        kube_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain list of groups (what a server before 1.26 answers, and what the real
    server answers when not asked for more): the kind is listed, and its 404 gives the
    same absent reason."""
    info = _missing_in_served_group(kube_env.readonly_kubeconfig)
    kinds = frozenset({info.kind, "Schedule", "Namespace"})
    aggregated = cluster_source(kube_env.readonly_kubeconfig)
    expected = aggregated.load(kinds)
    monkeypatch.setattr(discovery, "ACCEPT", "application/json")
    assert cluster_source(kube_env.readonly_kubeconfig).served().resources == {}
    plain = cluster_source(kube_env.readonly_kubeconfig)
    inventory = plain.load(kinds)
    assert inventory.absent == expected.absent == {info.kind: info.not_installed}
    assert [r.ref for r in inventory] == [r.ref for r in expected]
    assert plain.requests["GET"] == aggregated.requests["GET"] + 1
