"""A fully ready SomaAgentHub on the real API server: every Kubernetes-side check passes,
and each variation fails exactly the check(s) it targets, with the expected evidence.

The state is ``ready/`` (see its README): created in fresh namespaces (``soma-agent-hub``,
``observability`` and ``argocd`` renamed), plus what only a live cluster holds — a Pod per
Deployment (Pending: no kubelet), Argo CD Application status and Chaos Mesh last-run
times. It is audited by an identity holding the read-only role and the opt-in dry-run role,
so ``pss.admission-verdict`` asks PodSecurity itself.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.core.model import Status
from soma_audit.core.paths import data_path
from soma_audit.probes import load_probes
from tests.helpers import fresh_suffix
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    ScopedClusterSource,
    audit,
    cluster_source,
    create,
    rbac_rules,
    renamer,
    service_account_kubeconfig,
    set_status,
    show,
)

pytestmark = pytest.mark.integration

READY = Path(__file__).parent / "ready"
NAMESPACES = ("soma-agent-hub", "observability", "argocd")
Objects = list[dict[str, Any]]


def _kubernetes_checks() -> list[str]:
    """Checks decided from Kubernetes objects (plus, for ops.runbooks, the repo's runbooks)."""
    probes = load_probes()
    return sorted(c.id for c in load_catalog()
                  if not c.manual and set(c.requires) <= {"cluster", "status"}
                  and probes[c.probe].kinds)


def _load() -> Objects:
    objects: Objects = []
    for path in sorted([*READY.rglob("*.yaml")]):
        objects += [d for d in yaml.safe_load_all(path.read_text())
                    if isinstance(d, dict) and "kind" in d]
    return objects


def _live_extras(objects: Objects) -> Objects:
    """A Pod per Deployment, as its ReplicaSet would create it (owner reference included:
    there is no controller-manager, so nothing acts on it)."""
    pods = []
    for d in (o for o in objects if o["kind"] == "Deployment"):
        template = d["spec"]["template"]
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True,
                 "name": f"{d['metadata']['name']}-7f9c6d", "uid": str(uuid.uuid4())}
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{d['metadata']['name']}-7f9c6d-abcde",
                                  "namespace": d["metadata"]["namespace"],
                                  "ownerReferences": [owner],
                                  "labels": {**template["metadata"].get("labels", {}),
                                             "pod-template-hash": "7f9c6d"}},
                     "spec": copy.deepcopy(template["spec"])})
    return pods


def _stamp(ago: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def _default_status(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Application":
        return {"sync": {"status": "Synced", "revision": "c0ffee"},
                "health": {"status": "Healthy"},
                "operationState": {"operation": {"sync": {"revision": "c0ffee"}},
                                   "phase": "Succeeded", "startedAt": _stamp(dt.timedelta(
                                       minutes=10)), "finishedAt": _stamp(dt.timedelta(
                                           minutes=9)), "message": "successfully synced"}}
    if obj["kind"] == "Schedule":
        return {"time": _stamp(dt.timedelta(minutes=5))}
    return None


class Platform:
    """One copy of the ready state on the API server, in its own namespaces."""

    def __init__(self, kube: AdminKube, objects: Objects, tmp: Path) -> None:
        suffix = fresh_suffix()
        self.names = {ns: f"{ns}-{suffix}" for ns in NAMESPACES}
        self.repo = tmp / f"repo-{suffix}"
        shutil.copytree(READY / "docs", self.repo / "docs")
        rename = renamer(NAMESPACES, suffix)
        renamed = list(yaml.safe_load_all(rename(yaml.safe_dump_all(objects, sort_keys=False))))
        order = sorted(renamed, key=lambda o: o["kind"] != "Namespace")
        declared = {o["metadata"]["name"] for o in renamed if o["kind"] == "Namespace"}
        for ns in self.names.values():
            if ns not in declared:
                order.insert(0, {"apiVersion": "v1", "kind": "Namespace",
                                 "metadata": {"name": ns}})
        for obj in order:
            status = obj.pop("status", None) or _default_status(obj)
            created = create(kube, obj)
            if status:
                set_status(kube, created, status)

    def config(self) -> dict[str, Any]:
        n = self.names
        return {
            "namespace": n["soma-agent-hub"],
            "namespaces": {
                n["soma-agent-hub"]: {"enforce": "restricted", "audit": "restricted",
                                      "warn": "restricted"},
                n["observability"]: {"enforce": "baseline", "audit": "restricted",
                                     "warn": "restricted"},
            },
            # The bundled config's own names are not ours to judge on a shared server.
            "pss_exempt_namespaces": ["soma-agent-hub", "observability"],
            "argocd": {"namespace": n["argocd"]},
            "kafka": {"namespace": n["soma-agent-hub"]},
            "chaos": {"namespace": n["soma-agent-hub"]},
            "repo": str(self.repo),
            "probe_writes": True,  # the auditor holds the opt-in dry-run role
        }


@pytest.fixture(scope="module")
def auditor(kube: AdminKube, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An identity with exactly the shipped roles: read-only plus the dry-run opt-in."""
    rules = (rbac_rules(data_path("manifests", "rbac", "clusterrole.yaml"))
             + rbac_rules(data_path("manifests", "rbac", "clusterrole-dryrun.yaml")))
    name = f"audit-ready-{fresh_suffix()}"
    path, _ = service_account_kubeconfig(kube, tmp_path_factory.mktemp("sa"), name, [],
                                         rules=rules)
    return path


def _audit(platform: Platform, auditor: Path) -> dict[str, Any]:
    source = ScopedClusterSource(cluster_source(auditor, repo=platform.repo),
                                 platform.names.values())
    report = audit(source, _kubernetes_checks(), platform.config())
    return {r.check.id: r for r in report.results}


#: Istio is not part of SomaAgentHub's state: its checks say so and skip.
NOT_PRESENT = {"netpol.istio-mtls", "netpol.istio-authz"}


def test_every_kubernetes_check_passes_on_the_ready_state(
        kube: AdminKube, auditor: Path, tmp_path: Path) -> None:
    objects = _load()
    platform = Platform(kube, objects + _live_extras(objects), tmp_path)
    results = _audit(platform, auditor)
    assert len(results) >= 30
    bad = [show(r) for cid, r in results.items()
           if r.status is not (Status.SKIP if cid in NOT_PRESENT else Status.PASS)]
    assert not bad, "\n".join(bad)
    verdict = results["pss.admission-verdict"]
    assert {e.object for e in verdict.evidence} == {
        f"Namespace/{name}" for name in platform.names.values()}
    assert all("no PodSecurity warnings" in e.message for e in verdict.evidence)


# -- variations: (id, mutate(objects) -> objects, {check: evidence substring}) ---------------
def _find(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def _without(objects: Objects, kind: str, name: str) -> Objects:
    return [o for o in objects if not (o["kind"] == kind and o["metadata"]["name"] == name)]


def _app_status(sync: str, health: str, phase: str) -> Callable[[Objects], Objects]:
    def mutate(objects: Objects) -> Objects:
        app = _find(objects, "Application", "llm-hub")
        status = _default_status(app) or {}
        status["sync"]["status"], status["health"]["status"] = sync, health
        status["operationState"]["phase"] = phase
        app["status"] = status
        return objects
    return mutate


def _stale_schedule(objects: Objects) -> Objects:
    _find(objects, "Schedule", "gateway-api-pod-failure")["status"] = {
        "time": _stamp(dt.timedelta(days=3))}
    return objects


def _weekly_schedule(objects: Objects) -> Objects:
    schedule = _find(objects, "Schedule", "gateway-api-cpu-stress")
    schedule["spec"]["schedule"] = "0 3 * * 0"
    return objects


def _writable_root(objects: Objects) -> Objects:
    deployment = _find(objects, "Deployment", "billing-service")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    containers[0]["securityContext"]["readOnlyRootFilesystem"] = False
    return objects


def _open_billing(objects: Objects) -> Objects:
    """analytics-service → billing-service: both ends allow it (egress and ingress)."""
    def policy(name: str, app: str, rule: dict[str, Any], direction: str) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": "soma-agent-hub"},
                "spec": {"podSelector": {"matchLabels": {"app": app}},
                         "policyTypes": [direction.capitalize()], direction: [rule]}}

    return [*objects,
            policy("billing-open", "billing-service",
                   {"from": [{"podSelector": {"matchLabels": {"app": "analytics-service"}}}]},
                   "ingress"),
            policy("analytics-to-billing", "analytics-service",
                   {"to": [{"podSelector": {"matchLabels": {"app": "billing-service"}}}]},
                   "egress")]


def _one_replica(objects: Objects) -> Objects:
    _find(objects, "KafkaTopic", "agent-events")["spec"]["replicas"] = 1
    return objects


def _no_self_heal(objects: Objects) -> Objects:
    app = _find(objects, "Application", "tool-service")
    app["spec"]["syncPolicy"]["automated"]["selfHeal"] = False
    return objects


def _no_warn_label(objects: Objects) -> Objects:
    ns = _find(objects, "Namespace", "soma-agent-hub")
    del ns["metadata"]["labels"]["pod-security.kubernetes.io/warn"]
    return objects


VARIATIONS: list[tuple[str, Callable[[Objects], Objects], dict[str, str]]] = [
    ("app-degraded", _app_status("OutOfSync", "Degraded", "Succeeded"),
     {"argocd.apps-healthy": "status.sync.status=OutOfSync, status.health.status=Degraded"}),
    ("sync-failed", _app_status("Synced", "Healthy", "Failed"),
     {"argocd.last-sync": "status.operationState.phase=Failed"}),
    ("schedule-stale", _stale_schedule,
     {"chaos.recent-runs": "last run 72h"}),
    ("schedule-weekly", _weekly_schedule,
     {"chaos.daily": "spec.schedule '0 3 * * 0' leaves up to 168h between runs"}),
    ("writable-root", _writable_root,
     {"pss.readonly-root": "readOnlyRootFilesystem=false"}),
    ("billing-open", _open_billing,
     {"netpol.flows": "analytics-service → billing-service:10009 allowed, not intended"}),
    ("no-dns", lambda objects: _without(objects, "NetworkPolicy", "allow-dns-egress"),
     {"netpol.dns-egress": "→ kube-dns:53/UDP and 53/TCP denied"}),
    ("topic-one-replica", _one_replica,
     {"kafka.topic-replication": "spec.replicas=1, expected 2"}),
    ("no-self-heal", _no_self_heal,
     {"argocd.sync-policy": "selfHeal"}),
    ("no-warn-label", _no_warn_label,
     {"pss.namespace-labels": "pod-security.kubernetes.io/warn unset"}),
    ("no-hpa", lambda objects: _without(objects, "HorizontalPodAutoscaler", "llm-hub"),
     {"ops.cost-controls": "no HorizontalPodAutoscaler targets Deployment llm-hub"}),
    ("no-routing", lambda objects: _without(objects, "AlertmanagerConfig", "soma-oncall"),
     {"slo.alert-routing": ""}),
    ("no-webhook", lambda objects: _without(objects, "EventSource", "git-webhook"),
     {"argocd.webhook": ""}),
]


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in VARIATIONS],
                         ids=[v[0] for v in VARIATIONS])
def test_a_variation_fails_exactly_its_check(
        mutate: Callable[[Objects], Objects], expected: dict[str, str], kube: AdminKube,
        auditor: Path, tmp_path: Path) -> None:
    objects = _load()
    objects = mutate(copy.deepcopy(objects))
    platform = Platform(kube, objects + _live_extras(objects), tmp_path)
    results = _audit(platform, auditor)
    failing = {cid for cid, r in results.items() if r.status is Status.FAIL}
    others = [show(results[c]) for c in sorted(failing - set(expected))]
    assert failing == set(expected), "\n".join(others) or sorted(failing)
    for check_id, words in expected.items():
        assert any(words in e.message for e in results[check_id].evidence), \
            show(results[check_id])
    assert not [r for r in results.values() if r.status is Status.ERROR]
