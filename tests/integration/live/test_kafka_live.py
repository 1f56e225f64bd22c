"""The live Kafka checks against the real broker (SASL, StandardAuthorizer): every topic,
principal and group is fresh per test, so the shared broker's other contents never count.

The single test broker can only hold replication factor 1, so the plan's replication is
set to 1 in the test config; the replication variation plans 2 and sees 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.live.conftest import (
    Live,
    commit_at_end,
    create_topic,
    grant,
    kafka_config,
    messages,
    produce,
    wait_for_acls,
)

pytestmark = pytest.mark.integration

ALL_CHECKS = ["kafka.live-topics", "kafka.live-acls", "kafka.consumer-groups",
              "kafka.consumer-lag", "kafka.event-flow"]
WEEK, MONTH = 604800000, 2592000000


@dataclass
class Plan:
    """A fresh, fully ready slice of the broker: two topics, a producer/consumer and a
    consumer principal with exactly their ACLs, their groups with committed offsets."""

    events: str
    invocations: str
    orchestrator: str
    analytics: str
    orchestrator_group: str
    analytics_group: str
    canary: str

    def config(self, kafka_env: Any, **kafka: Any) -> dict[str, Any]:
        return kafka_config(kafka_env, **{
            "topics": [
                {"name": self.events, "partitions": 3, "replicas": 1, "retention_ms": WEEK,
                 "cleanup_policy": "delete", "min_insync_replicas": 1},
                {"name": self.invocations, "partitions": 5, "replicas": 1,
                 "retention_ms": MONTH, "cleanup_policy": "delete"},
            ],
            "users": [
                {"name": self.orchestrator, "produces": [self.events],
                 "consumes": [self.invocations], "groups": [self.orchestrator_group]},
                {"name": self.analytics, "consumes": [self.events, self.invocations],
                 "groups": [self.analytics_group]},
            ],
            "max_lag": 10,
            "canary_topic": self.canary,
            **kafka,
        })


@pytest.fixture
def plan(kafka_env: Any, kafka_admin: Any, unique_name: Callable[[str], str]) -> Plan:
    p = Plan(*(unique_name(n) for n in ("agent-events", "model-invocations", "orchestrator",
                                        "analytics-service", "orchestrator-group",
                                        "analytics-group", "soma-audit-canary")))
    create_topic(kafka_admin, p.events, 3, {"retention.ms": str(WEEK), "cleanup.policy": "delete",
                                             "min.insync.replicas": "1"})
    create_topic(kafka_admin, p.invocations, 5, {"retention.ms": str(MONTH)})
    create_topic(kafka_admin, p.canary, 1, {})
    orchestrator, analytics = f"User:{p.orchestrator}", f"User:{p.analytics}"
    grant(kafka_admin, orchestrator, "TOPIC", p.events, "WRITE")
    grant(kafka_admin, orchestrator, "TOPIC", p.events, "DESCRIBE")
    grant(kafka_admin, orchestrator, "TOPIC", p.invocations, "READ")
    grant(kafka_admin, orchestrator, "GROUP", p.orchestrator_group, "READ")
    grant(kafka_admin, analytics, "TOPIC", p.events, "READ")
    grant(kafka_admin, analytics, "TOPIC", p.invocations, "READ")
    grant(kafka_admin, analytics, "GROUP", p.analytics_group, "READ")
    wait_for_acls(kafka_admin, orchestrator, 4)
    wait_for_acls(kafka_admin, analytics, 3)
    produce(kafka_env, p.events, 5)
    produce(kafka_env, p.invocations, 5)
    commit_at_end(kafka_env, kafka_admin, p.orchestrator_group, p.invocations, 5)
    for topic, partitions in ((p.events, 3), (p.invocations, 5)):
        commit_at_end(kafka_env, kafka_admin, p.analytics_group, topic, partitions)
    return p


def _high_watermark(kafka_env: Any, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka_env.client_config(**{"group.id": "soma-audit-test-peek"}))
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        consumer.close()


def _canary_groups(kafka_admin: Any) -> set[str]:
    listed = kafka_admin.list_consumer_groups().result(timeout=30)
    return {g.group_id for g in listed.valid if g.group_id.startswith("soma-audit-canary")}


def test_ready_broker_passes_every_check(run_live: Live, kafka_env: Any, kafka_admin: Any,
                                         plan: Plan) -> None:
    groups_before = _canary_groups(kafka_admin)
    results = run_live(ALL_CHECKS, plan.config(kafka_env, probe_writes=True))
    for check in ALL_CHECKS:
        assert results[check].status.value == "pass", (check, messages(results[check]))
    topics = messages(results["kafka.live-topics"])
    assert f"kafka:topic/{plan.events}: 3 partitions, replication 1, retention.ms={WEEK}, " \
           "cleanup.policy=delete, min.insync.replicas=1" in topics
    acls = messages(results["kafka.live-acls"])
    assert (f"kafka:principal/User:{plan.orchestrator}: least privilege: WRITE on topic "
            f"{plan.events}; READ on topic {plan.invocations}; READ on group "
            f"{plan.orchestrator_group} (4 bindings)") in acls
    lag = messages(results["kafka.consumer-lag"])
    assert f"kafka:group/{plan.analytics_group}: lag 0 <= 10 over 8 partitions" in lag
    flow = messages(results["kafka.event-flow"])[0]
    assert f"canary produced to {plan.canary}[0]@0 and read back in" in flow
    assert _canary_groups(kafka_admin) == groups_before, "the canary must not create a group"


def test_without_probe_writes_the_canary_is_skipped_and_nothing_is_written(
    run_live: Live, kafka_env: Any, plan: Plan
) -> None:
    before = _high_watermark(kafka_env, plan.canary)
    results = run_live(["kafka.event-flow"], plan.config(kafka_env))
    flow = results["kafka.event-flow"]
    assert flow.status.value == "skip"
    assert "opt-in: --probe-writes" in messages(flow)[0]
    assert _high_watermark(kafka_env, plan.canary) == before


def test_missing_canary_topic_fails_the_event_flow(
    run_live: Live, kafka_env: Any, plan: Plan, unique_name: Callable[[str], str]
) -> None:
    absent = unique_name("no-such-canary")
    results = run_live(["kafka.event-flow"],
                       plan.config(kafka_env, probe_writes=True, canary_topic=absent))
    flow = results["kafka.event-flow"]
    assert flow.status.value == "fail"
    assert f"canary topic {absent} does not exist" in messages(flow)[0]


def test_replication_and_configs_that_differ_from_the_plan(
    run_live: Live, kafka_env: Any, kafka_admin: Any, plan: Plan,
    unique_name: Callable[[str], str],
) -> None:
    config = plan.config(kafka_env)
    config["kafka"]["topics"][0]["replicas"] = 2  # the plan says 2; the broker has 1
    config["kafka"]["topics"][1]["retention_ms"] = WEEK
    missing = unique_name("billing-events")
    config["kafka"]["topics"].append({"name": missing, "partitions": 1, "replicas": 1})
    result = run_live(["kafka.live-topics"], config)["kafka.live-topics"]
    assert result.status.value == "fail"
    assert messages(result) == [
        f"kafka:topic/{plan.events}: replication factor 1, expected 2",
        f"kafka:topic/{plan.invocations}: retention.ms={MONTH}, expected {WEEK}",
        f"kafka:topic/{missing}: missing on the broker {kafka_env.bootstrap}",
    ]


def test_over_broad_and_missing_acls(
    run_live: Live, kafka_env: Any, kafka_admin: Any, plan: Plan
) -> None:
    grant(kafka_admin, f"User:{plan.orchestrator}", "TOPIC", "*", "ALL")
    grant(kafka_admin, f"User:{plan.analytics}", "TOPIC", plan.events, "WRITE")
    wait_for_acls(kafka_admin, f"User:{plan.orchestrator}", 5)
    wait_for_acls(kafka_admin, f"User:{plan.analytics}", 4)
    config = plan.config(kafka_env)
    config["kafka"]["users"][1]["groups"].append("analytics-replay")
    result = run_live(["kafka.live-acls"], config)["kafka.live-acls"]
    assert result.status.value == "fail"
    assert messages(result) == [
        f"kafka:principal/User:{plan.orchestrator}: excess: ALLOW ALL on TOPIC '*' for "
        f"User:{plan.orchestrator} — grants every operation",
        f"kafka:principal/User:{plan.analytics}: excess: ALLOW WRITE on TOPIC '{plan.events}' "
        f"for User:{plan.analytics} — not needed ({plan.analytics} only consumes from it)",
        f"kafka:principal/User:{plan.analytics}: missing: ALLOW READ on GROUP "
        f"'analytics-replay' for User:{plan.analytics} ({plan.analytics} consumes as this "
        "group)",
    ]


def test_missing_group(run_live: Live, kafka_env: Any, plan: Plan,
                       unique_name: Callable[[str], str]) -> None:
    never = unique_name("reporting-group")
    config = plan.config(kafka_env)
    config["kafka"]["users"][1]["groups"].append(never)
    results = run_live(["kafka.consumer-groups", "kafka.consumer-lag"], config)
    groups = results["kafka.consumer-groups"]
    assert groups.status.value == "fail"
    assert messages(groups) == [f"kafka:group/{never}: missing: {plan.analytics} has never "
                                f"consumed as group {never!r} on {kafka_env.bootstrap}"]
    lag = results["kafka.consumer-lag"]
    assert lag.status.value == "fail"
    assert f"kafka:group/{never}: no committed offsets" in messages(lag)[0]


def test_lag_above_threshold(run_live: Live, kafka_env: Any, plan: Plan) -> None:
    produce(kafka_env, plan.invocations, 25, partition=2)  # nobody consumes them
    result = run_live(["kafka.consumer-lag"], plan.config(kafka_env))["kafka.consumer-lag"]
    assert result.status.value == "fail"
    assert messages(result) == [
        f"kafka:group/{plan.orchestrator_group}: lag 25 > 10 (kafka.max_lag): "
        f"{plan.invocations}[2]=25",
        f"kafka:group/{plan.analytics_group}: lag 25 > 10 (kafka.max_lag): "
        f"{plan.invocations}[2]=25",
    ]


def test_wrong_password_is_an_error_with_the_reason(run_live: Live, kafka_env: Any,
                                                    plan: Plan) -> None:
    results = run_live(ALL_CHECKS, plan.config(kafka_env, sasl_password="not-the-password",
                                               probe_writes=True))
    for check in ALL_CHECKS:
        assert results[check].status.value == "error", check
        (message,) = messages(results[check])
        assert "Kafka unauthorised" in message and "Authentication failed" in message
        assert "not-the-password" not in message


def test_a_principal_without_describe_rights_gets_errors_not_findings(
    run_live: Live, kafka_env: Any, plan: Plan
) -> None:
    """orchestrator is a real SASL user of the broker, but not a super user: listings
    silently leave out what it may not see, so each check must say so instead of
    reporting topics, ACLs or groups as missing."""
    config = plan.config(kafka_env, probe_writes=True, sasl_username="orchestrator",
                         sasl_password=kafka_env.users["orchestrator"])
    results = run_live(ALL_CHECKS, config)
    for check in ALL_CHECKS:
        assert results[check].status.value == "error", (check, messages(results[check]))
        assert "Kafka forbidden" in messages(results[check])[0], messages(results[check])
    assert "needs Describe on the cluster" in messages(results["kafka.live-acls"])[0]
    assert "TOPIC_AUTHORIZATION_FAILED" in messages(results["kafka.live-topics"])[0]
