"""Istio semantics used by netpol.istio-mtls and netpol.istio-authz."""

from __future__ import annotations

from typing import Any

import pytest

from soma_audit.domain.netpol.istio import (
    Caller,
    Match,
    authz_applies,
    authz_decide,
    is_allow_all,
    istio_presence,
    namespace_mtls,
    rule_match,
)
from soma_audit.domain.netpol.policy import (
    Endpoint,
)
from soma_audit.kube.inventory import Inventory, Resource

TD = "cluster.local"
ROOT = "istio-system"
ORCH = Caller("orchestrator", "app", "orchestrator")
BILLING = Caller("billing", "app", "billing")
INGRESS_NS = Caller("ns/ingress", "ingress", None)
TARGET = Endpoint("memory", "app", {"app": "memory"})


def _obj(kind: str, ns: str, name: str, spec: dict[str, Any]) -> Resource:
    return Resource({"apiVersion": "security.istio.io/v1", "kind": kind,
                     "metadata": {"name": name, "namespace": ns}, "spec": spec})


def pa(ns: str, name: str, spec: dict[str, Any]) -> Resource:
    return _obj("PeerAuthentication", ns, name, spec)


def ap(ns: str, name: str, spec: dict[str, Any]) -> Resource:
    return _obj("AuthorizationPolicy", ns, name, spec)


STRICT = {"mtls": {"mode": "STRICT"}}
PERMISSIVE = {"mtls": {"mode": "PERMISSIVE"}}


# ---------------------------------------------------------------------------- presence


def test_presence_from_objects_or_namespace_labels() -> None:
    assert istio_presence(Inventory()) is None
    gateway_api = Resource({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                            "metadata": {"name": "g", "namespace": "app"}})
    assert istio_presence(Inventory.of([gateway_api])) is None
    vs = Resource({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                   "metadata": {"name": "v", "namespace": "app"}})
    assert istio_presence(Inventory.of([vs])) == (
        "VirtualService/app/v", "Istio present: networking.istio.io/v1 VirtualService")
    revision = Resource({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": "app", "labels": {"istio.io/rev": "1-24"}}})
    assert istio_presence(Inventory.of([revision])) == (
        "Namespace/app", "Istio present: namespace labelled istio.io/rev=1-24")


# --------------------------------------------------------------------------------- mTLS


@pytest.mark.parametrize(("policies", "mode", "scope"), [
    ([], "PERMISSIVE", "Istio default"),
    ([pa(ROOT, "default", STRICT)], "STRICT", "mesh-wide"),
    ([pa(ROOT, "default", STRICT), pa("app", "default", PERMISSIVE)], "PERMISSIVE",
     "namespace-wide"),
    ([pa(ROOT, "default", PERMISSIVE), pa("app", "default", STRICT)], "STRICT",
     "namespace-wide"),
    # UNSET (or no mtls at all) inherits from the mesh
    ([pa(ROOT, "default", STRICT), pa("app", "default", {"mtls": {"mode": "UNSET"}})],
     "STRICT", "mesh-wide"),
    ([pa(ROOT, "default", STRICT), pa("app", "default", {})], "STRICT", "mesh-wide"),
    # a root-namespace policy with a selector is not mesh-wide
    ([pa(ROOT, "gw", {"selector": {"matchLabels": {"app": "gw"}}, **STRICT})], "PERMISSIVE",
     "Istio default"),
    # a policy in another namespace does not count
    ([pa("other", "default", STRICT)], "PERMISSIVE", "Istio default"),
])
def test_effective_namespace_mode(policies: list[Resource], mode: str, scope: str) -> None:
    state = namespace_mtls("app", policies, ROOT)
    assert (state.mode, state.scope) == (mode, scope)


def test_conflicts_and_weaker_workload_policies() -> None:
    state = namespace_mtls("app", [pa("app", "a", STRICT), pa("app", "b", PERMISSIVE)], ROOT)
    assert state.conflicts
    weaker = namespace_mtls("app", [
        pa("app", "default", STRICT),
        pa("app", "db", {"selector": {"matchLabels": {"app": "db"}},
                         "mtls": {"mode": "DISABLE"},
                         "portLevelMtls": {"9090": {"mode": "PERMISSIVE"},
                                           "5432": {"mode": "STRICT"}}}),
    ], ROOT)
    assert weaker.mode == "STRICT"
    assert weaker.weaker == (
        ("PeerAuthentication/app/db", "mtls.mode=DISABLE"),
        ("PeerAuthentication/app/db", "portLevelMtls[9090].mode=PERMISSIVE"),
    )


# ---------------------------------------------------------------------------- authz


def _from(**source: Any) -> dict[str, Any]:
    return {"from": [{"source": source}]}


@pytest.mark.parametrize(("rule", "caller", "expected"), [
    ({}, ORCH, Match.YES),
    (_from(principals=[f"{TD}/ns/app/sa/orchestrator"]), ORCH, Match.YES),
    (_from(principals=[f"{TD}/ns/app/sa/orchestrator"]), BILLING, Match.NO),
    (_from(principals=["*/sa/orchestrator"]), ORCH, Match.YES),
    (_from(principals=[f"{TD}/ns/app/*"]), BILLING, Match.YES),
    (_from(principals=["*"]), BILLING, Match.YES),
    (_from(principals=[]), BILLING, Match.YES),  # an empty list is unset
    (_from(namespaces=["app"]), BILLING, Match.YES),
    (_from(namespaces=["app"], notPrincipals=[f"{TD}/ns/app/sa/billing"]), BILLING, Match.NO),
    (_from(notNamespaces=["app"]), ORCH, Match.NO),
    (_from(serviceAccounts=["app/orchestrator"]), ORCH, Match.YES),
    (_from(serviceAccounts=["app/orchestrator"]), BILLING, Match.NO),
    (_from(principals=[f"{TD}/ns/app/sa/orchestrator"], requestPrincipals=["*"]), ORCH,
     Match.MAYBE),
    (_from(namespaces=["ingress"]), INGRESS_NS, Match.YES),
    (_from(principals=[f"{TD}/ns/ingress/sa/*"]), INGRESS_NS, Match.YES),
    (_from(principals=[f"{TD}/ns/ingress/sa/gateway"]), INGRESS_NS, Match.MAYBE),
    (_from(principals=[f"{TD}/ns/app/sa/gateway"]), INGRESS_NS, Match.NO),
    ({"to": [{"operation": {"ports": ["10021"]}}]}, ORCH, Match.YES),
    ({"to": [{"operation": {"ports": ["9090"]}}]}, ORCH, Match.NO),
    ({"to": [{"operation": {"notPorts": ["10021"]}}]}, ORCH, Match.NO),
    ({"to": [{"operation": {"methods": ["GET"]}}]}, ORCH, Match.MAYBE),
    ({"when": [{"key": "request.headers[x]", "values": ["1"]}]}, ORCH, Match.MAYBE),
    ({**_from(namespaces=["other"]), "to": [{"operation": {"methods": ["GET"]}}]}, ORCH,
     Match.NO),
    ("not a rule", ORCH, Match.NO),
])
def test_rule_match(rule: Any, caller: Caller, expected: Match) -> None:
    assert rule_match(rule, caller, 10021, TD) == expected


def test_allow_all_rule() -> None:
    assert is_allow_all({}) and is_allow_all({"from": []})
    assert not is_allow_all(_from(namespaces=["app"])) and not is_allow_all("x")


def test_applicability() -> None:
    assert authz_applies(ap("app", "ns-wide", {}), TARGET, ROOT)
    assert authz_applies(ap(ROOT, "mesh", {}), TARGET, ROOT)
    assert authz_applies(ap("app", "sel", {"selector": {"matchLabels": {"app": "memory"}}}),
                         TARGET, ROOT)
    assert not authz_applies(ap("app", "other", {"selector": {"matchLabels": {"app": "x"}}}),
                             TARGET, ROOT)
    assert not authz_applies(ap("elsewhere", "p", {}), TARGET, ROOT)
    assert not authz_applies(ap("app", "waypoint", {"targetRefs": [
        {"kind": "Service", "name": "memory"}]}), TARGET, ROOT)


def test_decision_order_deny_then_allow() -> None:
    allow_orch = ap("app", "allow", {"rules": [_from(principals=[f"{TD}/ns/app/sa/orchestrator"])]})
    assert authz_decide(BILLING, TARGET, 10021, [], ROOT, TD).allowed == Match.YES
    assert authz_decide(ORCH, TARGET, 10021, [allow_orch], ROOT, TD).allowed == Match.YES
    assert authz_decide(BILLING, TARGET, 10021, [allow_orch], ROOT, TD).allowed == Match.NO
    deny_all_rules = ap("app", "deny", {"action": "DENY", "rules": [{}]})
    decision = authz_decide(ORCH, TARGET, 10021, [allow_orch, deny_all_rules], ROOT, TD)
    assert decision.allowed == Match.NO and decision.denied_by == ("AuthorizationPolicy/app/deny",)
    conditional_deny = ap("app", "deny-get", {"action": "DENY", "rules": [
        {"to": [{"operation": {"methods": ["DELETE"]}}]}]})
    assert authz_decide(ORCH, TARGET, 10021, [allow_orch, conditional_deny], ROOT,
                        TD).allowed == Match.YES
    allow_nothing = ap("app", "nothing", {})
    assert authz_decide(ORCH, TARGET, 10021, [allow_nothing], ROOT, TD).allowed == Match.NO
    audit = ap("app", "audit", {"action": "AUDIT", "rules": [{}]})
    assert authz_decide(ORCH, TARGET, 10021, [audit], ROOT, TD).allowed == Match.YES
