"""Discovery on the real API server: one aggregated answer tells which resources of an
installed group are served, so a kind whose CRD is missing is recorded absent without a
LIST — and the same reason a LIST's 404 gives when the server only names its groups."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.core.errors import AuditError
from soma_audit.sources import discovery
from soma_audit.sources.cluster import ClusterSource, Timeouts
from soma_audit.sources.kinds import KINDS, KindInfo
from testenv.proc import free_port
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


def test_discovery_asked_ahead_is_the_one_load_uses(kube_env: Any) -> None:
    """prepare() sends discovery on a thread; load() takes that answer (one discovery
    request, not two), gives the same inventory, and returns with the thread ended, so
    that the forked LIST of Pods and ReplicaSets may follow."""
    kinds = frozenset({"Namespace", "Pod", "ReplicaSet", "Schedule"})
    plain = cluster_source(kube_env.readonly_kubeconfig)
    expected = plain.load(kinds)
    source = cluster_source(kube_env.readonly_kubeconfig)
    source.prepare()
    inventory = source.load(kinds)
    assert [r.ref for r in inventory] == [r.ref for r in expected]
    assert inventory.absent == expected.absent
    assert source.requests["GET"] == plain.requests["GET"]
    assert not [t for t in threading.enumerate() if t.name.startswith("soma-discovery")]
    again = source.load(kinds)  # a later scan asks discovery again
    assert source.requests["GET"] == 2 * plain.requests["GET"]
    assert [r.ref for r in again] == [r.ref for r in expected]


def test_discovery_asked_ahead_of_a_server_that_is_not_there_fails_the_scan(
        tmp_path: Path) -> None:
    """The failure of discovery sent ahead reaches load() as discovery's own would."""
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {
            "server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "gone", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}]}))
    source = ClusterSource(str(kubeconfig), timeouts=Timeouts(connect=0.5, read=0.5,
                                                              retries=0))
    source.prepare()
    with pytest.raises(AuditError, match=f"cannot reach the API server at .*:{port}"):
        source.load(frozenset({"Namespace"}))
