"""Reachability across the namespace boundary: truth tables in the upstream e2e suite's
model, extended to other namespaces and to addresses outside the cluster, and the rule-wise
exposure analysis held to them (every connection the tables allow across the boundary is
one the exposure analysis reports).

The model: the app namespace ``x`` (isolated by a default deny in both directions), a
listed namespace ``y`` and a namespace ``z`` that no flow names; pods a, b, c labelled
``pod=<name>`` with pod IPs in 10.0.0.0/16 and named ports ``serve-<port>-<protocol>``;
two hosts outside the cluster, one public and one in a private range.
"""

from __future__ import annotations

from typing import Any

import pytest

from soma_audit.core.flowpeers import PeerError, parse_peer, representative_addresses
from soma_audit.domain.netpol.policy import (
    EGRESS,
    INGRESS,
    UNLISTED_NAMESPACE,
    Endpoint,
    Exposure,
    allowed,
    outside_exposures,
    ports_within,
    selector_witness,
)
from soma_audit.kube.labels import parse_selector
from tests.unit.test_netpol import ALL, IPS, ns_is, policy, sel

NS_LABELS = {"x": {"ns": "x"}, "y": {"ns": "y"}, "z": {"ns": "z"}}
PUBLIC = Endpoint("ext/public", None, ip="203.0.113.7")
PRIVATE = Endpoint("ext/private", None, ip="10.9.9.9")
EVERYONE = [*ALL, PUBLIC, PRIVATE]
DENY_ALL = policy("x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, "deny")
LISTED = ("y", "z")


def _crossing(policies: list[Any], port: int) -> set[tuple[str, str]]:
    """Allowed connections with exactly one end in x (loopback excluded)."""
    return {
        (src.name, dst.name)
        for src in EVERYONE for dst in EVERYONE
        if src is not dst and (src.namespace == "x") != (dst.namespace == "x")
        and (src.namespace == "x" or dst.namespace == "x")
        and allowed(src, dst, port, "TCP", policies, NS_LABELS).allowed
    }


def _ingress(rule: dict[str, Any], pod: str = "a") -> Any:
    return policy("x", {"podSelector": sel(pod=pod), "policyTypes": ["Ingress"],
                        "ingress": [rule]}, "allow")


def _egress(rule: dict[str, Any], pod: str = "a") -> Any:
    return policy("x", {"podSelector": sel(pod=pod), "policyTypes": ["Egress"],
                        "egress": [rule]}, "allow")


def _all(pods: str, ns: str) -> set[str]:
    return {f"{ns}/{p}" for p in pods}


def _into(sources: set[str], target: str = "x/a") -> set[tuple[str, str]]:
    return {(s, target) for s in sources}


def _from(targets: set[str], source: str = "x/a") -> set[tuple[str, str]]:
    return {(source, t) for t in targets}


#: (case, extra policy, port, the connections across the boundary it allows)
CASES = [
    ("deny-all", None, 80, set()),
    ("ingress-from-every-namespace", _ingress({"from": [{"namespaceSelector": {}}]}), 80,
     _into(_all("abc", "y") | _all("abc", "z"))),
    ("ingress-from-namespace-by-label", _ingress({"from": [{"namespaceSelector": sel(ns="y")}]}),
     80, _into(_all("abc", "y"))),
    ("ingress-namespace-not-in-and-pod", _ingress({"from": [{
        "namespaceSelector": {"matchExpressions": [
            {"key": "ns", "operator": "NotIn", "values": ["y"]}]},
        "podSelector": sel(pod="b")}]}), 80, _into({"z/b"})),
    ("ingress-namespace-or-own-pod", _ingress({"from": [
        {"namespaceSelector": ns_is("y")}, {"podSelector": sel(pod="b")}]}), 80,
     _into(_all("abc", "y"))),
    ("ingress-internet-except-private", _ingress({"from": [{"ipBlock": {
        "cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}), 80, _into({"ext/public"})),
    ("ingress-pod-network-block", _ingress({"from": [{"ipBlock": {"cidr": "10.0.1.0/24"}}]}),
     80, _into(_all("abc", "y"))),
    ("ingress-named-port-from-namespace", _ingress({
        "from": [{"namespaceSelector": ns_is("y")}], "ports": [{"port": "serve-80-tcp"}]}),
     80, _into(_all("abc", "y"))),
    ("ingress-named-port-other-port", _ingress({
        "from": [{"namespaceSelector": ns_is("y")}], "ports": [{"port": "serve-80-tcp"}]}),
     81, set()),
    ("ingress-from-everything-on-one-port", _ingress({"ports": [{"port": 81}]}), 81,
     _into(_all("abc", "y") | _all("abc", "z") | {"ext/public", "ext/private"})),
    ("egress-to-pod-in-namespace", _egress({"to": [
        {"namespaceSelector": sel(ns="y"), "podSelector": sel(pod="a")}]}), 80, _from({"y/a"})),
    ("egress-internet-on-443-at-80", _egress({"to": [{"ipBlock": {
        "cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}), 80, set()),
    ("egress-internet-on-443", _egress({"to": [{"ipBlock": {
        "cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}), 443,
     _from({"ext/public"})),
    ("egress-port-range-any-namespace", _egress({"to": [{"namespaceSelector": {}}],
                                                 "ports": [{"port": 80, "endPort": 81}]}), 81,
     _from(_all("abc", "y") | _all("abc", "z"))),
    ("egress-port-range-beyond-end", _egress({"to": [{"namespaceSelector": {}}],
                                              "ports": [{"port": 80, "endPort": 81}]}), 82,
     set()),
    ("egress-block-except-one-pod", _egress({"to": [{"ipBlock": {
        "cidr": "10.0.0.0/16", "except": [f"{IPS['y/b']}/32"]}}]}), 80,
     _from(_all("ac", "y") | _all("abc", "z"))),
]


@pytest.mark.parametrize(("extra", "port", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_truth_table_across_the_namespace_boundary(extra: Any, port: int,
                                                   expected: set[tuple[str, str]]) -> None:
    policies = [DENY_ALL, *([extra] if extra else [])]
    assert _crossing(policies, port) == expected


def _covers(exposure: Exposure, outside: Endpoint, port: int, destination: Endpoint) -> bool:
    if exposure.ports and not any(p.matches(port, "TCP", destination) for p in exposure.ports):
        return False
    if exposure.reach == "everything":
        return True
    if exposure.reach == "address":
        return exposure.block is not None and exposure.block.contains(outside.ip)
    pods_ok = exposure.pods is None or exposure.pods.matches(outside.labels)
    return exposure.reach == "namespace" and exposure.namespace == outside.namespace and pods_ok


@pytest.mark.parametrize(("extra", "port", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exposures_report_every_connection_across_the_boundary(
        extra: Any, port: int, expected: set[tuple[str, str]]) -> None:
    """Differential: the rule-wise analysis against the pairwise truth table."""
    policies = [DENY_ALL, *([extra] if extra else [])]
    by_name = {e.name: e for e in EVERYONE}
    for src_name, dst_name in expected:
        src, dst = by_name[src_name], by_name[dst_name]
        ingress = dst.namespace == "x"
        inside, outside = (dst, src) if ingress else (src, dst)
        found = outside_exposures(inside, INGRESS if ingress else EGRESS, policies, LISTED,
                                  NS_LABELS)
        assert any(_covers(e, outside, port, dst) for e in found), (src_name, dst_name, found)


def test_exposures_name_rule_and_origin() -> None:
    wide = policy("x", {"podSelector": sel(pod="a"), "ingress": [
        {"from": [{"podSelector": {}}]}, {"from": [{"namespaceSelector": {}}]}]}, "wide")
    wide = type(wide)(**{**wide.__dict__, "origin": "k8s/net.yaml:12"})
    found = outside_exposures(ALL[0], INGRESS, [wide], ["y"], NS_LABELS)
    assert [(e.reach, e.namespace, e.rule) for e in found] == [
        ("unlisted", None, 1), ("namespace", "y", 1)]
    assert found[0].where() == "spec.ingress[1] of NetworkPolicy/x/wide (k8s/net.yaml:12)"
    assert found[0].where("k8s/net.yaml:20") == ("spec.ingress[1] of NetworkPolicy/x/wide "
                                                 "(k8s/net.yaml:20)")
    assert found[0].describe_peer() == "any pod in any other namespace (one no flow names)"
    assert found[1].describe_ports() == "all ports"


def test_a_pod_no_policy_isolates_is_exposed_to_everything() -> None:
    (found,) = outside_exposures(ALL[0], EGRESS, [], LISTED, NS_LABELS)
    assert (found.reach, found.rule, found.where()) == ("everything", -1, "no policy")


def test_unlisted_namespace_matches_only_selectors_that_accept_an_unknown_name() -> None:
    by_name = policy("x", {"podSelector": {}, "ingress": [
        {"from": [{"namespaceSelector": ns_is("y")}]}]})
    not_in = policy("x", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                              "values": ["y"]}]}}]}]})
    reach = {e.reach for e in outside_exposures(ALL[0], INGRESS, [by_name], LISTED, NS_LABELS)}
    assert reach == {"namespace"}
    reach = {e.reach for e in outside_exposures(ALL[0], INGRESS, [not_in], LISTED, NS_LABELS)}
    assert "unlisted" in reach
    assert UNLISTED_NAMESPACE not in LISTED


@pytest.mark.parametrize(("selector", "witness"), [
    ({}, {}),
    ({"matchLabels": {"app": "a"}}, {"app": "a"}),
    ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["b", "a"]}]},
     {"app": "a"}),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {"app": "present"}),
    ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {}),
    ({"matchLabels": {"app": "a"},
      "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, None),
    ({"matchLabels": {"app": "a"},
      "matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, None),
])
def test_selector_witness(selector: dict[str, Any], witness: dict[str, str] | None) -> None:
    assert selector_witness(parse_selector(selector, "s", [])) == witness


def test_ports_within() -> None:
    rules = policy("x", {"podSelector": {}, "ingress": [{"ports": [
        {"port": 80}, {"port": "serve-81-tcp"}]}]}).ingress[0].ports
    assert ports_within(rules, {80, 81}, ALL[0])
    assert not ports_within(rules, {80}, ALL[0])
    assert not ports_within(rules, {80, 81}, None)  # a named port resolves on the pod only
    wide = policy("x", {"podSelector": {}, "ingress": [{"ports": [
        {"port": 1, "endPort": 65535}]}]}).ingress[0].ports
    assert not ports_within(wide, {443}, None)
    assert not ports_within((), {443}, None)


@pytest.mark.parametrize(("text", "kind", "name"), [
    ("gateway-api", "service", "gateway-api"),
    ("ns/monitoring", "namespace", "monitoring"),
    ("ns/monitoring{app.kubernetes.io/name=prometheus}", "namespace", "monitoring"),
    ("cidr/10.20.0.0/16", "cidr", ""),
    ("kafka/soma-kafka", "kafka", "soma-kafka"),
    ("external/https", "external", ""),
])
def test_flow_peer_grammar(text: str, kind: str, name: str) -> None:
    peer = parse_peer(text)
    assert (peer.kind, peer.name) == (kind, name)


@pytest.mark.parametrize("text", ["ns/", "ns/Bad", "ns/x{app}", "cidr/10.0.0.300/8",
                                  "kafka/", "external/ftp", "a/b", ""])
def test_flow_peer_grammar_rejects(text: str) -> None:
    with pytest.raises(PeerError):
        parse_peer(text)


def test_cidr_peer_except_and_coverage() -> None:
    import ipaddress

    peer = parse_peer("cidr/10.20.0.0/16", ["10.20.99.0/24"])
    assert peer.covers(ipaddress.ip_network("10.20.1.0/24"))
    assert not peer.covers(ipaddress.ip_network("10.20.0.0/16"))
    assert not peer.covers(ipaddress.ip_network("10.0.0.0/8"))
    assert representative_addresses(peer) == ["10.20.0.1"]
    with pytest.raises(PeerError, match="not inside"):
        parse_peer("cidr/10.20.0.0/16", ["10.30.0.0/24"])
    with pytest.raises(PeerError, match="cidr/<network> peer only"):
        parse_peer("ns/x", ["10.0.0.0/8"])
    carved = parse_peer("cidr/10.0.0.0/24", ["10.0.0.0/25"])
    assert representative_addresses(carved) == ["10.0.0.128"]
    external = parse_peer("external/https")
    assert external.default_port() == 443
    assert external.covers(ipaddress.ip_network("8.0.0.0/8"))
    assert not external.covers(ipaddress.ip_network("10.1.0.0/16"))


def test_exposure_evidence_names_the_rule_line_in_its_file() -> None:
    """The evidence points at the rule itself (file:line of ``- from:``), not only at the
    policy's document."""
    import yaml

    from tests.helpers import FIXTURES, run_check

    case = FIXTURES / "checks" / "netpol.flows" / "fail-ingress-from-any-namespace"
    result = run_check("netpol.flows", case,
                       yaml.safe_load((case / "expect.yaml").read_text())["config"])
    lines = (case / "network.yaml").read_text().splitlines()
    messages = [e.message for e in result.evidence]
    assert any("spec.ingress[0] of NetworkPolicy/soma-agent-hub/web (network.yaml:48)" in m
               for m in messages), messages
    assert lines[47].strip() == "- from:"
    assert lines[48].strip() == "- namespaceSelector: {}"


def _flows_evidence(policy_rule: dict[str, Any], namespaces: dict[str, dict[str, str]]
                    ) -> list[str]:
    from soma_audit.config import load_config
    from soma_audit.kube.inventory import Inventory, Resource
    from soma_audit.probes import ProbeContext, load_probes
    from soma_audit.services.tools import ToolRunner
    from soma_audit.sources import SourceInfo

    bodies: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}}
        for n, labels in namespaces.items()]
    bodies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                            "ingress": [policy_rule]}})
    config = load_config(namespace="shop", services=[{"name": "web", "port": 80}], flows=[])
    ctx = ProbeContext(Inventory.of(Resource(b, "cluster") for b in bodies), config,
                       SourceInfo("cluster", "test"), ToolRunner(config.tools))
    outcome = load_probes()["netpol.flows"].fn(ctx, {})
    return [e.message for e in outcome.evidence]


def test_many_namespaces_make_one_finding_per_rule() -> None:
    teams = {f"team-{i}": {"team": "x"} for i in range(8)}
    messages = _flows_evidence({"from": [{"namespaceSelector": sel(team="x")}]}, teams)
    (finding,) = [m for m in messages if "team-" in m]
    assert ("web is reachable from any pod in namespaces team-0, team-1, team-2, team-3, "
            "team-4 and 3 more on all ports — spec.ingress[0] of NetworkPolicy/shop/web") \
        in finding


def test_namespaces_no_flow_names_fold_into_any_other_namespace() -> None:
    teams = {f"team-{i}": {} for i in range(3)}
    messages = _flows_evidence({"from": [{"namespaceSelector": {}}]}, teams)
    assert any("any pod in any other namespace" in m for m in messages)
    assert not any("team-" in m for m in messages)
