"""NetworkPolicy (``networking.k8s.io/v1``) semantics, evaluated offline.

The audit must tell from manifests alone which pods can reach which, so this module
implements the API's semantics (truth tables cross-checked against the upstream
e2e suite ``test/e2e/network/netpol``):

- A pod is *isolated* for a direction when a policy of its namespace selects it and lists
  that direction in its ``policyTypes`` (default: Ingress always, Egress only when the
  policy has egress rules). A pod that is not isolated allows everything that way.
- An isolated pod allows the union of the rules of every policy selecting it (additive).
- A connection needs the source's egress *and* the destination's ingress.
- A peer's ``namespaceSelector`` and ``podSelector`` are ANDed; peers of one rule are
  ORed; a lone ``podSelector`` means the policy's own namespace; namespace selectors see
  the namespace labels plus the automatic ``kubernetes.io/metadata.name``. An empty or
  missing ``from``/``to`` matches every peer, empty or missing ``ports`` every port.
- Ports: ``protocol`` defaults to TCP; no ``port`` means every port of that protocol;
  ``endPort`` makes a range; a named port is looked up among the destination pod's
  container ports (for ingress and egress alike).
- ``ipBlock``: matched only against an :class:`Endpoint` that carries an IP. Offline we
  never know pod IPs, and whether ipBlock matches pod IPs at all is implementation-defined
  (the API asks for cluster-external ranges), so an ipBlock never admits a cluster pod here.

Label selectors are parsed and matched by :mod:`soma_audit.kube.labels` (an empty selector
selects everything). Policies the API server would reject are parsed best-effort (invalid
parts match nothing) and carry ``problems``; the probes leave them out and say so. Nothing
here raises on malformed input.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from soma_audit.config import Config, Service
from soma_audit.kube.inventory import Inventory
from soma_audit.kube.labels import (
    Selector,
    has_labels,
    namespace_selector_labels,
    parse_selector,
)
from soma_audit.kube.workloads import Workload, workloads

INGRESS = "Ingress"
EGRESS = "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --------------------------------------------------------------------------- validation


def _port_name_ok(name: str) -> bool:
    """IANA_SVC_NAME: at most 15 characters, lowercase alphanumerics and '-', a letter."""
    return (
        0 < len(name) <= 15
        and bool(_PORT_NAME.match(name))
        and "--" not in name
        and any(c.isalpha() for c in name)
    )


def _port_number_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


# ---------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    """A pod (or, with ``namespace=None``, a host outside the cluster) as policies see it."""

    name: str
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: container port name → (number, protocol), for named ports in policies
    named_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict, hash=False)
    ip: str | None = None
    #: evidence object: the workload (``Kind/ns/name``) or ``config`` when modelled
    ref: str = ""
    service_account: str = "default"


# -------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class IpBlock:
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    excepts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def contains(self, ip: str | None) -> bool:
        if self.cidr is None or ip is None:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if address.version != self.cidr.version or address not in self.cidr:
            return False
        return not any(address.version == e.version and address in e for e in self.excepts)


def _network(text: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(text, str) or "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _parse_ip_block(data: Any, where: str, problems: list[str]) -> IpBlock:
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping")
        return IpBlock(None)
    cidr = _network(data.get("cidr"))
    if cidr is None:
        problems.append(f"{where}.cidr: {data.get('cidr')!r} is not a CIDR")
        return IpBlock(None)
    excepts = []
    raw = data.get("except") or []
    if not isinstance(raw, list):
        problems.append(f"{where}.except: expected a list")
        return IpBlock(None)
    for i, text in enumerate(raw):
        network = _network(text)
        if (
            network is None
            or network.version != cidr.version
            or not network.subnet_of(cidr)
            or network.prefixlen <= cidr.prefixlen
        ):
            problems.append(f"{where}.except[{i}]: {text!r} must be a strict subset of cidr")
            return IpBlock(None)
        excepts.append(network)
    return IpBlock(cidr, tuple(excepts))


@dataclass(frozen=True)
class Peer:
    """A ``NetworkPolicyPeer``: pods by namespace and pod selectors, or an IP block."""

    pods: Selector | None = None
    namespaces: Selector | None = None
    ip_block: IpBlock | None = None
    valid: bool = True

    def matches(
        self,
        endpoint: Endpoint,
        policy_namespace: str,
        ns_labels: Callable[[str], Mapping[str, str]],
    ) -> bool:
        if not self.valid:
            return False
        if self.ip_block is not None:
            return self.ip_block.contains(endpoint.ip)
        if endpoint.namespace is None:
            return False
        if self.namespaces is None:
            in_namespace = endpoint.namespace == policy_namespace
        else:
            in_namespace = self.namespaces.matches(ns_labels(endpoint.namespace))
        return in_namespace and (self.pods is None or self.pods.matches(endpoint.labels))


def _parse_peer(data: Any, where: str, problems: list[str]) -> Peer:
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping")
        return Peer(valid=False)
    pods = data.get("podSelector")
    namespaces = data.get("namespaceSelector")
    block = data.get("ipBlock")
    peer = Peer(
        pods=None if pods is None else parse_selector(pods, f"{where}.podSelector", problems),
        namespaces=None
        if namespaces is None
        else parse_selector(namespaces, f"{where}.namespaceSelector", problems),
        ip_block=None if block is None else _parse_ip_block(block, f"{where}.ipBlock", problems),
    )
    given = sum(x is not None for x in (pods, namespaces, block))
    if given == 0:
        problems.append(f"{where}: must specify a peer (podSelector, namespaceSelector or ipBlock)")
        return Peer(valid=False)
    if block is not None and given > 1:
        problems.append(f"{where}: may not specify both ipBlock and another peer")
        return Peer(valid=False)
    return peer


@dataclass(frozen=True)
class PortRule:
    """A ``NetworkPolicyPort``: protocol, and a number, a range or a named port (or all)."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None
    valid: bool = True

    def matches(self, port: int, protocol: str, destination: Endpoint) -> bool:
        if not self.valid or protocol != self.protocol:
            return False
        if self.port is None:
            return True
        if isinstance(self.port, str):
            return destination.named_ports.get(self.port) == (port, protocol)
        if self.end_port is None:
            return port == self.port
        return self.port <= port <= self.end_port

    def describe(self) -> str:
        if self.port is None:
            return f"any/{self.protocol}"
        end = f"-{self.end_port}" if self.end_port is not None else ""
        return f"{self.port}{end}/{self.protocol}"


def _parse_port(data: Any, where: str, problems: list[str]) -> PortRule:
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping")
        return PortRule(valid=False)
    protocol = data.get("protocol")
    port, end = data.get("port"), data.get("endPort")
    before = len(problems)
    if protocol is None:
        protocol = "TCP"
    elif protocol not in PROTOCOLS:
        problems.append(f"{where}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if port is None:
        if end is not None:
            problems.append(f"{where}.endPort: may not be specified when port is not")
    elif isinstance(port, str):
        if not _port_name_ok(port):
            problems.append(f"{where}.port: {port!r} is not a valid port name")
        if end is not None:
            problems.append(f"{where}.endPort: may not be specified when port is a name")
    elif not _port_number_ok(port):
        problems.append(f"{where}.port: {port!r} is not a port number (1-65535)")
    elif end is not None and not (_port_number_ok(end) and end >= port):
        problems.append(f"{where}.endPort: {end!r} must be a port number >= port {port}")
    if len(problems) > before:
        return PortRule(valid=False)
    return PortRule(str(protocol), port, end)


@dataclass(frozen=True)
class Rule:
    """An ingress or egress rule. ``peers=None``: every peer; no ``ports``: every port."""

    peers: tuple[Peer, ...] | None = None
    ports: tuple[PortRule, ...] = ()

    def matches(
        self,
        peer: Endpoint,
        port: int,
        protocol: str,
        destination: Endpoint,
        policy_namespace: str,
        ns_labels: Callable[[str], Mapping[str, str]],
    ) -> bool:
        if self.ports and not any(p.matches(port, protocol, destination) for p in self.ports):
            return False
        return self.peers is None or any(
            p.matches(peer, policy_namespace, ns_labels) for p in self.peers
        )


def _parse_rules(data: Any, peers_key: str, where: str, problems: list[str]) -> tuple[Rule, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        problems.append(f"{where}: expected a list")
        return ()
    rules = []
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        if item is None:
            item = {}
        if not isinstance(item, dict):
            problems.append(f"{at}: expected a mapping")
            rules.append(Rule(peers=()))
            continue
        raw_peers, raw_ports = item.get(peers_key), item.get("ports")
        peers: tuple[Peer, ...] | None = None
        if isinstance(raw_peers, list) and raw_peers:
            peers = tuple(
                _parse_peer(p, f"{at}.{peers_key}[{j}]", problems) for j, p in enumerate(raw_peers)
            )
        elif raw_peers is not None and not isinstance(raw_peers, list):
            problems.append(f"{at}.{peers_key}: expected a list")
            peers = ()
        ports: tuple[PortRule, ...] = ()
        if isinstance(raw_ports, list):
            ports = tuple(
                _parse_port(p, f"{at}.ports[{j}]", problems) for j, p in enumerate(raw_ports)
            )
        elif raw_ports is not None:
            problems.append(f"{at}.ports: expected a list")
            ports = (PortRule(valid=False),)
        rules.append(Rule(peers, ports))
    return tuple(rules)


# ------------------------------------------------------------------------------ policies


@dataclass(frozen=True)
class Policy:
    """A parsed NetworkPolicy with its effective (defaulted) ``policyTypes``."""

    ref: str
    namespace: str
    pod_selector: Selector
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    types: frozenset[str] = frozenset({INGRESS})
    problems: tuple[str, ...] = ()
    #: ``policyTypes`` was not given and was defaulted (a frequent cause of surprises)
    types_defaulted: bool = False
    #: where the manifest was read (``file:line``), for evidence naming a rule
    origin: str = ""

    def selects(self, endpoint: Endpoint) -> bool:
        return (
            bool(self.namespace)
            and endpoint.namespace == self.namespace
            and self.pod_selector.matches(endpoint.labels)
        )

    def rules(self, direction: str) -> tuple[Rule, ...]:
        return self.ingress if direction == INGRESS else self.egress

    def denies_all(self, direction: str) -> bool:
        """Selects the pods for ``direction`` and admits nothing that way."""
        return direction in self.types and not self.rules(direction)


def parse_policy(body: Any, ref: str = "", origin: str = "") -> Policy:
    """A NetworkPolicy from its manifest; never raises. ``problems`` lists what the API
    server would reject. A policy without ``metadata.namespace`` selects nothing (we cannot
    know where it will be applied)."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return Policy(ref, "", Selector(valid=False), problems=("not a mapping",))
    meta = body.get("metadata")
    namespace = meta.get("namespace") if isinstance(meta, dict) else None
    namespace = namespace if isinstance(namespace, str) else ""
    spec = body.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        problems.append("spec: expected a mapping")
        spec = {}
    raw_selector = spec.get("podSelector")
    selector = (
        Selector()
        if raw_selector is None
        else parse_selector(raw_selector, "spec.podSelector", problems)
    )
    ingress = _parse_rules(spec.get("ingress"), "from", "spec.ingress", problems)
    egress = _parse_rules(spec.get("egress"), "to", "spec.egress", problems)
    raw_types = spec.get("policyTypes")
    defaulted = raw_types is None or raw_types == []
    if defaulted:
        has_egress = isinstance(spec.get("egress"), list) and bool(spec["egress"])
        types = frozenset({INGRESS, EGRESS} if has_egress else {INGRESS})
    elif not isinstance(raw_types, list):
        problems.append("spec.policyTypes: expected a list")
        types = frozenset()
    else:
        if len(raw_types) > 2:
            problems.append("spec.policyTypes: may not specify more than two policyTypes")
        for i, kind in enumerate(raw_types):
            if kind not in (INGRESS, EGRESS):
                problems.append(f"spec.policyTypes[{i}]: {kind!r} is not Ingress or Egress")
        types = frozenset(t for t in raw_types if t in (INGRESS, EGRESS))
    return Policy(ref, namespace, selector, ingress, egress, types, tuple(problems), defaulted,
                  origin)


class PolicySet(tuple[Policy, ...]):
    """Policies in their order, indexed by namespace: a policy only ever selects pods of
    its own namespace, so a decision reads that namespace's few, not every policy."""

    @functools.cached_property
    def _by_namespace(self) -> dict[str, tuple[Policy, ...]]:
        grouped: dict[str, list[Policy]] = {}
        for policy in self:
            grouped.setdefault(policy.namespace, []).append(policy)
        return {namespace: tuple(found) for namespace, found in grouped.items()}

    def in_namespace(self, namespace: str) -> tuple[Policy, ...]:
        return self._by_namespace.get(namespace, ())


def policy_set(policies: Iterable[Policy]) -> PolicySet:
    return policies if isinstance(policies, PolicySet) else PolicySet(policies)


def load_policies(inventory: Inventory) -> list[Policy]:
    """Every NetworkPolicy of the inventory, parsed (valid or not)."""
    return [parse_policy(r.body, r.ref, r.origin) for r in inventory.of_kind("NetworkPolicy")]


# ----------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Verdict:
    """One side of a connection: who isolates the pod that way and who admits the traffic."""

    direction: str
    isolated_by: tuple[str, ...] = ()
    allowed_by: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.isolated_by or bool(self.allowed_by)

    def describe(self, who: str) -> str:
        way = self.direction.lower()
        if not self.isolated_by:
            return f"{way} of {who} not isolated"
        if self.allowed_by:
            return f"{way} of {who} allowed by {', '.join(sorted(self.allowed_by))}"
        return (f"{way} of {who} isolated by {', '.join(sorted(self.isolated_by))} "
                "and no rule allows it")


@dataclass(frozen=True)
class Decision:
    """Whether ``source`` reaches ``destination`` on one port, and which policies decided."""

    source: Endpoint
    destination: Endpoint
    port: int
    protocol: str
    egress: Verdict
    ingress: Verdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    @property
    def denied_by(self) -> tuple[str, ...]:
        """The policies that isolate the blocking side(s) (empty when allowed)."""
        blocking = [v for v in (self.egress, self.ingress) if not v.allowed]
        return tuple(ref for v in blocking for ref in v.isolated_by)

    @property
    def allowed_by(self) -> tuple[str, ...]:
        return (*self.egress.allowed_by, *self.ingress.allowed_by)

    def explain(self) -> str:
        sides = [
            (self.egress, self.source.name),
            (self.ingress, self.destination.name),
        ]
        if not self.allowed:
            sides = [(v, who) for v, who in sides if not v.allowed]
        return "; ".join(v.describe(who) for v, who in sides)


def namespace_label_lookup(
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> Callable[[str], Mapping[str, str]]:
    """Labels of a namespace as selectors see them: its own plus the automatic name label."""

    def labels_of(namespace: str) -> Mapping[str, str]:
        own = namespace_labels.get(namespace)
        return namespace_selector_labels(namespace, own if isinstance(own, Mapping) else None)

    return labels_of


def _verdict(
    direction: str,
    subject: Endpoint,
    peer: Endpoint,
    destination: Endpoint,
    port: int,
    protocol: str,
    policies: PolicySet,
    ns_labels: Callable[[str], Mapping[str, str]],
) -> Verdict:
    isolating = [p for p in policies.in_namespace(subject.namespace)
                 if direction in p.types and p.selects(subject)]
    allowing = [
        p
        for p in isolating
        if any(
            r.matches(peer, port, protocol, destination, p.namespace, ns_labels)
            for r in p.rules(direction)
        )
    ]
    return Verdict(direction, tuple(p.ref for p in isolating), tuple(p.ref for p in allowing))


def allowed(
    src: Endpoint,
    dst: Endpoint,
    port: int,
    protocol: str,
    policies: Iterable[Policy],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> Decision:
    """May ``src`` open a connection to ``dst`` on ``port``/``protocol`` (the pod's port)?
    (Pass a :class:`PolicySet` when asking many times: it is indexed once.)"""
    policies = policy_set(policies)
    ns_labels = namespace_label_lookup(namespace_labels)
    egress = _verdict(EGRESS, src, dst, dst, port, protocol, policies, ns_labels)
    ingress = _verdict(INGRESS, dst, src, dst, port, protocol, policies, ns_labels)
    return Decision(src, dst, port, protocol, egress, ingress)


def reachability_matrix(
    endpoints: Iterable[Endpoint],
    policies: Iterable[Policy],
    namespace_labels: Mapping[str, Mapping[str, str]],
    port_of: Callable[[Endpoint], int],
    protocol: str = "TCP",
) -> dict[tuple[Endpoint, Endpoint], Decision]:
    """Every ordered pair of distinct endpoints, each on its destination's port."""
    endpoints = list(endpoints)
    policies = policy_set(policies)
    return {
        (src, dst): allowed(src, dst, port_of(dst), protocol, policies, namespace_labels)
        for src in endpoints
        for dst in endpoints
        if src is not dst
    }


# ------------------------------------------------------------------------------ exposure
# Who outside a pod's namespace a policy admits, rule by rule: pods of other namespaces
# (a representative pod of a namespace no config names, and each named namespace) and
# addresses outside the cluster (ipBlock). The outside side of such a connection is
# unknown (another team's namespace, the internet), so only the subject's own side decides.

#: A namespace name no configuration uses: it stands for "any other namespace".
UNLISTED_NAMESPACE = "soma-audit-unlisted-namespace"


def selector_witness(selector: Selector | None) -> dict[str, str] | None:
    """Labels of a pod the selector selects (None: no selector, any pod), or None when
    no label set can satisfy it (or it is invalid)."""
    if selector is None:
        return {}
    if not selector.valid:
        return None
    labels = dict(selector.match_labels)
    if len(labels) != len(selector.match_labels):
        return None  # one key with two values
    for requirement in selector.requirements:
        if requirement.operator == "In" and requirement.key not in labels:
            if not requirement.values:
                return None
            labels[requirement.key] = min(requirement.values)
        elif requirement.operator == "Exists":
            labels.setdefault(requirement.key, "present")
    return labels if selector.matches(labels) else None


@dataclass(frozen=True)
class Exposure:
    """One rule of one policy admitting something outside the subject's namespace."""

    policy: Policy
    direction: str
    #: index of the rule in ``spec.ingress``/``spec.egress``; -1: no policy isolates
    rule: int
    #: "everything", "unlisted" (any other namespace), "namespace" or "address"
    reach: str
    ports: tuple[PortRule, ...] = ()
    namespace: str | None = None
    pods: Selector | None = None
    block: IpBlock | None = None

    @property
    def path(self) -> str:
        """The rule as a path inside the policy: ``spec.ingress[0]``."""
        return f"spec.{self.direction.lower()}[{self.rule}]"

    def where(self, origin: str = "") -> str:
        """The rule, its policy and where it is written (``origin``: the rule's own
        file:line when known, else the policy's)."""
        if self.rule < 0:
            return "no policy"
        origin = origin or self.policy.origin
        at = f" ({origin})" if origin and origin != "cluster" else ""
        return f"{self.path} of {self.policy.ref}{at}"

    def describe_peer(self) -> str:
        pods = (f"pods {self.pods.describe()}" if self.pods is not None and not self.pods.empty
                else "any pod")
        if self.reach == "everything":
            return "every pod of every namespace and every address"
        if self.reach == "unlisted":
            return f"{pods} in any other namespace (one no flow names)"
        if self.reach == "namespace":
            return f"{pods} in namespace {self.namespace}"
        assert self.block is not None and self.block.cidr is not None
        carved = (" except " + ", ".join(map(str, self.block.excepts))
                  if self.block.excepts else "")
        return f"addresses {self.block.cidr}{carved}"

    def describe_ports(self) -> str:
        return ", ".join(p.describe() for p in self.ports) if self.ports else "all ports"


def outside_exposures(
    subject: Endpoint,
    direction: str,
    policies: Iterable[Policy],
    listed: Iterable[str],
    namespace_labels: Mapping[str, Mapping[str, str]],
) -> list[Exposure]:
    """Every way ``subject`` is reachable from (ingress) or reaches (egress) something
    outside its namespace. A subject no policy isolates that way is exposed to everything.
    Invalid peers and ports match nothing (the API server rejects them anyway)."""
    ns_labels = namespace_label_lookup(namespace_labels)
    isolating = [p for p in policies if direction in p.types and p.selects(subject)]
    if not isolating:
        return [Exposure(Policy("", subject.namespace or "", Selector()), direction, -1,
                         "everything")]
    others = sorted(set(listed) - {subject.namespace or ""})
    found: list[Exposure] = []
    for policy in isolating:
        for index, rule in enumerate(policy.rules(direction)):
            ports = rule.ports
            if ports and not any(p.valid for p in ports):
                continue
            if rule.peers is None:
                found.append(Exposure(policy, direction, index, "everything", ports))
                continue
            for peer in rule.peers:
                found += _peer_exposures(policy, direction, index, peer, ports, others,
                                         ns_labels)
    return found


def _peer_exposures(
    policy: Policy,
    direction: str,
    index: int,
    peer: Peer,
    ports: tuple[PortRule, ...],
    others: list[str],
    ns_labels: Callable[[str], Mapping[str, str]],
) -> list[Exposure]:
    if not peer.valid:
        return []
    if peer.ip_block is not None:
        if peer.ip_block.cidr is None:
            return []
        return [Exposure(policy, direction, index, "address", ports, block=peer.ip_block)]
    if peer.namespaces is None or selector_witness(peer.pods) is None:
        return []  # the policy's own namespace, or pods no label set can match
    found = []
    if peer.namespaces.matches(ns_labels(UNLISTED_NAMESPACE)):
        found.append(Exposure(policy, direction, index, "unlisted", ports, pods=peer.pods))
    found += [
        Exposure(policy, direction, index, "namespace", ports, namespace, peer.pods)
        for namespace in others
        if namespace != policy.namespace and peer.namespaces.matches(ns_labels(namespace))
    ]
    return found


def ports_within(ports: tuple[PortRule, ...], wanted: set[int], named: Endpoint | None) -> bool:
    """Whether the rule's ports open nothing but ``wanted`` (TCP or UDP numbers); a named
    port counts when it resolves on ``named`` (the destination pod) to a wanted port."""
    if not ports:
        return False
    for rule in ports:
        if not rule.valid:
            continue
        if isinstance(rule.port, str):
            resolved = named.named_ports.get(rule.port) if named is not None else None
            if resolved is None or resolved[0] not in wanted:
                return False
        elif rule.port is None or any(
                port not in wanted for port in range(rule.port, (rule.end_port or rule.port) + 1)):
            return False
    return True


# ------------------------------------------------------------------------------ topology
# Where the configured services' pods are, with the labels and ports policies see.

DNS_NAMESPACE = "kube-system"
DNS_LABELS = {"k8s-app": "kube-dns"}
#: The ports of the upstream CoreDNS deployment, used when kube-dns is not in the inventory.
DNS_PORTS = {"dns": (53, "UDP"), "dns-tcp": (53, "TCP"), "metrics": (9153, "TCP")}


@dataclass(frozen=True)
class ServicePods:
    """A configured service and the pods implementing it, each with the port it listens on."""

    service: Service
    endpoints: tuple[Endpoint, ...]
    #: pod port of ``service.port`` for each endpoint (the Service's targetPort)
    pod_ports: tuple[int, ...]
    #: no workload was found: one pod was modelled from the configured selector
    modelled: bool = False

    @property
    def name(self) -> str:
        return self.service.name


def endpoint_of(workload: Workload, name: str) -> Endpoint:
    """A workload's pods as an endpoint: template labels, named container ports, account."""
    named: dict[str, tuple[int, str]] = {}
    for _, container in workload.containers():
        ports = container.get("ports")
        for port in ports if isinstance(ports, list) else []:
            if not isinstance(port, dict):
                continue
            port_name, number = port.get("name"), port.get("containerPort")
            if isinstance(port_name, str) and _port_number_ok(number):
                named.setdefault(port_name, (number, str(port.get("protocol") or "TCP")))
    spec = workload.pod_spec
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    return Endpoint(
        name=name,
        namespace=workload.namespace,
        labels=workload.pod_labels,
        named_ports=named,
        ref=workload.resource.ref,
        service_account=str(account),
    )


def namespace_labels(inventory: Inventory) -> dict[str, dict[str, str]]:
    """Labels of the Namespace objects in the inventory."""
    return {r.name: r.labels for r in inventory.of_kind("Namespace")}


def _pod_port(inventory: Inventory, service: Service, endpoint: Endpoint) -> int:
    """The pod port behind ``service.port``: the Service's targetPort, if we have it."""
    obj = inventory.get("Service", service.name, endpoint.namespace)
    ports = obj.spec.get("ports") if obj is not None else None
    for entry in ports if isinstance(ports, list) else []:
        if not isinstance(entry, dict) or entry.get("port") != service.port:
            continue
        target = entry.get("targetPort")
        if _port_number_ok(target):
            return int(target)
        if isinstance(target, str) and target in endpoint.named_ports:
            return endpoint.named_ports[target][0]
    return service.port


def locate_services(inventory: Inventory, config: Config) -> dict[str, ServicePods]:
    """Each configured service's pods: workloads in the app namespace (or in another
    configured namespace) whose pod labels carry the service's selector. A service with no
    workload is modelled as one pod with exactly its selector labels in ``config.namespace``."""
    candidates = {config.namespace, *config.namespaces}
    found = [w for w in workloads(inventory) if w.namespace in candidates]
    located: dict[str, ServicePods] = {}
    for service in config.services:
        matching = [w for w in found if has_labels(w.pod_labels, service.selector.items())]
        # Prefer the app namespace when the same labels exist in several namespaces.
        home = [w for w in matching if w.namespace == config.namespace]
        chosen = home or matching
        if chosen:
            endpoints = tuple(endpoint_of(w, service.name) for w in chosen)
            modelled = False
        else:
            endpoints = (
                Endpoint(
                    service.name,
                    config.namespace,
                    dict(service.selector),
                    ref="config",
                    service_account=service.name,
                ),
            )
            modelled = True
        ports = tuple(_pod_port(inventory, service, ep) for ep in endpoints)
        located[service.name] = ServicePods(service, endpoints, ports, modelled)
    return located


def dns_endpoints(inventory: Inventory) -> tuple[tuple[Endpoint, ...], bool]:
    """The cluster DNS pods (``k8s-app: kube-dns`` in kube-system) and whether they were
    modelled (with the upstream CoreDNS ports) because the inventory has none."""
    found = tuple(
        endpoint_of(w, "kube-dns")
        for w in workloads(inventory, DNS_NAMESPACE)
        if has_labels(w.pod_labels, DNS_LABELS.items())
    )
    if found:
        return found, False
    modelled = Endpoint(
        "kube-dns",
        DNS_NAMESPACE,
        dict(DNS_LABELS),
        named_ports=DNS_PORTS,
        ref=f"Namespace/{DNS_NAMESPACE}",
    )
    return (modelled,), True


#: Labels of the Strimzi broker pods of a Kafka cluster (``strimzi.io/name`` is
#: ``<cluster>-kafka``), used when the inventory holds none.
def kafka_broker_labels(cluster: str) -> dict[str, str]:
    return {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka",
            "strimzi.io/name": f"{cluster}-kafka"}


def kafka_brokers(inventory: Inventory, namespace: str, cluster: str
                  ) -> tuple[tuple[Endpoint, ...], bool]:
    """The broker pods of a Strimzi Kafka cluster, and whether they were modelled (with
    Strimzi's labels) because the inventory has none."""
    wanted = {"strimzi.io/cluster": cluster, "strimzi.io/kind": "Kafka"}
    found = tuple(
        endpoint_of(w, f"kafka/{cluster}")
        for w in workloads(inventory, namespace)
        if has_labels(w.pod_labels, wanted.items())
    )
    if found:
        return found, False
    return (Endpoint(f"kafka/{cluster}", namespace, kafka_broker_labels(cluster),
                     ref=f"Kafka/{namespace}/{cluster}"),), True


def app_namespaces(config: Config, located: Mapping[str, ServicePods]) -> list[str]:
    """The namespaces that hold the platform: the app namespace and any configured
    namespace where a service's pods were found."""
    names = {config.namespace}
    names.update(
        ep.namespace for sp in located.values() for ep in sp.endpoints if ep.namespace
    )
    return sorted(names)
