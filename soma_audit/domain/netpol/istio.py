"""Istio's own access rules, beside Kubernetes NetworkPolicy: the effective mTLS mode of a
namespace (PeerAuthentication) and whether an AuthorizationPolicy lets a caller reach a
workload — the semantics of the two Istio checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from soma_audit.domain.netpol.policy import Endpoint
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.labels import has_labels

ISTIO_GROUPS = ("security.istio.io", "networking.istio.io")
ISTIO_KINDS = (
    "PeerAuthentication",
    "AuthorizationPolicy",
    "RequestAuthentication",
    "VirtualService",
    "DestinationRule",
    "Gateway",
    "ServiceEntry",
    "Sidecar",
    "EnvoyFilter",
    "WorkloadEntry",
    "WorkloadGroup",
    "ProxyConfig",
)
MTLS_MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")


def istio_presence(inventory: Inventory) -> tuple[str, str] | None:
    """What shows Istio is in use, as (object, why): an Istio object or an injection
    label on a namespace. None when Istio is absent."""
    for resource in inventory.of_kind(*ISTIO_KINDS):
        if resource.group in ISTIO_GROUPS:
            return resource.ref, f"Istio present: {resource.api_version} {resource.kind}"
    for ns in inventory.of_kind("Namespace"):
        if ns.labels.get("istio-injection") == "enabled":
            return ns.ref, "Istio present: namespace labelled istio-injection=enabled"
        if "istio.io/rev" in ns.labels:
            revision = ns.labels["istio.io/rev"]
            return ns.ref, f"Istio present: namespace labelled istio.io/rev={revision}"
    return None


def _workload_selector(spec: Mapping[str, Any]) -> dict[str, str] | None:
    """``spec.selector.matchLabels``; None when the policy is namespace-wide."""
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        return None
    labels = selector.get("matchLabels")
    if not isinstance(labels, dict) or not labels:
        return None
    return {str(k): str(v) for k, v in labels.items()}


def mtls_mode(spec: Mapping[str, Any]) -> str:
    """``spec.mtls.mode`` (UNSET when absent; the raw text when not a known mode)."""
    mtls = spec.get("mtls")
    mode = mtls.get("mode") if isinstance(mtls, dict) else None
    return "UNSET" if mode is None else str(mode)


@dataclass(frozen=True)
class MtlsState:
    """The effective mTLS mode of a namespace's workloads and what decided it."""

    mode: str
    #: the PeerAuthentication that decided (empty for Istio's default)
    source: str
    #: "namespace-wide", "mesh-wide" or "Istio default"
    scope: str
    #: namespace- or mesh-wide policies that disagree (Istio picks the oldest: unknowable)
    conflicts: tuple[str, ...] = ()
    #: workload-level PeerAuthentications that weaken the namespace mode
    weaker: tuple[tuple[str, str], ...] = ()


def _wide_mode(policies: list[Resource]) -> tuple[str | None, str, tuple[str, ...]]:
    decided = [(mtls_mode(p.spec), p.ref) for p in policies if mtls_mode(p.spec) != "UNSET"]
    modes = {mode for mode, _ in decided}
    if not decided:
        return None, "", ()
    conflicts = tuple(f"{ref} mtls.mode={mode}" for mode, ref in decided) if len(modes) > 1 else ()
    return decided[0][0], decided[0][1], conflicts


def namespace_mtls(
    namespace: str, peer_authentications: list[Resource], root_namespace: str
) -> MtlsState:
    """Workload policy > namespace-wide policy > mesh-wide policy (root namespace, no
    selector) > Istio's default PERMISSIVE; UNSET inherits from the level above."""
    namespace_wide = [
        p for p in peer_authentications
        if p.namespace == namespace and _workload_selector(p.spec) is None
    ]
    mesh_wide = [
        p for p in peer_authentications
        if p.namespace == root_namespace and _workload_selector(p.spec) is None
    ]
    scope = "namespace-wide"
    mode, source, conflicts = _wide_mode(namespace_wide)
    if mode is None:
        scope = "mesh-wide"
        mode, source, conflicts = _wide_mode(mesh_wide)
    if mode is None:
        mode, source, scope = "PERMISSIVE", "", "Istio default"
    weaker: list[tuple[str, str]] = []
    for policy in peer_authentications:
        if policy.namespace != namespace or _workload_selector(policy.spec) is None:
            continue
        own = mtls_mode(policy.spec)
        if own not in ("UNSET", "STRICT"):
            weaker.append((policy.ref, f"mtls.mode={own}"))
        levels = policy.spec.get("portLevelMtls")
        for port, level in (levels.items() if isinstance(levels, dict) else ()):
            port_mode = mtls_mode({"mtls": level})
            if port_mode not in ("UNSET", "STRICT"):
                weaker.append((policy.ref, f"portLevelMtls[{port}].mode={port_mode}"))
    return MtlsState(mode, source, scope, conflicts, tuple(weaker))


class Match(IntEnum):
    """Three-valued match: a rule can depend on request attributes we cannot know offline
    (JWT, IPs, HTTP paths, conditions). AND is ``min``, OR is ``max``."""

    NO = 0
    MAYBE = 1
    YES = 2


@dataclass(frozen=True)
class Caller:
    """Who calls a workload, as Istio sees the mTLS peer."""

    name: str
    namespace: str
    #: ``None`` for an ``ns/<x>`` peer: any workload of the namespace
    service_account: str | None

    def principal(self, trust_domain: str) -> str | None:
        if self.service_account is None:
            return None
        return f"{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


def _glob(pattern: str, value: str) -> bool:
    """Istio string match: exact, ``prefix*``, ``*suffix`` or ``*``."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return pattern == value


def _principal_match(pattern: str, caller: Caller, trust_domain: str) -> Match:
    principal = caller.principal(trust_domain)
    if principal is not None:
        return Match.YES if _glob(pattern, principal) else Match.NO
    # Any service account of the namespace: does the pattern cover all, some, or none?
    prefix = f"{trust_domain}/ns/{caller.namespace}/sa/"
    if pattern == "*" or (pattern.endswith("*") and prefix.startswith(pattern[:-1])):
        return Match.YES
    if pattern.startswith("*") or pattern.startswith(prefix):
        return Match.MAYBE
    return Match.NO


def _account_match(pattern: str, caller: Caller) -> Match:
    """``serviceAccounts`` entries are ``<namespace>/<service account>``."""
    namespace, _, account = pattern.partition("/")
    if namespace != caller.namespace:
        return Match.NO
    if caller.service_account is None:
        return Match.MAYBE
    return Match.YES if account == caller.service_account else Match.NO


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


_SOURCE_IDENTITY = ("principals", "namespaces", "serviceAccounts")


def _identity_match(key: str, pattern: str, caller: Caller, trust_domain: str) -> Match:
    if key == "principals":
        return _principal_match(pattern, caller, trust_domain)
    if key == "namespaces":
        return Match.YES if _glob(pattern, caller.namespace) else Match.NO
    return _account_match(pattern, caller)


def _source_match(source: Any, caller: Caller, trust_domain: str) -> Match:
    """Fields of one source are ANDed; an empty list counts as unset (as in Istio)."""
    if not isinstance(source, dict):
        return Match.YES if source is None else Match.NO
    result = Match.YES
    known = set()
    for key in _SOURCE_IDENTITY:
        negated = "not" + key[0].upper() + key[1:]
        known.update((key, negated))
        if patterns := _strings(source.get(key)):
            hit = max(_identity_match(key, p, caller, trust_domain) for p in patterns)
            result = min(result, hit)
        if patterns := _strings(source.get(negated)):
            hit = max(_identity_match(key, p, caller, trust_domain) for p in patterns)
            result = min(result, Match(Match.YES - hit))
    if any(_strings(v) for k, v in source.items() if k not in known):
        result = min(result, Match.MAYBE)  # JWT principals, IP blocks: unknown offline
    return result


def _operation_match(operation: Any, port: int) -> Match:
    if not isinstance(operation, dict):
        return Match.YES if operation is None else Match.NO
    ports = _strings(operation.get("ports"))
    if (ports and str(port) not in ports) or str(port) in _strings(operation.get("notPorts")):
        return Match.NO
    others = [v for k, v in operation.items() if k not in ("ports", "notPorts")]
    return Match.MAYBE if any(_strings(v) for v in others) else Match.YES


def rule_match(rule: Any, caller: Caller, port: int, trust_domain: str) -> Match:
    """Does an AuthorizationPolicy rule match the requests of ``caller`` on ``port``?
    ``from`` entries are ORed, ``to`` entries are ORed, and from, to and when are ANDed."""
    if not isinstance(rule, dict):
        return Match.NO
    result = Match.YES
    sources = rule.get("from")
    if isinstance(sources, list) and sources:
        result = max(
            _source_match(s.get("source") if isinstance(s, dict) else s, caller, trust_domain)
            for s in sources
        )
    operations = rule.get("to")
    if isinstance(operations, list) and operations:
        result = min(result, max(
            _operation_match(o.get("operation") if isinstance(o, dict) else o, port)
            for o in operations
        ))
    if rule.get("when"):
        result = min(result, Match.MAYBE)
    return result


def is_allow_all(rule: Any) -> bool:
    """``{}``: a rule without from, to or when matches every request."""
    return isinstance(rule, dict) and not (rule.get("from") or rule.get("to") or rule.get("when"))


def authz_applies(policy: Resource, endpoint: Endpoint, root_namespace: str) -> bool:
    """Does this AuthorizationPolicy apply to the endpoint's sidecar? Policies attached
    with ``targetRef(s)`` apply to gateways/waypoints, not to workloads."""
    spec = policy.spec
    if spec.get("targetRef") or spec.get("targetRefs"):
        return False
    if policy.namespace not in (endpoint.namespace, root_namespace):
        return False
    selector = _workload_selector(spec)
    return selector is None or has_labels(endpoint.labels, selector.items())


def authz_action(policy: Resource) -> str:
    return str(policy.spec.get("action") or "ALLOW")


@dataclass(frozen=True)
class AuthzDecision:
    allowed: Match
    #: the ALLOW policies whose rules admit the caller (or all applicable ones when none)
    allowed_by: tuple[str, ...]
    denied_by: tuple[str, ...] = ()


def authz_decide(
    caller: Caller,
    endpoint: Endpoint,
    port: int,
    policies: list[Resource],
    root_namespace: str,
    trust_domain: str,
) -> AuthzDecision:
    """Istio order: a matching DENY denies; no ALLOW policy allows; a matching ALLOW
    allows; otherwise deny. CUSTOM and AUDIT policies are not evaluated offline."""
    applicable = [p for p in policies if authz_applies(p, endpoint, root_namespace)]

    def rules(policy: Resource) -> list[Any]:
        raw = policy.spec.get("rules")
        return raw if isinstance(raw, list) else []

    denied = tuple(
        p.ref for p in applicable
        if authz_action(p) == "DENY"
        and any(rule_match(r, caller, port, trust_domain) == Match.YES for r in rules(p))
    )
    if denied:
        return AuthzDecision(Match.NO, (), denied)
    allows = [p for p in applicable if authz_action(p) == "ALLOW"]
    if not allows:
        return AuthzDecision(Match.YES, ())
    best, by = Match.NO, []
    for policy in allows:
        level = max((rule_match(r, caller, port, trust_domain) for r in rules(policy)),
                    default=Match.NO)
        if level > Match.NO:
            by.append(policy.ref)
        best = max(best, level)
    return AuthzDecision(best, tuple(by))
