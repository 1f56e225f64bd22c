"""Probes for the netpol area (see checks/netpol.yaml): NetworkPolicy default deny,
per-service coverage, the intended flows and nothing else, DNS egress, and Istio mTLS and
authorization where Istio is present. The semantics live in
:mod:`soma_audit.domain.netpol.policy`."""

from __future__ import annotations

from soma_audit.config import Flow
from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.netpol.policy import (
    DNS_LABELS,
    EGRESS,
    INGRESS,
    ISTIO_KINDS,
    Caller,
    Decision,
    Endpoint,
    Match,
    Policy,
    ServicePods,
    allowed,
    app_namespaces,
    authz_action,
    authz_applies,
    authz_decide,
    dns_endpoints,
    is_allow_all,
    istio_presence,
    load_policies,
    locate_services,
    namespace_labels,
    namespace_mtls,
    namespace_peer,
    reachability_matrix,
)
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.workloads import WORKLOAD_KINDS
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    probe,
    skipped,
    verdict,
)

NETPOL_KINDS = ("NetworkPolicy", "Namespace", "Service", *sorted(WORKLOAD_KINDS))
ISTIO_PROBE_KINDS = (*ISTIO_KINDS, "Namespace", *sorted(WORKLOAD_KINDS))
NO_SERVICES = "no services configured (config `services:`): nothing to evaluate"
NO_ISTIO = (
    "Istio not present: no security.istio.io or networking.istio.io objects and no "
    "namespace labelled istio-injection=enabled or istio.io/rev"
)


def _selector_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "{}"


def _parsed_policies(inventory: Inventory) -> tuple[Policy, ...]:
    return tuple(load_policies(inventory))


def _policies(inventory: Inventory) -> tuple[list[Policy], list[Evidence]]:
    """The policies the API server would accept, and a note for each one it would not
    (or whose namespace is unknown): those are left out of every evaluation. Parsed once
    per inventory, for the four checks that read them."""
    valid: list[Policy] = []
    notes: list[Evidence] = []
    for policy in inventory.derived(_parsed_policies):
        if policy.problems:
            notes.append(ev(policy.ref, "left out, the API server rejects it: "
                            + "; ".join(policy.problems)))
        elif not policy.namespace:
            notes.append(ev(policy.ref, "left out: metadata.namespace unset, so the namespace "
                            "it applies to is unknown"))
        else:
            valid.append(policy)
    return valid, notes


def _modelled_notes(located: dict[str, ServicePods], namespace: str) -> list[Evidence]:
    return [
        ev("config", f"{sp.name}: no workload with pod labels {_selector_text(sp.service.selector)}"
           f" found; modelled as one pod with exactly those labels in {namespace}")
        for sp in located.values()
        if sp.modelled
    ]


def _outcome(problems: list[Evidence], ok: list[Evidence], notes: list[Evidence]) -> Outcome:
    """The verdict, with the notes (left-out policies, modelled pods) kept either way."""
    outcome = verdict(problems, ok)
    return Outcome(outcome.status, (*outcome.evidence, *notes))


def _describe_types(policy: Policy) -> str:
    types = "[" + ", ".join(t for t in (INGRESS, EGRESS) if t in policy.types) + "]"
    return f"policyTypes {types}" + (" (defaulted)" if policy.types_defaulted else "")


# --------------------------------------------------------------------------- default deny


@probe("netpol.default-deny", kinds=NETPOL_KINDS)
def default_deny(ctx: ProbeContext, params: Params) -> Outcome:
    """Each app namespace denies ingress and egress by default: a policy (or a pair) with
    ``podSelector: {}``, both policyTypes, and no rules."""
    located = locate_services(ctx.inventory, ctx.config)
    policies, notes = _policies(ctx.inventory)
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for namespace in app_namespaces(ctx.config, located):
        wide = [p for p in policies if p.namespace == namespace and p.pod_selector.empty]
        deny = {d: [p.ref for p in wide if p.denies_all(d)] for d in (INGRESS, EGRESS)}
        if deny[INGRESS] and deny[EGRESS]:
            for ref in sorted({*deny[INGRESS], *deny[EGRESS]}):
                ways = [d for d in (INGRESS, EGRESS) if ref in deny[d]]
                ok.append(ev(ref, f"podSelector {{}} with no {'/'.join(w.lower() for w in ways)}"
                              f" rules: namespace {namespace} denies {' and '.join(ways)} "
                              "by default"))
            continue
        missing = [d for d in (INGRESS, EGRESS) if not deny[d]]
        near = "; ".join(
            f"{p.ref} has podSelector {{}}, {_describe_types(p)}, "
            f"{len(p.ingress)} ingress and {len(p.egress)} egress rules"
            for p in wide
        )
        problems.append(ev(
            f"Namespace/{namespace}",
            f"no default deny for {' and '.join(missing)}: expected a NetworkPolicy with "
            "podSelector {}, policyTypes [Ingress, Egress] and no rules"
            + (f" (found: {near})" if near else " (no namespace-wide NetworkPolicy found)"),
        ))
    return _outcome(problems, ok, notes)


# ----------------------------------------------------------------------- service coverage


@probe("netpol.service-coverage", kinds=NETPOL_KINDS)
def service_coverage(ctx: ProbeContext, params: Params) -> Outcome:
    """Every service's pods are selected by a policy of their own (a non-empty podSelector),
    not only by the namespace-wide default deny."""
    if not ctx.config.services:
        return skipped(NO_SERVICES)
    located = locate_services(ctx.inventory, ctx.config)
    policies, notes = _policies(ctx.inventory)
    notes += _modelled_notes(located, ctx.config.namespace)
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for sp in located.values():
        for endpoint in sp.endpoints:
            selecting = [p for p in policies if p.selects(endpoint)]
            own = [p for p in selecting if not p.pod_selector.empty]
            if own:
                ok.append(ev(own[0].ref, f"selects {sp.name} pods ({endpoint.ref}) with "
                                         f"podSelector {own[0].pod_selector.describe()}"))
                continue
            found = (
                "only namespace-wide ones: " + ", ".join(sorted(p.ref for p in selecting))
                if selecting else "none at all"
            )
            problems.append(ev(
                endpoint.ref,
                f"{sp.name}: no NetworkPolicy selects its pods "
                f"({_selector_text(dict(endpoint.labels))}) other than the default deny "
                f"({found}); expected a policy of its own",
            ))
    return _outcome(problems, ok, notes)


# ---------------------------------------------------------------------------------- flows


def _members(name: str, located: dict[str, ServicePods]) -> list[tuple[Endpoint, int | None]]:
    """A flow peer's endpoints with the pod port of their service port (None for ns/<x>)."""
    if name.startswith("ns/"):
        return [(namespace_peer(name[3:]), None)]
    sp = located[name]
    return list(zip(sp.endpoints, sp.pod_ports, strict=True))


def _flow_port(flow: Flow, located: dict[str, ServicePods], index: int) -> int:
    """The port a flow names: its own, or the destination service's port."""
    if flow.port is not None:
        return flow.port
    if flow.to.startswith("ns/"):
        raise ProbeError(
            f"config flows[{index}] ({flow.source} → {flow.to}): a namespace has no service "
            "port; set `port:` on this flow"
        )
    return located[flow.to].service.port


def _blocking(decision: Decision) -> str:
    """Where to fix a denied connection: the side that does not allow it."""
    side = decision.destination if not decision.ingress.allowed else decision.source
    return side.ref or "config"


def _admitting(decision: Decision) -> str:
    return next(iter(decision.allowed_by), decision.source.ref or "config")


@probe("netpol.flows", kinds=NETPOL_KINDS)
def flows(ctx: ProbeContext, params: Params) -> Outcome:
    """Every intended flow is allowed, and every other service-to-service pair is denied on
    the destination's service port (reachability over all configured services)."""
    if not ctx.config.services:
        return skipped(NO_SERVICES)
    config = ctx.config
    located = locate_services(ctx.inventory, config)
    policies, notes = _policies(ctx.inventory)
    notes += _modelled_notes(located, config.namespace)
    labels = namespace_labels(ctx.inventory)
    problems: list[Evidence] = []
    intended: set[tuple[str, str, int]] = set()
    for i, flow in enumerate(config.flows):
        port = _flow_port(flow, located, i)
        intended.add((flow.source, flow.to, port))
        service = located.get(flow.to)
        for src, _ in _members(flow.source, located):
            for dst, target in _members(flow.to, located):
                # The service port is reached on the pod's targetPort; other ports as given.
                on_pod = target if service and target and port == service.service.port else port
                decision = allowed(src, dst, on_pod, "TCP", policies, labels)
                if not decision.allowed:
                    problems.append(ev(_blocking(decision), f"{flow.source} → {flow.to}:{port} "
                                       f"denied, intended — {decision.explain()}"))

    endpoints = [ep for sp in located.values() for ep in sp.endpoints]
    pod_ports = {
        ep: port for sp in located.values()
        for ep, port in zip(sp.endpoints, sp.pod_ports, strict=True)
    }
    matrix = reachability_matrix(endpoints, policies, labels, pod_ports.__getitem__)
    checked = 0
    reported: set[tuple[str, str]] = set()
    for (src, dst), decision in matrix.items():
        service_port = located[dst.name].service.port
        if src.name == dst.name or (src.name, dst.name, service_port) in intended:
            continue
        checked += 1
        if decision.allowed and (src.name, dst.name) not in reported:
            reported.add((src.name, dst.name))
            problems.append(ev(_admitting(decision), f"{src.name} → {dst.name}:{service_port} "
                               f"allowed, not intended — {decision.explain()}"))
    ok = [ev(f"Namespace/{config.namespace}",
             f"{len(config.flows)} intended flows allowed; {checked} other service-to-service "
             "connections denied on their service ports")]
    return _outcome(problems, ok, notes)


# ------------------------------------------------------------------------------------ DNS


@probe("netpol.dns-egress", kinds=NETPOL_KINDS)
def dns_egress(ctx: ProbeContext, params: Params) -> Outcome:
    """Every service reaches the cluster DNS pods on 53/UDP and 53/TCP (large answers and
    some resolvers use TCP), through its own egress and kube-dns's ingress."""
    if not ctx.config.services:
        return skipped(NO_SERVICES)
    located = locate_services(ctx.inventory, ctx.config)
    policies, notes = _policies(ctx.inventory)
    notes += _modelled_notes(located, ctx.config.namespace)
    labels = namespace_labels(ctx.inventory)
    targets, modelled = dns_endpoints(ctx.inventory)
    if modelled:
        notes.append(ev(targets[0].ref, f"no kube-dns workload in the inventory: modelled as "
                                        f"pods labelled {_selector_text(DNS_LABELS)} with the "
                                        "CoreDNS ports"))
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for sp in located.values():
        for endpoint in sp.endpoints:
            denied = [
                d for protocol in ("UDP", "TCP") for dns in targets
                if not (d := allowed(endpoint, dns, 53, protocol, policies, labels)).allowed
            ]
            reasons: dict[str, list[str]] = {}
            for decision in denied:
                protocols = reasons.setdefault(decision.explain(), [])
                if decision.protocol not in protocols:
                    protocols.append(decision.protocol)
            for reason, protocols in reasons.items():
                problems.append(ev(endpoint.ref or "config",
                                   f"{sp.name} → kube-dns:53/{' and 53/'.join(protocols)} "
                                   f"denied — {reason}"))
            if not denied:
                sample = allowed(endpoint, targets[0], 53, "UDP", policies, labels)
                ok.append(ev(endpoint.ref or "config",
                             f"{sp.name} reaches kube-dns on 53/UDP and 53/TCP "
                             f"({sample.explain()})"))
    return _outcome(problems, ok, notes)


# ---------------------------------------------------------------------------------- Istio


def _param(params: Params, key: str, default: str) -> str:
    value = params.get(key, default)
    if not isinstance(value, str) or not value:
        raise ProbeError(f"catalog params.{key}: expected a non-empty string, got {value!r}")
    return value


def _istio_objects(inventory: Inventory, kind: str) -> list[Resource]:
    return [r for r in inventory.of_kind(kind) if r.group == "security.istio.io"]


@probe("netpol.istio-mtls", kinds=ISTIO_PROBE_KINDS)
def istio_mtls(ctx: ProbeContext, params: Params) -> Outcome:
    """With Istio, the app namespaces' effective PeerAuthentication mode is STRICT
    (namespace-wide, or mesh-wide in the root namespace) and no workload policy weakens it."""
    presence = istio_presence(ctx.inventory)
    if presence is None:
        return skipped(NO_ISTIO)
    root = _param(params, "root_namespace", "istio-system")
    located = locate_services(ctx.inventory, ctx.config)
    peer_auths = _istio_objects(ctx.inventory, "PeerAuthentication")
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for namespace in app_namespaces(ctx.config, located):
        state = namespace_mtls(namespace, peer_auths, root)
        where = state.source or f"Namespace/{namespace}"
        if state.conflicts:
            problems.append(ev(where, f"conflicting {state.scope} PeerAuthentications for "
                                      f"{namespace}: {', '.join(state.conflicts)} (Istio applies "
                                      "the oldest; make them agree on STRICT)"))
        elif state.mode != "STRICT":
            source = state.source or "no PeerAuthentication"
            problems.append(ev(where, f"effective mtls.mode={state.mode} for {namespace} "
                                      f"({state.scope}: {source}), expected STRICT"))
        else:
            ok.append(ev(where, f"mtls.mode=STRICT covers {namespace} ({state.scope})"))
        for ref, what in state.weaker:
            problems.append(ev(ref, f"{what} weakens STRICT for the workloads it selects in "
                                    f"{namespace}"))
    return _outcome(problems, ok, [ev(*presence)])


def _callers(located: dict[str, ServicePods], config_flows: list[Flow]) -> dict[str, Caller]:
    callers = {
        name: Caller(name, sp.endpoints[0].namespace or "", sp.endpoints[0].service_account)
        for name, sp in located.items()
    }
    for flow in config_flows:
        if flow.source.startswith("ns/"):
            callers[flow.source] = Caller(flow.source, flow.source[3:], None)
    return callers


def _rules(policy: Resource) -> list[object]:
    rules = policy.spec.get("rules")
    return rules if isinstance(rules, list) else []


@probe("netpol.istio-authz", kinds=ISTIO_PROBE_KINDS)
def istio_authz(ctx: ProbeContext, params: Params) -> Outcome:
    """With Istio, each service is covered by ALLOW AuthorizationPolicies that admit its
    intended callers (config flows) and no other service, and no allow-all rule."""
    presence = istio_presence(ctx.inventory)
    if presence is None:
        return skipped(NO_ISTIO)
    if not ctx.config.services:
        return skipped(NO_SERVICES)
    root = _param(params, "root_namespace", "istio-system")
    trust_domain = _param(params, "trust_domain", "cluster.local")
    located = locate_services(ctx.inventory, ctx.config)
    policies = _istio_objects(ctx.inventory, "AuthorizationPolicy")
    callers = _callers(located, ctx.config.flows)
    notes = [ev(*presence), *_modelled_notes(located, ctx.config.namespace)]
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for sp in located.values():
        flows_in = [f for f in ctx.config.flows if f.to == sp.name]
        wanted = {f.source for f in flows_in}
        for endpoint, pod_port in zip(sp.endpoints, sp.pod_ports, strict=True):
            where = endpoint.ref or "config"
            allows = [p for p in policies
                      if authz_applies(p, endpoint, root) and authz_action(p) == "ALLOW"]
            if not allows:
                problems.append(ev(where, f"{sp.name}: no ALLOW AuthorizationPolicy applies to "
                                          "its pods, so every caller is allowed"))
                continue
            found: list[Evidence] = [
                ev(p.ref, f"rules[{i}] is empty: allows every caller of {sp.name}")
                for p in allows for i, rule in enumerate(_rules(p)) if is_allow_all(rule)
            ]
            allow_all = bool(found)
            for flow in flows_in:
                port = pod_port if flow.port in (None, sp.service.port) else flow.port
                decision = authz_decide(callers[flow.source], endpoint, port, policies, root,
                                        trust_domain)
                if decision.allowed == Match.NO:
                    why = (f"denied by {', '.join(sorted(decision.denied_by))}"
                           if decision.denied_by
                           else f"no rule of {', '.join(sorted(p.ref for p in allows))} admits it")
                    found.append(ev(where, f"{flow.source} → {sp.name}: intended caller not "
                                           f"allowed ({why})"))
            if not allow_all:  # else every caller is allowed: said once above
                for name, caller in sorted(callers.items()):
                    if name in wanted or name == sp.name or name.startswith("ns/"):
                        continue
                    decision = authz_decide(caller, endpoint, pod_port, policies, root,
                                            trust_domain)
                    if decision.allowed != Match.NO:
                        how = "may be allowed" if decision.allowed == Match.MAYBE else "allowed"
                        found.append(ev(
                            next(iter(decision.allowed_by), where),
                            f"{name} ({caller.principal(trust_domain)}) → {sp.name} {how} by "
                            f"{', '.join(sorted(decision.allowed_by))}, not an intended caller",
                        ))
            problems += found
            if not found:
                who = ", ".join(sorted(wanted)) or "no caller"
                ok.append(ev(allows[0].ref, f"{sp.name}: ALLOW policies admit exactly its "
                                            f"intended callers ({who})"))
    return _outcome(problems, ok, notes)
