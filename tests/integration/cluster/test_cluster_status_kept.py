"""On the real API server, a live scan keeps the ``status`` of the kinds it is asked to
(those of checks that require "status") and drops every other kind's as it decodes them,
in this process and in the forked child that lists the Pods alike; without a list of
kinds, every status is kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from soma_audit.sources import cluster
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    cluster_source,
    create,
    namespace,
    restricted_pod,
    set_status,
)

pytestmark = pytest.mark.integration

KINDS = frozenset({"Pod", "Application", "ConfigMap"})


@pytest.fixture
def objects(kube: AdminKube, unique_name: Callable[[str], str]) -> str:
    """A namespace holding a Pod and an Application, each with a status."""
    ns = namespace(kube, unique_name("status-kept"))
    pod = create(kube, restricted_pod("web") | {"metadata": {"name": "web", "namespace": ns}})
    set_status(kube, pod, {"phase": "Running", "podIP": "10.1.2.3"})
    app = create(kube, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"project": "default",
                 "source": {"repoURL": "https://git.example/soma.git", "path": "k8s/web"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": ns}}})
    set_status(kube, app, {"health": {"status": "Healthy"}})
    return ns


def _bodies(kube_env: Any, ns: str, status_of: frozenset[str] | None) -> dict[str, Any]:
    inventory = cluster_source(kube_env.admin_kubeconfig).load(KINDS, status_of)
    return {r.kind: r.body for r in inventory if r.namespace == ns}


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "one-process"])
def test_only_the_named_kinds_keep_their_status(
        kube_env: Any, objects: str, forked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "can_fork", lambda: forked)
    bodies = _bodies(kube_env, objects, frozenset({"Application"}))
    assert bodies["Application"]["status"] == {"health": {"status": "Healthy"}}
    assert "status" not in bodies["Pod"]
    assert bodies["Pod"]["spec"]["containers"][0]["name"] == "app"  # the rest is there


def test_without_a_list_every_status_is_kept(kube_env: Any, objects: str) -> None:
    bodies = _bodies(kube_env, objects, None)
    assert bodies["Pod"]["status"]["podIP"] == "10.1.2.3"
    assert bodies["Application"]["status"]["health"] == {"status": "Healthy"}
