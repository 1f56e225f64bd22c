"""The PromQL the live checks send, the chaos run window, and the safety of service errors
(pure logic; the live calls are covered by tests/integration/live)."""

from __future__ import annotations

import datetime as dt

import pytest

from soma_audit.config import load_config
from soma_audit.domain.chaos import mesh as chaosmesh
from soma_audit.domain.slo import promql
from soma_audit.kube.inventory import Resource
from soma_audit.probes.chaos_live import RunWindow, run_window
from soma_audit.services import Failure, Guard, ServiceError, connect_services, redact
from soma_audit.services.prometheus import availability_query, latency_query, quote

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def test_availability_query_is_a_per_service_ratio_that_parses() -> None:
    query = availability_query("http_requests_total", "service", "24h",
                               services=["gateway-api", "llm-hub"])
    assert query == (
        '(sum by (service) (increase(http_requests_total{service=~"gateway\\\\-api|llm\\\\-hub", '
        'code!~"5.."}[24h])) or 0 * sum by (service) (increase(http_requests_total'
        '{service=~"gateway\\\\-api|llm\\\\-hub"}[24h]))) / sum by (service) '
        '(increase(http_requests_total{service=~"gateway\\\\-api|llm\\\\-hub"}[24h]))'
    )
    promql.parse(query)


def test_latency_query_sums_buckets_by_le_and_service() -> None:
    query = latency_query("http_request_duration_seconds", "service", "300s", 0.99)
    assert query == ("histogram_quantile(0.99, sum by (le, service) "
                     "(increase(http_request_duration_seconds_bucket{}[300s])))")
    promql.parse(query)


def test_quote_escapes() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'


def _schedule(duration: str | None) -> chaosmesh.ChaosSchedule:
    inline = {"mode": "all", "selector": {"labelSelectors": {"app": "gateway-api"}},
              "stressors": {"cpu": {"workers": 1, "load": 50}}}
    if duration:
        inline["duration"] = duration
    body = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"schedule": "@every 1h", "type": "StressChaos", "stressChaos": inline}}
    return chaosmesh.read_schedule(Resource(body))


DEFAULT, MINIMUM = dt.timedelta(minutes=5), dt.timedelta(minutes=1)


def test_run_window_uses_the_experiment_duration() -> None:
    window = run_window({"time": "2026-11-28T11:00:00Z"}, _schedule("10m"), DEFAULT, MINIMUM,
                        NOW)
    assert window == RunWindow(NOW - dt.timedelta(hours=1), NOW - dt.timedelta(minutes=50))
    assert isinstance(window, RunWindow)
    assert window.describe() == "2026-11-28 11:00:00Z + 10m"


def test_run_window_defaults_floors_and_cuts_at_now() -> None:
    start = {"time": "2026-11-28T11:00:00Z"}
    window = run_window(start, _schedule(None), DEFAULT, MINIMUM, NOW)
    assert isinstance(window, RunWindow) and window.seconds == 300
    window = run_window(start, _schedule("10s"), DEFAULT, MINIMUM, NOW)
    assert isinstance(window, RunWindow) and window.seconds == 60
    running = run_window({"time": "2026-11-28T11:58:00Z"}, _schedule("10m"), DEFAULT, MINIMUM,
                         NOW)
    assert isinstance(running, RunWindow) and running.end == NOW


@pytest.mark.parametrize("status, message", [
    ({}, "never ran"),
    ({"time": "yesterday"}, "not an RFC 3339 time"),
    ({"time": "2026-11-29T00:00:00Z"}, "in the future"),
])
def test_no_run_window(status: dict[str, str], message: str) -> None:
    reason = run_window(status, _schedule("1m"), DEFAULT, MINIMUM, NOW)
    assert isinstance(reason, str) and message in reason


def test_redact_replaces_every_secret_longest_first() -> None:
    assert redact("pw=abc123 and abc", ["abc", "abc123", None]) == "pw=*** and ***"


def test_guard_remembers_only_connection_failures_for_a_while() -> None:
    guard = Guard(ttl=60)
    guard.record(ServiceError("X", Failure.NOT_FOUND, "no such store"))
    guard.record(ServiceError("X", Failure.FORBIDDEN, "may not describe ACLs"))
    guard.check()
    guard.record(ServiceError("X", Failure.UNREACHABLE, "refused"))
    with pytest.raises(ServiceError, match="X unreachable: refused"):
        guard.check()
    expired = Guard(ttl=0)
    expired.record(ServiceError("X", Failure.TIMEOUT, "slow"))
    expired.check()


def test_connect_services_builds_clients_without_touching_the_network() -> None:
    config = load_config(openfga={"url": "http://127.0.0.1:9",
                                  "store": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
                                  "api_token": "fga-token-value"},
                         prometheus={"url": "http://127.0.0.1:9", "bearer_token": "prom-token"},
                         kafka={"bootstrap": "127.0.0.1:9", "sasl_password": "kafka-password"})
    services = connect_services(config)
    assert sorted(services) == ["kafka", "openfga", "prometheus"]
    shown = " ".join(repr(s) for s in services.values())
    for secret in ("fga-token-value", "prom-token", "kafka-password"):
        assert secret not in shown
    assert connect_services(load_config()) == {}
