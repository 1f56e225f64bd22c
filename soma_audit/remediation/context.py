"""The data templates render from: the config, plus what is derived from it and the inventory.

Anything that needs a decision (which pod port a policy must open, which repository an
Application already deploys from, when each chaos experiment runs) is computed here in
Python, where it is typed and unit-tested; the templates only lay the result out.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from soma_audit.config import Config, Flow, LoadProfile, Service
from soma_audit.core.errors import AuditError
from soma_audit.core.flowpeers import FlowPeer
from soma_audit.domain import argocd as argo
from soma_audit.domain import kafka as strimzi
from soma_audit.domain.netpol.derived import derived_flows
from soma_audit.domain.netpol.policy import ServicePods, app_namespaces, locate_services
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.labels import LABEL_METADATA_NAME

#: Where SomaAgentHub's manifests live when no Application names a repository yet
#: (the plan's own repository).
DEFAULT_REPO_URL = "https://github.com/somatechlat/somaAgentHub.git"


class ContextError(AuditError):
    """The config cannot drive a template (for example a flow to a namespace without port)."""


# ------------------------------------------------------------------------------ Argo CD


@dataclass(frozen=True)
class AppSpec:
    """One Argo CD Application to render, keeping the source of an existing one."""

    service: str
    output: str
    project: str
    repo_url: str
    target_revision: str
    source_path: str
    server: str


def _origin_path(resource: Resource) -> str | None:
    path, sep, line = resource.origin.rpartition(":")
    return path if sep and line.isdigit() and path else None


def _alone_in_file(resource: Resource, inventory: Inventory) -> bool:
    path = _origin_path(resource)
    return path is not None and all(
        r is resource or _origin_path(r) != path for r in inventory
    )


def argocd_apps(config: Config, inventory: Inventory) -> list[AppSpec]:
    """An Application per service; an existing one keeps its repository, path and file."""
    argocd_ns = config.argocd.namespace
    apps = [r for r in inventory.of_kind("Application", namespace=argocd_ns) if argo.is_argo(r)]
    sources = [s for a in apps for s in argo.sources(a.spec)]
    repos = Counter(str(s["repoURL"]) for s in sources if s.get("repoURL"))
    revisions = Counter(str(s["targetRevision"]) for s in sources if s.get("targetRevision"))
    repo_url = repos.most_common(1)[0][0] if repos else DEFAULT_REPO_URL
    revision = revisions.most_common(1)[0][0] if revisions else "HEAD"
    found: list[AppSpec] = []
    for service in config.services:
        existing = next((a for a in apps if argo.names_service(a, service.name)
                         and argo.destination_namespace(a.spec) == config.namespace), None)
        source = (argo.sources(existing.spec) or [{}])[0] if existing else {}
        destination = (existing.spec.get("destination") if existing else None) or {}
        output = f"k8s/apps/{service.name}-app.yaml"
        if existing is not None and _alone_in_file(existing, inventory):
            output = str(_origin_path(existing))
        found.append(AppSpec(
            service=service.name,
            output=output,
            project=str((existing.spec.get("project") if existing else None) or "default"),
            repo_url=str(source.get("repoURL") or repo_url),
            target_revision=str(source.get("targetRevision") or revision),
            source_path=str(source.get("path") or f"k8s/services/{service.name}"),
            server=str(destination.get("server") or "https://kubernetes.default.svc"),
        ))
    return found


# -------------------------------------------------------------------------------- Kafka


@dataclass(frozen=True)
class OutputFile:
    """Items rendered together into one file (an existing one, rewritten in place)."""

    path: str
    items: list[Any]


def _grouped(inventory: Inventory, kind: str, namespace: str, items: list[Any],
             key: Callable[[Resource], str], default: str) -> list[OutputFile]:
    """Each item goes to the file already declaring it when that file declares nothing
    but configured items of ``kind`` (so rewriting it drops nothing); else to ``default``."""
    wanted = {item.name for item in items}
    existing = {key(r): r for r in strimzi.of_kind(inventory.of_kind(kind, namespace=namespace))}
    files: dict[str, list[Any]] = {}
    for item in items:
        resource = existing.get(item.name)
        path = _origin_path(resource) if resource is not None else None
        neighbours = [r for r in inventory if path is not None and _origin_path(r) == path]
        keep = path is not None and all(
            r.kind == kind and r.group == strimzi.GROUP and key(r) in wanted for r in neighbours)
        files.setdefault(str(path) if keep else default, []).append(item)
    return [OutputFile(path, grouped) for path, grouped in files.items()]


def kafka_files(config: Config, inventory: Inventory) -> dict[str, list[OutputFile]]:
    kafka = config.kafka
    return {
        "topics": _grouped(inventory, "KafkaTopic", kafka.namespace, list(kafka.topics),
                           strimzi.topic_name, "k8s/kafka/topics.yaml"),
        "users": _grouped(inventory, "KafkaUser", kafka.namespace, list(kafka.users),
                          lambda r: r.name, "k8s/kafka/users.yaml"),
    }


# ------------------------------------------------------------------------ NetworkPolicy


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule: a peer and the TCP port opened to or from it."""

    peer: dict[str, Any]
    port: int
    why: str


@dataclass(frozen=True)
class ServicePolicy:
    """The least-privilege NetworkPolicy of one service, derived from ``config.flows``."""

    name: str
    namespace: str
    selector: dict[str, str]
    ingress: list[Rule] = field(default_factory=list)
    egress: list[Rule] = field(default_factory=list)


def _namespace_of(located: Mapping[str, ServicePods], name: str, default: str) -> str:
    endpoints = located[name].endpoints
    return (endpoints[0].namespace if endpoints else None) or default


def _in_namespace(namespace: str, here: str, peer: dict[str, Any]) -> dict[str, Any]:
    """``peer`` as seen from namespace ``here``: other namespaces are named explicitly."""
    if namespace == here:
        return peer
    return {"namespaceSelector": {"matchLabels": {LABEL_METADATA_NAME: namespace}}, **peer}


def _peer(target: FlowPeer, here: str, located: Mapping[str, ServicePods],
          config: Config) -> dict[str, Any]:
    """The NetworkPolicy peer for a flow end seen from namespace ``here``."""
    if target.kind == "namespace":
        peer: dict[str, Any] = {
            "namespaceSelector": {"matchLabels": {LABEL_METADATA_NAME: target.name}}}
        if target.pods:
            peer["podSelector"] = {"matchLabels": dict(target.pods)}
        return peer
    if target.kind in ("cidr", "external"):
        network = target.networks[0]  # external/https: the IPv4 internet
        carved = [str(e) for e in target.excepts if e.version == network.version]
        block: dict[str, Any] = {"cidr": str(network)}
        if carved:
            block["except"] = carved
        return {"ipBlock": block}
    if target.kind == "kafka":
        brokers = {"podSelector": {"matchLabels": {
            "strimzi.io/cluster": target.name, "strimzi.io/kind": "Kafka"}}}
        return _in_namespace(config.kafka.namespace, here, brokers)
    service = located[target.name].service
    return _in_namespace(_namespace_of(located, target.name, config.namespace), here,
                         {"podSelector": {"matchLabels": dict(service.selector)}})


def _pod_port(flow: Flow, destination: FlowPeer, located: Mapping[str, ServicePods],
              where: str) -> int:
    """The port on the destination pod: a service port becomes the pod's target port; an
    outside peer or a namespace takes the flow's port (or the peer's default)."""
    if destination.kind != "service":
        port = flow.port or destination.default_port()
        if port is None:
            raise ContextError(f"config {where} (to {destination.text}): a "
                               f"{destination.kind} peer has no service port; set `port:` "
                               "on this flow")
        return port
    sp = located[destination.name]
    if flow.port is None or flow.port == sp.service.port:
        return sp.pod_ports[0] if sp.pod_ports else sp.service.port
    return flow.port


def _existing_peer(inventory: Inventory, here: str, selector: dict[str, str],
                   namespace: str, port: int) -> dict[str, Any] | None:
    """A peer of the service's current policy that already opens ``port`` to pods of
    ``namespace``: kept as written (it may name the pods more narrowly than we can)."""
    for resource in inventory.of_kind("NetworkPolicy", namespace=here):
        spec = resource.spec
        pods = spec.get("podSelector")
        if not isinstance(pods, dict) or pods.get("matchLabels") != selector:
            continue
        for rule in spec.get("egress") or []:
            if not isinstance(rule, dict):
                continue
            ports = rule.get("ports") or []
            if ports and not any(isinstance(p, dict) and p.get("port") == port for p in ports):
                continue
            for peer in rule.get("to") or []:
                names = (peer.get("namespaceSelector") or {}).get("matchLabels") \
                    if isinstance(peer, dict) else None
                if isinstance(names, dict) and names.get(LABEL_METADATA_NAME) == namespace:
                    return dict(peer)
    return None


def network_policies(config: Config, inventory: Inventory) -> list[ServicePolicy]:
    """One policy per service: ingress from the peers of its intended flows, egress to
    them, plus every flow the manifests imply (environment addresses, KafkaUsers), so
    that no rule allowing a needed flow is dropped. DNS comes from netpol-baseline."""
    located = locate_services(inventory, config)
    needed = [(flow, f"flows[{i}]", "") for i, flow in enumerate(config.flows)]
    needed += [(d.flow, "derived flow", "" if not d.any_pod else d.flow.to)
               for d in derived_flows(config, inventory, located)]
    policies: list[ServicePolicy] = []
    for service in config.services:
        here = _namespace_of(located, service.name, config.namespace)
        policy = ServicePolicy(service.name, here, dict(service.selector))
        for flow, where, any_pod_in in needed:
            source, to = flow.peers()
            if to.kind == "service" and to.name == service.name:
                rule = Rule(_peer(source, here, located, config),
                            _pod_port(flow, to, located, where), f"from {flow.source}")
                if rule not in policy.ingress:
                    policy.ingress.append(rule)
            if source.kind == "service" and source.name == service.name:
                port = _pod_port(flow, to, located, where)
                peer = _peer(to, here, located, config)
                if any_pod_in:
                    peer = _existing_peer(inventory, here, dict(service.selector), to.name,
                                          port) or peer
                why = f"to {flow.to}" + (" (derived from the manifests)"
                                         if where == "derived flow" else "")
                rule = Rule(peer, port, why)
                if all(r.peer != rule.peer or r.port != rule.port for r in policy.egress):
                    policy.egress.append(rule)
        policies.append(policy)
    return policies


# -------------------------------------------------------------------------------- Chaos


@dataclass(frozen=True)
class ChaosRun:
    """One scheduled experiment: which fault, on which service, when (cron)."""

    name: str
    fault: str
    service: str
    selector: dict[str, str]
    cron: str


def chaos_runs(config: Config) -> list[ChaosRun]:
    """Every configured fault for every critical service, daily, staggered so that no two
    experiments hit the platform in the same 10-minute slot of the night."""
    runs = []
    slot = 0
    for service in config.critical_services:
        for fault in config.chaos.experiments:
            minutes = 60 + slot * 10  # from 01:00, every 10 minutes
            hour, minute = divmod(minutes, 60)
            runs.append(ChaosRun(f"{service.name}-{fault}", fault, service.name,
                                 dict(service.selector), f"{minute} {hour % 24} * * *"))
            slot += 1
    return runs


# ---------------------------------------------------------------------------------- k6


@dataclass(frozen=True)
class K6Script:
    """A load profile turned into k6 options (one scenario) and the request it sends."""

    name: str
    base_url: str
    path: str
    options: dict[str, Any]


def _max_target(profile: LoadProfile) -> int:
    targets = [int(s.get("target", 0)) for s in profile.stages if isinstance(s, dict)]
    return max([*targets, 1])


def k6_options(profile: LoadProfile) -> dict[str, Any]:
    """k6 options for ``profile``: one scenario with its executor, and its thresholds."""
    executor = profile.executor
    scenario: dict[str, Any] = {"executor": executor}
    stages = [{"duration": str(s["duration"]), "target": int(s["target"])}
              for s in profile.stages]
    if executor == "ramping-vus":
        scenario.update(startVUs=0, stages=stages, gracefulRampDown="30s")
    elif executor == "ramping-arrival-rate":
        peak = _max_target(profile)
        scenario.update(startRate=0, timeUnit="1s", preAllocatedVUs=max(1, peak // 2),
                        maxVUs=peak * 2, stages=stages)
    elif executor == "constant-arrival-rate":
        # The profile's `vus` is the iteration rate per second for an arrival-rate executor.
        scenario.update(rate=profile.vus, timeUnit="1s", duration=profile.duration,
                        preAllocatedVUs=max(1, profile.vus), maxVUs=max(2, profile.vus * 4))
    elif executor in ("constant-vus", "per-vu-iterations", "shared-iterations"):
        scenario["vus"] = profile.vus
        if executor == "constant-vus":
            scenario["duration"] = profile.duration
        else:
            scenario["iterations"] = profile.vus * 10
            scenario["maxDuration"] = profile.duration
    elif executor == "externally-controlled":
        scenario.update(vus=profile.vus, maxVUs=profile.vus * 2, duration=profile.duration)
    else:
        raise ContextError(f"k6 profile {profile.name}: unknown executor {executor!r}")
    thresholds = {metric: list(rules) for metric, rules in profile.thresholds.items()}
    thresholds.setdefault("http_req_duration", ["p(99)<500"])
    thresholds.setdefault("http_req_failed", ["rate<0.01"])
    thresholds.setdefault("checks", ["rate>0.99"])
    return {"scenarios": {profile.name.replace("-", "_"): scenario}, "thresholds": thresholds}


def k6_scripts(config: Config) -> list[K6Script]:
    scripts = []
    for profile in config.k6.profiles:
        parts = urlsplit(profile.target)
        base = f"{parts.scheme}://{parts.netloc}"
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        scripts.append(K6Script(profile.name, base, path, k6_options(profile)))
    return scripts


def k6_profile_data(config: Config) -> list[dict[str, Any]]:
    """The profiles file's entries: the configured profiles, as data."""
    entries = []
    for profile in config.k6.profiles:
        entry: dict[str, Any] = {"name": profile.name, "target": profile.target,
                                 "executor": profile.executor}
        if profile.stages:
            entry["stages"] = [dict(s) for s in profile.stages]
        else:
            entry.update(vus=profile.vus, duration=profile.duration)
        entry["thresholds"] = {k: list(v) for k, v in profile.thresholds.items()}
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------------- build


def _monitoring_namespace(config: Config) -> str:
    return "observability" if "observability" in config.namespaces else config.namespace


class Unavailable:
    """A derived value the config cannot provide: fails only the templates that use it, so
    one bad flow does not stop rendering, say, the Kafka topics."""

    def __init__(self, error: ContextError) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        raise self.error

    def __iter__(self) -> Any:
        raise self.error


def _guarded(compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except ContextError as exc:
        return Unavailable(exc)


def build(config: Config, inventory: Inventory, api_versions: Mapping[str, str]
          ) -> dict[str, Any]:
    """The template context; every key is documented in manifests/README.md."""
    located = locate_services(inventory, config)
    critical: list[Service] = config.critical_services
    kafka = kafka_files(config, inventory)
    return {
        "config": config,
        "api": dict(api_versions),
        "services": list(config.services),
        "critical_services": critical,
        "kafka_topics": list(config.kafka.topics),
        "kafka_users": list(config.kafka.users),
        "kafka_topic_files": kafka["topics"],
        "kafka_user_files": kafka["users"],
        "argocd_apps": argocd_apps(config, inventory),
        "app_namespaces": app_namespaces(config, located),
        "network_policies": _guarded(lambda: network_policies(config, inventory)),
        "chaos_runs": chaos_runs(config),
        "k6_scripts": _guarded(lambda: k6_scripts(config)),
        "k6_profiles": k6_profile_data(config),
        "monitoring_namespace": _monitoring_namespace(config),
        "error_budget": 1 - config.slo.availability_target,
        "runbooks": posixpath.normpath(config.layout.runbooks),
    }
