"""Every remediation FIXES the checks it names: ground truth is the real engine.

For each recipe: render it over a failing tree (the bundled demo, and a small custom
config with its own failing fixture), write the rendered files into a copy of the tree,
re-audit, and require every check in ``fixes`` to pass (live-only checks skip offline).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.model import Status
from soma_audit.remediation.output import RenderedFile
from soma_audit.remediation.recipes import Recipe, load_recipes
from soma_audit.remediation.render import render
from soma_audit.remediation.repository import flagged_by
from soma_audit.remediation.targets import DirectoryTarget
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import REPO, audit_dir

DEMO = REPO / "demo" / "soma-gitops"
RECIPES = load_recipes()
CHECKS = {c.id: c for c in load_catalog()}

#: A small platform unlike the default one: other namespace, ports, labels, topics,
#: SLO target, profiles — so templates are proven to follow the config.
CUSTOM: dict[str, Any] = {
    "namespace": "shop",
    "services": [
        {"name": "web", "port": 80},
        {"name": "api", "port": 9090, "labels": {"tier": "api"}},
        {"name": "worker", "port": 7000, "critical": False},
    ],
    "namespaces": {"shop": {"enforce": "restricted"}},
    "flows": [
        {"from": "ns/ingress", "to": "web"},
        {"from": "web", "to": "api"},
        {"from": "api", "to": "worker"},
        {"from": "worker", "to": "ns/payments", "port": 8443},
    ],
    "argocd": {"namespace": "gitops", "min_applications": 3},
    "kafka": {
        "cluster": "events",
        "namespace": "shop",
        "topics": [{"name": "orders", "partitions": 6, "replicas": 3, "retention_ms": 86400000,
                    "cleanup_policy": "compact", "min_insync_replicas": 2}],
        "users": [{"name": "api", "produces": ["orders"]},
                  {"name": "worker", "consumes": ["orders"], "groups": ["worker"]}],
    },
    "slo": {"availability_target": 0.995, "latency_p99_seconds": 0.3,
            "request_metric": "shop_requests_total", "latency_metric": "shop_latency_seconds"},
    "chaos": {"namespace": "shop", "experiments": ["cpu-stress", "network-loss", "pod-failure"]},
    "k6": {"profiles": [
        {"name": "soak", "target": "https://web.shop.example/health?deep=1",
         "executor": "constant-arrival-rate", "vus": 20, "duration": "30m",
         "thresholds": {"http_req_duration": ["p(99)<300"], "http_req_failed": ["rate<0.005"]}},
        {"name": "spike", "target": "http://web.shop.svc/", "executor": "ramping-vus",
         "stages": [{"duration": "30s", "target": 200}, {"duration": "1m", "target": 0}],
         "thresholds": {"http_req_duration": ["p(99)<800"], "http_req_failed": ["rate<0.02"]}},
    ]},
}


def _custom_tree(root: Path) -> Path:
    """A failing repository for CUSTOM: hardened-nothing workloads, a Service whose
    targetPort differs from its port, unlabelled namespace, a 1.x chaos experiment."""
    def deployment(name: str, labels: dict[str, str], port: int,
                   container: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{
                                          "name": name, "image": f"registry.example/{name}:1",
                                          "ports": [{"containerPort": port}], **container}]}}}}

    docs = {
        "k8s/namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": "shop"}}],
        "k8s/web.yaml": [
            deployment("web", {"app": "web"}, 8080, {"securityContext": {"privileged": True}}),
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        ],
        "k8s/api.yaml": [deployment("api", {"tier": "api"}, 9090, {
            "resources": {"requests": {"cpu": "2", "memory": "1Gi"}},
            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_BIND_SERVICE"]}}})],
        "k8s/worker.yaml": [deployment("worker", {"app": "worker"}, 7000, {
            "volumeMounts": [{"name": "tmp", "mountPath": "/scratch"}]})],
        "k8s/chaos.yaml": [{"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos",
                            "metadata": {"name": "api-kill", "namespace": "shop"},
                            "spec": {"action": "pod-kill", "mode": "one",
                                     "selector": {"labelSelectors": {"tier": "api"}},
                                     "scheduler": {"cron": "@every 6h"}}}],
    }
    docs["k8s/worker.yaml"][0]["spec"]["template"]["spec"]["volumes"] = [
        {"name": "tmp", "configMap": {"name": "worker-scratch"}}]
    for path, objects in docs.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return root


def write(root: Path, recipe: Recipe, files: list[RenderedFile],
          overrides: dict[str, Any]) -> list[str]:
    """What ``apply`` does: plan on the directory target, with the evidence of the checks
    that justify the recipe's removals, and write every pending change; the paths."""
    target = DirectoryTarget(root)
    checks = {rule.check for rule in recipe.removes}
    target.flagged = flagged_by(audit_dir(root, sorted(checks), overrides).results, checks)
    changes, _ = target.plan(files)
    assert not [c for c in changes if c.kind == "refused"], [c.note for c in changes]
    for change in changes:
        if change.pending:
            target.write(change)
    return [c.where for c in changes if c.pending]


def apply_recipe(recipe: Recipe, root: Path, overrides: dict[str, Any]) -> list[RenderedFile]:
    config = load_config(**overrides)
    inventory = ManifestsSource(root).load(frozenset())
    files = render(recipe, config, inventory)
    write(root, recipe, files, overrides)
    return files


def assert_fixed(recipe: Recipe, root: Path, overrides: dict[str, Any]) -> None:
    # the repositories are ours: k6 may run their scripts (k6.inspect runs init code)
    report = audit_dir(root, list(recipe.fixes), {**overrides, "run_repo_code": True})
    for result in report.results:
        live = bool(CHECKS[result.check.id].requires)
        wanted = {Status.PASS, Status.SKIP} if live else {Status.PASS}
        detail = "; ".join(f"{e.object}: {e.message}" for e in result.evidence[:6])
        assert result.status in wanted, f"{result.check.id} {result.status}: {detail}"


def test_every_catalog_remediation_has_a_recipe() -> None:
    named = {c.remediation for c in CHECKS.values() if c.remediation}
    assert named <= set(RECIPES), named - set(RECIPES)
    for recipe in RECIPES.values():
        assert set(recipe.fixes) <= set(CHECKS), recipe.id


def test_catalog_and_recipes_name_the_same_links() -> None:
    """A check's ``remediation:`` and its recipe's ``fixes:`` are one link written in two
    places: every check a recipe fixes names that recipe, and every recipe a check names
    lists that check."""
    from_catalog = {(c.id, c.remediation) for c in CHECKS.values() if c.remediation}
    from_recipes = {(check, recipe.id) for recipe in RECIPES.values() for check in recipe.fixes}
    assert from_catalog == from_recipes, (from_catalog ^ from_recipes)


def test_demo_fails_before_remediation() -> None:
    """The ground truth would be meaningless if the demo already passed."""
    failing = {"argocd.apps-per-service", "argocd.sync-policy", "argocd.webhook",
               "kafka.topic-replication", "kafka.user-acls", "pss.namespace-labels",
               "pss.pod-compliance", "pss.no-privileged", "pss.readonly-root", "pss.resources",
               "netpol.service-coverage", "netpol.flows", "chaos.network", "chaos.coverage",
               "chaos.no-legacy-scheduler", "slo.burn-rate-alerts", "k6.scripts"}
    report = audit_dir(DEMO, sorted(failing))
    assert {r.check.id for r in report.results if r.status == Status.FAIL} == failing


@pytest.mark.parametrize("recipe_id", sorted(RECIPES))
def test_recipe_fixes_the_demo(recipe_id: str, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(DEMO, root)
    files = apply_recipe(RECIPES[recipe_id], root, {})
    assert files
    assert_fixed(RECIPES[recipe_id], root, {})


@pytest.mark.parametrize("recipe_id", sorted(RECIPES))
def test_recipe_fixes_a_custom_platform(recipe_id: str, tmp_path: Path) -> None:
    root = _custom_tree(tmp_path / "repo")
    apply_recipe(RECIPES[recipe_id], root, CUSTOM)
    assert_fixed(RECIPES[recipe_id], root, CUSTOM)


def test_all_recipes_together_fix_every_remediated_check(tmp_path: Path) -> None:
    """Applied one after the other (as a user would), no recipe undoes another."""
    root = tmp_path / "repo"
    shutil.copytree(DEMO, root)
    for recipe in RECIPES.values():
        apply_recipe(recipe, root, {})
    for recipe in RECIPES.values():
        assert_fixed(recipe, root, {})


def test_rendering_twice_is_stable(tmp_path: Path) -> None:
    """Idempotent: a second apply over the fixed tree changes nothing."""
    root = tmp_path / "repo"
    shutil.copytree(DEMO, root)
    for recipe in RECIPES.values():
        apply_recipe(recipe, root, {})
    inventory = ManifestsSource(root).load(frozenset())
    config = load_config()
    for recipe in RECIPES.values():
        changes, _ = DirectoryTarget(root).plan(render(recipe, config, inventory))
        assert [c.where for c in changes if c.pending] == [], recipe.id


def test_topics_declared_one_per_file_are_fixed_in_place(tmp_path: Path) -> None:
    """No second declaration: each KafkaTopic is rewritten in the file that holds it."""
    root = tmp_path / "repo"
    for name, replicas in (("agent-events", 1), ("model-invocations", 2)):
        path = root / "kafka" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({
            "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
            "metadata": {"name": name, "namespace": "soma-agent-hub",
                         "labels": {"strimzi.io/cluster": "soma-kafka"}},
            "spec": {"partitions": 1, "replicas": replicas}}))
    files = apply_recipe(RECIPES["kafka-topics"], root, {})
    assert sorted(f.path for f in files) == ["kafka/agent-events.yaml",
                                             "kafka/model-invocations.yaml"]
    assert_fixed(RECIPES["kafka-topics"], root, {})
