"""Kafka: topic drift, least privilege of broker ACLs and consumer lag (pure logic of the
live kafka checks; the broker calls are covered by tests/integration/live)."""

from __future__ import annotations

from soma_audit.config import KafkaPrincipal, Topic
from soma_audit.services.kafka import Acl, TopicState, acl_findings, group_lag, topic_differences

TOPIC = Topic("agent-events", 3, 2, retention_ms=604800000, cleanup_policy="delete",
              min_insync_replicas=2)
CONFIGS = {"retention.ms": "604800000", "cleanup.policy": "delete", "min.insync.replicas": "2"}


def test_matching_topic_has_no_differences() -> None:
    assert topic_differences(TOPIC, TopicState("agent-events", 3, (2, 2, 2)), CONFIGS) == []


def test_topic_drift_is_worded_per_field() -> None:
    state = TopicState("agent-events", 1, (1,))
    configs = {"retention.ms": "86400000", "cleanup.policy": "compact",
               "min.insync.replicas": "1"}
    assert topic_differences(TOPIC, state, configs) == [
        "1 partitions, expected 3",
        "replication factor 1, expected 2",
        "retention.ms=86400000, expected 604800000",
        "cleanup.policy=compact, expected delete",
        "min.insync.replicas=1, expected 2",
    ]


def test_cleanup_policy_is_a_set_and_unplanned_configs_are_not_checked() -> None:
    topic = Topic("t", 1, 1, cleanup_policy="delete,compact")
    assert topic_differences(topic, TopicState("t", 1, (1,)),
                             {"cleanup.policy": "compact, delete"}) == []


ORCHESTRATOR = KafkaPrincipal("orchestrator", produces=["agent-events"],
                              consumes=["model-invocations"], groups=["orchestrator"])


def _allow(resource: str, name: str, operation: str, principal: str = "User:orchestrator",
           pattern: str = "LITERAL") -> Acl:
    return Acl(principal, resource, name, pattern, operation, "ALLOW")


EXACT = [
    _allow("TOPIC", "agent-events", "WRITE"),
    _allow("TOPIC", "agent-events", "DESCRIBE"),
    _allow("TOPIC", "model-invocations", "READ"),
    _allow("GROUP", "orchestrator", "READ"),
    _allow("TOPIC", "agent-events", "ALL", principal="User:someone-else"),
]


def test_exact_least_privilege_passes() -> None:
    assert acl_findings(ORCHESTRATOR, EXACT) == ([], 4)


def test_every_excess_binding_is_one_finding() -> None:
    acls = [*EXACT,
            _allow("TOPIC", "model-invocations", "ALL"),
            _allow("TOPIC", "*", "READ"),
            _allow("GROUP", "orch", "READ", pattern="PREFIXED"),
            _allow("CLUSTER", "kafka-cluster", "CREATE"),
            _allow("TOPIC", "billing-events", "READ"),
            _allow("TOPIC", "agent-events", "READ"),
            _allow("TOPIC", "secrets", "WRITE", principal="User:*")]
    problems, count = acl_findings(ORCHESTRATOR, acls)
    assert count == 11
    assert problems == [  # topics first, then by resource type, name and operation
        "excess: ALLOW READ on TOPIC '*' for User:orchestrator — grants every topic",
        "excess: ALLOW READ on TOPIC 'agent-events' for User:orchestrator — not needed "
        "(orchestrator only produces to it)",
        "excess: ALLOW READ on TOPIC 'billing-events' for User:orchestrator — not in "
        "orchestrator's plan",
        "excess: ALLOW ALL on TOPIC 'model-invocations' for User:orchestrator — grants every "
        "operation",
        "excess: ALLOW WRITE on TOPIC 'secrets' for User:* (applies to every principal) — not "
        "in orchestrator's plan",
        "excess: ALLOW CREATE on CLUSTER 'kafka-cluster' for User:orchestrator — orchestrator "
        "needs nothing on the cluster",
        "excess: ALLOW READ on GROUP 'orch' (prefixed) for User:orchestrator — grants every "
        "group whose name starts with 'orch'",
    ]


def test_missing_and_denied_grants() -> None:
    acls = [_allow("TOPIC", "agent-events", "WRITE"),
            _allow("TOPIC", "model-invocations", "READ"),
            Acl("User:orchestrator", "TOPIC", "model-invocations", "LITERAL", "READ", "DENY")]
    problems, _ = acl_findings(ORCHESTRATOR, acls)
    assert problems == [
        "denied: READ on TOPIC 'model-invocations' is taken away by DENY READ on TOPIC "
        "'model-invocations' for User:orchestrator (orchestrator consumes from it)",
        "missing: ALLOW READ on GROUP 'orchestrator' for User:orchestrator (orchestrator "
        "consumes as this group)",
    ]


def test_a_principal_without_a_plan_may_hold_nothing() -> None:
    reader = KafkaPrincipal("auditor")
    problems, _ = acl_findings(reader, [_allow("TOPIC", "t", "DESCRIBE", "User:auditor")])
    assert problems == ["excess: ALLOW DESCRIBE on TOPIC 't' for User:auditor — not in "
                        "auditor's plan"]


def test_group_lag_sums_committed_partitions_only() -> None:
    committed = {("t", 0): 10, ("t", 1): 5, ("t", 2): -1001, ("u", 0): 7}
    high = {("t", 0): 15, ("t", 1): 5, ("t", 2): 40, ("u", 0): 3}
    total, per_partition = group_lag(committed, high)
    assert total == 5
    assert per_partition == [(("t", 0), 5), (("t", 1), 0), (("u", 0), 0)]
