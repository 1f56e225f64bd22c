"""Property tests for the NetworkPolicy and Istio evaluators (hypothesis).

Two kinds of input: arbitrary garbage (nothing may raise) and well-formed policies drawn
from a small label alphabet, so that selectors actually hit the generated pods and the
semantic properties (isolation, additivity, order independence) are exercised.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from soma_audit.domain.netpol.istio import (
    Caller,
    Match,
    authz_decide,
    rule_match,
)
from soma_audit.domain.netpol.policy import (
    EGRESS,
    INGRESS,
    Endpoint,
    IpBlock,
    Policy,
    allowed,
    parse_policy,
)
from soma_audit.kube.inventory import Resource

NAMESPACES = ("x", "y", "z")
KEYS = ("app", "tier", "pod")
VALUES = ("a", "b", "c")
PROTOCOLS = ("TCP", "UDP", "SCTP")
PORT_NAMES = ("http", "grpc", "dns")

labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
ports = st.integers(min_value=1, max_value=65535) | st.sampled_from([53, 80, 81, 443])
protocols = st.sampled_from(PROTOCOLS)


@st.composite
def endpoints(draw: st.DrawFn) -> Endpoint:
    named = draw(st.dictionaries(st.sampled_from(PORT_NAMES),
                                 st.tuples(st.sampled_from([53, 80, 81]), protocols),
                                 max_size=3))
    ip = draw(st.none() | st.ip_addresses(v=4).map(str))
    namespace = draw(st.sampled_from(NAMESPACES) | st.none())
    return Endpoint(draw(st.text(max_size=5)), namespace, draw(labels), named, ip=ip)


namespace_labels = st.dictionaries(st.sampled_from(NAMESPACES), labels, max_size=3)


def _expression() -> st.SearchStrategy[dict[str, Any]]:
    with_values = st.fixed_dictionaries({
        "key": st.sampled_from(KEYS), "operator": st.sampled_from(["In", "NotIn"]),
        "values": st.lists(st.sampled_from(VALUES), min_size=1, max_size=2)})
    without = st.fixed_dictionaries({
        "key": st.sampled_from(KEYS), "operator": st.sampled_from(["Exists", "DoesNotExist"])})
    return with_values | without


selectors = st.fixed_dictionaries({}, optional={
    "matchLabels": labels,
    "matchExpressions": st.lists(_expression(), max_size=2),
})
ns_selectors = st.fixed_dictionaries({}, optional={
    "matchLabels": st.dictionaries(st.sampled_from(["kubernetes.io/metadata.name", *KEYS]),
                                   st.sampled_from([*NAMESPACES, *VALUES]), max_size=2),
    "matchExpressions": st.lists(_expression(), max_size=1),
})


@st.composite
def ip_blocks(draw: st.DrawFn) -> dict[str, Any]:
    network = draw(st.ip_addresses(v=4).map(str))
    prefix = draw(st.integers(min_value=0, max_value=30))
    cidr = ipaddress.ip_network(f"{network}/{prefix}", strict=False)
    block: dict[str, Any] = {"cidr": str(cidr)}
    if draw(st.booleans()):
        sub = list(cidr.subnets(prefixlen_diff=1))
        block["except"] = [str(draw(st.sampled_from(sub)))]
    return block


peers = (
    st.fixed_dictionaries({"podSelector": selectors})
    | st.fixed_dictionaries({"namespaceSelector": ns_selectors})
    | st.fixed_dictionaries({"podSelector": selectors, "namespaceSelector": ns_selectors})
    | st.fixed_dictionaries({"ipBlock": ip_blocks()})
)


@st.composite
def port_rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["protocol"] = draw(protocols)
    kind = draw(st.sampled_from(["none", "number", "range", "name"]))
    if kind == "number":
        rule["port"] = draw(st.sampled_from([53, 80, 81]))
    elif kind == "range":
        start = draw(st.integers(min_value=1, max_value=100))
        rule["port"], rule["endPort"] = start, start + draw(st.integers(0, 50))
    elif kind == "name":
        rule["port"] = draw(st.sampled_from(PORT_NAMES))
    return rule


def rules(peer_key: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={
        peer_key: st.lists(peers, max_size=2),
        "ports": st.lists(port_rules(), max_size=2),
    })


@st.composite
def policies(draw: st.DrawFn, namespace: str | None = None) -> Policy:
    spec: dict[str, Any] = {"podSelector": draw(selectors)}
    for key, peer_key in (("ingress", "from"), ("egress", "to")):
        if draw(st.booleans()):
            spec[key] = draw(st.lists(rules(peer_key), max_size=2))
    if draw(st.booleans()):
        spec["policyTypes"] = draw(st.lists(st.sampled_from([INGRESS, EGRESS]), min_size=1,
                                            max_size=2, unique=True))
    ns = namespace or draw(st.sampled_from(NAMESPACES))
    name = draw(st.text(alphabet="abcdefgh", min_size=1, max_size=6))
    policy = parse_policy({"metadata": {"name": name, "namespace": ns}, "spec": spec},
                          f"NetworkPolicy/{ns}/{name}")
    assert not policy.problems, policy.problems  # the strategy only draws valid policies
    return policy


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(
        ["Ingress", "Egress", "TCP", "In", "NotIn", "Exists", "10.0.0.0/8", "http"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["spec", "metadata", "namespace", "podSelector", "namespaceSelector",
                         "ipBlock", "cidr", "except", "ingress", "egress", "from", "to",
                         "ports", "port", "endPort", "protocol", "policyTypes", "matchLabels",
                         "matchExpressions", "key", "operator", "values", "rules", "source",
                         "principals", "namespaces", "operation", "when", "action",
                         "selector", "app"]) | st.text(max_size=5),
        inner, max_size=4),
    max_leaves=25,
)


def deny_all(namespace: str, *directions: str) -> Policy:
    return parse_policy({"metadata": {"name": "deny", "namespace": namespace},
                         "spec": {"podSelector": {}, "policyTypes": list(directions)}},
                        f"NetworkPolicy/{namespace}/deny")


# ---------------------------------------------------------------------- robustness


@settings(max_examples=300)
@given(json_values, endpoints(), endpoints(), ports, st.text(max_size=4), namespace_labels)
def test_garbage_policies_never_raise(body: Any, src: Endpoint, dst: Endpoint, port: int,
                                      protocol: str, ns_labels: dict[str, Any]) -> None:
    policy = parse_policy(body, "NetworkPolicy/g/g")
    decision = allowed(src, dst, port, protocol, [policy], ns_labels)
    assert isinstance(decision.allowed, bool)
    assert isinstance(decision.explain(), str)
    policy.pod_selector.describe()


@settings(max_examples=300)
@given(json_values, st.text(max_size=6), st.sampled_from(NAMESPACES),
       st.none() | st.text(max_size=6), ports)
def test_garbage_istio_rules_never_raise(rule: Any, name: str, ns: str, account: str | None,
                                         port: int) -> None:
    caller = Caller(name, ns, account)
    assert rule_match(rule, caller, port, "cluster.local") in tuple(Match)
    policy = Resource({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                       "metadata": {"name": "p", "namespace": ns}, "spec": rule})
    target = Endpoint("t", ns, {"app": "a"})
    assert authz_decide(caller, target, port, [policy], "istio-system",
                        "cluster.local").allowed in tuple(Match)


# ------------------------------------------------------------------------ semantics


@given(st.lists(policies(), max_size=4), endpoints(), endpoints(), ports, protocols,
       namespace_labels)
def test_decision_is_the_conjunction_of_both_sides(
    pols: list[Policy], src: Endpoint, dst: Endpoint, port: int, protocol: str,
    ns_labels: dict[str, Any],
) -> None:
    decision = allowed(src, dst, port, protocol, pols, ns_labels)
    assert decision.allowed == (decision.egress.allowed and decision.ingress.allowed)
    for verdict in (decision.egress, decision.ingress):
        assert set(verdict.allowed_by) <= set(verdict.isolated_by)
    assert bool(decision.denied_by) == (not decision.allowed)


@given(st.lists(policies(), max_size=5), st.randoms(), endpoints(), endpoints(), ports,
       protocols, namespace_labels)
def test_policy_order_does_not_matter(pols: list[Policy], rnd: Any, src: Endpoint,
                                      dst: Endpoint, port: int, protocol: str,
                                      ns_labels: dict[str, Any]) -> None:
    shuffled = list(pols)
    rnd.shuffle(shuffled)
    assert (allowed(src, dst, port, protocol, pols, ns_labels).allowed
            == allowed(src, dst, port, protocol, shuffled, ns_labels).allowed)


@given(st.lists(policies(), max_size=4), endpoints(), endpoints(), ports, protocols,
       namespace_labels)
def test_a_pod_no_policy_selects_is_not_isolated(
    pols: list[Policy], src: Endpoint, dst: Endpoint, port: int, protocol: str,
    ns_labels: dict[str, Any],
) -> None:
    decision = allowed(src, dst, port, protocol, pols, ns_labels)
    if not any(INGRESS in p.types and p.selects(dst) for p in pols):
        assert decision.ingress.allowed and not decision.ingress.isolated_by
    if not any(EGRESS in p.types and p.selects(src) for p in pols):
        assert decision.egress.allowed and not decision.egress.isolated_by


@given(endpoints(), endpoints(), ports, protocols, namespace_labels)
def test_deny_all_denies_every_connection_to_and_from_the_namespace(
    src: Endpoint, dst: Endpoint, port: int, protocol: str, ns_labels: dict[str, Any],
) -> None:
    if dst.namespace is not None:
        only = [deny_all(dst.namespace, INGRESS, EGRESS)]
        assert not allowed(src, dst, port, protocol, only, ns_labels).allowed
    if src.namespace is not None:
        only = [deny_all(src.namespace, INGRESS, EGRESS)]
        assert not allowed(src, dst, port, protocol, only, ns_labels).allowed


@given(st.lists(policies(), max_size=4), st.data(), endpoints(), endpoints(), ports,
       protocols, namespace_labels)
def test_adding_a_policy_to_an_isolated_pod_grants_only_its_own_rules(
    pols: list[Policy], data: st.DataObject, src: Endpoint, dst: Endpoint, port: int,
    protocol: str, ns_labels: dict[str, Any],
) -> None:
    """Additivity: once other policies isolate the destination, adding a policy keeps what
    was allowed and adds exactly what its own rules allow (evaluated on its own over a
    deny-all), never more."""
    if dst.namespace is None:
        return
    # Drawn in the destination's namespace, so that it often selects the destination.
    extra = data.draw(policies(namespace=dst.namespace))
    before = allowed(src, dst, port, protocol, pols, ns_labels).ingress
    if not before.isolated_by:
        return
    after = allowed(src, dst, port, protocol, [*pols, extra], ns_labels).ingress
    alone = allowed(src, dst, port, protocol, [deny_all(dst.namespace, INGRESS), extra],
                    ns_labels).ingress
    assert after.allowed == (before.allowed or alone.allowed)


@given(st.lists(policies(), max_size=4), policies(namespace="elsewhere"), endpoints(),
       endpoints(), ports, protocols, namespace_labels)
def test_a_policy_in_an_unrelated_namespace_changes_nothing(
    pols: list[Policy], unrelated: Policy, src: Endpoint, dst: Endpoint, port: int,
    protocol: str, ns_labels: dict[str, Any],
) -> None:
    before = allowed(src, dst, port, protocol, pols, ns_labels)
    after = allowed(src, dst, port, protocol, [*pols, unrelated], ns_labels)
    assert before.allowed == after.allowed


@given(policies(), endpoints(), endpoints(), ports, namespace_labels)
def test_a_rule_for_one_protocol_never_admits_another(
    policy: Policy, src: Endpoint, dst: Endpoint, port: int, ns_labels: dict[str, Any],
) -> None:
    """Every port rule names a protocol (TCP by default): if none names UDP, UDP traffic
    to an isolated pod is admitted only by rules without ports."""
    if dst.namespace is None or not policy.selects(dst) or INGRESS not in policy.types:
        return
    decision = allowed(src, dst, port, "UDP", [policy], ns_labels)
    if decision.ingress.allowed:
        assert any(not r.ports or any(p.protocol == "UDP" for p in r.ports)
                   for r in policy.ingress)


@given(ip_blocks(), st.ip_addresses(v=4).map(str))
def test_ip_block_agrees_with_ipaddress(block: dict[str, Any], ip: str) -> None:
    cidr = ipaddress.ip_network(block["cidr"])
    excepts = [ipaddress.ip_network(e) for e in block.get("except", [])]
    expected = ipaddress.ip_address(ip) in cidr and not any(
        ipaddress.ip_address(ip) in e for e in excepts)
    assert IpBlock(cidr, tuple(excepts)).contains(ip) == expected


@given(labels)
def test_empty_selector_selects_every_pod_of_its_namespace(pod_labels: dict[str, str]) -> None:
    policy = deny_all("x", INGRESS)
    assert policy.pod_selector.empty
    assert policy.selects(Endpoint("p", "x", pod_labels))
    assert not policy.selects(Endpoint("p", "y", pod_labels))
