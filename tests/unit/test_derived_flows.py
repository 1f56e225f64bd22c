"""Flows the manifests imply: environment addresses and KafkaUsers
(soma_audit.domain.netpol.derived)."""

from __future__ import annotations

from typing import Any

import pytest

from soma_audit.config import load_config
from soma_audit.domain.netpol.derived import _addresses, derived_flows
from soma_audit.domain.netpol.policy import locate_services
from soma_audit.kube.inventory import Inventory, Resource

SERVICES = [{"name": "web", "port": 8080}, {"name": "api", "port": 9000}]


def _deployment(name: str, env: list[dict[str, Any]], ns: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": {
                "containers": [{"name": name, "image": "x", "env": env}]}}}}


def _derived(*bodies: dict[str, Any]) -> dict[tuple[str, str, int | None], str]:
    config = load_config(namespace="shop", services=SERVICES, flows=[])
    inventory = Inventory.of(Resource(b, "f.yaml:1") for b in bodies)
    located = locate_services(inventory, config)
    return {(d.flow.source, d.flow.to, d.flow.port): d.why
            for d in derived_flows(config, inventory, located)}


@pytest.mark.parametrize(("value", "found"), [
    ("http://openfga.openfga.svc:8080", [("openfga.openfga.svc", 8080)]),
    ("https://api.shop.svc.cluster.local/v1", [("api.shop.svc.cluster.local", 443)]),
    ("api:9000", [("api", 9000)]),
    ("kafka-a:9093,kafka-b:9093", [("kafka-a", 9093), ("kafka-b", 9093)]),
    ("grpc://user:secret@api:9000", [("api", 9000)]),
    ("info", []),
    ("api", []),
    ("ftp://files", []),
    ("http://api:99999", []),
])
def test_addresses_in_an_environment_value(value: str, found: list[tuple[str, int]]) -> None:
    assert _addresses(value) == found


def test_env_to_a_configured_service_in_its_namespace() -> None:
    flows = _derived(_deployment("web", [{"name": "API_URL", "value": "http://api:9000"}]),
                     _deployment("api", []))
    assert flows == {("web", "api", None): "env API_URL=http://api:9000 points at api:9000"}


def test_env_to_a_known_kubernetes_service_uses_its_selector_and_target_port() -> None:
    openfga = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "openfga", "namespace": "openfga"},
               "spec": {"selector": {"app.kubernetes.io/name": "openfga"},
                        "ports": [{"port": 8080, "targetPort": 18080}]}}
    flows = _derived(_deployment("web", [
        {"name": "OPENFGA_API_URL", "value": "http://openfga.openfga.svc:8080"}]), openfga)
    assert list(flows) == [("web", "ns/openfga{app.kubernetes.io/name=openfga}", 18080)]


def test_env_to_an_unknown_service_needs_some_pod_of_its_namespace() -> None:
    config = load_config(namespace="shop", services=SERVICES, flows=[])
    inventory = Inventory.of([Resource(_deployment("web", [
        {"name": "OPENFGA_API_URL", "value": "http://openfga.openfga.svc:8080"}]), "f:1")])
    (found,) = derived_flows(config, inventory, locate_services(inventory, config))
    assert (found.flow.to, found.flow.port, found.any_pod) == ("ns/openfga", 8080, True)


def test_secrets_external_hosts_and_self_are_not_flows() -> None:
    flows = _derived(_deployment("web", [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "PROVIDER", "value": "https://api.openai.com/v1"},
        {"name": "SELF", "value": "http://web:8080"},
    ]))
    assert flows == {}


def test_kafka_user_and_bootstrap_address_lead_to_the_brokers() -> None:
    user = {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
            "metadata": {"name": "api", "namespace": "soma-agent-hub",
                         "labels": {"strimzi.io/cluster": "events"}}, "spec": {}}
    flows = _derived(_deployment("api", []), user, _deployment("web", [
        {"name": "BOOTSTRAP", "value": "soma-kafka-kafka-bootstrap.soma-agent-hub.svc:9093"}]))
    assert flows == {
        ("api", "kafka/events", None): "KafkaUser api of Kafka cluster events",
        ("web", "kafka/soma-kafka", 9093):
            "env BOOTSTRAP=soma-kafka-kafka-bootstrap.soma-agent-hub.svc:9093 points at "
            "soma-kafka-kafka-bootstrap.soma-agent-hub.svc:9093",
    }


def test_a_cluster_label_that_names_no_cluster_implies_no_flow() -> None:
    """Found by the fuzzer: ``strimzi.io/cluster: ":"`` was an internal error of
    netpol.flows; Strimzi picks no such user up, so it implies nothing."""
    user = {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
            "metadata": {"name": "api", "namespace": "soma-agent-hub",
                         "labels": {"strimzi.io/cluster": ":"}}, "spec": {}}
    assert _derived(_deployment("api", []), user) == {}
