"""The cluster target on the real API server, each test in fresh namespaces.

For every Kubernetes recipe: from a failing state, the diff shows the change, the apply
makes it (and a second plan finds nothing left), the recipe's checks re-run, and the
rollback restores every object exactly (compared without server-set fields). Plus: a
forced mid-way failure leaves nothing half-applied, a field-manager conflict stops the
apply, a change between diff and apply is detected, and the CLI drives the same loop.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import NamespaceLevels, load_config
from soma_audit.engine.session import AuditSession
from soma_audit.remediation.apply import ApplyFailed, apply_plan, rollback
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.cluster import ClusterTarget
from soma_audit.remediation.output import RenderedFile
from soma_audit.remediation.plan import Plan, RemediationError, StaleError, strip_server_fields
from soma_audit.remediation.recipes import get_recipe, load_recipes
from soma_audit.remediation.workflow import rendered
from soma_audit.sources.cluster import ClusterSource

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent / "soma-audit"
SERVICES = [{"name": "gateway-api", "port": 10000}, {"name": "orchestrator", "port": 10001}]
FLOWS = [{"from": "gateway-api", "to": "orchestrator", "port": 10001}]
#: Checks that read only the configured namespaces, so they must pass right after the
#: apply even on a shared cluster; the others read every namespace (where other tests
#: leave their own objects), so for them the test asserts that no failure is about ours.
MUST_PASS = {
    "netpol-baseline": ["netpol.default-deny", "netpol.dns-egress"],
    "netpol-services": ["netpol.service-coverage", "netpol.flows"],
}


def _config(ns: str) -> dict[str, Any]:
    return {
        "namespace": ns, "services": SERVICES, "flows": FLOWS,
        "namespaces": {ns: {"enforce": "restricted"}},
        "argocd": {"namespace": ns, "min_applications": 2},
        "kafka": {"namespace": ns, "users": [
            {"name": "orchestrator", "produces": ["agent-events"], "consumes": [],
             "groups": []}]},
        "chaos": {"namespace": ns},
    }


def _deployment(ns: str, name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": name, "image": f"soma/{name}:1.0",
                                     "ports": [{"containerPort": port}]}]}}},
    }


class Cluster:
    """A fresh namespace holding the platform's workloads (the failing state), an audit
    session on it and raw access for the test's own reads and writes."""

    def __init__(self, kube_env: Any, client: Any, ns: str, tmp: Path) -> None:
        self.kube_env = kube_env
        self.client = client
        self.ns = ns
        self.tmp = tmp
        self.source = ClusterSource(str(kube_env.admin_kubeconfig))
        self.store = BackupStore(tmp / "state" / "backups")
        # Only this namespace: the bundled defaults also name `observability`, which
        # would send the SLO objects to a namespace this cluster does not have.
        config = replace(load_config(**_config(ns)),
                         namespaces={ns: NamespaceLevels("restricted")})
        self.session = AuditSession(self.source, config, load_catalog(),
                                    tmp / "attestations.yaml")

    def call(self, method: str, path: str, body: Any = None,
             query: list[tuple[str, str]] | None = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        response = self.source.request(method, path, query, body, content_type)
        try:
            return response.status, json.loads(response.data)
        except ValueError:
            return response.status, response.data

    def get(self, path: str) -> dict[str, Any] | None:
        status, body = self.call("GET", path)
        return body if status == 200 else None

    def plan(self, recipe: str, force: bool = False) -> Plan:
        """The recipe's plan for the objects of this test's namespace only (the cluster is
        shared: pss-namespaces would label, pss-hardening patch, every namespace)."""
        rendered_files = rendered(self.session, get_recipe(recipe),
                                  ClusterTarget(self.source).served_versions())
        scoped = []
        for item in rendered_files:
            objects = [o for o in item.objects if self.ns in (
                (o.get("metadata") or {}).get("namespace"),
                o.get("metadata", {}).get("name") if o.get("kind") == "Namespace" else None)]
            if objects:
                scoped.append(RenderedFile(item.path, item.text, objects))
        target = ClusterTarget(self.source, force, transform=get_recipe(recipe).transform)
        changes, notes = target.plan(scoped)
        return Plan(recipe, target, changes, notes, list(get_recipe(recipe).fixes))

    def statuses(self, ids: list[str]) -> dict[str, str]:
        report = self.session.scan(only=set(ids))
        return {r.check.id: r.status.value for r in report.results if r.check.id in ids}

    def failures_here(self, ids: list[str]) -> dict[str, list[str]]:
        """Failing evidence about objects of this test's namespace, per check."""
        report = self.session.scan(only=set(ids))
        found: dict[str, list[str]] = {}
        for result in report.results:
            if result.check.id not in ids or result.status.value not in ("fail", "error"):
                continue
            mine = sorted(f"{e.object}: {e.message}" for e in result.evidence
                          if f"/{self.ns}/" in e.object or e.object == f"Namespace/{self.ns}")
            if mine:
                found[result.check.id] = mine
        return found


@pytest.fixture
def cluster(kube_env: Any, kube_admin_client: Any, unique_name: Callable[[str], str],
            tmp_path: Path) -> Cluster:
    ns = unique_name("rem")
    env = Cluster(kube_env, kube_admin_client, ns, tmp_path)
    assert env.call("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})[0] == 201
    for service in SERVICES:
        body = _deployment(ns, service["name"], service["port"])
        status, answer = env.call("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", body)
        assert status == 201, answer
    return env


def _kube_recipes() -> list[str]:
    return sorted(r.id for r in load_recipes().values()
                  if r.target == "kubernetes" and r.id != "k6-scripts")


def _state(cluster: Cluster, paths: list[str]) -> dict[str, Any]:
    return {p: strip_server_fields(cluster.get(p)) for p in paths}


@pytest.mark.parametrize("recipe", _kube_recipes())
def test_recipe_diff_apply_rollback(cluster: Cluster, recipe: str) -> None:
    plan = cluster.plan(recipe)
    if not plan.pending:
        pytest.skip(f"{recipe} changes nothing in a fresh namespace of this cluster")
    target = plan.target
    assert isinstance(target, ClusterTarget)
    paths = [target.path(c.payload) for c in plan.pending]
    before = _state(cluster, paths)
    fixes = list(plan.fixes)
    failing_before = cluster.failures_here(fixes)

    text = plan.render_diff()
    for change in plan.pending:
        assert f"# {change.kind} {change.where}" in text
        assert change.diff.startswith(("--- /dev/null", f"--- a/{change.where}"))
        assert "managedFields" not in change.diff and "resourceVersion" not in change.diff

    result = apply_plan(plan, cluster.store)
    assert result.backup is not None and len(result.written) == len(plan.pending)
    again = cluster.plan(recipe)
    assert [c.where for c in again.pending] == [], "a second apply would change more"
    assert cluster.failures_here(fixes) == {}
    after = cluster.statuses(fixes)
    for check in MUST_PASS.get(recipe, []):
        assert after[check] == "pass", (check, after)

    assert rollback(cluster.store.load(result.backup.id), target, cluster.store) == []
    restored = _state(cluster, paths)
    for path in paths:
        if before[path] is None:
            gone = restored[path]
            assert gone is None or gone["kind"] == "Namespace", path
        else:
            assert restored[path] == before[path], path
    assert cluster.failures_here(fixes) == failing_before


def _two_policies(cluster: Cluster) -> Plan:
    plan = cluster.plan("netpol-baseline")
    assert [c.kind for c in plan.pending] == ["create", "create"]
    return plan


def test_failure_mid_way_leaves_nothing_half_applied(cluster: Cluster) -> None:
    plan = _two_policies(cluster)
    first, second = plan.pending
    # The API server rejects the second object: an invalid policy type.
    second.payload = copy.deepcopy(second.payload)
    second.payload["spec"]["policyTypes"] = ["Sideways"]
    with pytest.raises(ApplyFailed, match=f"failed at {second.where}.*rolled back"):
        apply_plan(plan, cluster.store)
    target = plan.target
    assert cluster.get(target.path(first.payload)) is None  # written, then removed
    assert cluster.get(target.path(second.payload)) is None
    (backup,) = cluster.store.list()
    assert backup.status == "failed"


def test_failure_mid_way_restores_updated_objects(cluster: Cluster) -> None:
    """An object that existed is put back exactly when a later one fails."""
    ns_path = f"/api/v1/namespaces/{cluster.ns}"
    before = strip_server_fields(cluster.get(ns_path))
    plan = cluster.plan("pss-namespaces")
    (label,) = plan.pending
    policies = _two_policies(cluster)
    broken = policies.pending[0]
    broken.payload = copy.deepcopy(broken.payload)
    broken.payload["spec"]["podSelector"] = {"matchLabels": {"bad key!": "x"}}
    plan.changes = [label, broken]
    with pytest.raises(ApplyFailed):
        apply_plan(plan, cluster.store)
    assert strip_server_fields(cluster.get(ns_path)) == before


def test_conflict_with_another_field_manager_stops_the_apply(cluster: Cluster) -> None:
    path = f"/apis/networking.k8s.io/v1/namespaces/{cluster.ns}/networkpolicies/default-deny-all"
    theirs = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "default-deny-all", "namespace": cluster.ns},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    status, answer = cluster.call("PATCH", path, json.dumps(theirs),
                                  [("fieldManager", "platform-team")],
                                  "application/apply-patch+yaml")
    assert status in (200, 201), answer
    before = strip_server_fields(cluster.get(path))
    plan = cluster.plan("netpol-baseline")
    (conflict,) = plan.conflicts
    assert conflict.where == f"NetworkPolicy/{cluster.ns}/default-deny-all"
    assert "platform-team" in conflict.note
    assert "!! conflict on" in plan.render_diff()
    with pytest.raises(RemediationError, match="conflicts on"):
        apply_plan(plan, cluster.store)
    assert strip_server_fields(cluster.get(path)) == before
    assert cluster.get(path.replace("default-deny-all", "allow-dns-egress")) is None
    assert cluster.store.list() == []
    # Only when asked: take the fields over.
    forced = cluster.plan("netpol-baseline", force=True)
    assert not forced.conflicts
    apply_plan(forced, cluster.store)
    assert cluster.get(path)["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_change_between_diff_and_apply_writes_nothing(cluster: Cluster) -> None:
    ns_path = f"/api/v1/namespaces/{cluster.ns}"
    plan = cluster.plan("pss-namespaces")
    assert plan.pending
    status, _ = cluster.call("PATCH", ns_path, {"metadata": {"labels": {"team": "x"}}},
                             content_type="application/merge-patch+json")
    assert status == 200
    with pytest.raises(StaleError, match="changed since the diff"):
        apply_plan(plan, cluster.store)
    labels = cluster.get(ns_path)["metadata"]["labels"]
    assert not any(k.startswith("pod-security") for k in labels)
    assert cluster.store.list() == []


def test_cli_diff_apply_rollback_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(cluster.ns)))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SOMA_AUDIT_")},
           "SOMA_AUDIT_STATE": str(tmp_path / "state")}
    base = [str(BIN), "--kubeconfig", str(cluster.kube_env.admin_kubeconfig),
            "--config", str(config)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300,
                              env=env, stdin=subprocess.DEVNULL)
        assert "Traceback" not in proc.stdout + proc.stderr
        return proc

    path = f"/apis/networking.k8s.io/v1/namespaces/{cluster.ns}/networkpolicies/default-deny-all"
    diff = run("diff", "netpol-baseline")
    assert diff.returncode == 1, diff.stderr  # changes pending
    assert f"# create NetworkPolicy/{cluster.ns}/default-deny-all" in diff.stdout
    assert cluster.get(path) is None  # the dry-run saved nothing
    applied = run("apply", "netpol-baseline", "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "pass   netpol.default-deny" in applied.stdout
    live = cluster.get(path)
    assert live is not None
    assert {m["manager"] for m in live["metadata"]["managedFields"]} == {"soma-audit"}
    backup_id = next(line.split()[0] for line in run("rollback").stdout.splitlines()
                     if "netpol-baseline" in line)
    restored = run("rollback", backup_id, "--yes")
    assert restored.returncode == 0, restored.stderr
    assert cluster.get(path) is None
    audit = run("--ci", "--format", "json", "--only", "netpol.default-deny")
    (check,) = json.loads(audit.stdout)["checks"]
    assert check["status"] == "fail"


def test_an_object_the_server_rejects_is_shown_and_blocks(cluster: Cluster) -> None:
    """An object the server's dry-run refuses is shown in the diff and blocks the whole
    apply: the valid one beside it is not written either."""
    plan = _two_policies(cluster)
    target = plan.target
    bad = copy.deepcopy(plan.pending[1].payload)
    bad["spec"]["policyTypes"] = ["Sideways"]
    changes, _ = target.plan([RenderedFile("k8s/x.yaml", "", [plan.pending[0].payload, bad])])
    blocked = Plan("netpol-baseline", target, changes)
    assert [c.kind for c in changes] == ["create", "rejected"]
    assert "!! rejected by the API server: NetworkPolicy/" in blocked.render_diff()
    assert "Sideways" in changes[1].note
    with pytest.raises(RemediationError, match=r"\(rejected\); nothing was applied"):
        apply_plan(blocked, cluster.store)
    assert cluster.get(target.path(plan.pending[0].payload)) is None


def test_namespace_first_then_its_objects(cluster: Cluster,
                                          unique_name: Callable[[str], str]) -> None:
    """Objects are applied Namespace first whatever the file order; an object in a
    namespace the same apply creates is shown as rendered (no dry-run possible)."""
    fresh = unique_name("rem-new")
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "deny", "namespace": fresh},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fresh}}
    target = ClusterTarget(cluster.source)
    changes, _ = target.plan([RenderedFile("k8s/x.yaml", "", [policy, namespace])])
    assert [(c.kind, c.where) for c in changes] == [
        ("create", f"Namespace/{fresh}"), ("create", f"NetworkPolicy/{fresh}/deny")]
    assert "cannot dry-run" in changes[1].note
    result = apply_plan(Plan("t", target, changes), cluster.store)
    policy_path = target.path(policy)
    assert cluster.get(policy_path) is not None
    assert result.backup is not None
    assert rollback(cluster.store.load(result.backup.id), target, cluster.store) == []
    assert cluster.get(policy_path) is None
    # Without a controller-manager the namespace stays Terminating, but it is deleted.
    gone = cluster.get(f"/api/v1/namespaces/{fresh}")
    assert gone is None or gone["metadata"].get("deletionTimestamp")
