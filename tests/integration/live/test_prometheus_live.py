"""slo.series-present, slo.rules-loaded and ops.stability-24h against real Prometheus
instances scraping the test environment's SLI target.

The SLI target's services have fixed error ratios (testenv/sli_target.py): gateway-api,
llm-hub 0 %, orchestrator, tool-service 0.05 %, identity-service 0.2 %, policy-engine and
memory-gateway 1 % — so availability targets decide who passes.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.integration.live.conftest import (
    SLO_ALERTS,
    Live,
    messages,
    prometheus_rule,
    shared_rules,
    wait_for_history,
)

pytestmark = pytest.mark.integration

CRITICAL = ["gateway-api", "orchestrator", "identity-service", "policy-engine", "llm-hub",
            "tool-service", "memory-gateway"]


def _prometheus(url: str, **slo: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"prometheus": {"url": url, "timeout_seconds": 10}}
    if slo:
        config["slo"] = slo
    return config


def _with_ghost(config: dict[str, Any]) -> dict[str, Any]:
    """The default services plus a critical one no target serves."""
    from soma_audit.config import load_config

    services = [{"name": s.name, "port": s.port, "critical": s.critical}
                for s in load_config().services]
    return {**config, "services": [*services, {"name": "ghost-service", "port": 10099}]}


@pytest.fixture(scope="module")
def history(prometheus_env: Any) -> None:
    """The shared Prometheus has scraped for at least the windows used below."""
    wait_for_history(prometheus_env.url, 130)


# -- slo.series-present -------------------------------------------------------------------

def test_series_of_the_declared_recording_rules_are_present(
    run_live: Live, prometheus_env: Any, history: None
) -> None:
    repo = run_live.repo(("slis.yaml", prometheus_rule("soma-slis", shared_rules())))
    from soma_audit.sources.manifests import ManifestsSource

    result = run_live(["slo.series-present"], _prometheus(prometheus_env.url),
                      source=ManifestsSource(repo))["slo.series-present"]
    assert result.status.value == "pass", messages(result)
    found = messages(result)
    for series in ("sli:availability:ratio_rate5m", "sli:error:ratio_rate5m",
                   "sli:latency_seconds:p99_rate5m"):
        assert (f"PrometheusRule/observability/soma-slis: series {series}: present for all 7 "
                "critical services") in found
    assert "prometheus: series names from the recording rules of the PrometheusRule " \
           "objects" in found


def test_without_declared_rules_the_params_names_are_used(
    run_live: Live, prometheus_env: Any, history: None
) -> None:
    result = run_live(["slo.series-present"], _prometheus(prometheus_env.url))
    check = result["slo.series-present"]
    assert check.status.value == "pass", messages(check)
    assert any("names from params.series" in m for m in messages(check))


def test_missing_series_and_missing_service(
    run_live: Live, prometheus_env: Any, history: None
) -> None:
    rules = copy.deepcopy(shared_rules())
    rules["groups"][0]["rules"].append({
        "record": "sli:availability:ratio_rate30m",
        "expr": 'sum by (service) (rate(http_requests_total{code!~"5.."}[30m])) / '
                "sum by (service) (rate(http_requests_total[30m]))",
    })
    repo = run_live.repo(("slis.yaml", prometheus_rule("soma-slis", rules)))
    from soma_audit.sources.manifests import ManifestsSource

    config = _with_ghost(_prometheus(prometheus_env.url))
    result = run_live(["slo.series-present"], config,
                      source=ManifestsSource(repo))["slo.series-present"]
    assert result.status.value == "fail"
    found = messages(result)
    assert ("PrometheusRule/observability/soma-slis: series sli:availability:ratio_rate30m: "
            "none in Prometheus — the rule is not loaded or evaluates to nothing") in found
    assert ("PrometheusRule/observability/soma-slis: series sli:availability:ratio_rate5m: "
            "no series for service=ghost-service") in found


# -- slo.rules-loaded ---------------------------------------------------------------------

def _alert_repo(live: Live, extra: dict[str, Any] | None = None) -> Any:
    from soma_audit.sources.manifests import ManifestsSource

    alerts = copy.deepcopy(SLO_ALERTS)
    if extra:
        alerts["groups"][0]["rules"].append(extra)
    return ManifestsSource(live.repo(("slis.yaml", prometheus_rule("soma-slis", shared_rules())),
                                     ("alerts.yaml", prometheus_rule("soma-alerts", alerts))))


def test_slo_alerts_loaded_and_routed(run_live: Live, private_prometheus: Any) -> None:
    prometheus = private_prometheus(True)
    result = run_live(["slo.rules-loaded"], _prometheus(prometheus.url),
                      source=_alert_repo(run_live))["slo.rules-loaded"]
    assert result.status.value == "pass", messages(result)
    assert messages(result) == [
        "PrometheusRule/observability/soma-alerts: alert SLOErrorBudgetBurnFast loaded "
        "(group soma-slo-alerts)",
        "PrometheusRule/observability/soma-alerts: alert SLOLatencyP99High loaded "
        "(group soma-slo-alerts)",
        f"prometheus:alertmanagers: active Alertmanager: {prometheus.alertmanager}"
        "/api/v2/alerts",
    ]


def test_without_declared_alerts_the_loaded_slo_alerts_count(
    run_live: Live, private_prometheus: Any
) -> None:
    prometheus = private_prometheus(True)
    result = run_live(["slo.rules-loaded"], _prometheus(prometheus.url))["slo.rules-loaded"]
    assert result.status.value == "pass", messages(result)
    assert "prometheus:rules/soma-slo-alerts: alert SLOLatencyP99High loaded (group " \
           "soma-slo-alerts)" in messages(result)


def test_declared_alert_that_is_not_loaded(run_live: Live, private_prometheus: Any) -> None:
    prometheus = private_prometheus(True)
    missing = {"alert": "SLOErrorBudgetBurnSlow",
               "expr": "sli:error:ratio_rate5m > (3 * 0.001)",
               "labels": {"severity": "warning"},
               "annotations": {"runbook_url": "docs/runbooks/SLOErrorBudgetBurnSlow.md"}}
    result = run_live(["slo.rules-loaded"], _prometheus(prometheus.url),
                      source=_alert_repo(run_live, missing))["slo.rules-loaded"]
    assert result.status.value == "fail"
    assert messages(result) == ["PrometheusRule/observability/soma-alerts: alert "
                                "SLOErrorBudgetBurnSlow is not loaded in Prometheus"]


def test_no_alerts_and_no_alertmanager(run_live: Live, private_prometheus: Any) -> None:
    prometheus = private_prometheus(False)
    result = run_live(["slo.rules-loaded"], _prometheus(prometheus.url))["slo.rules-loaded"]
    assert result.status.value == "fail"
    assert messages(result) == [
        "prometheus:rules: no SLO alert rule is loaded: no alerting rule reads the SLI metrics",
        "prometheus:alertmanagers: no active Alertmanager: alerts fire but reach no one",
    ]
    declared = run_live(["slo.rules-loaded"], _prometheus(prometheus.url),
                        source=_alert_repo(run_live))["slo.rules-loaded"]
    assert [m.split(": alert ")[1] for m in messages(declared)[:2]] == [
        "SLOErrorBudgetBurnFast is not loaded in Prometheus",
        "SLOLatencyP99High is not loaded in Prometheus",
    ]


# -- ops.stability-24h --------------------------------------------------------------------

#: Two minutes hold enough requests that the discrete error counts of the target stay on
#: their side of the 99.85 % target used below (orchestrator and tool-service: at most one
#: 5xx in 1440-2400 requests; identity-service: 3-4 in 1680).
WINDOW = {"ops.stability-24h": {"window": "2m"}}


def test_stable_services_pass(run_live: Live, prometheus_env: Any, history: None) -> None:
    result = run_live(["ops.stability-24h"],
                      _prometheus(prometheus_env.url, availability_target=0.95),
                      params=WINDOW)["ops.stability-24h"]
    assert result.status.value == "pass", messages(result)
    assert len(result.evidence) == len(CRITICAL)
    assert "prometheus:service=gateway-api: availability 100% over 2m >= target 95%" \
           in messages(result)


def test_services_below_target_and_without_data_fail(
    run_live: Live, prometheus_env: Any, history: None
) -> None:
    config = _with_ghost(_prometheus(prometheus_env.url, availability_target=0.9985))
    result = run_live(["ops.stability-24h"], config, params=WINDOW)["ops.stability-24h"]
    assert result.status.value == "fail"
    failing = {e.object.split("=")[1]: e.message for e in result.evidence}
    assert sorted(failing) == ["ghost-service", "identity-service", "memory-gateway",
                               "policy-engine"]
    assert failing["ghost-service"] == "no data: no http_requests_total in the last 2m"
    assert failing["policy-engine"].startswith("availability 9")
    assert failing["policy-engine"].endswith("over 2m < target 99.850%")


def test_a_window_longer_than_the_history_is_not_proof(
    run_live: Live, prometheus_env: Any, history: None
) -> None:
    result = run_live(["ops.stability-24h"],
                      _prometheus(prometheus_env.url, availability_target=0.95))
    check = result["ops.stability-24h"]
    first = messages(check)[0]
    if check.status.value == "pass":  # the environment has run for a day: nothing to show
        pytest.skip("the shared Prometheus holds 24h of data")
    assert check.status.value == "fail"
    assert "of the 24h window" in first and "stability over 24h not shown" in first
