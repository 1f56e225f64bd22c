"""soma_audit.domain.argocd: sync policies, which service an Application deploys,
Sensor triggers."""

from __future__ import annotations

from typing import Any

import pytest

from soma_audit.domain.argocd import (
    git_events,
    names_service,
    sync_policy_problems,
    trigger_verdict,
)
from soma_audit.kube.inventory import Resource
from tests.helpers import REPO, audit_dir

GOOD = {
    "automated": {"prune": True, "selfHeal": True},
    "syncOptions": ["CreateNamespace=true"],
    "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one dotted key replaced (None deletes it)."""
    policy = {
        "automated": dict(GOOD["automated"]),
        "syncOptions": list(GOOD["syncOptions"]),
        "retry": {"limit": 5, "backoff": dict(GOOD["retry"]["backoff"])},
    }
    *parents, last = path.split(".")
    node: dict[str, Any] = policy
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return {"syncPolicy": policy}


def test_the_plan_intent_passes() -> None:
    assert sync_policy_problems({"syncPolicy": GOOD}) == []


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("automated.enabled", False, "automated.enabled=false switches auto-sync off"),
        ("automated.prune", None, "spec.syncPolicy.automated.prune unset, expected true"),
        ("automated.selfHeal", "true", "spec.syncPolicy.automated.selfHeal='true', expected true"),
        ("syncOptions", ["PruneLast=true"], "lacks CreateNamespace=true (found: PruneLast=true)"),
        ("retry", None, "spec.syncPolicy.retry unset"),
        ("retry.limit", None, "spec.syncPolicy.retry.limit unset (no retries)"),
        ("retry.limit", 0, "spec.syncPolicy.retry.limit=0 (no retries)"),
        ("retry.limit", -1, "retries forever"),
        ("retry.backoff", None, "spec.syncPolicy.retry.backoff unset"),
        ("retry.backoff.duration", 5, "backoff.duration=5 must be a string"),
        ("retry.backoff.maxDuration", "3 minutes", "backoff.maxDuration: invalid duration"),
        ("retry.backoff.factor", 0, "backoff.factor=0"),
    ],
)
def test_each_gap_is_named(path: str, value: Any, problem: str) -> None:
    problems = sync_policy_problems(_with(path, value))
    assert len(problems) == 1 and problem in problems[0], problems


def test_enabled_true_and_whole_seconds_backoff_pass() -> None:
    assert sync_policy_problems(_with("automated.enabled", True)) == []
    assert sync_policy_problems(_with("retry.backoff.duration", "5")) == []


def test_no_sync_policy_is_manual_sync() -> None:
    assert sync_policy_problems({})[0].startswith("spec.syncPolicy unset: manual sync only")


def _app(name: str, **source: str) -> Resource:
    return Resource({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                     "metadata": {"name": name, "namespace": "argocd"},
                     "spec": {"source": source}})


@pytest.mark.parametrize(
    ("app", "service", "expected"),
    [
        (_app("gateway-api"), "gateway-api", True),
        (_app("gateway-api-app"), "gateway-api", True),
        (_app("prod-gateway-api"), "gateway-api", True),
        (_app("core", path="k8s/services/gateway-api/"), "gateway-api", True),
        (_app("core", chart="gateway-api"), "gateway-api", True),
        (_app("memory-gateway"), "gateway-api", False),
        (_app("gatewayapi"), "gateway-api", False),
        (_app("core", path="k8s/services/gateway-api-v2"), "gateway-api", False),
    ],
)
def test_names_service(app: Resource, service: str, expected: bool) -> None:
    assert names_service(app, service) is expected


def test_git_events_of_an_event_source() -> None:
    source = Resource({"apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
                       "metadata": {"name": "git", "namespace": "ev"},
                       "spec": {"github": {"a": {}}, "webhook": {"b": {}}, "calendar": {"c": {}}}})
    assert sorted(git_events(source)) == [("github", "a"), ("webhook", "b")]


@pytest.mark.parametrize(
    ("template", "reaches"),
    [
        ({"k8s": {"operation": "patch", "source": {"resource": {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application"}}}}, True),
        ({"k8s": {"operation": "delete", "source": {"resource": {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application"}}}}, False),
        ({"k8s": {"source": {"resource": {"apiVersion": "batch/v1", "kind": "Job"}}}}, False),
        ({"k8s": {"source": {"git": {"url": "https://example.com/repo.git"}}}}, None),
        ({"http": {"url": "https://argocd.example.com/api/webhook"}}, True),
        ({"http": {"url": "http://argocd-server/api/v1/applications/gateway-api/sync"}}, True),
        ({"http": {"url": "https://hooks.slack.com/services/x"}}, False),
        ({"argoWorkflow": {"operation": "submit"}}, False),
    ],
)
def test_trigger_verdict(template: dict[str, Any], reaches: bool | None) -> None:
    assert trigger_verdict({"template": {"name": "t", **template}}, 0).reaches_argocd is reaches


def test_demo_story() -> None:
    """The bundled demo: 10 of 12 Applications, orchestrator's policy incomplete, no webhook."""
    ids = ["argocd.apps-per-service", "argocd.sync-policy", "argocd.webhook"]
    report = audit_dir(REPO / "demo" / "soma-gitops", ids)
    outcome = {r.check.id: (r.status.value, {e.object for e in r.evidence}) for r in report.results}
    assert outcome["argocd.apps-per-service"] == ("fail", {
        "Application/argocd/analytics-service", "Application/argocd/billing-service",
        "Namespace/argocd"})
    assert outcome["argocd.sync-policy"] == ("fail", {"Application/argocd/orchestrator"})
    assert outcome["argocd.webhook"] == ("fail", {"EventSource", "ConfigMap/argocd/argocd-cm"})
