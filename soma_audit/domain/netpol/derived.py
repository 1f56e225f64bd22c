"""Flows the configuration and the manifests imply, so that they are not forgotten.

- A service whose containers point at another service through an environment value
  (``OPENFGA_API_URL=http://openfga.openfga.svc:8080``, ``ORCHESTRATOR=orchestrator:10001``,
  a comma-separated bootstrap list) needs that flow: to the configured service, to the
  pods the Kubernetes Service selects, or (Service unknown) to some pod of its namespace.
- A service holding a KafkaUser (a Strimzi object named after it) talks to the brokers of
  the Kafka cluster the user belongs to (its ``strimzi.io/cluster`` label).

Only literal ``value`` entries are read (never ``valueFrom``: Secrets stay unread). DNS
egress is implied for every service too; ``netpol.dns-egress`` checks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from soma_audit.config import Config, Flow
from soma_audit.core.flowpeers import PeerError, parse_peer
from soma_audit.domain import kafka as strimzi
from soma_audit.domain.netpol.policy import ServicePods
from soma_audit.kube.inventory import Inventory
from soma_audit.kube.workloads import workloads

#: ``scheme://host:port/...`` or ``host:port`` (one entry of a comma-separated list).
_ADDRESS = re.compile(
    r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?:[^@/\s]*@)?(?P<host>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)"
    r"(?::(?P<port>\d{1,5}))?(?:[/?#].*)?$"
)
_SCHEME_PORTS = {"http": 80, "https": 443, "grpc": 80, "grpcs": 443}
_CLUSTER_SUFFIXES = ("svc", "svc.cluster.local")


@dataclass(frozen=True)
class DerivedFlow:
    """A flow implied by the manifests: ``flow`` plus why (the evidence object and text).
    ``any_pod``: the destination namespace's pods are unknown, so the flow is needed to
    *some* pod there (a policy admitting a subset of its pods is enough)."""

    flow: Flow
    ref: str
    why: str
    any_pod: bool = False


def _service_host(host: str, own_namespace: str) -> tuple[str, str] | None:
    """(service, namespace) of an in-cluster name: ``svc``, ``svc.ns``, ``svc.ns.svc``,
    ``svc.ns.svc.cluster.local``; None for any other host name."""
    name, _, rest = host.partition(".")
    if not rest:
        return name, own_namespace
    namespace, _, suffix = rest.partition(".")
    if not suffix or suffix in _CLUSTER_SUFFIXES:
        return name, namespace
    return None


def _addresses(value: str) -> list[tuple[str, int | None]]:
    """(host, port) of each address in an environment value; plain words are not
    addresses (a port or a scheme is required)."""
    found = []
    for part in value.split(","):
        match = _ADDRESS.match(part.strip().lower())
        if match is None or not (match["scheme"] or match["port"]):
            continue
        port = int(match["port"]) if match["port"] else _SCHEME_PORTS.get(match["scheme"] or "")
        if port is None or not 1 <= port <= 65535:
            continue
        found.append((match["host"], port))
    return found


def _selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _target_port(inventory: Inventory, name: str, namespace: str, port: int
                 ) -> tuple[dict[str, str] | None, int]:
    """The Service's pod selector and the pod port behind ``port`` (None: no Service)."""
    service = inventory.get("Service", name, namespace)
    if service is None:
        return None, port
    selector = service.spec.get("selector")
    labels = ({str(k): str(v) for k, v in selector.items()}
              if isinstance(selector, dict) else {})
    entries = service.spec.get("ports")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("port") == port:
            target = entry.get("targetPort")
            if isinstance(target, int) and not isinstance(target, bool):
                return labels, target
    return labels, port


def _env_flow(config: Config, inventory: Inventory, located: dict[str, ServicePods],
              source: str, namespace: str, host: str, port: int) -> tuple[Flow, bool] | None:
    """The flow an address of ``source`` implies, and whether it is to some unknown pod."""
    target = _service_host(host, namespace)
    if target is None:
        return None
    name, target_ns = target
    sp = located.get(name)
    if sp is not None and name != source and target_ns in {
            e.namespace for e in sp.endpoints}:
        return Flow(source, name, None if port == sp.service.port else port), False
    if name.endswith("-kafka-bootstrap") and target_ns == config.kafka.namespace:
        return Flow(source, f"kafka/{name.removesuffix('-kafka-bootstrap')}", port), False
    if name == source:
        return None
    labels, pod_port = _target_port(inventory, name, target_ns, port)
    if labels:
        return Flow(source, f"ns/{target_ns}{{{_selector_text(labels)}}}", pod_port), False
    return Flow(source, f"ns/{target_ns}", pod_port), True


def derived_flows(config: Config, inventory: Inventory,
                  located: dict[str, ServicePods]) -> list[DerivedFlow]:
    """Every flow the manifests imply for the configured services, each once."""
    found: dict[tuple[str, str, int | None], DerivedFlow] = {}
    refs = {e.ref: sp.name for sp in located.values() for e in sp.endpoints if e.ref != "config"}
    for workload in workloads(inventory):
        source = refs.get(workload.resource.ref)
        if source is None:
            continue
        namespace = workload.namespace or config.namespace
        for _, container in workload.containers():
            env = container.get("env")
            for entry in env if isinstance(env, list) else []:
                value = entry.get("value") if isinstance(entry, dict) else None
                if not isinstance(value, str) or len(value) > 2048:
                    continue
                for host, port in _addresses(value):
                    implied = _env_flow(config, inventory, located, source, namespace, host,
                                        port)
                    if implied is None:
                        continue
                    flow, any_pod = implied
                    why = f"env {entry.get('name')}={value[:120]} points at {host}:{port}"
                    found.setdefault((flow.source, flow.to, flow.port),
                                     DerivedFlow(flow, workload.resource.ref, why, any_pod))
    users: dict[str, tuple[str, str]] = {}
    for user in inventory.of_kind("KafkaUser"):
        if user.group == strimzi.GROUP:
            cluster = user.labels.get(strimzi.CLUSTER_LABEL) or config.kafka.cluster
            users.setdefault(user.name, (user.ref, cluster))
    for name, (ref, cluster) in sorted(users.items()):
        if name not in located:
            continue
        flow = Flow(name, f"kafka/{cluster}", None)
        why = f"KafkaUser {name} of Kafka cluster {cluster}"
        found.setdefault((flow.source, flow.to, None), DerivedFlow(flow, ref, why))
    return [derived for derived in found.values() if _names_a_peer(derived.flow)]


def _names_a_peer(flow: Flow) -> bool:
    """Whether a derived flow's destination is a peer of the grammar: a label or address
    that names no Kafka cluster or namespace (``strimzi.io/cluster: ":"``) implies none."""
    try:
        parse_peer(flow.to)
    except PeerError:
        return False
    return True
