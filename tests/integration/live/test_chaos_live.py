"""chaos.slo-verified on the real kube-apiserver (Chaos Mesh CRDs of the test environment)
and the shared Prometheus: Schedules in a fresh namespace, their ``status.time`` set
through the status subresource as Chaos Mesh's controller would, windows in the recent
past that Prometheus has scraped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from soma_audit.sources.cluster import ClusterSource
from tests.integration.live.conftest import Live, messages, wait_for_history

pytestmark = pytest.mark.integration

GROUP, VERSION = "chaos-mesh.org", "v1alpha1"


def _schedule(name: str, app: str, duration: str = "30s") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {
            "schedule": "@every 1h", "type": "StressChaos", "historyLimit": 1,
            "concurrencyPolicy": "Forbid",
            "stressChaos": {"mode": "all", "duration": duration,
                            "selector": {"labelSelectors": {"app": app}},
                            "stressors": {"cpu": {"workers": 1, "load": 50}}},
        },
    }


@pytest.fixture
def namespace(kube_admin_client: Any, unique_name: Callable[[str], str]) -> str:
    from kubernetes import client

    name = unique_name("chaos-live")
    client.CoreV1Api(kube_admin_client).create_namespace({"metadata": {"name": name}})
    return name


def _create(api_client: Any, namespace: str, body: dict[str, Any],
            ran_at: dt.datetime | None) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(api_client)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "schedules", body)
    if ran_at is not None:
        stamp = ran_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "schedules", body["metadata"]["name"],
            {"status": {"time": stamp}})


def _run(live: Live, kube_env: Any, prometheus_env: Any, namespace: str,
         target: float) -> Any:
    source = ClusterSource(str(kube_env.admin_kubeconfig))
    config = {"namespace": namespace, "prometheus": {"url": prometheus_env.url},
              "slo": {"availability_target": target, "latency_p99_seconds": 0.5}}
    return live(["chaos.slo-verified"], config, source=source)["chaos.slo-verified"]


@pytest.fixture
def ran_at(prometheus_env: Any) -> dt.datetime:
    """A start time 90 s ago, inside the shared Prometheus' history."""
    wait_for_history(prometheus_env.url, 100)
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)


def test_slos_held_during_the_last_runs(run_live: Live, kube_env: Any, prometheus_env: Any,
                                        kube_admin_client: Any, namespace: str,
                                        ran_at: dt.datetime) -> None:
    _create(kube_admin_client, namespace, _schedule("gateway-stress", "gateway-api"), ran_at)
    _create(kube_admin_client, namespace, _schedule("llm-stress", "llm-hub", "75s"), ran_at)
    result = _run(run_live, kube_env, prometheus_env, namespace, 0.995)
    assert result.status.value == "pass", messages(result)
    found = messages(result)
    assert len(found) == 2
    assert "+ 1m15s): availability 100%" in next(m for m in found if "llm-stress" in m)
    gateway = next(m for m in found if "gateway-stress" in m)
    assert gateway.startswith(f"Schedule/{namespace}/gateway-stress: gateway-api: SLO held "
                              "during the last run (")
    # the 30 s run is widened to params.min_window (1m) so that increase() sees samples
    assert "+ 1m): availability 100%, p99 0." in gateway


def test_a_broken_slo_and_a_schedule_that_never_ran_fail(
    run_live: Live, kube_env: Any, prometheus_env: Any, kube_admin_client: Any,
    namespace: str, ran_at: dt.datetime,
) -> None:
    _create(kube_admin_client, namespace, _schedule("gateway-stress", "gateway-api"), ran_at)
    _create(kube_admin_client, namespace, _schedule("policy-stress", "policy-engine"), ran_at)
    _create(kube_admin_client, namespace, _schedule("memory-stress", "memory-gateway"), None)
    result = _run(run_live, kube_env, prometheus_env, namespace, 0.995)
    assert result.status.value == "fail"
    found = messages(result)
    broken = next(m for m in found if "policy-stress" in m)
    assert broken.startswith(f"Schedule/{namespace}/policy-stress: policy-engine: SLO broken "
                             "during the last run (")
    assert "availability 9" in broken and "% < target 99.500%" in broken
    assert (f"Schedule/{namespace}/memory-stress: never ran (status.time unset): no run to "
            "verify the SLOs against") in found
    assert not any("gateway-stress" in m for m in found)  # a failing check shows its gaps


def test_no_schedule_targets_the_platform(run_live: Live, kube_env: Any, prometheus_env: Any,
                                          namespace: str) -> None:
    result = _run(run_live, kube_env, prometheus_env, namespace, 0.999)
    assert result.status.value == "fail"
    assert f"no Chaos Mesh Schedule targets the services in namespace {namespace}" \
           in messages(result)[0]
