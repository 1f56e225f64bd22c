"""`make bench`: soma-audit against the raw-LIST physical limit, Polaris and Popeye.

Seeds the test environment's real kube-apiserver with synthetic SomaAgentHub-shaped
namespaces (``bench-NNNN``, created once and reused: namespaces cannot be deleted without a
controller-manager), then per size measures, medians of several repetitions:

- ``baseline``: parallel paginated LISTs of the kinds the audit reads, into bytes, nothing
  decoded (urllib3 with the admin client certificate, same page size as the audit);
- ``soma-audit --ci --format json``: wall, CPU (user+sys), peak RSS of the child, and the
  API server's own request count (``apiserver_request_total`` diffed around one run);
- the peers, Polaris (``polaris audit``) and Popeye, built from their Go modules at pinned
  versions into ``~/.cache/soma-audit-bench`` (a build failure is recorded, never faked);
- cold start: ``--version``, ``--demo --ci`` and the TUI's first complete frame on the demo;
- live diff: ``soma-audit diff pss-hardening`` scoped (``--namespace``) to enough bench
  namespaces for about 1,500 objects: the read, the render and every server-side dry-run.

Nothing here asserts a time (benchmarks are not tests). Only loopback traffic; every loop is
bounded by a count and every request and child by a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import hashlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `testenv` and `soma_audit` importable
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
CACHE = Path(os.environ.get("SOMA_AUDIT_BENCH_CACHE", "~/.cache/soma-audit-bench")).expanduser()
SIZES = (2_000, 10_000, 30_000, 100_000)
NS_PREFIX = "bench-"
MARKER = "bench-complete"  # ConfigMap created last in a namespace: the namespace is seeded
#: The version of what :func:`namespace_objects` makes: part of each size's storage name
#: and of the marker, so a storage or namespace seeded in an older shape is never reused.
SEED_SHAPE = 2
#: Nodes the bench's pods are bound to (``spec.nodeName``: no scheduler runs).
NODES = 40
PAGE_SIZE = 500  # as soma_audit.sources.cluster.PAGE_SIZE
LIST_WORKERS = 4  # as ClusterSource's default pool
SEED_WORKERS = 12
CHILD_TIMEOUT = 900.0
#: A peer that goes over either limit at a size is stopped and not run at larger sizes.
PEER_LIMITS = {"seconds": 900.0, "rss_mb": 16_384.0}
GNU_TIME = "/usr/bin/time"
REQUEST_TIMEOUT = 60.0

#: The twelve SomaAgentHub services; each gets a Deployment with its ReplicaSet and two
#: Pods, a Service, ConfigMap, NetworkPolicy and an Argo CD Application per namespace.
SERVICES = (
    "gateway-api", "orchestrator", "identity-service", "policy-engine", "memory-gateway",
    "slm-service", "analytics-service", "notification-service", "billing-service",
    "constitution-service", "tool-service", "marketplace-service",
)
TOPICS = ("agent-events", "task-results", "audit-log", "billing-usage")
KAFKA_USERS = ("orchestrator", "analytics-service")

#: Where each seeded kind is created: (API prefix, plural).
PATHS = {
    "Namespace": ("/api/v1", "namespaces"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "ReplicaSet": ("/apis/apps/v1", "replicasets"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"),
    "Pod": ("/api/v1", "pods"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "Application": ("/apis/argoproj.io/v1alpha1", "applications"),
    "KafkaTopic": ("/apis/kafka.strimzi.io/v1", "kafkatopics"),
    "KafkaUser": ("/apis/kafka.strimzi.io/v1", "kafkausers"),
    "Schedule": ("/apis/chaos-mesh.org/v1alpha1", "schedules"),
    "PrometheusRule": ("/apis/monitoring.coreos.com/v1", "prometheusrules"),
}

#: Pinned peers. Popeye's release is served by the Go module proxy; Polaris' tags are not
#: Go-semver (no ``v``), so the newest pseudo-version the proxy serves is pinned.
PEERS = {
    "polaris": ("github.com/fairwindsops/polaris", "v0.0.0-20220512134546-92f0b6e551df"),
    "popeye": ("github.com/derailed/popeye", "v0.22.1"),
}
PEER_BUILD_TIMEOUT = 1_200.0


# -- manifests (pure) -------------------------------------------------------------------
# Shaped as a running cluster holds them: Pods owned by their ReplicaSet or StatefulSet,
# bound to a node, with the status a kubelet writes (IPs, container IDs, start times: each
# pod's own), and controllers with the status their controller writes. Generated names,
# IDs and addresses are stable per namespace and index, so a seed is reproducible.
def _meta(name: str, ns: str, app: str | None = None,
          labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Metadata with the bench's labels, ``app``'s, then ``labels``."""
    every = {"app.kubernetes.io/part-of": "soma-agent-hub", "soma-bench": "1"}
    if app:
        every["app"] = app
    return {"name": name, "namespace": ns, "labels": every | (labels or {})}


def _hex(*parts: object, size: int) -> str:
    """A stable hexadecimal token (a generated name's suffix, a container or image ID)."""
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:size]


def _uid(*parts: object) -> str:
    token = _hex(*parts, size=32)
    return f"{token[:8]}-{token[8:12]}-{token[12:16]}-{token[16:20]}-{token[20:]}"


def _owner(kind: str, name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": _uid(ns, kind, name),
            "controller": True, "blockOwnerDeletion": True}


def _time(ns_index: int, seconds: int) -> str:
    """A timestamp of the namespace's rollout, ``seconds`` after it started."""
    start = dt.datetime(2026, 11, 2, tzinfo=dt.UTC) + dt.timedelta(minutes=ns_index)
    return (start + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _container(app: str) -> dict[str, Any]:
    return {
        "name": app,
        "image": f"ghcr.io/somatech/{app}:1.4.2",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "512Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "env": [{"name": "SERVICE_NAME", "value": app}, {"name": "LOG_LEVEL", "value": "info"}],
    }


def _pod_spec(app: str) -> dict[str, Any]:
    return {"containers": [_container(app)], "automountServiceAccountToken": False}


def _pod(ns: str, ns_index: int, number: int, app: str, name: str, labels: dict[str, str],
         owner: dict[str, Any]) -> dict[str, Any]:
    """A running pod: ``number`` is its index in the namespace (its IP, node and times)."""
    address = ns_index * 32 + number
    ip = f"10.{128 + (address >> 16) % 64}.{(address >> 8) % 256}.{address % 256}"
    node = (ns_index + number) % NODES
    started = _time(ns_index, 20 + number)
    meta = _meta(name, ns, app, labels) | {"ownerReferences": [owner]}
    conditions = [{"type": kind, "status": "True", "lastProbeTime": None,
                   "lastTransitionTime": _time(ns_index, at + number)}
                  for kind, at in (("PodReadyToStartContainers", 24), ("Initialized", 21),
                                   ("Ready", 31), ("ContainersReady", 31), ("PodScheduled", 20))]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": _pod_spec(app) | {"nodeName": f"node-{node:02d}"},
        "status": {
            "phase": "Running", "conditions": conditions, "qosClass": "Burstable",
            "hostIP": f"172.20.0.{node + 10}", "hostIPs": [{"ip": f"172.20.0.{node + 10}"}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started,
            "containerStatuses": [{
                "name": app, "image": f"ghcr.io/somatech/{app}:1.4.2",
                "imageID": f"ghcr.io/somatech/{app}@sha256:{_hex(app, 'image', size=64)}",
                "containerID": f"containerd://{_hex(ns, name, 'container', size=64)}",
                "ready": True, "started": True, "restartCount": number % 3,
                "state": {"running": {"startedAt": _time(ns_index, 23 + number)}},
                "lastState": {},
            }],
        },
    }


def _replicated(ns: str, ns_index: int, app: str, first_pod: int,
                replicas: int = 2) -> list[dict[str, Any]]:
    """A Deployment, its ReplicaSet and its pods."""
    template_hash = _hex(ns, app, "template", size=10)
    revision = {"deployment.kubernetes.io/revision": "1"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(app, ns, app) | {"annotations": revision},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": {"labels": {"app": app}}, "spec": _pod_spec(app)}},
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas, "conditions": [
                       {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                        "lastUpdateTime": _time(ns_index, 40),
                        "lastTransitionTime": _time(ns_index, 40)},
                       {"type": "Progressing", "status": "True",
                        "reason": "NewReplicaSetAvailable",
                        "message": f'ReplicaSet "{app}-{template_hash}" has successfully '
                                   "progressed.",
                        "lastUpdateTime": _time(ns_index, 40),
                        "lastTransitionTime": _time(ns_index, 10)}]},
    }
    labels = {"app": app, "pod-template-hash": template_hash}
    replica_set = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": _meta(f"{app}-{template_hash}", ns, app, labels) | {
            "annotations": revision | {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                       "deployment.kubernetes.io/max-replicas": str(replicas + 1)},
            "ownerReferences": [_owner("Deployment", app, ns)]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": _pod_spec(app)}},
        "status": {"replicas": replicas, "fullyLabeledReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas,
                   "observedGeneration": 1},
    }
    owner = _owner("ReplicaSet", replica_set["metadata"]["name"], ns)
    pods = [_pod(ns, ns_index, first_pod + i, app,
                 f"{app}-{template_hash}-{_hex(ns, app, i, size=5)}", labels, owner)
            for i in range(replicas)]
    return [deployment, replica_set, *pods]


def namespace_objects(index: int) -> list[dict[str, Any]]:
    """One SomaAgentHub-shaped tenant namespace: the Namespace first, the marker last."""
    ns = f"{NS_PREFIX}{index:04d}"
    labels = {"soma-bench": "1", "pod-security.kubernetes.io/enforce": "restricted"}
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}]
    for number, app in enumerate(SERVICES):
        objs += _replicated(ns, index, app, first_pod=2 * number)
        objs.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(app, ns, app),
                     "spec": {"selector": {"app": app},
                              "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        objs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": _meta(f"{app}-config", ns, app),
                     "data": {"LOG_LEVEL": "info", "UPSTREAM": "http://gateway-api"}})
        objs.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                     "metadata": _meta(f"{app}-ingress", ns, app),
                     "spec": {"podSelector": {"matchLabels": {"app": app}},
                              "policyTypes": ["Ingress"],
                              "ingress": [{"from": [{"podSelector": {"matchLabels": {
                                  "app": "gateway-api"}}}],
                                  "ports": [{"port": 8080, "protocol": "TCP"}]}]}})
        objs.append({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                     "metadata": _meta(app, ns, app),
                     "spec": {"project": "soma-agent-hub",
                              "source": {"repoURL": "https://git.example/soma-gitops.git",
                                         "path": f"apps/{app}", "targetRevision": "main"},
                              "destination": {"server": "https://kubernetes.default.svc",
                                              "namespace": ns},
                              "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}})
    revision = f"postgres-{_hex(ns, 'postgres', 'revision', size=10)}"
    objs.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                 "metadata": _meta("postgres", ns, "postgres"),
                 "spec": {"replicas": 1, "serviceName": "postgres",
                          "selector": {"matchLabels": {"app": "postgres"}},
                          "template": {"metadata": {"labels": {"app": "postgres"}},
                                       "spec": _pod_spec("postgres")}},
                 "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                            "currentReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
                            "currentRevision": revision, "updateRevision": revision,
                            "collisionCount": 0}})
    objs.append(_pod(ns, index, 2 * len(SERVICES), "postgres", "postgres-0", {
        "controller-revision-hash": revision, "apps.kubernetes.io/pod-index": "0",
        "statefulset.kubernetes.io/pod-name": "postgres-0"},
        _owner("StatefulSet", "postgres", ns)))
    for topic in TOPICS:
        objs.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
                     "metadata": _meta(topic, ns) | {"labels": {"strimzi.io/cluster": "soma"}},
                     "spec": {"partitions": 6, "replicas": 3,
                              "config": {"retention.ms": 604800000, "min.insync.replicas": 2}}})
    for user in KAFKA_USERS:
        objs.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
                     "metadata": _meta(user, ns) | {"labels": {"strimzi.io/cluster": "soma"}},
                     "spec": {"authentication": {"type": "scram-sha-512"}}})
    objs.append({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule",
                 "metadata": _meta("pod-kill-weekly", ns),
                 "spec": {"schedule": "0 3 * * 1", "type": "PodChaos", "historyLimit": 5,
                          "concurrencyPolicy": "Forbid",
                          "podChaos": {"action": "pod-kill", "mode": "one",
                                       "selector": {"namespaces": [ns]}}}})
    objs.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                 "metadata": _meta("soma-slo", ns),
                 "spec": {"groups": [{"name": "slo", "rules": [
                     {"alert": "HighErrorRate", "expr": "sli:error:ratio_rate5m > 0.01",
                      "for": "5m", "labels": {"severity": "critical"}}]}]}})
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(MARKER, ns),
                 "data": {"objects": str(0), "shape": str(SEED_SHAPE)}})
    objs[-1]["data"]["objects"] = str(len(objs))
    return objs


OBJECTS_PER_NAMESPACE = len(namespace_objects(0))


def namespaces_for(size: int) -> int:
    """How many bench namespaces make about ``size`` objects (at least one)."""
    return max(1, math.ceil(size / OBJECTS_PER_NAMESPACE))


def kind_counts(objects: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Objects per kind, sorted by kind (what a size seeds)."""
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
    return dict(sorted(counts.items()))


def object_path(obj: dict[str, Any]) -> str:
    """The collection URL an object is POSTed to."""
    prefix, plural = PATHS[obj["kind"]]
    ns = obj["metadata"].get("namespace")
    return f"{prefix}/namespaces/{ns}/{plural}" if ns else f"{prefix}/{plural}"


# -- statistics (pure) ------------------------------------------------------------------
@dataclass
class Sample:
    """One run of one subject; ``rss_mb`` and ``cpu_s`` are the child's own (wait4)."""

    wall_s: float
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    rc: int = 0
    #: Why the child was killed (over the time or memory limit), else empty.
    stopped: str = ""
    #: CPU seconds the API server and etcd spent meanwhile (they share the machine's cores).
    server_cpu_s: float = 0.0


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Median (and min/max) of each metric over the repetitions that completed."""
    if not samples:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(samples), "rc": [s.rc for s in samples]}
    metrics = ["wall_s", "cpu_s", "rss_mb"]
    if any(s.server_cpu_s for s in samples):
        metrics.append("server_cpu_s")
    for name in metrics:
        values = [getattr(s, name) for s in samples]
        out[name] = round(statistics.median(values), 4)
        out[f"{name}_min"] = round(min(values), 4)
        out[f"{name}_max"] = round(max(values), 4)
    return out


def ratios(summaries: dict[str, dict[str, Any]], subject: str = "soma-audit",
           metric: str = "wall_s") -> dict[str, float]:
    """``subject``'s median over each other subject's median (<1: subject is faster)."""
    mine = summaries.get(subject, {}).get(metric)
    found: dict[str, float] = {}
    for other, summary in summaries.items():
        theirs = summary.get(metric)
        if other != subject and mine is not None and theirs:
            found[other] = round(mine / theirs, 3)
    return found


def growth(points: Sequence[tuple[int, float]]) -> float | None:
    """Log-log slope of cost against objects (1.0 = linear, <1 better than linear)."""
    pts = [(x, y) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    xs = [math.log(x) for x, _ in pts]
    ys = [math.log(y) for _, y in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den, 3) \
        if den else None


_SAMPLE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def parse_request_totals(text: str) -> dict[str, float]:
    """``apiserver_request_total`` summed by ``VERB group/resource[/sub]``."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        resource = labels.get("resource", "")
        if labels.get("group"):
            resource = f"{labels['group']}/{resource}"
        if labels.get("subresource"):
            resource = f"{resource}/{labels['subresource']}"
        key = f"{labels.get('verb', '')} {resource}".strip()
        totals[key] = totals.get(key, 0.0) + float(match["value"])
    return totals


def diff_totals(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Requests between two scrapes, non-zero only, the /metrics scrape itself excluded."""
    out = {k: int(after[k] - before.get(k, 0.0)) for k in sorted(after)}
    return {k: v for k, v in out.items() if v > 0 and k != "GET"}


_CONTINUE = re.compile(rb'"continue":"([^"]*)"')


def continue_token(page: bytes, window: int = 4096) -> str:
    """The ``metadata.continue`` of a LIST page without decoding it: built-in kinds put
    ``metadata`` first, custom resources (keys sorted) put it last, after ``items``."""
    for part in (page[:window], page[-window:]):
        match = _CONTINUE.search(part)
        if match:
            return match.group(1).decode()
    return ""


# -- the API server ---------------------------------------------------------------------
class Api:
    """urllib3 pool with the testenv's admin client certificate (loopback only)."""

    def __init__(self, server: str, pki: Path, pool: int) -> None:
        import urllib3

        self.server = server.rstrip("/")
        #: The processes serving this API (kube-apiserver, etcd), when known: their CPU
        #: time is read around each run (see :meth:`server_cpu_s`).
        self.server_pids: tuple[int, ...] = ()
        if not re.match(r"https://(127\.\d+\.\d+\.\d+|localhost|\[::1\])[:/]", self.server + "/"):
            raise SystemExit(f"bench: refusing a non-loopback API server: {server}")
        self.http = urllib3.PoolManager(
            num_pools=4, maxsize=pool, block=True, ca_certs=str(pki / "ca.crt"),
            cert_file=str(pki / "admin.crt"), key_file=str(pki / "admin.key"),
            timeout=urllib3.Timeout(connect=5.0, read=REQUEST_TIMEOUT), retries=False)

    def request(self, method: str, path: str, body: Any = None,
                fields: dict[str, Any] | None = None,
                accept: str = "application/json") -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        kind = "merge-patch+json" if method == "PATCH" else "json"
        headers = {"Accept": accept, "Content-Type": f"application/{kind}"}
        resp = self.http.request(method, self.server + path, body=data, fields=fields,
                                 headers=headers, preload_content=True)
        return resp.status, resp.data

    def json(self, path: str, accept: str = "application/json") -> Any:
        status, data = self.request("GET", path, accept=accept)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {data[:200]!r}")
        return json.loads(data)

    def server_cpu_s(self) -> float:
        """CPU seconds used so far by :attr:`server_pids`."""
        return cpu_seconds(self.server_pids)

    def metrics(self) -> dict[str, float]:
        status, data = self.request("GET", "/metrics")
        return parse_request_totals(data.decode()) if status == 200 else {}


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds (user + system, all threads) used so far by the processes ``pids``."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def size_cluster(size: int, fresh: bool, log: Callable[[str], None] = print,
                 ) -> Iterator[tuple[Api, Path]]:
    """A kube-apiserver of its own for ``size``: storage ``/soma-bench-v<shape>-<size>`` in the
    testenv's etcd, holding that size's bench objects and nothing else (``fresh``: emptied
    first; otherwise a completed earlier seed is reused). Yields the API and the folder of
    its ``admin.kubeconfig``; the server stops afterwards, its storage kept for a re-run."""
    import testenv
    from testenv.apiservers import delete_etcd_prefix, start_extra_apiserver

    if not (testenv.state() or {}).get("kube", {}).get("server"):
        testenv_api()  # starts etcd and the testenv's own server
    prefix = f"soma-bench-v{SEED_SHAPE}-{size}"
    if fresh:
        etcd_port = testenv.state()["components"]["etcd"]["ports"]["client"]
        delete_etcd_prefix(f"http://127.0.0.1:{etcd_port}", f"/{prefix}")
    home = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    server = start_extra_apiserver(home, prefix_name=prefix, unique=False)
    log(f"size {size}: kube-apiserver {server.server} on storage /{prefix}")
    api = Api(server.server, server.pki, SEED_WORKERS)
    api.server_pids = (server.pid, testenv.state()["components"]["etcd"]["pid"])
    try:
        yield api, home
    finally:
        server.stop(keep_storage=True)


def testenv_api(pool: int = SEED_WORKERS) -> Api:
    """The running test environment's API server, started if it is down."""
    import testenv

    state = testenv.state()
    kube = (state or {}).get("kube") or {}
    if not kube.get("server"):
        subprocess.run([sys.executable, "-m", "testenv", "up", "--only", "kube"], cwd=ROOT,
                       check=True, timeout=1_800)
        kube = testenv.state()["kube"]
    return Api(kube["server"], ROOT / ".testenv" / "kube" / "pki", pool)


# -- seeding ----------------------------------------------------------------------------
def _create(api: Api, obj: dict[str, Any]) -> str:
    """POST one object, then write its status (the API server resets a posted status: the
    status subresource is where controllers and kubelets write it); an existing object is
    fine (idempotent re-runs). Bounded retries."""
    body = {key: value for key, value in obj.items() if key != "status"}
    outcome = _send(api, "POST", object_path(obj), body, obj)
    if "status" in obj:
        path = f"{object_path(obj)}/{obj['metadata']['name']}/status"
        _send(api, "PATCH", path, {"status": obj["status"]}, obj)
    return outcome


def _send(api: Api, method: str, path: str, body: Any, obj: dict[str, Any]) -> str:
    for attempt in range(4):
        status, data = api.request(method, path, body)
        if status in (200, 201, 409):
            return "exists" if status == 409 else "created"
        if status in (429, 500, 503) and attempt < 3:
            time.sleep(0.2 * 2 ** attempt)
            continue
        raise RuntimeError(f"{method} {obj['kind']} {obj['metadata']['name']}: HTTP {status}: "
                           f"{data[:300]!r}")
    return "failed"


def seed(api: Api, namespaces: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Make sure bench-0000 … bench-<n-1> are fully seeded; returns counts and time."""
    started = time.perf_counter()
    wanted = [f"{NS_PREFIX}{i:04d}" for i in range(namespaces)]

    def done(ns: str) -> bool:
        status, data = api.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{MARKER}")
        if status != 200:
            return False
        shape = (json.loads(data).get("data") or {}).get("shape", "1")
        if shape != str(SEED_SHAPE):
            raise SystemExit(f"bench: namespace {ns} holds bench objects of an older shape "
                             f"({shape}, now {SEED_SHAPE}); start the test environment "
                             "afresh: python -m testenv down && python -m testenv up")
        return True

    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        missing = [i for i, ok in zip(range(namespaces), pool.map(done, wanted), strict=True)
                   if not ok]
        objs = {i: namespace_objects(i) for i in missing}
        # Namespaces first, then their contents, then the markers (so an interrupted seed
        # is resumed rather than mistaken for a finished one).
        outcomes = list(pool.map(lambda i: _create(api, objs[i][0]), missing))
        body = [o for i in missing for o in objs[i][1:-1]]
        outcomes += list(pool.map(lambda o: _create(api, o), body))
        outcomes += list(pool.map(lambda i: _create(api, objs[i][-1]), missing))
    seconds = time.perf_counter() - started
    created = outcomes.count("created")
    log(f"seeded {len(missing)} namespaces ({created} objects created) in {seconds:.1f}s; "
        f"{namespaces - len(missing)} were already complete")
    return {"namespaces": namespaces, "shape": SEED_SHAPE,
            "bench_objects": namespaces * OBJECTS_PER_NAMESPACE,
            "created": created, "seconds": round(seconds, 2),
            "rate_per_s": round(created / seconds, 1) if created else None}


# -- what the audit lists, and the baseline ---------------------------------------------
def audit_list_paths(api: Api) -> list[tuple[str, str]]:
    """(kind, collection path) of every kind ``soma-audit --ci`` lists on this server,
    chosen exactly as the engine and ClusterSource choose them (no services configured)."""
    from bench.fetch_only import audit_kinds
    from soma_audit.sources import discovery
    from soma_audit.sources.kinds import FORBIDDEN_KINDS, KINDS

    kinds, _ = audit_kinds()
    served = discovery.parse(api.json("/apis", accept=discovery.ACCEPT))
    paths: list[tuple[str, str]] = []
    for kind in sorted(kinds - FORBIDDEN_KINDS):
        info = KINDS.get(kind)
        version = served.locate(info)[0] if info else None
        if info and version:
            paths.append((kind, info.collection(version)))
    return paths


def _list_raw(api: Api, path: str) -> tuple[int, int]:
    """All pages of one kind into bytes; (pages, bytes)."""
    token, pages, size = "", 0, 0
    for _ in range(10_000):
        fields: dict[str, Any] = {"limit": PAGE_SIZE}
        if token:
            fields["continue"] = token
        status, data = api.request("GET", path, fields=fields)
        if status != 200:
            return pages, size  # e.g. a CRD not installed: 404, as the audit records absent
        pages, size = pages + 1, size + len(data)
        token = continue_token(data)
        if not token:
            break
    return pages, size


def baseline_once(api: Api, paths: Sequence[tuple[str, str]]) -> tuple[Sample, dict[str, int]]:
    """One parallel raw fetch of every path; wall time and pages/bytes totals."""
    started = time.perf_counter()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(LIST_WORKERS) as pool:
        got = list(pool.map(lambda kp: _list_raw(api, kp[1]), paths))
    wall = time.perf_counter() - started
    return (Sample(wall, time.process_time() - cpu0),
            {"pages": sum(p for p, _ in got), "bytes": sum(b for _, b in got)})


def count_objects(api: Api, paths: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Objects of each listed kind in the whole cluster (decoded once, outside timings)."""
    counts: dict[str, int] = {}
    for kind, path in paths:
        token, total = "", 0
        for _ in range(10_000):
            query = f"?limit={PAGE_SIZE}" + (f"&continue={token}" if token else "")
            status, data = api.request("GET", path + query)
            if status != 200:
                break
            page = json.loads(data)
            total += len(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                break
        counts[kind] = total
    return counts


# -- child processes --------------------------------------------------------------------
def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from the parent pids of /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants now (0 when gone)."""
    total = 0.0
    for member in (pid, *descendants(pid)):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        total += int(found.group(1)) / 1024 if found else 0.0
    return total


def pss_kb(pid: int) -> int:
    """Proportional set size: a page shared by n processes (a fork's copy-on-write
    pages) counts 1/n in each, so the sum over processes is what they take together."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


#: How often :class:`TreePss` samples by default (reading /proc costs CPU of its own).
PSS_SAMPLE_SECONDS = 0.2


class TreePss:
    """The peak of the summed PSS of the processes we start while the block runs (our
    descendants that were not there before it: not the API servers, not Toxiproxy),
    sampled every ``every`` seconds."""

    def __init__(self, every: float = PSS_SAMPLE_SECONDS) -> None:
        self.peak_kb = 0
        self._every = every
        self._before = set(descendants(os.getpid()))
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tree-pss", daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        while not self._done.wait(self._every):
            total = sum(pss_kb(pid) for pid in descendants(me) if pid not in self._before)
            self.peak_kb = max(self.peak_kb, total)

    def __enter__(self) -> TreePss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def _wait_child(proc: subprocess.Popen[bytes], timeout: float,
                max_rss_mb: float | None) -> tuple[int, Any, str]:
    """Wait for ``proc``: (wait status, resource usage, why it was killed or "")."""
    started = time.perf_counter()
    next_rss = started + 0.5
    stopped = ""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return status, usage, stopped
        now = time.perf_counter()
        if max_rss_mb and now > next_rss:
            next_rss = now + 0.5
            if _tree_rss_mb(proc.pid) > max_rss_mb:
                stopped = f"over {max_rss_mb:.0f} MB"
        if now > started + timeout:
            stopped = f"over {timeout:g} s"
        if stopped:
            os.killpg(proc.pid, 9)
            _pid, status, usage = os.wait4(proc.pid, 0)
            return status, usage, stopped
        time.sleep(0.005)


def run_child(cmd: Sequence[str], env: dict[str, str], timeout: float = CHILD_TIMEOUT,
              stdout: Path | None = None, max_rss_mb: float | None = None) -> Sample:
    """Run ``cmd`` once; wall time, and the child's own CPU and peak RSS from wait4 (the
    largest single process: a fork's own pages are not added; :class:`TreePss` counts them).

    A child over ``timeout`` seconds or ``max_rss_mb`` of memory is killed, and the sample
    says why (``stopped``). The child runs in its own session (so that all of it can be
    killed); an interrupt of the benchmark kills it too."""
    # stderr goes to a file, never a pipe: a chatty child (Polaris warns per object) would
    # fill the pipe and block while we wait for it.
    err_path = Path(tempfile.mkstemp(prefix="soma-bench-stderr-")[1])
    # Linux keeps ru_maxrss across fork and exec, so a child of this (large) process would
    # report at least our RSS: GNU time, a small process, measures the peak instead.
    rss_path = Path(tempfile.mkstemp(prefix="soma-bench-rss-")[1])
    if Path(GNU_TIME).exists():
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd]
    with open(stdout or os.devnull, "wb") as out, open(err_path, "wb") as err_file:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err_file,
                                stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir(),
                                start_new_session=True)
        try:
            status, usage, stopped = _wait_child(proc, timeout, max_rss_mb)
        except BaseException:  # Ctrl-C or SIGTERM of the benchmark
            os.killpg(proc.pid, 9)
            os.wait4(proc.pid, 0)
            raise
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = err_path.read_text(errors="replace")[-2000:]
    err_path.unlink()
    peak_kb = usage.ru_maxrss
    found = re.findall(r"^(\d+)$", rss_path.read_text(), re.M)
    rss_path.unlink()
    if found:
        peak_kb = int(found[-1])
    sample = Sample(wall, usage.ru_utime + usage.ru_stime, peak_kb / 1024, proc.returncode,
                    stopped)
    name = Path(cmd[5] if cmd[0] == GNU_TIME else cmd[0]).name
    if stopped:
        print(f"  {name} stopped: {stopped}")
    elif proc.returncode not in (0, 1) and err:
        print(f"  {name} exit {proc.returncode}: {err.strip()[-300:]}")
    return sample


def clean_env(kubeconfig: Path) -> dict[str, str]:
    """The environment of a scan: the admin kubeconfig only, no live-service endpoints (so
    the figure is the cluster scan, not OpenFGA/Kafka/Prometheus probes)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOMA_AUDIT_", "SOMA_TESTENV_", "FGA_"))}
    env["KUBECONFIG"] = str(kubeconfig)
    env["NO_COLOR"] = "1"
    # An installed package has its bytecode cached: without it every run compiles it again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def soma_audit_bin() -> str:
    return str(Path(sys.executable).with_name("soma-audit"))


def ensure_peer(name: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build a peer once into the cache dir, from its Go module at the pinned version.

    ``go install module@version`` is refused here (the module proxy serves the versions but
    not their lists, which ``go install`` reads for deprecations), so the same pinned
    version is required from a throw-away module and built with ``go build``. Polaris'
    pseudo-version is not in the checksum database: GONOSUMDB for that module only.
    """
    module, version = PEERS[name]
    bindir = CACHE / "bin"
    binary = bindir / name
    src = CACHE / "src" / name
    command = (f"cd {src} && go mod download {module} && "
               f"go build -mod=mod -o {binary} {module}   # go.mod: require {module} {version}")
    info: dict[str, Any] = {"module": module, "version": version, "command": command}
    if binary.exists():
        return info | {"binary": str(binary)}
    log(f"building {name} {version} (up to {PEER_BUILD_TIMEOUT / 60:.0f} min)")
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(f"module soma-audit-bench/{name}\n\ngo 1.17\n\n"
                                f"require {module} {version}\n")
    env = os.environ | {"GOPATH": str(CACHE / "gopath"), "GOMODCACHE": str(CACHE / "gomod"),
                        "GOTOOLCHAIN": "local", "GOFLAGS": "-modcacherw"}
    if name == "polaris":
        env["GONOSUMDB"] = module
    deadline = time.monotonic() + PEER_BUILD_TIMEOUT
    for step in (["go", "mod", "download", module],
                 ["go", "build", "-mod=mod", "-o", str(binary), module]):
        try:
            proc = subprocess.run(step, cwd=src, env=env, capture_output=True, text=True,
                                  timeout=max(1.0, deadline - time.monotonic()))
        except (OSError, subprocess.TimeoutExpired) as exc:
            return info | {"error": f"{' '.join(step)}: {type(exc).__name__}: {exc}"}
        if proc.returncode:
            return info | {"error": f"{' '.join(step)}: {(proc.stderr or proc.stdout)[-2000:]}"}
    return info | {"binary": str(binary)}


def peer_command(name: str, binary: str, kubeconfig: Path, scratch: Path) -> list[str]:
    """The peer's whole-cluster audit, JSON to stdout (Popeye needs -A for all namespaces)."""
    if name == "polaris":
        return [binary, "audit", "--format", "json"]
    return [binary, "--kubeconfig", str(kubeconfig), "-A", "-o", "json", "--force-exit-zero",
            "--logs", str(scratch / "popeye.log")]


# -- cold start -------------------------------------------------------------------------
TUI_PROBE = ROOT / "bench" / "tui_first_frame.py"
FETCH_PROBE = ROOT / "bench" / "fetch_only.py"
FETCH = "soma-audit fetch phase"
#: Repetitions of each TUI frame probe: a frame is half a second, and on shared cores one
#: run in three can be 0.1-0.2 s late, so the median needs more than three.
TUI_REPS = 9


def cold_start(reps: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``--version``, ``--demo --ci``, and the TUI's first frames on the demo: the first
    frame (every check pending) and the first complete frame (the first scan's results),
    both from just before the process is spawned, headless and on a pseudo-terminal
    (bench/tui_first_frame.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOMA_AUDIT_", "FGA_"))}
    env["KUBECONFIG"] = os.devnull
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as clean_env: the warm-up runs write it
    exe = soma_audit_bin()
    result: dict[str, Any] = {"load_average_before": os.getloadavg()[0]}
    for name, cmd, n in (
        ("version", [exe, "--version"], max(reps, 10)),
        ("demo_ci", [exe, "--demo", "--ci", "--format", "json"], max(reps, 5)),
    ):
        run_child(cmd, env)  # warm the page cache: we measure a warm start, not the disk
        result[name] = summarize([run_child(cmd, env) for _ in range(n)])
        log(f"cold start {name}: {result[name]['wall_s'] * 1000:.0f} ms")
    frames: dict[str, list[Sample]] = {"FIRST": [], "READY": []}
    for rep in range(max(reps, TUI_REPS) + 1):  # rep 0 warms the caches, not timed
        started = time.time()
        proc = subprocess.run([sys.executable, str(TUI_PROBE)], env=env, capture_output=True,
                              text=True, timeout=120, cwd=tempfile.gettempdir())
        stamps = dict(line.split(maxsplit=1) for line in proc.stdout.splitlines()
                      if line.startswith(tuple(f"{name} " for name in frames)))
        if proc.returncode != 0 or set(stamps) != set(frames):
            log(f"  TUI probe failed: {proc.stderr.strip()[-400:]}")
        elif rep:
            for name, samples in frames.items():
                samples.append(Sample(float(stamps[name]) - started))
    result["tui_first_frame"] = summarize(frames["FIRST"])
    result["tui_first_complete_frame"] = summarize(frames["READY"])
    # The same two frames of the real `soma-audit --demo` on a pseudo-terminal, read from
    # what it writes there: the driver's own output included, nothing hooked.
    from bench.tui_first_frame import terminal_frames

    terminal: dict[str, list[Sample]] = {"first": [], "complete": []}
    for rep in range(max(reps, TUI_REPS) + 1):  # rep 0 warms the caches, not timed
        started = time.time()
        try:
            first, ready = terminal_frames([exe, "--demo"], env)
        except RuntimeError as exc:
            log(f"  TUI on a terminal failed: {exc}")
            continue
        if rep:
            terminal["first"].append(Sample(first - started))
            terminal["complete"].append(Sample(ready - started))
    result["tui_terminal_first_frame"] = summarize(terminal["first"])
    result["tui_terminal_first_complete_frame"] = summarize(terminal["complete"])
    result["load_average_after"] = os.getloadavg()[0]
    for key in ("tui_first_frame", "tui_first_complete_frame", "tui_terminal_first_frame",
                "tui_terminal_first_complete_frame"):
        if result[key]["n"]:
            log(f"cold start {key.replace('_', ' ')}: {result[key]['wall_s'] * 1000:.0f} ms")
    return result


# -- live diff --------------------------------------------------------------------------
LIVE_DIFF_OBJECTS = 1_500
LIVE_DIFF_RECIPE = "pss-hardening"
#: The kinds pss-hardening patches (a Pod only when bare: an owned one is its owner's).
_HARDENED_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
_SCOPE_LINE = re.compile(r"^# (\d+) objects in (\d+) namespaces")


def live_diff(api: Api, reps: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time ``soma-audit diff pss-hardening`` over about :data:`LIVE_DIFF_OBJECTS` objects:
    the bench namespaces it needs are seeded, then named with ``--namespace``."""
    import testenv

    per_namespace = sum(1 for obj in namespace_objects(0) if obj["kind"] in _HARDENED_KINDS
                        and not obj["metadata"].get("ownerReferences"))
    namespaces = math.ceil(LIVE_DIFF_OBJECTS / per_namespace)
    seed(api, namespaces, log)
    kubeconfig = Path(testenv.state()["kube"]["admin_kubeconfig"])
    scope = [arg for i in range(namespaces) for arg in ("--namespace", f"{NS_PREFIX}{i:04d}")]
    cmd = [soma_audit_bin(), "diff", LIVE_DIFF_RECIPE, "--kubeconfig", str(kubeconfig), *scope]
    scratch = Path(tempfile.mkdtemp(prefix="soma-bench-diff-"))
    out = scratch / "diff.txt"
    env = clean_env(kubeconfig)
    samples = []
    objects = planned = 0
    for rep in range(reps + 1):  # rep 0 warms the caches, not timed
        sample = run_child(cmd, env, stdout=out)
        text = out.read_text(errors="replace")
        found = _SCOPE_LINE.match(text)
        objects = int(found.group(1)) if found else 0
        planned = text.count("\n# update ")
        if rep:
            samples.append(sample)
            log(f"live diff rep {rep}/{reps}: {sample.wall_s:.2f}s, {objects} objects "
                f"({planned} updates), exit {sample.rc}")
    return {"recipe": LIVE_DIFF_RECIPE, "namespaces": namespaces, "objects": objects,
            "updates": planned, "load_average": os.getloadavg()[0], "summary": summarize(samples)}


# -- one size ---------------------------------------------------------------------------
@dataclass
class SizeResult:
    size: int
    date: str
    seed: dict[str, Any]
    cluster_objects: dict[str, int]
    list_paths: list[str]
    baseline_io: dict[str, int]
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    #: 1-minute load average at the start of each timed repetition (the machine is shared).
    load_average: list[float] = field(default_factory=list)
    #: Peak PSS of each soma-audit subject's whole process tree (its forks included), from
    #: the untimed warm-up: sampling /proc costs CPU.
    tree_pss_mb: dict[str, float] = field(default_factory=dict)


def measure_size(api: Api, home: Path, size: int, reps: int,
                 peers: dict[str, dict[str, Any]], readonly_variant: bool = False,
                 log: Callable[[str], None] = print) -> SizeResult:
    """Seed ``size`` on the size's own server (see :func:`size_cluster`; ``home`` holds its
    kubeconfigs), then round-robin ``reps`` timed repetitions of every subject.

    A peer stopped at its limits (:data:`PEER_LIMITS`) gets ``stopped`` in ``peers`` and
    is not run again, here or at a larger size."""
    seeded = seed(api, namespaces_for(size), log)
    paths = audit_list_paths(api)
    counts = count_objects(api, paths)
    log(f"size {size}: {sum(counts.values())} objects of {len(paths)} listed kinds in the "
        f"cluster (all namespaces)")
    kubeconfig = home / "admin.kubeconfig"
    scratch = Path(tempfile.mkdtemp(prefix="soma-bench-"))
    subjects: dict[str, list[str]] = {"soma-audit": [soma_audit_bin(), "--ci", "--format", "json"]}
    if readonly_variant:
        # The least-privilege identity: no patch on namespaces, so no dry-run PATCHes.
        subjects["soma-audit (read-only SA)"] = [*subjects["soma-audit"], "--kubeconfig",
                                                 str(home / "readonly.kubeconfig")]
    for name, info in peers.items():
        if info.get("binary") and not info.get("stopped"):
            subjects[name] = peer_command(name, info["binary"], kubeconfig, scratch)
    env = clean_env(kubeconfig)
    samples: dict[str, list[Sample]] = {"baseline": [], FETCH: [],
                                        **{s: [] for s in subjects}}
    stopped: dict[str, str] = {}
    tree_pss: dict[str, float] = {}
    requests: dict[str, dict[str, int]] = {}
    io: dict[str, int] = {}
    load: list[float] = []
    # Round-robin repetitions so that a burst of other traffic hits every subject alike.
    for rep in range(reps + 1):  # rep 0 is a warm-up (and the request count), not timed
        if rep:
            load.append(os.getloadavg()[0])
        before, server_cpu = api.metrics(), api.server_cpu_s()
        sample, io = baseline_once(api, paths)
        sample.server_cpu_s = api.server_cpu_s() - server_cpu
        if rep == 0:
            requests["baseline"] = diff_totals(before, api.metrics())
        else:
            samples["baseline"].append(sample)
        for name, cmd in subjects.items():
            if name in stopped:
                continue
            before, server_cpu = api.metrics(), api.server_cpu_s()
            limit = PEER_LIMITS if name in peers else {"seconds": CHILD_TIMEOUT}
            # soma-audit's warm-up samples its tree's memory every 20 ms (a 30k run is
            # under 3 s); the timed runs are left alone.
            pss = TreePss(0.02) if rep == 0 and name not in peers else None
            with pss or contextlib.nullcontext():
                sample = run_child(cmd, env, timeout=limit["seconds"],
                                   stdout=scratch / f"{name}.json",
                                   max_rss_mb=limit.get("rss_mb"))
            sample.server_cpu_s = api.server_cpu_s() - server_cpu
            if sample.stopped:
                stopped[name] = sample.stopped
                if name in peers:
                    peers[name]["stopped"] = f"{sample.stopped} at {size:,} objects"
                continue
            if rep == 0:
                requests[name] = diff_totals(before, api.metrics())
                if pss and pss.peak_kb:
                    tree_pss[name] = round(pss.peak_kb / 1024, 1)
            else:
                samples[name].append(sample)
        fetch = run_child([sys.executable, str(FETCH_PROBE), str(kubeconfig)], env,
                          stdout=scratch / "fetch.txt")
        load_line = (scratch / "fetch.txt").read_text().split()
        if rep and fetch.rc == 0 and load_line[:1] == ["LOAD"]:
            # in-process time of ClusterSource.load; CPU and RSS are the whole child's
            samples[FETCH].append(Sample(float(load_line[1]), fetch.cpu_s, fetch.rss_mb))
        if rep:
            line = "  ".join(f"{n} {s[-1].wall_s:.2f}s" for n, s in samples.items() if s)
            log(f"size {size} rep {rep}/{reps}: {line}")
    summaries = {name: summarize(s) for name, s in samples.items()}
    for name, reason in stopped.items():
        summaries[name] = {"n": 0, "stopped": reason}
    return SizeResult(size=size, date=dt.date.today().isoformat(), seed=seeded,
                      cluster_objects=counts, list_paths=[p for _, p in paths],
                      baseline_io=io, summaries=summaries, requests=requests,
                      peers=copy.deepcopy(peers), machine=machine_info(api), load_average=load,
                      tree_pss_mb=tree_pss)


def machine_info(api: Api) -> dict[str, Any]:
    try:
        version = api.json("/version").get("gitVersion", "")
    except (RuntimeError, ValueError):
        version = ""
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "kube_apiserver": version, "platform": platform.platform()}


def to_json(result: SizeResult) -> dict[str, Any]:
    data = asdict(result)
    data["ratios"] = {
        "soma-audit_wall_over": ratios(result.summaries, "soma-audit", "wall_s"),
        "soma-audit_cpu_over": ratios(result.summaries, "soma-audit", "cpu_s"),
        "soma-audit_rss_over": ratios(result.summaries, "soma-audit", "rss_mb"),
    }
    return data


def markdown_rows(results: Sequence[dict[str, Any]]) -> str:
    """The performance.md table rows: one per (size, subject)."""
    lines = ["| size (bench objects / listed in cluster) | subject | wall s (median) | CPU s | "
             "API server + etcd CPU s | peak RSS MB | x baseline (wall) | "
             "soma-audit ÷ subject (wall) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for data in results:
        summaries = data["summaries"]
        base = summaries.get("baseline", {}).get("wall_s")
        mine = summaries.get("soma-audit", {}).get("wall_s")
        label = f"{data['seed']['bench_objects']:,} / {sum(data['cluster_objects'].values()):,}"
        for name, s in summaries.items():
            if not s.get("n"):
                continue
            x_base = f"{s['wall_s'] / base:.2f}" if base else "—"
            vs = f"{mine / s['wall_s']:.2f}" if mine and name != "soma-audit" else "—"
            rss = f"{s['rss_mb']:.0f}" if s["rss_mb"] else "—"
            server = f"{s['server_cpu_s']:.2f}" if s.get("server_cpu_s") else "—"
            lines.append(f"| {label} | {name} | {s['wall_s']:.3f} | {s['cpu_s']:.2f} | "
                         f"{server} | {rss} | {x_base} | {vs} |")
    return "\n".join(lines)


def list_requests(requests: dict[str, int]) -> tuple[int, int, int]:
    """(LIST requests, distinct resources listed, other requests) of one run."""
    lists = {k: v for k, v in requests.items() if k.startswith("LIST ")}
    return sum(lists.values()), len(lists), sum(requests.values()) - sum(lists.values())


def growth_rows(results: Sequence[dict[str, Any]]) -> str:
    """How each subject's wall time and peak RSS grow with the listed objects."""
    subjects = sorted({name for d in results for name, s in d["summaries"].items()
                       if s.get("n")})
    lines = ["| subject | wall-time exponent | peak-RSS exponent |", "| --- | ---: | ---: |"]
    for name in subjects:
        pts = [(sum(d["cluster_objects"].values()), d["summaries"].get(name, {}))
               for d in results]
        wall = growth([(x, s.get("wall_s", 0.0)) for x, s in pts if s.get("n")])
        rss = growth([(x, s.get("rss_mb", 0.0)) for x, s in pts if s.get("n")])
        lines.append(f"| {name} | {wall if wall is not None else '—'} | "
                     f"{rss if rss is not None else '—'} |")
    return "\n".join(lines)


def load_rows(results: Sequence[dict[str, Any]]) -> str:
    """The 1-minute load average during each size's timed repetitions (min, median, max)."""
    lines = ["| size | load average (min / median / max) | repetitions |",
             "| --- | ---: | ---: |"]
    for d in results:
        load = sorted(d.get("load_average") or [])
        if load:
            text = f"{load[0]:.1f} / {statistics.median(load):.1f} / {load[-1]:.1f}"
            lines.append(f"| {d['size']:,} | {text} | {len(load)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="comma-separated object counts (default: %(default)s)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per size")
    parser.add_argument("--no-peers", action="store_true", help="skip Polaris and Popeye")
    parser.add_argument("--fresh", action="store_true",
                        help="empty each size's storage and seed it again (default: reuse a "
                             "completed seed of that size)")
    parser.add_argument("--seed-only", action="store_true",
                        help="only seed each size's storage (a later run reuses it)")
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument("--no-live-diff", action="store_true")
    parser.add_argument("--only-live-diff", action="store_true",
                        help="only time the live diff of pss-hardening (about 1,500 objects)")
    parser.add_argument("--readonly-variant", action="store_true",
                        help="also time soma-audit with the read-only ServiceAccount")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    today = dt.date.today().isoformat()
    api = testenv_api()
    if args.only_live_diff:
        sizes = []
        args.no_peers = args.no_cold_start = True
    if args.seed_only:
        args.no_peers = args.no_cold_start = args.no_live_diff = True
    peers = {} if args.no_peers else {name: ensure_peer(name) for name in PEERS}
    for name, info in peers.items():
        if info.get("error"):
            print(f"peer {name} could not be built: {info['command']}: {info['error'][-300:]}")
    if not args.no_cold_start:
        # First, on a machine not yet busy with the sizes' servers (after the 100k size the
        # load stays above 1.5 for a minute and the first frame is 0.1-0.2 s later).
        cold = cold_start(args.reps)
        path = args.out / f"{today}-coldstart.json"
        path.write_text(json.dumps(cold, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    written: list[dict[str, Any]] = []
    for size in sorted(sizes):
        with size_cluster(size, args.fresh) as (size_api, home):
            if args.seed_only:
                seed(size_api, namespaces_for(size))
                continue
            data = to_json(measure_size(size_api, home, size, args.reps, peers,
                                        args.readonly_variant))
        path = args.out / f"{today}-{size}.json"
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        written.append(data)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    if not args.no_live_diff:
        data = live_diff(api, args.reps)
        path = args.out / f"{today}-livediff.json"
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    if written:
        print(markdown_rows(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
