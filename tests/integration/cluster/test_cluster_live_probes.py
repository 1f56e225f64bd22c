"""The live-only probes against the real API server: Argo CD status, Chaos Mesh history and
the API server's own PodSecurity verdict (server-side dry-run, opt-in RBAC)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soma_audit.core.model import Status
from soma_audit.core.paths import data_path
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    ScopedClusterSource,
    audit,
    cluster_source,
    create,
    namespace,
    only,
    rbac_rules,
    restricted_pod,
    service_account_kubeconfig,
    set_status,
    show,
)

pytestmark = pytest.mark.integration

Names = Callable[[str], str]
#: The bundled config's namespaces: not ours to judge on a shared test server.
DEFAULT_NAMESPACES = ["soma-agent-hub", "observability"]


def _app(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"project": "default",
                 "source": {"repoURL": "https://git.example/soma.git", "path": f"k8s/{name}"},
                 "destination": {"server": "https://kubernetes.default.svc",
                                 "namespace": "soma-agent-hub"}},
    }


def _status(sync: str, health: str, phase: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"sync": {"status": sync, "revision": "abc123"},
                              "health": {"status": health}}
    if phase:
        status["operationState"] = {
            "operation": {"sync": {"revision": "abc123"}},
            "phase": phase, "startedAt": "2026-11-28T01:00:00Z",
            "finishedAt": "2026-11-28T01:00:05Z",
            "message": "successfully synced" if phase == "Succeeded" else "one or more "
                       "objects failed to apply",
            "syncResult": {"revision": "abc123"},
        }
    return status


def _argocd(kube: AdminKube, kube_env: Any, unique_name: Names,
            states: dict[str, tuple[str, str, str | None]]) -> tuple[str, Any]:
    ns = namespace(kube, unique_name("argocd"))
    for name, (sync, health, phase) in states.items():
        app = create(kube, _app(ns, name))
        set_status(kube, app, _status(sync, health, phase))
    source = ScopedClusterSource(cluster_source(kube_env.readonly_kubeconfig), [ns])
    report = audit(source, ["argocd.apps-healthy", "argocd.last-sync"],
                   {"argocd": {"namespace": ns}})
    return ns, report


def test_argocd_all_synced_healthy_succeeded_passes(kube: AdminKube, kube_env: Any,
                                                    unique_name: Names) -> None:
    ns, report = _argocd(kube, kube_env, unique_name, {
        "gateway-api": ("Synced", "Healthy", "Succeeded"),
        "orchestrator": ("Synced", "Healthy", "Succeeded"),
    })
    healthy, last = only(report, "argocd.apps-healthy"), only(report, "argocd.last-sync")
    assert healthy.status is Status.PASS, show(healthy)
    assert {e.object for e in healthy.evidence} == {
        f"Application/{ns}/gateway-api", f"Application/{ns}/orchestrator"}
    assert all("status.sync.status=Synced, status.health.status=Healthy" in e.message
               for e in healthy.evidence)
    assert last.status is Status.PASS, show(last)
    assert all("last operation Succeeded" in e.message for e in last.evidence)


def test_argocd_out_of_sync_degraded_and_failed_sync_fail(kube: AdminKube, kube_env: Any,
                                                          unique_name: Names) -> None:
    ns, report = _argocd(kube, kube_env, unique_name, {
        "gateway-api": ("Synced", "Healthy", "Succeeded"),
        "billing-service": ("OutOfSync", "Degraded", "Failed"),
        "llm-hub": ("Synced", "Progressing", None),
    })
    healthy, last = only(report, "argocd.apps-healthy"), only(report, "argocd.last-sync")
    assert healthy.status is Status.FAIL, show(healthy)
    found = {e.object: e.message for e in healthy.evidence}
    assert set(found) == {f"Application/{ns}/billing-service", f"Application/{ns}/llm-hub"}
    assert ("status.sync.status=OutOfSync, status.health.status=Degraded, expected Synced "
            "and Healthy") in found[f"Application/{ns}/billing-service"]
    assert "status.health.status=Progressing" in found[f"Application/{ns}/llm-hub"]
    assert last.status is Status.FAIL, show(last)
    found = {e.object: e.message for e in last.evidence}
    assert set(found) == {f"Application/{ns}/billing-service", f"Application/{ns}/llm-hub"}
    assert "status.operationState.phase=Failed" in found[f"Application/{ns}/billing-service"]
    assert "one or more objects failed to apply" in found[f"Application/{ns}/billing-service"]
    assert "no sync operation has run" in found[f"Application/{ns}/llm-hub"]


def test_argocd_no_application_fails(kube: AdminKube, kube_env: Any,
                                     unique_name: Names) -> None:
    ns, report = _argocd(kube, kube_env, unique_name, {})
    for check in ("argocd.apps-healthy", "argocd.last-sync"):
        result = only(report, check)
        assert result.status is Status.FAIL, show(result)
        assert f"no Argo CD Application in namespace {ns}" in result.evidence[0].message


def _schedule(ns: str, name: str, cron: str, created_minutes_ago: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": cron, "type": "PodChaos", "historyLimit": 2,
                 "concurrencyPolicy": "Forbid",
                 "podChaos": {"action": "pod-kill", "mode": "one",
                              "selector": {"namespaces": [ns],
                                           "labelSelectors": {"app": "gateway-api"}}}},
    }


def _stamp(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_chaos_recent_runs(kube: AdminKube, kube_env: Any, unique_name: Names) -> None:
    ns = namespace(kube, unique_name("chaos"))
    fresh = create(kube, _schedule(ns, "daily-recent", "0 3 * * *"))
    set_status(kube, fresh, {"time": _stamp(dt.timedelta(hours=20))})
    source = ScopedClusterSource(cluster_source(kube_env.readonly_kubeconfig), [ns])
    create(kube, _schedule(ns, "hourly-new", "@hourly"))  # never ran, created just now
    result = only(audit(source, ["chaos.recent-runs"]), "chaos.recent-runs")
    assert result.status is Status.PASS, show(result)
    found = {e.object: e.message for e in result.evidence}
    assert "within 24h interval + 1h slack" in found[f"Schedule/{ns}/daily-recent"]
    assert "first run not due yet" in found[f"Schedule/{ns}/hourly-new"]

    stale = create(kube, _schedule(ns, "hourly-stale", "*/15 * * * *"))
    set_status(kube, stale, {"time": _stamp(dt.timedelta(hours=3))})
    result = only(audit(source, ["chaos.recent-runs"]), "chaos.recent-runs")
    assert result.status is Status.FAIL, show(result)
    assert [e.object for e in result.evidence] == [f"Schedule/{ns}/hourly-stale"]
    assert "last run 3h" in result.evidence[0].message
    assert "expected within 15m interval + 1h slack" in result.evidence[0].message


def _baseline_only_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]}}


@pytest.fixture
def dryrun_kubeconfig(kube: AdminKube, tmp_path: Path, unique_name: Names) -> tuple[Path, str]:
    """A fresh identity with the read-only role plus the opt-in dry-run role, both from
    manifests/rbac (the dry-run ClusterRole's rules, bound to this identity only)."""
    readonly = rbac_rules(data_path("manifests", "rbac", "clusterrole.yaml"))
    dryrun = rbac_rules(data_path("manifests", "rbac", "clusterrole-dryrun.yaml"))
    return service_account_kubeconfig(kube, tmp_path, unique_name("audit-dryrun"), [],
                                      rules=readonly + dryrun)


def test_admission_verdict_reports_the_servers_warnings(
        kube: AdminKube, kube_env: Any, unique_name: Names,
        dryrun_kubeconfig: tuple[Path, str]) -> None:
    kubeconfig, _ = dryrun_kubeconfig
    clean = namespace(kube, unique_name("psa-clean"))
    dirty = namespace(kube, unique_name("psa-dirty"),
                      {"pod-security.kubernetes.io/enforce": "baseline"})
    already = namespace(kube, unique_name("psa-already"),
                        {"pod-security.kubernetes.io/enforce": "restricted"})
    for ns, pod in ((clean, restricted_pod("ok")), (dirty, _baseline_only_pod("loose")),
                    (dirty, restricted_pod("ok")), (already, restricted_pod("ok"))):
        create(kube, {**pod, "metadata": {"name": pod["metadata"]["name"], "namespace": ns}})
    before = {ns: kube.request("GET", f"/api/v1/namespaces/{ns}")["metadata"]
              for ns in (clean, dirty, already)}
    config = {"namespaces": {ns: {"enforce": "restricted", "audit": "restricted",
                                  "warn": "restricted"} for ns in (clean, dirty, already)},
              "pss_exempt_namespaces": DEFAULT_NAMESPACES, "probe_writes": True}
    source = ScopedClusterSource(cluster_source(kubeconfig), [clean, dirty, already])
    result = only(audit(source, ["pss.admission-verdict"], config), "pss.admission-verdict")
    assert result.status is Status.FAIL, show(result)
    bad = [e.message for e in result.evidence if e.object == f"Namespace/{dirty}"]
    assert any(f'existing pods in namespace "{dirty}" violate the new PodSecurity enforce '
               'level "restricted:latest"' in m for m in bad), bad
    assert any(m.endswith("loose: allowPrivilegeEscalation != false, unrestricted "
                          "capabilities, runAsNonRoot != true, seccompProfile") for m in bad), bad
    assert {e.object for e in result.evidence} == {f"Namespace/{dirty}"}

    # Nothing was saved: the labels and resourceVersion are unchanged.
    for ns, meta in before.items():
        now = kube.request("GET", f"/api/v1/namespaces/{ns}")["metadata"]
        assert (now["labels"], now["resourceVersion"]) == (meta["labels"],
                                                           meta["resourceVersion"])
    # Exactly one dry-run PATCH per namespace (plus the LIST and one GET /version).
    assert source.inner.requests["PATCH"] == 3, source.inner.requests

    # Evaluated even where the label is already the target (version pinned to the same).
    bad_pod = {**_baseline_only_pod("late"), "metadata": {"name": "late", "namespace": clean}}
    create(kube, bad_pod)
    result = only(audit(source, ["pss.admission-verdict"], config), "pss.admission-verdict")
    assert {e.object for e in result.evidence} == {f"Namespace/{dirty}", f"Namespace/{clean}"}


def test_admission_verdict_sees_pods_admitted_before_the_label(
        kube: AdminKube, kube_env: Any, unique_name: Names,
        dryrun_kubeconfig: tuple[Path, str]) -> None:
    """A namespace already labelled restricted whose pods predate the label: PodSecurity
    skips unchanged policies, so only the version pin makes it evaluate them."""
    kubeconfig, _ = dryrun_kubeconfig
    ns = namespace(kube, unique_name("psa-late-label"))
    create(kube, {**_baseline_only_pod("old"), "metadata": {"name": "old", "namespace": ns}})
    kube.request("PATCH", f"/api/v1/namespaces/{ns}",
                 {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
                 content_type="application/merge-patch+json")
    source = ScopedClusterSource(cluster_source(kubeconfig), [ns])
    result = only(audit(source, ["pss.admission-verdict"],
                        {"pss_exempt_namespaces": DEFAULT_NAMESPACES, "probe_writes": True}),
                  "pss.admission-verdict")
    assert result.status is Status.FAIL, show(result)
    assert any("restricted:v1." in e.message for e in result.evidence), show(result)
    assert any("old: allowPrivilegeEscalation != false" in e.message
               for e in result.evidence), show(result)


def test_admission_verdict_without_the_dry_run_role_is_a_forbidden_error(
        kube: AdminKube, kube_env: Any, unique_name: Names) -> None:
    ns = namespace(kube, unique_name("psa-ro"), {"pod-security.kubernetes.io/enforce":
                                                 "restricted"})
    source = ScopedClusterSource(cluster_source(kube_env.readonly_kubeconfig), [ns])
    result = only(audit(source, ["pss.admission-verdict"], {"probe_writes": True}),
                  "pss.admission-verdict")
    assert result.status is Status.ERROR, show(result)
    assert [e.message for e in result.evidence] == [
        "forbidden (needs patch on namespaces for a dry-run)"]


def test_admission_verdict_is_skipped_and_sends_nothing_without_the_opt_in(
        kube: AdminKube, kube_env: Any, unique_name: Names) -> None:
    ns = namespace(kube, unique_name("psa-no-opt-in"), {"pod-security.kubernetes.io/enforce":
                                                        "restricted"})
    source = ScopedClusterSource(cluster_source(kube_env.readonly_kubeconfig), [ns])
    result = only(audit(source, ["pss.admission-verdict"]), "pss.admission-verdict")
    assert result.status is Status.SKIP, show(result)
    assert "--probe-writes" in result.evidence[0].message
    assert source.inner.requests["PATCH"] == 0, source.inner.requests
