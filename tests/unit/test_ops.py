"""Operations helpers: runbook resolution (soma_audit/domain/ops/runbooks.py), cost controls
(soma_audit/domain/ops/cost.py), and the demo's baselines."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soma_audit.domain.ops.cost import autoscaling, missing_resources, resource_gaps
from soma_audit.domain.ops.runbooks import alert_rules, resolve, runbook_url
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.workloads import workload_of
from tests.helpers import REPO, audit_dir

FILES = ["error-budget-burn.md", "latency/p99-high.md", "kafka-lag.html"]


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("docs/runbooks/error-budget-burn.md", "error-budget-burn.md"),
        ("./docs/runbooks/latency/p99-high.md#first-steps", "latency/p99-high.md"),
        ("/docs/runbooks/latency/../error-budget-burn.md", "error-budget-burn.md"),
        ("https://git.example/r/blob/m/docs/runbooks/latency/p99-high.md", "latency/p99-high.md"),
        ("https://docs.example/runbooks/error-budget-burn/", "error-budget-burn.md"),
        ("https://docs.example/runbooks/kafka-lag", "kafka-lag.html"),
        ("https://wiki.example/Error%20Budget?x=1", None),
        ("https://docs.example/", None),
        ("error-budget-burn.md", None),  # repository-relative: must name the runbooks folder
        ("docs/other/error-budget-burn.md", None),
        ("https://docs.example/runbooks/{{ $labels.service }}", None),
    ],
)
def test_resolve(url: str, found: str | None) -> None:
    assert resolve(url, "docs/runbooks", FILES) == found


_SEGMENT = st.text(st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=8)


@given(st.lists(_SEGMENT, min_size=1, max_size=3), st.sampled_from([".md", ".html", ""]))
def test_a_runbook_resolves_from_its_path_and_any_url_ending_in_it(
    parts: list[str], suffix: str
) -> None:
    name = "/".join(parts) + suffix
    assert resolve(f"docs/runbooks/{name}", "docs/runbooks", [name]) == name
    assert resolve(f"https://git.example/x/blob/main/docs/runbooks/{name}", "docs/runbooks",
                   [name]) == name


@given(st.text(max_size=60))
def test_resolve_never_crashes(url: str) -> None:
    assert resolve(url, "docs/runbooks", FILES) in (None, *FILES)


def test_alert_rules_skip_records_and_malformed_entries() -> None:
    spec: dict[str, Any] = {"groups": [
        {"rules": [{"record": "r", "expr": "1"}, {"alert": "A", "annotations": {
            "runbook_url": "  docs/runbooks/a.md "}}, "junk", {"alert": 3}]},
        "junk",
        {"rules": None},
    ]}
    rules = list(alert_rules(spec))
    assert [name for name, _ in rules] == ["A"]
    assert runbook_url(rules[0][1]) == "docs/runbooks/a.md"
    assert list(alert_rules({"groups": "x"})) == []


def _deployment(spec: dict[str, Any], kind: str = "Deployment") -> Resource:
    return Resource({"apiVersion": "apps/v1", "kind": kind,
                     "metadata": {"name": "api", "namespace": "ns"},
                     "spec": {"template": {"spec": spec}}})


FULL = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}}


def test_resource_gaps_cover_init_containers_but_not_ephemeral_ones() -> None:
    workload = workload_of(_deployment({
        "initContainers": [{"name": "migrate", "resources": {"requests": FULL["requests"]}}],
        "containers": [{"name": "api", "resources": FULL}],
        "ephemeralContainers": [{"name": "debug"}],
    }))
    assert workload is not None
    assert resource_gaps(workload) == [
        "container migrate: resources.limits.cpu unset",
        "container migrate: resources.limits.memory unset",
    ]


def test_pod_level_resources_cover_every_container_and_booleans_are_not_quantities() -> None:
    workload = workload_of(_deployment({
        "resources": {"limits": {"cpu": "2", "memory": "2Gi"}},
        "containers": [{"name": "api", "resources": {"requests": {"cpu": True, "memory": ""}}}],
    }))
    assert workload is not None
    assert resource_gaps(workload) == [
        "container api: resources.requests.cpu unset",
        "container api: resources.requests.memory unset",
    ]


def test_missing_resources_takes_the_caller_s_notion_of_valid() -> None:
    container = {"resources": {"requests": {"cpu": "lots", "memory": "64Mi"},
                               "limits": {"cpu": 1}}}
    pod_level = {"limits": {"memory": "1Gi"}}
    assert missing_resources(container, pod_level) == []
    assert missing_resources(container, pod_level, lambda v: v not in ("lots", None)) == [
        ("requests", "cpu")]
    assert missing_resources({}, None) == [
        ("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]


def _hpa(api: str = "autoscaling/v2", **spec: Any) -> Resource:
    return Resource({"apiVersion": api, "kind": "HorizontalPodAutoscaler",
                     "metadata": {"name": "api", "namespace": "ns"},
                     "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "api"}, **spec}})


def test_autoscaling_verdicts() -> None:
    target = _deployment({})
    assert autoscaling(Inventory.of([target]), target) == (
        None, ["no HorizontalPodAutoscaler targets Deployment api"])
    assert autoscaling(Inventory.of([_hpa(maxReplicas=4)]), target) == (
        "HorizontalPodAutoscaler/ns/api scales from 1 to 4 replicas", [])
    assert autoscaling(Inventory.of([_hpa(maxReplicas=1)]), target)[1] == [
        "HorizontalPodAutoscaler/ns/api: maxReplicas=1, minReplicas=1: it cannot scale"]
    assert autoscaling(Inventory.of([_hpa("autoscaling/v2beta2", maxReplicas=4)]), target)[1] == [
        "HorizontalPodAutoscaler/ns/api is autoscaling/v2beta2, expected autoscaling/v2"]


def test_a_scaled_object_targets_a_deployment_by_default() -> None:
    scaled = Resource({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                       "metadata": {"name": "api-scaler", "namespace": "ns"},
                       "spec": {"scaleTargetRef": {"name": "api"}}})
    assert autoscaling(Inventory.of([scaled]), _deployment({})) == (
        "ScaledObject/ns/api-scaler scales from 0 to 100 replicas", [])
    assert autoscaling(Inventory.of([scaled]), _deployment({}, "StatefulSet"))[0] is None


def test_demo_baselines_cover_smoke_only() -> None:
    report = audit_dir(REPO / "demo" / "soma-gitops", ["ops.baselines"])
    (result,) = report.results
    assert result.status.value == "fail"
    assert [e.object for e in result.evidence] == [
        "perf/baselines/load.json", "perf/baselines/stress.json"]
