"""soma_audit.domain.chaos.mesh: Schedule validation, faults and pod selection (Chaos Mesh 2.x)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soma_audit.domain.chaos.mesh import (
    Experiment,
    is_standalone,
    legacy_scheduler,
    read_schedule,
    selects,
)
from soma_audit.kube.inventory import Resource
from tests.helpers import REPO, audit_dir


def _schedule(kind: str, inline: dict[str, Any], schedule: str = "0 2 * * *",
              **extra: Any) -> Resource:
    key = kind[0].lower() + kind[1:]
    return Resource({
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "s", "namespace": "soma-agent-hub"},
        "spec": {"schedule": schedule, "type": kind, key: inline, **extra},
    })


SELECT_GATEWAY = {"mode": "one", "selector": {"labelSelectors": {"app": "gateway-api"}}}


def test_a_valid_stress_schedule_runs_and_realises_both_stressors() -> None:
    schedule = read_schedule(_schedule("StressChaos", {
        **SELECT_GATEWAY,
        "stressors": {"cpu": {"workers": 1, "load": 50}, "memory": {"workers": 1, "size": "50%"}},
        "duration": "10m",
    }))
    assert schedule.problems == ()
    assert schedule.runs
    assert schedule.experiment is not None
    assert schedule.experiment.faults() == {"cpu-stress", "memory-stress"}


@pytest.mark.parametrize(
    ("kind", "inline", "problem"),
    [
        ("StressChaos", {**SELECT_GATEWAY}, "spec.stressChaos.stressors missing"),
        ("StressChaos", {**SELECT_GATEWAY, "stressors": {"cpu": {"workers": 0}}},
         "stressors.cpu.workers=0, expected a positive integer"),
        ("StressChaos", {**SELECT_GATEWAY, "stressors": {"cpu": {"workers": 1, "load": 101}}},
         "stressors.cpu.load=101, expected 0-100"),
        ("StressChaos", {**SELECT_GATEWAY,
                         "stressors": {"memory": {"workers": 1, "size": "lots"}}},
         "stressors.memory.size='lots'"),
        ("StressChaos", {"mode": "one", "stressors": {"cpu": {"workers": 1}}},
         "spec.stressChaos.selector missing"),
        ("StressChaos", {"selector": {}, "stressors": {"cpu": {"workers": 1}}},
         "spec.stressChaos.mode missing"),
        ("StressChaos", {"mode": "fixed-percent", "value": "150", "selector": {},
                         "stressors": {"cpu": {"workers": 1}}},
         "value='150', expected in (0, 100]"),
        ("StressChaos", {**SELECT_GATEWAY, "stressors": {"cpu": {"workers": 1}},
                         "duration": "ten minutes"},
         "spec.stressChaos.duration: invalid duration"),
        ("NetworkChaos", {**SELECT_GATEWAY, "action": "jitter"}, "action='jitter'"),
        ("NetworkChaos", {**SELECT_GATEWAY, "action": "delay", "delay": {"latency": "1 sec"}},
         "delay.latency: invalid duration"),
        ("NetworkChaos", {**SELECT_GATEWAY, "action": "loss", "loss": {"loss": "150"}},
         "loss.loss='150', expected a percentage"),
        ("NetworkChaos", {**SELECT_GATEWAY, "action": "netem"}, "action netem needs"),
        ("NetworkChaos", {**SELECT_GATEWAY, "action": "bandwidth", "bandwidth": {"rate": "1mbps"}},
         "bandwidth.limit missing"),
        ("NetworkChaos", {**SELECT_GATEWAY, "action": "partition", "direction": "sideways"},
         "direction='sideways'"),
        ("PodChaos", {**SELECT_GATEWAY, "action": "pod-failure"},
         "spec.podChaos.duration missing (required for pod-failure)"),
        ("PodChaos", {**SELECT_GATEWAY, "action": "pod-kill", "scheduler": {"cron": "@daily"}},
         "spec.podChaos.scheduler is the removed Chaos Mesh 1.x field"),
    ],
)
def test_invalid_experiments_do_not_run(kind: str, inline: dict[str, Any], problem: str) -> None:
    schedule = read_schedule(_schedule(kind, inline))
    assert any(problem in p for p in schedule.problems), schedule.problems
    assert not schedule.runs


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"schedule": "0 2 * *", "type": "PodChaos", "podChaos": {}}, "spec.schedule '0 2 * *'"),
        ({"type": "PodChaos", "podChaos": {}}, "spec.schedule missing"),
        ({"schedule": "@daily", "type": "Podchaos"}, "spec.type='Podchaos'"),
        ({"schedule": "@daily", "type": "PodChaos"}, "spec.podChaos missing"),
        ({"schedule": "@daily", "type": "Workflow", "historyLimit": 0}, "historyLimit=0"),
        ({"schedule": "@daily", "type": "Workflow", "concurrencyPolicy": "Replace"},
         "concurrencyPolicy='Replace'"),
    ],
)
def test_invalid_schedules(spec: dict[str, Any], problem: str) -> None:
    resource = Resource({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule",
                         "metadata": {"name": "s", "namespace": "ns"}, "spec": spec})
    assert any(problem in p for p in read_schedule(resource).problems)


def test_paused_schedule_is_valid_but_does_not_run() -> None:
    resource = _schedule("PodChaos", {**SELECT_GATEWAY, "action": "pod-kill"})
    resource.metadata["annotations"] = {"experiment.chaos-mesh.org/pause": "true"}
    schedule = read_schedule(resource)
    assert schedule.problems == () and schedule.paused and not schedule.runs


@pytest.mark.parametrize(
    ("kind", "spec", "faults"),
    [
        ("NetworkChaos", {"action": "delay"}, {"network-delay"}),
        ("NetworkChaos", {"action": "loss"}, {"network-loss"}),
        ("NetworkChaos", {"action": "netem", "delay": {"latency": "1ms"}, "loss": {"loss": "1"}},
         {"network-delay", "network-loss"}),
        ("NetworkChaos", {"action": "partition"}, set()),
        ("PodChaos", {"action": "pod-kill"}, {"pod-failure"}),
        ("PodChaos", {"action": "pod-failure"}, {"pod-failure"}),
        ("PodChaos", {"action": "container-kill"}, set()),
        ("StressChaos", {"stressngStressors": "--cpu 2 --vm 1"}, {"cpu-stress", "memory-stress"}),
        ("IOChaos", {"action": "latency"}, set()),
    ],
)
def test_faults(kind: str, spec: dict[str, Any], faults: set[str]) -> None:
    assert Experiment(kind, spec, "spec", "ns").faults() == faults


def test_standalone_and_legacy() -> None:
    plan = Resource({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "StressChaos",
                     "metadata": {"name": "x", "namespace": "ns"},
                     "spec": {"scheduler": {"cron": "0 2 * * *"}}})
    spawned = Resource({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "PodChaos",
                        "metadata": {"name": "s-abcde", "namespace": "ns",
                                     "ownerReferences": [{"kind": "Schedule", "name": "s"}]},
                        "spec": {}})
    assert is_standalone(plan) and not is_standalone(spawned)
    assert legacy_scheduler(plan.spec) == "cron: '0 2 * * *'"
    assert legacy_scheduler(spawned.spec) is None


# --- selection ---------------------------------------------------------------------------

_labels = st.dictionaries(st.sampled_from(["app", "tier", "team", "version"]),
                          st.sampled_from(["a", "b", "c"]), max_size=4)


def _selecting(selector: dict[str, Any], namespace: str | None = "ns") -> Experiment:
    return Experiment("PodChaos", {"selector": selector}, "spec", namespace)


@given(_labels, _labels)
def test_label_selectors_select_supersets(pod: dict[str, str], wanted: dict[str, str]) -> None:
    expected = wanted.items() <= pod.items()
    assert selects(_selecting({"labelSelectors": wanted}), "ns", [pod]) is expected


@given(_labels, st.sampled_from(["app", "tier", "team", "version"]),
       st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
       st.lists(st.sampled_from(["a", "b", "c"]), max_size=3))
def test_expression_selectors(pod: dict[str, str], key: str, operator: str,
                              values: list[str]) -> None:
    expected = {
        "In": key in pod and pod[key] in values,
        "NotIn": key not in pod or pod[key] not in values,
        "Exists": key in pod,
        "DoesNotExist": key not in pod,
    }[operator]
    selector = {"expressionSelectors": [{"key": key, "operator": operator, "values": values}]}
    assert selects(_selecting(selector), "ns", [pod]) is expected


def test_namespaces_default_to_the_schedule_namespace() -> None:
    pods = [{"app": "gateway-api"}]
    assert selects(_selecting({"labelSelectors": {"app": "gateway-api"}}), "ns", pods)
    assert not selects(_selecting({}, namespace="chaos"), "ns", pods)
    assert selects(_selecting({"namespaces": ["ns"]}, namespace="chaos"), "ns", pods)


@pytest.mark.parametrize(
    "selector",
    [
        {"pods": {"ns": ["gateway-api-0"]}},
        {"labelSelectors": {"app": "gateway-api"}, "nodes": ["node-1"]},
        {"labelSelectors": {"app": "gateway-api"}, "annotationSelectors": {"a": "b"}},
        {"labelSelectors": {"app": "gateway-api"}, "podPhaseSelectors": ["Pending"]},
        {"expressionSelectors": [{"key": "app", "operator": "Gt", "values": ["1"]}]},
    ],
)
def test_undecidable_selectors(selector: dict[str, Any]) -> None:
    assert selects(_selecting(selector), "ns", [{"app": "gateway-api"}]) is None


def test_demo_story() -> None:
    """The bundled demo: stress and pod-kill scheduled daily; latency still in the 1.x form."""
    ids = ["chaos.stress", "chaos.network", "chaos.pod-failure", "chaos.daily", "chaos.coverage",
           "chaos.no-legacy-scheduler"]
    report = audit_dir(REPO / "demo" / "soma-gitops", ids)
    status = {r.check.id: r.status.value for r in report.results}
    assert status == {"chaos.stress": "pass", "chaos.network": "fail",
                      "chaos.pod-failure": "pass", "chaos.daily": "pass",
                      "chaos.coverage": "fail", "chaos.no-legacy-scheduler": "fail"}
    legacy = next(r for r in report.results if r.check.id == "chaos.no-legacy-scheduler")
    assert [e.object for e in legacy.evidence] == [
        "NetworkChaos/soma-agent-hub/orchestrator-latency"]
