"""netpol-services keeps every rule a needed flow depends on: the peers of the intended
flows (services, namespaces with pods, CIDRs with except, the internet, Kafka brokers) and
the flows the manifests imply (an environment URL to OpenFGA, KafkaUsers), rendered from
the same grammar netpol.flows reads."""

from __future__ import annotations

from typing import Any

import yaml

from soma_audit.config import load_config
from soma_audit.kube.inventory import Inventory
from soma_audit.remediation.recipes import load_recipes
from soma_audit.remediation.render import render
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import REPO

DEMO = REPO / "demo" / "soma-gitops"
RECIPE = load_recipes()["netpol-services"]


def _rendered(inventory: Inventory, **config: Any) -> dict[str, dict[str, Any]]:
    files = render(RECIPE, load_config(**config), inventory)
    return {doc["metadata"]["name"]: doc for f in files for doc in yaml.safe_load_all(f.text)}


def _egress(policy: dict[str, Any]) -> list[tuple[Any, list[int]]]:
    return [(rule["to"], [p["port"] for p in rule["ports"]]) for rule in policy["spec"]["egress"]]


def test_the_demo_keeps_its_openfga_internet_and_kafka_egress() -> None:
    policies = _rendered(ManifestsSource(DEMO).load(frozenset()))
    openfga = ([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openfga"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "openfga"}}}], [8080])
    assert openfga in _egress(policies["gateway-api"])  # derived from OPENFGA_API_URL
    internet = ([{"ipBlock": {"cidr": "0.0.0.0/0",
                              "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}], [443])
    assert internet in _egress(policies["llm-hub"])
    assert internet in _egress(policies["tool-service"])
    brokers = ([{"podSelector": {"matchLabels": {"strimzi.io/cluster": "soma-kafka",
                                                 "strimzi.io/kind": "Kafka"}}}], [9093])
    for holder in ("orchestrator", "llm-hub", "analytics-service", "billing-service"):
        assert brokers in _egress(policies[holder]), holder  # each has a KafkaUser
    assert brokers not in _egress(policies["gateway-api"])


def test_every_peer_of_the_grammar_becomes_a_plain_rule() -> None:
    flows = [
        {"from": "ns/monitoring{app.kubernetes.io/name=prometheus}", "to": "api", "port": 9090},
        {"from": "api", "to": "cidr/10.20.0.0/16", "except": ["10.20.99.0/24"], "port": 5432},
        {"from": "api", "to": "external/https"},
        {"from": "api", "to": "kafka/events"},
    ]
    policies = _rendered(Inventory(), services=[{"name": "api", "port": 8080}], flows=flows)
    api = policies["api"]["spec"]
    assert api["ingress"] == [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
        "ports": [{"protocol": "TCP", "port": 9090}]}]
    assert _egress(policies["api"]) == [
        ([{"ipBlock": {"cidr": "10.20.0.0/16", "except": ["10.20.99.0/24"]}}], [5432]),
        ([{"ipBlock": {"cidr": "0.0.0.0/0",
                       "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}], [443]),
        ([{"podSelector": {"matchLabels": {"strimzi.io/cluster": "events",
                                           "strimzi.io/kind": "Kafka"}}}], [9093]),
    ]
