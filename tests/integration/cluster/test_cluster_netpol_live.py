"""NetworkPolicy reachability on live objects: real Deployments, the Pods a cluster would
run for them (Pending here: there is no kubelet, which changes nothing for labels) and real
NetworkPolicies, read back by the live source — labels and namespaces as the API server
stores them (including the kubernetes.io/metadata.name label it sets on namespaces)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from soma_audit.core.model import Status
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    ScopedClusterSource,
    audit,
    cluster_source,
    create,
    namespace,
    only,
    show,
)

pytestmark = pytest.mark.integration

SERVICES = {"gateway-api": 10000, "orchestrator": 10001, "billing-service": 10009}
RESTRICTED = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
HARDENED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _pod_spec(name: str, port: int) -> dict[str, Any]:
    return {"securityContext": RESTRICTED,
            "containers": [{"name": name, "image": f"registry.invalid/{name}:1",
                            "ports": [{"name": "http", "containerPort": port}],
                            "securityContext": HARDENED}]}


def _service_objects(ns: str, name: str, port: int) -> list[dict[str, Any]]:
    labels = {"app": name}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": name, "namespace": ns, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": _pod_spec(name, port)}}},
        # What the ReplicaSet controller would create: same labels plus the template hash.
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": f"{name}-5d9c7b-x2x4q", "namespace": ns,
                      "labels": {**labels, "pod-template-hash": "5d9c7b"}},
         "spec": _pod_spec(name, port)},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": port, "targetPort": "http"}]}},
    ]


def _policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _platform(kube: AdminKube, unique_name: Callable[[str], str],
              extra: Callable[[str], list[dict[str, Any]]] = lambda ns: [],
              orchestrator_ingress: bool = True) -> str:
    ns = namespace(kube, unique_name("netpol-live"))
    objects = [o for name, port in SERVICES.items() for o in _service_objects(ns, name, port)]
    objects += [
        _policy(ns, "default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _policy(ns, "gateway-api-egress", {
            "podSelector": {"matchLabels": {"app": "gateway-api"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "orchestrator"}}}],
                        "ports": [{"port": 10001, "protocol": "TCP"}]}]}),
    ]
    if orchestrator_ingress:
        objects.append(_policy(ns, "orchestrator-ingress", {
            "podSelector": {"matchLabels": {"app": "orchestrator"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "podSelector": {"matchLabels": {"app": "gateway-api"}}}],
                "ports": [{"port": "http", "protocol": "TCP"}]}]}))
    for obj in objects + extra(ns):
        create(kube, obj)
    return ns


def _flows(kube_env: Any, ns: str) -> Any:
    config = {
        "namespace": ns,
        "services": [{"name": n, "port": p} for n, p in SERVICES.items()],
        "flows": [{"from": "gateway-api", "to": "orchestrator"}],
    }
    source = ScopedClusterSource(cluster_source(kube_env.readonly_kubeconfig), [ns])
    return only(audit(source, ["netpol.flows"], config), "netpol.flows")


def test_intended_flows_only(kube: AdminKube, kube_env: Any,
                             unique_name: Callable[[str], str]) -> None:
    ns = _platform(kube, unique_name)
    result = _flows(kube_env, ns)
    assert result.status is Status.PASS, show(result)
    # Each service is two endpoints (the Deployment's template and its live Pod): 6 x 4
    # cross-service pairs, minus the 2 x 2 intended gateway-api → orchestrator ones.
    ((obj, message),) = [(e.object, e.message) for e in result.evidence]
    assert obj == f"Namespace/{ns}"
    assert message.startswith("1 intended and 0 derived flows allowed; 20 other "
                              "service-to-service connections denied on their service ports; ")


def test_intended_flow_denied(kube: AdminKube, kube_env: Any,
                              unique_name: Callable[[str], str]) -> None:
    ns = _platform(kube, unique_name, orchestrator_ingress=False)
    result = _flows(kube_env, ns)
    assert result.status is Status.FAIL, show(result)
    denied = [e for e in result.evidence
              if "gateway-api → orchestrator:10001 denied, intended" in e.message]
    assert denied, show(result)
    assert any("ingress" in e.message for e in denied), show(result)


def test_unintended_flow_allowed(kube: AdminKube, kube_env: Any,
                                 unique_name: Callable[[str], str]) -> None:
    def open_billing(ns: str) -> list[dict[str, Any]]:
        return [
            _policy(ns, "billing-open", {
                "podSelector": {"matchLabels": {"app": "billing-service"}},
                "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]}),
            _policy(ns, "orchestrator-egress-all", {
                "podSelector": {"matchLabels": {"app": "orchestrator"}},
                "policyTypes": ["Egress"], "egress": [{}]}),
        ]

    ns = _platform(kube, unique_name, extra=open_billing)
    result = _flows(kube_env, ns)
    assert result.status is Status.FAIL, show(result)
    messages = {e.message.split(" — ")[0]: e.object for e in result.evidence}
    assert "orchestrator → billing-service:10009 allowed, not intended" in messages, \
        show(result)
    assert messages["orchestrator → billing-service:10009 allowed, not intended"] in (
        f"NetworkPolicy/{ns}/billing-open", f"NetworkPolicy/{ns}/orchestrator-egress-all")
    # Nothing else opened: gateway-api's egress still only reaches the orchestrator.
    assert not any(m.startswith("gateway-api → billing-service") for m in messages), \
        show(result)
