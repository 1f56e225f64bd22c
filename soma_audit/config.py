"""Targets and expectations: what a ready SomaAgentHub looks like.

The bundled ``config/default.yaml`` holds the facts of SomaAgentHub; a user file given
with ``--config`` is merged over it (mappings merge key by key, lists replace).
Format documented in ``docs/config.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from soma_audit.core.errors import ConfigError
from soma_audit.core.flowpeers import FlowPeer, PeerError, parse_peer
from soma_audit.core.paths import data_path
from soma_audit.core.typed import build
from soma_audit.core.yamlload import load_file

PssLevel = Literal["privileged", "baseline", "restricted"]


@dataclass(frozen=True)
class Service:
    """A workload of the platform; its pods carry ``labels`` (default ``app: <name>``)."""

    name: str
    port: int
    critical: bool = True
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def selector(self) -> dict[str, str]:
        return self.labels or {"app": self.name}


@dataclass(frozen=True)
class NamespaceLevels:
    """The Pod Security Standards levels a namespace must carry."""

    enforce: PssLevel
    audit: PssLevel = "restricted"
    warn: PssLevel = "restricted"


@dataclass(frozen=True)
class Flow:
    """An intended connection between two peers (grammar: :mod:`soma_audit.core.flowpeers`):
    a service, ``ns/<namespace>`` (optionally ``{key=value}`` pods), ``cidr/<network>``
    (with ``except``), ``kafka/<cluster>`` or ``external/https``."""

    source: str = field(metadata={"key": "from"})
    to: str
    port: int | None = None
    #: networks carved out of a ``cidr/`` peer
    excepts: list[str] = field(default_factory=list, metadata={"key": "except"})

    def peers(self) -> tuple[FlowPeer, FlowPeer]:
        """(from, to) parsed; the config was validated, so this does not raise."""
        source_excepts = self.excepts if self.source.startswith("cidr/") else ()
        to_excepts = self.excepts if not source_excepts else ()
        return parse_peer(self.source, source_excepts), parse_peer(self.to, to_excepts)


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    replicas: int
    retention_ms: int | None = None
    cleanup_policy: str = "delete"
    min_insync_replicas: int | None = None


@dataclass(frozen=True)
class KafkaPrincipal:
    """A service's Kafka user and the least privilege it needs."""

    name: str
    produces: list[str] = field(default_factory=list)
    consumes: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Kafka:
    cluster: str = "soma-kafka"
    namespace: str = "soma-agent-hub"
    topics: list[Topic] = field(default_factory=list)
    users: list[KafkaPrincipal] = field(default_factory=list)
    max_lag: int = 1000
    bootstrap: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    canary_topic: str = "soma-audit-canary"
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class ArgoCD:
    namespace: str = "argocd"
    min_applications: int = 12


@dataclass(frozen=True)
class Slo:
    availability_target: float = 0.999
    latency_p99_seconds: float = 0.5
    request_metric: str = "http_requests_total"
    latency_metric: str = "http_request_duration_seconds"
    service_label: str = "service"
    dashboard_label: str = "grafana_dashboard"


@dataclass(frozen=True)
class Chaos:
    namespace: str = "soma-agent-hub"
    max_interval_hours: float = 24.0
    experiments: list[str] = field(
        default_factory=lambda: [
            "cpu-stress",
            "memory-stress",
            "network-delay",
            "network-loss",
            "pod-failure",
        ]
    )


@dataclass(frozen=True)
class LoadProfile:
    """A k6 load profile as data: the generator turns it into one script."""

    name: str
    target: str
    executor: str = "ramping-vus"
    vus: int = 10
    duration: str = "1m"
    stages: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class K6:
    profiles: list[LoadProfile] = field(default_factory=list)
    required_thresholds: list[str] = field(
        default_factory=lambda: ["http_req_duration", "http_req_failed"]
    )


@dataclass(frozen=True)
class RepoLayout:
    """Where, in the GitOps/application repository, the non-Kubernetes files live."""

    fga_model: str = "infra/openfga/model.fga"
    fga_tests: str = "infra/openfga/model.fga.yaml"
    k6_profiles: str = "scripts/k6/profiles.yaml"
    k6_scripts: str = "scripts/k6"
    e2e_results: str = "tests/e2e/results"
    runbooks: str = "docs/runbooks"
    baselines: str = "perf/baselines"
    ci: list[str] = field(
        default_factory=lambda: [".github/workflows", ".gitlab-ci.yml", ".ci"]
    )


@dataclass(frozen=True)
class Tools:
    """Paths of the external binaries; unset means "look on PATH"."""

    fga: str | None = None
    promtool: str | None = None
    k6: str | None = None
    helm: str | None = None
    kustomize: str | None = None
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class HelmChart:
    """How to render one chart of the repository (it overrides Argo CD Applications)."""

    path: str
    release: str | None = None
    namespace: str | None = None
    #: Value files, relative to the chart directory, applied in order after values.yaml.
    values: list[str] = field(default_factory=list)
    #: ``--set`` values (dotted keys), applied last.
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Helm:
    charts: list[HelmChart] = field(default_factory=list)


@dataclass(frozen=True)
class OpenFga:
    url: str | None = None
    store: str | None = None
    api_token: str | None = field(default=None, repr=False)
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Prometheus:
    url: str | None = None
    bearer_token: str | None = field(default=None, repr=False)
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class Cluster:
    """How a live cluster is read. Every request is bounded: at most ``retries`` + 1
    attempts of ``connect_timeout_seconds`` + ``read_timeout_seconds`` each (plus a short
    backoff); ``workers`` LISTs run at once."""

    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 30.0
    retries: int = 3
    #: Most kinds are a few objects: on a remote cluster each LIST is a round trip, and
    #: eight at once take half the rounds of four. Eight stays within client-go's default
    #: burst (ten), which API Priority and Fairness is tuned for.
    workers: int = 8
    #: The whole scan's bound (a server that trickles bytes or pages without end stops
    #: there); None: ten times a request's worst case, see :attr:`scan_deadline`.
    scan_deadline_seconds: float | None = None

    @property
    def scan_deadline(self) -> float:
        """The configured deadline, else 10 * (connect + read timeout) * attempts."""
        if self.scan_deadline_seconds is not None:
            return self.scan_deadline_seconds
        attempt = self.connect_timeout_seconds + self.read_timeout_seconds
        return 10 * attempt * (self.retries + 1)


@dataclass(frozen=True)
class Waiver:
    """An accepted gap: the check reports ``waived`` until ``expires``."""

    check: str
    reason: str
    expires: dt.date
    by: str | None = None


@dataclass(frozen=True)
class Config:
    namespace: str = "soma-agent-hub"
    services: list[Service] = field(default_factory=list)
    namespaces: dict[str, NamespaceLevels] = field(default_factory=dict)
    flows: list[Flow] = field(default_factory=list)
    pss_exempt_namespaces: list[str] = field(default_factory=list)
    argocd: ArgoCD = field(default_factory=ArgoCD)
    kafka: Kafka = field(default_factory=Kafka)
    slo: Slo = field(default_factory=Slo)
    chaos: Chaos = field(default_factory=Chaos)
    k6: K6 = field(default_factory=K6)
    repo: str | None = None
    layout: RepoLayout = field(default_factory=RepoLayout)
    tools: Tools = field(default_factory=Tools)
    helm: Helm = field(default_factory=Helm)
    openfga: OpenFga = field(default_factory=OpenFga)
    prometheus: Prometheus = field(default_factory=Prometheus)
    cluster: Cluster = field(default_factory=Cluster)
    waivers: list[Waiver] = field(default_factory=list)
    attestations: str | None = None
    catalogs: list[str] = field(default_factory=list)
    production_pattern: str = "(?i)prod"
    #: Opt-in for the only probes that write: the Kafka canary message and the
    #: PodSecurity dry-run PATCH of namespace labels. Off, a scan sends reads only.
    probe_writes: bool = False
    #: Opt-in for running code of the audited repository (``k6 inspect`` runs a script's
    #: init code). Off, scripts are only parsed (docs/security.md).
    run_repo_code: bool = False

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    @property
    def critical_services(self) -> list[Service]:
        return [s for s in self.services if s.critical]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    data = load_file(path, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` onto ``base``: mappings merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """The bundled defaults, merged with the user file at ``path`` and then ``overrides``."""
    data = _read_yaml(data_path("config", "default.yaml"))
    where = "config"
    if path is not None:
        data = merge(data, _read_yaml(Path(path)))
        where = str(path)
    data = merge(data, overrides)
    try:
        config = build(Config, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _validate_values(config, where)
    _validate_references(config, where)
    return config


#: Kubernetes names (DNS-1123 label: namespaces, Services; subdomain: most objects).
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                        r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: A label key (optional DNS prefix, then a name) and value, as the API server accepts them.
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}"
                        r"[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
#: Kafka topic, consumer group names (what the broker accepts).
_KAFKA_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
#: Prometheus metric and label names.
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_PROM_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _strings(value: Any, place: str) -> Iterator[tuple[str, str]]:
    """(key, string) of every string below ``value``, keys included, with its place."""
    if isinstance(value, str):
        yield place, value
    elif dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            key = item.metadata.get("key", item.name)
            yield from _strings(getattr(value, item.name), f"{place}.{key}" if place else key)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, f"{place}.{key}")
            yield from _strings(item, f"{place}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{place}[{i}]")


def _validate_values(config: Config, where: str) -> None:
    """Every value that ends up in a name, a rendered file or a query has the syntax of
    what it names: a bad one is one ConfigError naming the key, never text pasted into a
    manifest (a newline in ``kafka.cluster`` would add objects of its own)."""

    def need(ok: bool, place: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{where}: {place}: must be {what}")

    for place, text in _strings(config, ""):
        if not place.endswith(".reason"):  # a waiver's reason is prose, shown escaped
            need(not _CONTROL.search(text), place, "one line without control characters")
    label = "a DNS-1123 label (lower-case letters, digits and '-', at most 63)"
    subdomain = "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"
    kafka_name = "a Kafka name (letters, digits, '.', '_' and '-')"
    names = [("namespace", config.namespace, _LABEL, label),
             ("argocd.namespace", config.argocd.namespace, _LABEL, label),
             ("kafka.namespace", config.kafka.namespace, _LABEL, label),
             ("chaos.namespace", config.chaos.namespace, _LABEL, label),
             ("kafka.cluster", config.kafka.cluster, _LABEL, label),
             ("kafka.canary_topic", config.kafka.canary_topic, _KAFKA_NAME, kafka_name),
             ("slo.request_metric", config.slo.request_metric, _METRIC, "a metric name"),
             ("slo.latency_metric", config.slo.latency_metric, _METRIC, "a metric name"),
             ("slo.service_label", config.slo.service_label, _PROM_LABEL, "a label name"),
             ("slo.dashboard_label", config.slo.dashboard_label, _LABEL_KEY, "a label key")]
    names += [(f"namespaces.{n}", n, _LABEL, label) for n in config.namespaces]
    names += [(f"pss_exempt_namespaces[{i}]", n, _LABEL, label)
              for i, n in enumerate(config.pss_exempt_namespaces)]
    for i, service in enumerate(config.services):
        names.append((f"services[{i}].name", service.name, _LABEL, label))
        need(1 <= service.port <= 65535, f"services[{i}].port", "a port from 1 to 65535")
        for key, value in service.labels.items():
            names.append((f"services[{i}].labels", key, _LABEL_KEY, "a label key"))
            names.append((f"services[{i}].labels.{key}", value, _LABEL_VALUE, "a label value"))
    for i, flow in enumerate(config.flows):
        need(flow.port is None or 1 <= flow.port <= 65535, f"flows[{i}].port",
             "a port from 1 to 65535")
    for i, topic in enumerate(config.kafka.topics):
        names.append((f"kafka.topics[{i}].name", topic.name, _SUBDOMAIN, subdomain))
    for i, user in enumerate(config.kafka.users):
        names.append((f"kafka.users[{i}].name", user.name, _SUBDOMAIN, subdomain))
        names += [(f"kafka.users[{i}].groups[{j}]", g, _KAFKA_NAME, kafka_name)
                  for j, g in enumerate(user.groups)]
    for i, profile in enumerate(config.k6.profiles):
        names.append((f"k6.profiles[{i}].name", profile.name, _LABEL, label))
    for place, value, pattern, what in names:
        need(bool(pattern.match(value)), place, what)
    try:
        re.compile(config.production_pattern)
    except re.error:
        raise ConfigError(f"{where}: production_pattern: must be a regular expression") from None


def _validate_references(config: Config, where: str) -> None:
    """Cross-field checks the types alone cannot express."""
    reading = config.cluster
    for key in ("connect_timeout_seconds", "read_timeout_seconds"):
        if not getattr(reading, key) > 0:
            raise ConfigError(f"{where}: cluster.{key}: must be more than 0 seconds")
    if not 0 <= reading.retries <= 10:
        raise ConfigError(f"{where}: cluster.retries: must be 0 to 10")
    if not 1 <= reading.workers <= 32:
        raise ConfigError(f"{where}: cluster.workers: must be 1 to 32")
    if reading.scan_deadline_seconds is not None and not reading.scan_deadline_seconds > 0:
        raise ConfigError(f"{where}: cluster.scan_deadline_seconds: must be more than 0 seconds")
    names = {s.name for s in config.services}
    for i, flow in enumerate(config.flows):
        _validate_flow(flow, names, f"{where}: flows[{i}]")
    topics = {t.name for t in config.kafka.topics}
    for i, user in enumerate(config.kafka.users):
        for topic in [*user.produces, *user.consumes]:
            if topic not in topics:
                raise ConfigError(
                    f"{where}: kafka.users[{i}] ({user.name}): unknown topic '{topic}'"
                )


def _validate_flow(flow: Flow, services: set[str], where: str) -> None:
    """Both peers follow the grammar, name configured services, and ``except`` belongs to
    the one ``cidr/`` peer; a flow with no service port names its port."""
    cidrs = [p for p in (flow.source, flow.to) if p.startswith("cidr/")]
    if flow.excepts and len(cidrs) != 1:
        raise ConfigError(f"{where}: `except` needs exactly one cidr/<network> peer")
    try:
        source, to = flow.peers()
    except PeerError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for peer in (source, to):
        if peer.kind == "service" and peer.name not in services:
            raise ConfigError(
                f"{where}: '{peer.text}' is not a configured service, ns/<namespace>, "
                "cidr/<network>, kafka/<cluster> or external/https"
            )
    if source.outside and to.outside:
        raise ConfigError(f"{where}: a flow between two outside addresses is no "
                          "NetworkPolicy's business")
