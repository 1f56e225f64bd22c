"""Live remediation a real API server accepts, on the real kube-apiserver.

Each test works in fresh namespaces and plans through :func:`prepare` as the CLI does, so
the team's scope (the configured namespaces) keeps the plan to the test's own objects on
this shared cluster. There is no controller-manager: ReplicaSets and Pods "made" by a
Deployment or StatefulSet are created by the test with their ownerReferences.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import NamespaceLevels, load_config
from soma_audit.engine.session import AuditSession
from soma_audit.remediation.apply import apply_plan, rollback
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.ownership import LiveOptions
from soma_audit.remediation.plan import Plan, strip_server_fields
from soma_audit.remediation.workflow import prepare
from soma_audit.sources.cluster import ClusterSource
from tests.tui.scenario import pilot_test, wait_until

pytestmark = pytest.mark.integration

APPLY = "application/apply-patch+yaml"
CONTAINER_OWNED = ("securityContext", "resources", "volumeMounts")


class Live:
    """Fresh namespaces ``ns`` (and ``more``) as the team's scope, raw access, a session."""

    def __init__(self, kube_env: Any, name: Callable[[str], str], tmp: Path,
                 extra: int = 0) -> None:
        self.source = ClusterSource(str(kube_env.admin_kubeconfig))
        self.ns = name("live")
        self.more = [name("live") for _ in range(extra)]
        #: A namespace outside the team's scope (when a test makes one).
        self.outside = ""
        self.store = BackupStore(tmp / "state" / "backups")
        for namespace in (self.ns, *self.more):
            self.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": namespace}})
        levels = {n: NamespaceLevels("restricted") for n in (self.ns, *self.more)}
        config = replace(load_config(namespace=self.ns), namespaces=levels)
        self.session = AuditSession(self.source, config, load_catalog(),
                                    tmp / "attestations.yaml")

    def call(self, method: str, path: str, body: Any = None,
             query: list[tuple[str, str]] | None = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        data = json.dumps(body) if content_type == APPLY else body
        response = self.source.request(method, path, query, data, content_type)
        try:
            return response.status, json.loads(response.data)
        except ValueError:
            return response.status, response.data

    def ok(self, method: str, path: str, body: Any = None, manager: str = "",
           content_type: str = "application/json") -> dict[str, Any]:
        query = [("fieldManager", manager)] if manager else None
        status, answer = self.call(method, path, body, query, content_type)
        assert status < 300, answer
        return answer

    def apply_as(self, manager: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply by another field manager (Argo CD's, Helm's ...)."""
        return self.ok("PATCH", path, body, manager, APPLY)

    def get(self, path: str) -> dict[str, Any]:
        return self.ok("GET", path)

    def plan(self, recipe: str, **options: Any) -> Plan:
        return prepare(self.session, recipe, "cluster", False, LiveOptions(**options))


def _container(name: str, **security: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": f"soma/{name}:1.0"}
    if security:
        container["securityContext"] = security
    return container


def _deployment(ns: str, name: str, *containers: dict[str, Any],
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": {"app": name}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": list(containers)}}}}


def _owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True}


def _pod(ns: str, name: str, owner: dict[str, Any] | None, **security: Any
         ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": {"app": name}}
    if owner is not None:
        meta["ownerReferences"] = [_owner_ref(owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [_container("main", **security)]}}


def _fields_of(obj: dict[str, Any], manager: str) -> list[Any]:
    return [e["fieldsV1"] for e in obj["metadata"].get("managedFields") or []
            if e["manager"] == manager]


def _without_owned(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus what pss-hardening owns: what must not change."""
    body = copy.deepcopy(strip_server_fields(obj)) or {}
    pod = body["spec"]["template"]["spec"]
    pod.pop("securityContext", None)
    pod.pop("volumes", None)
    for container in pod["containers"]:
        for key in CONTAINER_OWNED:
            container.pop(key, None)
    return body


def _deployments(ns: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments"


@pytest.fixture
def workloads(kube_env: Any, unique_name: Callable[[str], str], tmp_path: Path) -> Live:
    """The team's namespace: a Deployment whose fields Argo CD's and Helm's field managers
    own (no tracking labels), one written with kubectl holding a privileged container,
    a ReplicaSet and a Pod it made, a StatefulSet and its Pod, a bare Pod, an object Argo
    CD tracks; and a Deployment in a namespace outside the scope."""
    live = Live(kube_env, unique_name, tmp_path)
    ns = live.ns
    deployments = _deployments(ns)
    web = _deployment(ns, "web", {**_container("web"), "ports": [{"containerPort": 8080}]})
    live.apply_as("argocd-controller", f"{deployments}/web", web)
    live.apply_as("helm", f"{deployments}/web", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns, "annotations": {"team": "billing"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "web", "env": [{"name": "MODE", "value": "prod"}]}]}}}})
    live.ok("POST", deployments, _deployment(ns, "legacy", _container("legacy",
                                                                      privileged=True)),
            "kubectl-client-side-apply")
    live.ok("POST", deployments, _deployment(
        ns, "tracked", _container("tracked"),
        annotations={"argocd.argoproj.io/tracking-id":
                     f"billing:apps/Deployment:{ns}/tracked"}))
    deployment = live.get(f"{deployments}/web")
    replicaset = live.ok("POST", f"/apis/apps/v1/namespaces/{ns}/replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d8f", "namespace": ns, "labels": {"app": "web"},
                     "ownerReferences": [_owner_ref(deployment)]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": copy.deepcopy(web["spec"]["template"])}})
    live.ok("POST", f"/api/v1/namespaces/{ns}/pods", _pod(ns, "web-5d8f-x", replicaset))
    statefulset = live.ok("POST", f"/apis/apps/v1/namespaces/{ns}/statefulsets", {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": ns},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [_container("db")]}}}})
    live.ok("POST", f"/api/v1/namespaces/{ns}/pods", _pod(ns, "db-0", statefulset))
    live.ok("POST", f"/api/v1/namespaces/{ns}/pods", _pod(ns, "debug", None))
    outside = unique_name("other")
    live.ok("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": outside}})
    live.ok("POST", _deployments(outside), _deployment(outside, "theirs", _container("x")))
    live.outside = outside
    return live


def test_hardening_fixes_owners_in_scope_and_keeps_other_managers_fields(
        workloads: Live) -> None:
    live, ns = workloads, workloads.ns
    plan = live.plan("pss-hardening")
    kinds = {c.where: c.kind for c in plan.changes}
    assert kinds == {
        f"Deployment/{ns}/web": "update",
        f"Deployment/{ns}/legacy": "update",
        f"Deployment/{ns}/tracked": "managed",
        f"StatefulSet/{ns}/db": "update",
        f"Pod/{ns}/debug": "recreate",
    }, plan.render_diff()
    assert plan.blocked == []
    assert plan.scope.startswith("5 objects in 1 namespaces"), plan.scope
    text = plan.render_diff()
    assert text.startswith(f"# {plan.scope}\n")
    assert f"Deployment/{ns}/web: fixed in its template, once, for 1 Pod, 1 ReplicaSet" in \
        " ".join(plan.notes)
    assert f"StatefulSet/{ns}/db: fixed in its template, once, for 1 Pod" in " ".join(
        plan.notes)
    assert any("outside the scope" in n for n in plan.notes), plan.notes
    assert live.outside not in text
    changes = {c.where: c for c in plan.changes}
    assert "managed by Application billing" in changes[f"Deployment/{ns}/tracked"].note
    legacy = changes[f"Deployment/{ns}/legacy"]
    assert "takes over from kubectl-client-side-apply" in legacy.note
    assert "securityContext.privileged" in legacy.note
    recreate = changes[f"Pod/{ns}/debug"]
    assert "allowPrivilegeEscalation: false" in (recreate.after or "")
    assert any(line.lstrip("+ ").startswith("allowPrivilegeEscalation")
               for line in recreate.diff.splitlines() if line.startswith("+"))
    assert "Go" not in text and "core.PodSpec" not in text

    # What is sent: identity and the owned fields only.
    web_sent = changes[f"Deployment/{ns}/web"].payload
    assert web_sent["metadata"] == {"name": "web", "namespace": ns}
    assert set(web_sent["spec"]) == {"template"}
    (container,) = web_sent["spec"]["template"]["spec"]["containers"]
    assert "image" not in container and "env" not in container and "ports" not in container

    path = f"{_deployments(ns)}/web"
    before = live.get(path)
    legacy_before = live.get(f"{_deployments(ns)}/legacy")
    result = apply_plan(plan, live.store)
    assert result.backup is not None and len(result.written) == 3
    after = live.get(path)
    assert _without_owned(after) == _without_owned(before)
    for manager in ("argocd-controller", "helm"):
        assert _fields_of(after, manager) == _fields_of(before, manager), manager
    web = after["spec"]["template"]["spec"]["containers"][0]
    assert web["env"] == [{"name": "MODE", "value": "prod"}]
    assert web["securityContext"]["allowPrivilegeEscalation"] is False
    assert after["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    hardened = live.get(f"{_deployments(ns)}/legacy")["spec"]["template"]["spec"][
        "containers"][0]["securityContext"]
    assert hardened["privileged"] is False and hardened["allowPrivilegeEscalation"] is False
    assert "soma-audit" in {e["manager"] for e in after["metadata"]["managedFields"]}

    again = live.plan("pss-hardening")
    assert again.pending == [] and again.blocked == [], again.render_diff()

    assert rollback(live.store.load(result.backup.id), plan.target, live.store) == []
    assert strip_server_fields(live.get(path)) == strip_server_fields(before)
    assert strip_server_fields(live.get(f"{_deployments(ns)}/legacy")) == \
        strip_server_fields(legacy_before)


def test_a_controllers_field_is_a_named_conflict_never_forced(kube_env: Any,
                                                               unique_name: Callable[
                                                                   [str], str],
                                                               tmp_path: Path) -> None:
    live = Live(kube_env, unique_name, tmp_path)
    path = f"{_deployments(live.ns)}/api"
    live.apply_as("argocd-controller", path, _deployment(
        live.ns, "api", _container("api", privileged=True)))
    plan = live.plan("pss-hardening")
    (change,) = plan.changes
    assert change.kind == "conflict"
    assert 'argocd-controller owns .spec.template.spec.containers[name="api"]' \
        ".securityContext.privileged" in change.note, change.note
    assert "--force-conflicts" not in change.note


def test_namespace_labels_keep_enforce_where_existing_pods_would_violate(
        kube_env: Any, unique_name: Callable[[str], str], tmp_path: Path) -> None:
    live = Live(kube_env, unique_name, tmp_path, extra=1)
    busy, clean = live.ns, live.more[0]
    for name in ("agent-a", "agent-b"):
        live.ok("POST", f"/api/v1/namespaces/{busy}/pods", _pod(busy, name, None,
                                                                privileged=True))
    plan = live.plan("pss-namespaces")
    changes = {c.where: c for c in plan.changes}
    assert set(changes) == {f"Namespace/{busy}", f"Namespace/{clean}"}, plan.render_diff()
    assert plan.blocked == []
    note = changes[f"Namespace/{busy}"].note
    assert "2 existing pods would violate restricted:latest" in note, note
    assert f"--enforce-namespace {busy}" in note
    labels = changes[f"Namespace/{busy}"].payload["metadata"]["labels"]
    assert "pod-security.kubernetes.io/enforce" not in labels
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert changes[f"Namespace/{clean}"].payload["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"

    result = apply_plan(plan, live.store)
    assert result.backup is not None
    busy_labels = live.get(f"/api/v1/namespaces/{busy}")["metadata"]["labels"]
    assert "pod-security.kubernetes.io/enforce" not in busy_labels
    assert busy_labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert live.get(f"/api/v1/namespaces/{clean}")["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"

    opted = live.plan("pss-namespaces", enforce_namespaces=(busy,))
    (change,) = opted.pending
    assert change.where == f"Namespace/{busy}"
    assert "enforced anyway" in change.note
    assert change.payload["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == \
        "restricted"
    assert rollback(live.store.load(result.backup.id), plan.target, live.store) == []
    assert "pod-security.kubernetes.io/warn" not in (
        live.get(f"/api/v1/namespaces/{busy}")["metadata"].get("labels") or {})


@pilot_test
async def test_the_tui_diff_shows_the_scope_line_and_the_owner_notes(workloads: Live) -> None:
    from textual.app import App
    from textual.widgets import Static

    from soma_audit.remediation.recipes import get_recipe
    from soma_audit.tui.screens import DiffScreen

    check = next(c for c in workloads.session.checks if c.id == "pss.no-privileged")
    screen = DiffScreen(workloads.session, get_recipe("pss-hardening"), check)

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(screen)

    async with Host().run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: screen.plan is not None or bool(screen.error),
                         timeout=120, what="the live plan")
        await pilot.pause()
        assert screen.error == ""
        status = str(screen.query_one("#diff-status", Static).content)
        assert status.startswith("5 objects in 1 namespaces"), status
        text = screen.text
        assert f"Deployment/{workloads.ns}/web: fixed in its template" in text
        assert f"managed Deployment/{workloads.ns}/tracked" in text
        assert f"recreate Pod/{workloads.ns}/debug" in text
