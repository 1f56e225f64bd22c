"""NetworkPolicy evaluator: truth tables after the upstream e2e suite, parsing, topology.

The truth tables use the e2e suite's model (test/e2e/network/netpol in kubernetes):
namespaces x, y, z; pods a, b, c labelled ``pod=<name>``; ports 80 and 81 served on TCP,
UDP and SCTP under named ports ``serve-<port>-<protocol>``. Each case starts from "all
connected" and lists what the policies deny. Loopback (a pod to itself) is ignored, as
upstream does.
"""

from __future__ import annotations

from typing import Any

import pytest

from soma_audit.config import load_config
from soma_audit.domain.netpol.policy import (
    EGRESS,
    INGRESS,
    Endpoint,
    Policy,
    allowed,
    app_namespaces,
    dns_endpoints,
    locate_services,
    namespace_labels,
    parse_policy,
    reachability_matrix,
)
from soma_audit.kube.inventory import Inventory, Resource

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
IPS = {f"{ns}/{pod}": f"10.0.{i}.{j + 10}" for i, ns in enumerate(NAMESPACES)
       for j, pod in enumerate(PODS)}


def _pod(ns: str, name: str) -> Endpoint:
    ports = {f"serve-{p}-{proto.lower()}": (p, proto)
             for p in (80, 81) for proto in ("TCP", "UDP", "SCTP")}
    return Endpoint(f"{ns}/{name}", ns, {"pod": name}, ports, ip=IPS[f"{ns}/{name}"])


ALL = [_pod(ns, name) for ns in NAMESPACES for name in PODS]


def policy(ns: str, spec: dict[str, Any], name: str = "p") -> Policy:
    parsed = parse_policy(
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": name, "namespace": ns}, "spec": spec},
        f"NetworkPolicy/{ns}/{name}",
    )
    assert not parsed.problems, parsed.problems
    return parsed


def denied(policies: list[Policy], port: int = 80, protocol: str = "TCP",
           labels: dict[str, dict[str, str]] | None = None) -> set[tuple[str, str]]:
    """The (source, destination) pairs the policies deny, loopback excluded."""
    return {
        (src.name, dst.name)
        for src in ALL for dst in ALL
        if src is not dst
        and not allowed(src, dst, port, protocol, policies, labels or {}).allowed
    }


def pairs(sources: str | list[str], destinations: str | list[str]) -> set[tuple[str, str]]:
    """Pairs from pattern lists: "x/a" one pod, "x/*" a namespace, "*" every pod."""

    def expand(patterns: str | list[str]) -> list[str]:
        patterns = [patterns] if isinstance(patterns, str) else patterns
        names = [p.name for p in ALL]
        out = []
        for pattern in patterns:
            if pattern == "*":
                out += names
            elif pattern.endswith("/*"):
                out += [n for n in names if n.startswith(pattern[:-1])]
            else:
                out.append(pattern)
        return out

    return {(s, d) for s in expand(sources) for d in expand(destinations) if s != d}


POD = {"pod": "a"}


def sel(**labels: str) -> dict[str, Any]:
    return {"matchLabels": labels}


def ns_is(*names: str) -> dict[str, Any]:
    return {"matchLabels": {"kubernetes.io/metadata.name": names[0]}} if len(names) == 1 else {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                              "values": list(names)}]}


# ------------------------------------------------------------------- truth tables


def test_no_policies_allow_everything() -> None:
    assert denied([]) == set()


def test_default_deny_ingress() -> None:
    assert denied([policy("x", {"podSelector": {}, "policyTypes": ["Ingress"]})]) == pairs(
        "*", "x/*")


def test_default_deny_all() -> None:
    deny_all = policy("x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    assert denied([deny_all]) == pairs("*", "x/*") | pairs("x/*", "*")


def test_allow_from_pod_in_own_namespace() -> None:
    p = policy("x", {"podSelector": sel(pod="a"),
                     "ingress": [{"from": [{"podSelector": sel(pod="b")}]}]})
    assert denied([p]) == pairs("*", "x/a") - {("x/b", "x/a")}


def test_allow_ingress_for_a_target_over_namespace_deny() -> None:
    deny = policy("x", {"podSelector": {}, "policyTypes": ["Ingress"]}, "deny")
    allow = policy("x", {"podSelector": sel(pod="a"), "ingress": [
        {"from": [{"podSelector": {}, "namespaceSelector": {}}]}]}, "allow")
    assert denied([deny, allow]) == pairs("*", ["x/b", "x/c"])


def test_allow_from_all_namespaces() -> None:
    p = policy("x", {"podSelector": sel(pod="a"),
                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {}}}]}]})
    assert denied([p]) == set()


def test_allow_only_from_other_namespace_by_metadata_name() -> None:
    p = policy("x", {"podSelector": sel(pod="a"),
                     "ingress": [{"from": [{"namespaceSelector": ns_is("y")}]}]})
    assert denied([p]) == pairs(["x/*", "z/*"], "x/a")


def test_pod_selector_match_expressions() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [{"podSelector": {
        "matchExpressions": [{"key": "pod", "operator": "In", "values": ["b"]}]}}]}]})
    assert denied([p]) == pairs("*", "x/a") - {("x/b", "x/a")}


def test_namespace_selector_match_expressions() -> None:
    p = policy("x", {"podSelector": sel(pod="a"),
                     "ingress": [{"from": [{"namespaceSelector": ns_is("y", "y")}]}]})
    assert denied([p]) == pairs(["x/*", "z/*"], "x/a")


NOT_X = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                               "values": ["x"]}]}


def test_peers_are_ored() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [
        {"namespaceSelector": NOT_X}, {"podSelector": sel(pod="b")}]}]})
    assert denied([p]) == {("x/c", "x/a")}


def test_selectors_in_one_peer_are_anded() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [
        {"namespaceSelector": NOT_X, "podSelector": sel(pod="b")}]}]})
    assert denied([p]) == pairs("*", "x/a") - {("y/b", "x/a"), ("z/b", "x/a")}


def test_multiple_pod_and_namespace_selectors() -> None:
    in_bc = {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "c"]}]}
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [
        {"namespaceSelector": NOT_X, "podSelector": in_bc}]}]})
    assert denied([p]) == pairs(["x/*", "y/a", "z/a"], "x/a")


def test_any_of_several_pod_selectors() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{"from": [
        {"podSelector": sel(pod="b")}, {"podSelector": sel(pod="c")}]}]})
    assert denied([p]) == pairs("*", "x/a") - {("x/b", "x/a"), ("x/c", "x/a")}


def test_ports_restrict_and_stacked_policies_add_up() -> None:
    on_81 = policy("x", {"podSelector": sel(pod="a"), "ingress": [{
        "from": [{"namespaceSelector": ns_is("y")}],
        "ports": [{"port": 81, "protocol": "TCP"}]}]}, "p81")
    assert denied([on_81], 81) == pairs(["x/*", "z/*"], "x/a")
    assert denied([on_81], 80) == pairs("*", "x/a")
    on_80 = policy("x", {"podSelector": sel(pod="a"), "ingress": [{
        "from": [{"namespaceSelector": ns_is("y")}], "ports": [{"port": 80}]}]}, "p80")
    assert denied([on_81, on_80], 80) == pairs(["x/*", "z/*"], "x/a")


def test_allow_all_policy() -> None:
    p = policy("x", {"podSelector": {}, "ingress": [{}]})
    assert denied([p], 80) == denied([p], 81) == set()


def test_named_port_ingress() -> None:
    p = policy("x", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]})
    assert denied([p], 81) == set()
    assert denied([p], 80) == pairs("*", "x/*")


def test_named_port_from_namespace() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{
        "from": [{"namespaceSelector": ns_is("y")}],
        "ports": [{"port": "serve-80-tcp", "protocol": "TCP"}]}]})
    assert denied([p], 80) == pairs(["x/*", "z/*"], "x/a")
    assert denied([p], 81) == pairs("*", "x/a")


def test_named_port_egress_resolves_on_destination() -> None:
    p = policy("x", {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{"ports": [{"port": "serve-80-tcp"}]}]})
    assert denied([p], 80) == set()
    assert denied([p], 81) == pairs("x/*", "*")


def test_named_port_needs_matching_protocol() -> None:
    p = policy("x", {"podSelector": {}, "ingress": [{"ports": [{"port": "serve-80-udp"}]}]})
    assert denied([p], 80, "TCP") == pairs("*", "x/*")  # protocol defaults to TCP
    assert denied([p], 80, "UDP") == pairs("*", "x/*")  # and the rule says TCP
    udp = policy("x", {"podSelector": {}, "ingress": [
        {"ports": [{"port": "serve-80-udp", "protocol": "UDP"}]}]})
    assert denied([udp], 80, "UDP") == set()


def test_deny_ingress_from_other_namespaces() -> None:
    p = policy("x", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    assert denied([p]) == pairs(["y/*", "z/*"], "x/*")


def test_deny_egress_of_one_pod() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"]})
    assert denied([p]) == pairs("x/a", "*")


def test_ingress_and_egress_together() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "policyTypes": ["Egress", "Ingress"],
                     "ingress": [{"from": [{"podSelector": sel(pod="b")}]}],
                     "egress": [{"ports": [{"port": 80}]}]})
    assert denied([p], 80) == pairs("*", "x/a") - {("x/b", "x/a")}
    assert denied([p], 81) == (pairs("*", "x/a") - {("x/b", "x/a")}) | pairs("x/a", "*")


def test_client_side_egress_denies_even_if_server_allows() -> None:
    egress = policy("x", {"podSelector": sel(pod="a"), "egress": [{"to": [
        {"namespaceSelector": ns_is("y"), "podSelector": sel(pod="a")}]}]}, "egress")
    from_xa = [{"from": [{"namespaceSelector": ns_is("x"), "podSelector": sel(pod="a")}]}]
    ya = policy("y", {"podSelector": sel(pod="a"), "ingress": from_xa}, "ya")
    yb = policy("y", {"podSelector": sel(pod="b"), "ingress": from_xa}, "yb")
    expected = (pairs("x/a", "*") | pairs("*", ["y/a", "y/b"])) - {("x/a", "y/a")}
    # x/a's own policy defaults to [Ingress, Egress]: its ingress is denied too.
    expected |= pairs("*", "x/a")
    assert denied([egress, ya, yb]) == expected


def test_egress_with_default_policy_types_also_isolates_ingress() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "egress": [{}]})
    assert p.types == {INGRESS, EGRESS}
    assert denied([p]) == pairs("*", "x/a")


def test_policy_types_egress_ignores_ingress_rules() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"],
                     "ingress": [{"from": [{"podSelector": sel(pod="b")}]}]})
    assert denied([p]) == pairs("x/a", "*")


def test_protocol_only_port_rule() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{"ports": [{"protocol": "TCP"}]}]})
    assert denied([p], 80, "TCP") == set()
    assert denied([p], 80, "UDP") == pairs("*", "x/a")


def test_allow_all_takes_precedence_for_ingress_and_egress() -> None:
    only_80_in = policy("x", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}, "i80")
    all_in = policy("x", {"podSelector": {}, "ingress": [{}]}, "iall")
    assert denied([only_80_in], 81) == pairs("*", "x/*")
    assert denied([only_80_in, all_in], 81) == set()
    only_80_out = policy("x", {"podSelector": {}, "egress": [{"ports": [{"port": 80}]}],
                               "policyTypes": ["Egress"]}, "e80")
    all_out = policy("x", {"podSelector": {}, "egress": [{}], "policyTypes": ["Egress"]}, "eall")
    assert denied([only_80_out], 81) == pairs("x/*", "*")
    assert denied([only_80_out, all_out], 81) == set()


def test_sctp_or_udp_rules_do_not_admit_tcp() -> None:
    deny = policy("x", {"podSelector": {}, "policyTypes": ["Ingress"]}, "deny")
    sctp = policy("x", {"podSelector": sel(pod="a"), "ingress": [
        {"ports": [{"port": 81, "protocol": "SCTP"}]}]}, "sctp")
    assert denied([deny, sctp], 81, "TCP") == pairs("*", "x/*")
    assert denied([deny, sctp], 81, "SCTP") == pairs("*", ["x/b", "x/c"])
    udp = policy("x", {"podSelector": sel(pod="a"), "ingress": [
        {"ports": [{"port": 81, "protocol": "UDP"}]}]}, "udp")
    assert denied([udp], 81, "TCP") == pairs("*", "x/a")


def test_namespace_selector_on_user_labels() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [
        {"from": [{"namespaceSelector": sel(ns2="updated")}]}]})
    assert denied([p]) == pairs("*", "x/a")
    assert denied([p], labels={"y": {"ns2": "updated"}}) == pairs(["x/*", "z/*"], "x/a")


def test_automatic_name_label_cannot_be_overridden() -> None:
    p = policy("x", {"podSelector": sel(pod="a"),
                     "ingress": [{"from": [{"namespaceSelector": ns_is("y")}]}]})
    spoofed = {"z": {"kubernetes.io/metadata.name": "y"}}
    assert denied([p], labels=spoofed) == pairs(["x/*", "z/*"], "x/a")


def test_egress_not_in_by_default_namespace_label() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "egress": [{"to": [{"namespaceSelector": {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                              "values": ["y"]}]}}]}], "policyTypes": ["Egress"]})
    assert denied([p]) == pairs("x/a", "y/*")


@pytest.mark.parametrize(("operator", "values", "admitted"), [
    ("In", ["b"], {"x/b"}),
    ("NotIn", ["b"], {"x/c"}),  # pods without the key are selected by NotIn too
    ("Exists", None, {"x/b"}),
    ("DoesNotExist", None, {"x/c"}),
])
def test_match_expression_operators(operator: str, values: list[str] | None,
                                    admitted: set[str]) -> None:
    """x/b carries role=b, x/c has no role label: the four operators side by side."""
    expr: dict[str, Any] = {"key": "role", "operator": operator}
    if values:
        expr["values"] = values
    p = policy("x", {"podSelector": sel(pod="a"),
                     "ingress": [{"from": [{"podSelector": {"matchExpressions": [expr]}}]}]})
    target = _pod("x", "a")
    sources = {"x/b": Endpoint("x/b", "x", {"pod": "b", "role": "b"}),
               "x/c": Endpoint("x/c", "x", {"pod": "c"})}
    got = {n for n, src in sources.items() if allowed(src, target, 80, "TCP", [p], {}).allowed}
    assert got == admitted


def test_end_port_range() -> None:
    p = policy("x", {"podSelector": sel(pod="a"),
                     "ingress": [{"ports": [{"port": 80, "endPort": 81}]}]})
    assert denied([p], 81) == set()
    assert denied([p], 82) == pairs("*", "x/a")


def test_ip_block_matches_only_endpoints_with_an_ip() -> None:
    to_yb = policy("x", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"],
                         "egress": [{"to": [{"ipBlock": {"cidr": f"{IPS['y/b']}/32"}}]}]})
    assert denied([to_yb]) == pairs("x/a", "*") - {("x/a", "y/b")}
    no_ip = Endpoint("y/b", "y", {"pod": "b"})
    assert not allowed(_pod("x", "a"), no_ip, 80, "TCP", [to_yb], {}).allowed


def test_ip_block_except_and_overlapping_policy() -> None:
    around_xb = policy("x", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": [f"{IPS['x/b']}/32"]}}]}]}, "big")
    assert denied([around_xb]) == {("x/a", "x/b")}
    exactly_xb = policy("x", {"podSelector": sel(pod="a"), "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": f"{IPS['x/b']}/32"}}]}]}, "exact")
    assert denied([around_xb, exactly_xb]) == set()


def test_external_endpoint_is_matched_by_ip_block_only() -> None:
    outside = Endpoint("internet", None, ip="203.0.113.7")
    to_world = policy("x", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"namespaceSelector": {}}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [
            {"port": 443}]}]})
    assert allowed(_pod("x", "a"), outside, 443, "TCP", [to_world], {}).allowed
    assert not allowed(_pod("x", "a"), outside, 80, "TCP", [to_world], {}).allowed


# ----------------------------------------------------------------------- decisions


def test_decision_names_the_policies() -> None:
    deny = policy("x", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, "deny")
    allow = policy("x", {"podSelector": sel(pod="a"),
                         "ingress": [{"from": [{"podSelector": sel(pod="b")}]}]}, "allow-b")
    xa, xb, xc = _pod("x", "a"), _pod("x", "b"), _pod("x", "c")
    blocked = allowed(xb, xa, 80, "TCP", [deny, allow], {})
    assert not blocked.allowed
    assert blocked.denied_by == ("NetworkPolicy/x/deny",)  # x/b's egress is what blocks
    assert blocked.ingress.allowed_by == ("NetworkPolicy/x/allow-b",)
    assert blocked.explain() == (
        "egress of x/b isolated by NetworkPolicy/x/deny and no rule allows it")
    both = allowed(xc, xa, 80, "TCP", [deny, allow], {})
    assert set(both.denied_by) == {"NetworkPolicy/x/deny", "NetworkPolicy/x/allow-b"}
    free = allowed(_pod("y", "a"), _pod("z", "a"), 80, "TCP", [deny, allow], {})
    assert free.allowed and free.explain() == (
        "egress of y/a not isolated; ingress of z/a not isolated")


def test_reachability_matrix_covers_ordered_pairs_on_destination_port() -> None:
    p = policy("x", {"podSelector": sel(pod="a"), "ingress": [{"ports": [{"port": 81}]}]})
    endpoints = [_pod("x", "a"), _pod("x", "b")]
    ports = {"x/a": 81, "x/b": 80}
    matrix = reachability_matrix(endpoints, [p], {}, lambda ep: ports[ep.name])
    assert {(s.name, d.name): d_.allowed for (s, d), d_ in matrix.items()} == {
        ("x/a", "x/b"): True, ("x/b", "x/a"): True}
    assert matrix[(endpoints[1], endpoints[0])].port == 81


# -------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(("spec", "problem"), [
    ({"ingress": [{"from": [{}]}]}, "spec.ingress[0].from[0]: must specify a peer"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
     "may not specify both ipBlock and another peer"),
    ({"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}, "must be a port number >= port"),
    ({"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}, "port is a name"),
    ({"ingress": [{"ports": [{"endPort": 90}]}]}, "may not be specified when port is not"),
    ({"ingress": [{"ports": [{"port": 0}]}]}, "is not a port number"),
    ({"ingress": [{"ports": [{"port": "80"}]}]}, "'80' is not a valid port name"),
    ({"ingress": [{"ports": [{"port": 80, "protocol": "tcp"}]}]}, "'tcp' is not one of"),
    ({"policyTypes": ["Ingress", "Egress", "Ingress"]}, "more than two policyTypes"),
    ({"policyTypes": ["egress"]}, "'egress' is not Ingress or Egress"),
    ({"podSelector": {"matchLabels": {"app": True}}}, "invalid label 'app': True"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "must be non-empty for In"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists",
                                            "values": ["x"]}]}}, "must be empty for Exists"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}},
     "'Gt' is not one of"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]},
     "must be a strict subset of cidr"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]}, "is not a CIDR"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": "10.1.0.0/16"}}]}]},
     "except: expected a list"),
    ({"ingress": {"from": []}}, "spec.ingress: expected a list"),
])
def test_rejected_specs_are_reported(spec: dict[str, Any], problem: str) -> None:
    parsed = parse_policy({"metadata": {"namespace": "x"}, "spec": spec})
    assert any(problem in p for p in parsed.problems), parsed.problems


def test_invalid_parts_match_nothing() -> None:
    bad_peer = parse_policy({"metadata": {"namespace": "x"}, "spec": {
        "podSelector": {}, "ingress": [{"from": [{}]}]}})
    assert denied([bad_peer]) == pairs("*", "x/*")
    bad_selector = parse_policy({"metadata": {"namespace": "x"}, "spec": {
        "podSelector": {"matchLabels": {"pod": 1}}, "policyTypes": ["Ingress"]}})
    assert denied([bad_selector]) == set()


@pytest.mark.parametrize("body", [None, 7, "text", [], {"spec": []}, {"metadata": "x"},
                                  {"metadata": {"namespace": 3}, "spec": {"podSelector": 1}}])
def test_garbage_never_raises(body: Any) -> None:
    parsed = parse_policy(body)
    assert parsed.problems or not parsed.namespace
    assert isinstance(allowed(ALL[0], ALL[1], 80, "TCP", [parsed], {}).allowed, bool)


def test_missing_spec_and_null_fields_follow_api_defaults() -> None:
    no_spec = parse_policy({"metadata": {"namespace": "x"}})
    assert no_spec.pod_selector.empty and no_spec.types == {INGRESS} and no_spec.types_defaulted
    null_rule = parse_policy({"metadata": {"namespace": "x"},
                              "spec": {"podSelector": {}, "ingress": [None]}})
    assert denied([null_rule]) == set()
    assert denied([no_spec]) == pairs("*", "x/*")


def test_policy_without_namespace_selects_nothing() -> None:
    p = parse_policy({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    assert not p.problems and p.namespace == ""
    assert denied([p]) == set()


# ------------------------------------------------------------------------- topology


def _resources(*bodies: dict[str, Any]) -> Inventory:
    return Inventory.of(Resource(b) for b in bodies)


def _deployment(name: str, ns: str, labels: dict[str, str], ports: list[dict[str, Any]],
                account: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": name, "ports": ports}]}
    if account:
        spec["serviceAccountName"] = account
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": spec}}}


def test_locate_services_reads_workloads_and_target_ports() -> None:
    config = load_config(services=[{"name": "web", "port": 8080}, {"name": "db", "port": 5432}],
                         flows=[])
    inventory = _resources(
        _deployment("web", "soma-agent-hub", {"app": "web", "tier": "front"},
                    [{"name": "http", "containerPort": 8081}], account="web-sa"),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "web", "namespace": "soma-agent-hub"},
         "spec": {"ports": [{"port": 8080, "targetPort": "http"}]}},
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "soma-agent-hub", "labels": {"team": "platform"}}},
    )
    located = locate_services(inventory, config)
    web, db = located["web"], located["db"]
    assert not web.modelled and web.pod_ports == (8081,)
    (endpoint,) = web.endpoints
    assert endpoint.labels == {"app": "web", "tier": "front"}
    assert endpoint.named_ports == {"http": (8081, "TCP")}
    assert endpoint.ref == "Deployment/soma-agent-hub/web"
    assert endpoint.service_account == "web-sa"
    assert db.modelled and db.pod_ports == (5432,) and db.endpoints[0].ref == "config"
    assert namespace_labels(inventory) == {"soma-agent-hub": {"team": "platform"}}


def test_app_namespaces_include_configured_namespaces_holding_services() -> None:
    config = load_config(services=[{"name": "db", "port": 5432}], flows=[])
    inventory = _resources(
        _deployment("db", "observability", {"app": "db"}, []),
        _deployment("db", "elsewhere", {"app": "db"}, []),
    )
    located = locate_services(inventory, config)
    assert [ep.namespace for ep in located["db"].endpoints] == ["observability"]
    assert app_namespaces(config, located) == ["observability", "soma-agent-hub"]


def test_dns_endpoints_found_or_modelled() -> None:
    (modelled,), was_modelled = dns_endpoints(Inventory())
    assert was_modelled and modelled.namespace == "kube-system"
    assert modelled.named_ports["dns"] == (53, "UDP")
    inventory = _resources(_deployment("coredns", "kube-system", {"k8s-app": "kube-dns"},
                                       [{"name": "dns", "containerPort": 53, "protocol": "UDP"}]))
    (found,), was_modelled = dns_endpoints(inventory)
    assert not was_modelled and found.ref == "Deployment/kube-system/coredns"
