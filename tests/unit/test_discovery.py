"""Reading ``/apis``: which version of a kind to list, or why it is not installed.

The real server's answers are exercised in tests/integration/cluster/test_cluster_discovery.py;
these are the shapes it cannot be made to give (an older server's beta answer, an
aggregated API marked stale, hostile entries)."""

from __future__ import annotations

from typing import Any

import pytest

from soma_audit.sources import discovery
from soma_audit.sources.kinds import KINDS


def _aggregated(*groups: tuple[str, list[dict[str, Any]]],
                api_version: str = "apidiscovery.k8s.io/v2") -> dict[str, Any]:
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version,
            "items": [{"metadata": {"name": name}, "versions": versions}
                      for name, versions in groups]}


def _version(version: str, *resources: str, freshness: str = "Current") -> dict[str, Any]:
    return {"version": version, "freshness": freshness,
            "resources": [{"resource": r} for r in resources]}


CHAOS = ("chaos-mesh.org", [_version("v1alpha1", "schedules", "podchaos")])


@pytest.mark.parametrize("api_version", ["apidiscovery.k8s.io/v2",
                                         "apidiscovery.k8s.io/v2beta1"])
def test_a_resource_missing_from_a_served_group_is_not_installed(api_version: str) -> None:
    served = discovery.parse(_aggregated(CHAOS, api_version=api_version))
    assert served.locate(KINDS["Schedule"]) == ("v1alpha1", "")
    assert served.locate(KINDS["AWSChaos"]) == (
        None, "Chaos Mesh not installed (awschaos.chaos-mesh.org)")
    assert served.locate(KINDS["Application"]) == (
        None, "Argo CD not installed (no argoproj.io API)")


def test_built_in_kinds_are_always_listed() -> None:
    served = discovery.parse(_aggregated())
    assert served.locate(KINDS["Pod"]) == ("v1", "")
    # apps is a group like any other
    assert served.locate(KINDS["Deployment"]) == (
        None, "Deployment not installed (no apps API)")


def test_the_first_preferred_version_serving_the_resource_is_taken() -> None:
    strimzi = ("kafka.strimzi.io", [_version("v1", "kafkausers"),
                                    _version("v1beta2", "kafkatopics", "kafkausers")])
    served = discovery.parse(_aggregated(strimzi))
    assert served.locate(KINDS["KafkaUser"]) == ("v1", "")
    assert served.locate(KINDS["KafkaTopic"]) == ("v1beta2", "")


def test_a_stale_version_is_listed_and_its_answer_decides() -> None:
    stale = ("chaos-mesh.org", [_version("v1alpha1", "schedules", freshness="Stale")])
    assert discovery.parse(_aggregated(stale)).locate(KINDS["AWSChaos"]) == ("v1alpha1", "")


def test_the_plain_list_of_groups_names_versions_only() -> None:
    served = discovery.parse({"kind": "APIGroupList", "groups": [
        {"name": "chaos-mesh.org", "versions": [{"version": "v1alpha1"}]}]})
    assert served.resources == {}
    assert served.locate(KINDS["AWSChaos"]) == ("v1alpha1", "")
    assert served.locate(KINDS["Application"])[0] is None


@pytest.mark.parametrize("document", [
    {"kind": "APIGroupDiscoveryList", "items": "no"},
    {"kind": "APIGroupDiscoveryList", "items": [7, {"metadata": 3, "versions": [None]},
                                                {"versions": "x"}]},
    {"kind": "APIGroupList", "groups": [{"name": 5}, "x", {"versions": [1]}]},
    {},
])
def test_entries_of_the_wrong_shape_are_skipped(document: dict[str, Any]) -> None:
    served = discovery.parse(document)
    assert served.locate(KINDS["Schedule"])[0] is None
    assert served.locate(KINDS["Namespace"]) == ("v1", "")


def test_a_resource_entry_of_the_wrong_shape_is_not_a_resource() -> None:
    group = ("chaos-mesh.org", [{"version": "v1alpha1",
                                 "resources": [None, {"resource": "schedules"}, "podchaos"]}])
    served = discovery.parse(_aggregated(group))
    assert served.resources[("chaos-mesh.org", "v1alpha1")] == frozenset({"schedules"})


def test_a_kind_is_listed_at_its_group_versions_collection() -> None:
    assert KINDS["Pod"].api_version("v1") == "v1"
    assert KINDS["KafkaTopic"].api_version("v1beta2") == "kafka.strimzi.io/v1beta2"
    assert KINDS["Pod"].collection("v1") == "/api/v1/pods"
    assert KINDS["KafkaTopic"].collection("v1beta2") == "/apis/kafka.strimzi.io/v1beta2/kafkatopics"
