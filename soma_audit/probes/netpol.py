"""Probes for the netpol area (see checks/netpol.yaml): NetworkPolicy default deny,
per-service coverage, the intended flows and nothing else, DNS egress, and Istio mTLS and
authorization where Istio is present. The semantics live in
:mod:`soma_audit.domain.netpol.policy`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

import yaml

from soma_audit.config import Config, Flow
from soma_audit.core.flowpeers import FlowPeer, representative_addresses
from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.netpol.derived import DerivedFlow, derived_flows
from soma_audit.domain.netpol.istio import (
    ISTIO_KINDS,
    Caller,
    Match,
    authz_action,
    authz_applies,
    authz_decide,
    is_allow_all,
    istio_presence,
    namespace_mtls,
)
from soma_audit.domain.netpol.policy import (
    DNS_LABELS,
    DNS_NAMESPACE,
    EGRESS,
    INGRESS,
    Decision,
    Endpoint,
    Exposure,
    IpBlock,
    Policy,
    PolicySet,
    ServicePods,
    Verdict,
    allowed,
    app_namespaces,
    dns_endpoints,
    kafka_brokers,
    load_policies,
    locate_services,
    namespace_labels,
    outside_exposures,
    ports_within,
    reachability_matrix,
    selector_witness,
)
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.workloads import WORKLOAD_KINDS
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    probe,
    repofiles,
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


def _policies(inventory: Inventory) -> tuple[PolicySet, list[Evidence]]:
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
    return PolicySet(valid), notes


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


@dataclass(frozen=True)
class _Need:
    """A flow to verify: configured (``why`` empty) or derived from the manifests."""

    flow: Flow
    source: FlowPeer
    to: FlowPeer
    port: int
    ref: str = ""
    why: str = ""
    any_pod: bool = False

    @property
    def label(self) -> str:
        return f"{self.flow.source} → {self.flow.to}:{self.port}"


def _needs(config: Config, located: dict[str, ServicePods],
           derived: list[DerivedFlow]) -> list[_Need]:
    """Configured flows, then the derived ones no configured flow already states."""
    needs: list[_Need] = []
    for i, flow in enumerate(config.flows):
        source, to = flow.peers()
        needs.append(_Need(flow, source, to, _flow_port(flow, to, located, f"flows[{i}]")))
    stated = {(n.flow.source, n.flow.to, n.port) for n in needs}
    for item in derived:
        source, to = item.flow.peers()
        port = _flow_port(item.flow, to, located, "derived flow")
        if (item.flow.source, item.flow.to, port) not in stated:
            stated.add((item.flow.source, item.flow.to, port))
            needs.append(_Need(item.flow, source, to, port, item.ref, item.why, item.any_pod))
    return needs


def _flow_port(flow: Flow, to: FlowPeer, located: dict[str, ServicePods], where: str) -> int:
    """The port a flow names: its own, the peer's default, or the destination service's."""
    if flow.port is not None:
        return flow.port
    if to.kind == "service":
        return located[to.name].service.port
    default = to.default_port()
    if default is None:
        raise ProbeError(f"config {where} ({flow.source} → {flow.to}): a {to.kind} peer has "
                         "no service port; set `port:` on this flow")
    return default


def _members(peer: FlowPeer, ctx: ProbeContext, located: dict[str, ServicePods]
             ) -> list[tuple[Endpoint, int | None]]:
    """A flow peer's endpoints, each with the pod port of its service port (or None)."""
    if peer.kind == "service":
        sp = located[peer.name]
        return list(zip(sp.endpoints, sp.pod_ports, strict=True))
    if peer.kind == "namespace":
        return [(Endpoint(peer.text, peer.name, dict(peer.pods), ref=f"Namespace/{peer.name}"),
                 None)]
    if peer.kind == "kafka":
        brokers, _ = kafka_brokers(ctx.inventory, ctx.config.kafka.namespace, peer.name)
        return [(b, None) for b in brokers]
    return [(Endpoint(f"{peer.text} ({address})", None, ip=address, ref=peer.text), None)
            for address in representative_addresses(peer)]


def _on_pod(need: _Need, target: int | None, located: dict[str, ServicePods]) -> int:
    """The port on the destination pod: a service port becomes the pod's target port."""
    service = located.get(need.to.name) if need.to.kind == "service" else None
    if service is not None and target and need.port == service.service.port:
        return target
    return need.port


def _witnesses(src: Endpoint, namespace: str, policies: list[Policy]) -> list[Endpoint]:
    """Pods of ``namespace`` standing for "some pod there": an unlabelled one, and one
    matching each egress peer of ``src``'s policies (their pods are unknown to us)."""
    found = [Endpoint(f"ns/{namespace}", namespace, {}, ref=f"Namespace/{namespace}")]
    for policy in policies:
        if EGRESS not in policy.types or not policy.selects(src):
            continue
        for rule in policy.egress:
            for peer in rule.peers or ():
                labels = selector_witness(peer.pods) if peer.ip_block is None else None
                if labels:
                    found.append(Endpoint(f"ns/{namespace}", namespace, labels,
                                          ref=f"Namespace/{namespace}"))
    return found


def _check_need(need: _Need, ctx: ProbeContext, located: dict[str, ServicePods],
                policies: list[Policy], labels: dict[str, dict[str, str]]) -> list[Evidence]:
    problems: list[Evidence] = []
    kind = f"needed ({need.why})" if need.why else "intended"
    reported: set[tuple[str, str]] = set()
    for src, _ in _members(need.source, ctx, located):
        for dst, target in _members(need.to, ctx, located):
            if (src.ref, dst.ref) in reported:
                continue  # one address of an outside peer denied is enough to say so
            port = _on_pod(need, target, located)
            candidates = (_witnesses(src, dst.namespace or "", policies)
                          if need.any_pod and dst.namespace else [dst])
            decisions = [allowed(src, c, port, "TCP", policies, labels) for c in candidates]
            if modelled_broker := (need.to.kind == "kafka" and dst.ref.startswith("Kafka/")):
                # Strimzi writes the brokers' own NetworkPolicies: only our egress decides.
                decisions = [replace(d, ingress=Verdict(INGRESS)) for d in decisions]
            if not any(d.allowed for d in decisions):
                decision = decisions[0]
                where = " (brokers modelled: their ingress is Strimzi's)" if modelled_broker \
                    else ""
                problems.append(ev(_blocking(decision), f"{need.label} denied, {kind} — "
                                                        f"{decision.explain()}{where}"))
                reported.add((src.ref, dst.ref))
    return problems


def _blocking(decision: Decision) -> str:
    """Where to fix a denied connection: the side that does not allow it."""
    side = decision.destination if not decision.ingress.allowed else decision.source
    return side.ref or "config"


def _admitting(decision: Decision) -> str:
    return next(iter(decision.allowed_by), decision.source.ref or "config")


def _pairs(located: dict[str, ServicePods], policies: list[Policy],
           labels: dict[str, dict[str, str]], intended: set[tuple[str, str, int]]
           ) -> tuple[int, list[Evidence]]:
    """Service-to-service connections that no flow states: each must be denied."""
    endpoints = [ep for sp in located.values() for ep in sp.endpoints]
    pod_ports = {
        ep: port for sp in located.values()
        for ep, port in zip(sp.endpoints, sp.pod_ports, strict=True)
    }
    matrix = reachability_matrix(endpoints, policies, labels, pod_ports.__getitem__)
    checked = 0
    problems: list[Evidence] = []
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
    return checked, problems


@dataclass(frozen=True)
class _Opening:
    """What the needs allow a service to exchange with one outside peer, on which ports."""

    direction: str
    peer: FlowPeer
    namespace: str | None
    ports: frozenset[int]
    #: labels every pod of the peer carries (a rule admitting more pods is broader)
    pods: frozenset[tuple[str, str]] = frozenset()

    def admits(self, exposure: Exposure) -> bool:
        """Whether this opening explains a rule reaching pods of its namespace: the rule
        selects only pods carrying the peer's labels (or the peer is every pod there)."""
        if self.namespace != exposure.namespace:
            return False
        if not self.pods:
            return True
        return exposure.pods is not None and self.pods <= set(exposure.pods.match_labels)


def _openings(service: str, needs: list[_Need], ctx: ProbeContext,
              located: dict[str, ServicePods]) -> list[_Opening]:
    """The outside peers (other namespaces, addresses) a service's needs open."""
    found = []
    for need in needs:
        for direction, inside, outside in ((EGRESS, need.source, need.to),
                                           (INGRESS, need.to, need.source)):
            if inside.kind != "service" or inside.name != service:
                continue
            if direction == INGRESS:
                ports = {_on_pod(need, t, located) for _, t in _members(inside, ctx, located)}
            else:
                ports = {_on_pod(need, t, located) for _, t in _members(outside, ctx, located)}
            found.append(_Opening(direction, outside, _peer_namespace(outside, ctx, located),
                                  frozenset(ports), _peer_pods(outside, ctx, located)))
    return found


def _peer_pods(peer: FlowPeer, ctx: ProbeContext,
               located: dict[str, ServicePods]) -> frozenset[tuple[str, str]]:
    """The labels a flow peer's pods all carry (empty: any pod of its namespace)."""
    if peer.kind == "service":
        return frozenset(located[peer.name].service.selector.items())
    if peer.kind == "kafka":
        return frozenset({("strimzi.io/cluster", peer.name), ("strimzi.io/kind", "Kafka")})
    return frozenset(peer.pods)


def _peer_namespace(peer: FlowPeer, ctx: ProbeContext,
                    located: dict[str, ServicePods]) -> str | None:
    if peer.kind == "service":
        return located[peer.name].endpoints[0].namespace
    if peer.kind == "namespace":
        return peer.name
    if peer.kind == "kafka":
        return ctx.config.kafka.namespace
    return None


def _remaining(block: IpBlock) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks an ipBlock admits: its cidr with the excepts carved out."""
    assert block.cidr is not None
    networks = [block.cidr]
    for carved in block.excepts:
        networks = [piece for net in networks
                    for piece in (net.address_exclude(carved)  # type: ignore[arg-type]
                                  if net.version == carved.version and carved.subnet_of(net)
                                  else [net])]
    return networks


def _intended(exposure: Exposure, endpoint: Endpoint, openings: list[_Opening]) -> bool:
    """Whether the needs of the service explain this exposure: the same outside peer (no
    more pods of a namespace, no more addresses) on no more ports. DNS (egress on port 53
    only) is ``netpol.dns-egress``'s business."""
    mine = [o for o in openings if o.direction == exposure.direction]
    named = endpoint if exposure.direction == INGRESS else None
    if exposure.direction == EGRESS and ports_within(exposure.ports, {53}, None):
        return True
    if exposure.reach == "namespace":
        wanted = {p for o in mine if o.admits(exposure) for p in o.ports}
        if exposure.namespace == DNS_NAMESPACE and exposure.direction == EGRESS:
            wanted.add(53)
        return bool(wanted) and ports_within(exposure.ports, wanted, named)
    outside = [o for o in mine if o.peer.outside]
    if exposure.reach in ("everything", "unlisted"):
        # Pods have addresses too: only a flow to every address (no except) explains it.
        every = [o for o in outside if o.peer.covers(ipaddress.ip_network("0.0.0.0/0"))]
        wanted = {p for o in every for p in o.ports}
        return bool(wanted) and ports_within(exposure.ports, wanted, named)
    if exposure.reach == "address" and exposure.block is not None:
        wanted = {p for o in outside for p in o.ports}
        covered = all(any(o.peer.covers(net) for o in outside)
                      for net in _remaining(exposure.block))
        return covered and bool(wanted) and ports_within(exposure.ports, wanted, named)
    return False


#: Namespaces named at most in one finding; the rest are counted.
_NAMESPACES_SHOWN = 5


def _exposures(ctx: ProbeContext, located: dict[str, ServicePods], needs: list[_Need],
               policies: list[Policy], labels: dict[str, dict[str, str]]
               ) -> tuple[int, list[Evidence]]:
    """Who outside a service's namespace reaches it, and what outside it reaches, that
    no need explains: one finding per service, rule and outside peer. Namespaces no flow
    or config names are folded into the rule's "any other namespace" finding when it has
    one, and listed together otherwise (a cluster may hold hundreds)."""
    named = {ctx.config.namespace, *ctx.config.namespaces, DNS_NAMESPACE,
             ctx.config.kafka.namespace}
    named.update(ns for need in needs for peer in (need.source, need.to)
                 if (ns := _peer_namespace(peer, ctx, located)))
    listed = named | set(labels)
    problems: list[Evidence] = []
    texts: dict[str, str | None] = {}
    checked = 0
    for sp in located.values():
        openings = _openings(sp.name, needs, ctx, located)
        found: dict[tuple[str, str, int, str, str, str], tuple[Exposure, Endpoint]] = {}
        for endpoint in sp.endpoints:
            for direction in (INGRESS, EGRESS):
                for exposure in outside_exposures(endpoint, direction, policies, listed, labels):
                    checked += 1
                    key = (direction, exposure.policy.ref, exposure.rule, exposure.reach,
                           exposure.describe_peer(), exposure.describe_ports())
                    if key not in found and not _intended(exposure, endpoint, openings):
                        found[key] = (exposure, endpoint)
        anywhere = {(e.direction, e.policy.ref, e.rule, _pods_text(e), e.describe_ports())
                    for e, _ in found.values() if e.reach == "unlisted"}
        grouped: dict[tuple[str, str, int, str, str], list[str]] = {}
        for exposure, endpoint in found.values():
            rule_key = (exposure.direction, exposure.policy.ref, exposure.rule,
                        _pods_text(exposure), exposure.describe_ports())
            if exposure.reach == "namespace" and exposure.namespace not in named:
                if rule_key not in anywhere:
                    grouped.setdefault(rule_key, []).append(exposure.namespace or "")
                continue
            origin = _rule_origin(ctx, exposure, texts) if exposure.rule >= 0 else ""
            problems.append(_exposure_evidence(sp.name, endpoint, exposure,
                                               exposure.describe_peer(), origin))
        for exposure, endpoint in found.values():
            rule_key = (exposure.direction, exposure.policy.ref, exposure.rule,
                        _pods_text(exposure), exposure.describe_ports())
            namespaces = grouped.pop(rule_key, None) if exposure.reach == "namespace" else None
            if namespaces:
                shown = ", ".join(sorted(namespaces)[:_NAMESPACES_SHOWN])
                more = len(namespaces) - _NAMESPACES_SHOWN
                peer = (f"{_pods_text(exposure)} in namespace{'s' if len(namespaces) > 1 else ''}"
                        f" {shown}" + (f" and {more} more" if more > 0 else ""))
                origin = _rule_origin(ctx, exposure, texts)
                problems.append(_exposure_evidence(sp.name, endpoint, exposure, peer, origin))
    return checked, problems


def _pods_text(exposure: Exposure) -> str:
    pods = exposure.pods
    return f"pods {pods.describe()}" if pods is not None and not pods.empty else "any pod"


def _rule_origin(ctx: ProbeContext, exposure: Exposure, texts: dict[str, str | None]) -> str:
    """The rule's own ``file:line`` in the repository (the policy's when it cannot be
    told: a live object, a ``kind: List``, a file that changed since it was read)."""
    path, _, line = exposure.policy.origin.rpartition(":")
    repo = ctx.source.repo
    if repo is None or not path or not line.isdigit():
        return ""
    if path not in texts:
        try:
            texts[path] = repofiles.read_text(repo, repo / path)
        except ProbeError:
            texts[path] = None
    text = texts[path]
    if text is None:
        return ""
    rest = text.splitlines()[int(line) - 1:]
    end = next((i for i, t in enumerate(rest) if i and t.startswith("---")), len(rest))
    try:
        node = yaml.compose("\n".join(rest[:end]), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return ""
    for key in ("spec", exposure.direction.lower()):
        node = _child(node, key)
    if not isinstance(node, yaml.SequenceNode) or len(node.value) <= exposure.rule:
        return ""
    return f"{path}:{int(line) + node.value[exposure.rule].start_mark.line}"


def _child(node: object, key: str) -> object:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode)
                     and k.value == key), None)
    return None


def _exposure_evidence(service: str, endpoint: Endpoint, exposure: Exposure,
                       peer: str, origin: str) -> Evidence:
    if exposure.rule < 0:
        way = "ingress" if exposure.direction == INGRESS else "egress"
        return ev(endpoint.ref or "config",
                  f"{service}: no NetworkPolicy isolates its {way}, so "
                  + ("every pod and address reaches it" if exposure.direction == INGRESS
                     else "it reaches every pod and address")
                  + " on all ports (not intended)")
    if exposure.direction == INGRESS:
        what = f"{service} is reachable from {peer} on {exposure.describe_ports()}"
    else:
        what = f"{service} reaches {peer} on {exposure.describe_ports()}"
    return ev(exposure.policy.ref, f"{what} — {exposure.where(origin)} admits it; no "
                                   "intended flow does")


@probe("netpol.flows", kinds=(*NETPOL_KINDS, "KafkaUser"))
def flows(ctx: ProbeContext, params: Params) -> Outcome:
    """Every intended flow and every flow the manifests imply is allowed; every other
    service-to-service pair is denied on the destination's service port; and nothing
    outside the app namespace (other namespaces, outside addresses) reaches a service or
    is reached by one beyond those flows."""
    if not ctx.config.services:
        return skipped(NO_SERVICES)
    config = ctx.config
    located = locate_services(ctx.inventory, config)
    policies, notes = _policies(ctx.inventory)
    notes += _modelled_notes(located, config.namespace)
    labels = namespace_labels(ctx.inventory)
    derived = derived_flows(config, ctx.inventory, located)
    needs = _needs(config, located, derived)
    problems: list[Evidence] = []
    for need in needs:
        problems += _check_need(need, ctx, located, policies, labels)
    intended = {(n.source.name, n.to.name, n.port) for n in needs
                if n.source.kind == n.to.kind == "service"}
    checked, unintended = _pairs(located, policies, labels, intended)
    exposures_checked, exposed = _exposures(ctx, located, needs, policies, labels)
    problems += unintended + exposed
    implied = [ev(n.ref, f"needed flow {n.label}: {n.why}") for n in needs if n.why]
    ok = [ev(f"Namespace/{config.namespace}",
             f"{len(config.flows)} intended and {len(implied)} derived flows allowed; "
             f"{checked} other service-to-service connections denied on their service "
             f"ports; {exposures_checked} openings to other namespaces and outside "
             "addresses all explained by those flows")]
    return _outcome(problems, [*ok, *implied], notes)


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
        source, _ = flow.peers()
        if source.kind == "namespace":
            callers[flow.source] = Caller(flow.source, source.name, None)
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
        # Istio authorizes workloads by identity: outside addresses have none.
        flows_in = [f for f in ctx.config.flows if f.to == sp.name and f.source in callers]
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
