"""soma_audit.domain.kafka: KafkaTopic expectations and least-privilege KafkaUser ACLs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soma_audit.config import KafkaPrincipal, Topic
from soma_audit.domain.kafka import acl_problems, needs, topic_name, topic_problems
from soma_audit.kube.inventory import Resource
from tests.helpers import REPO, audit_dir

TOPICS = ["agent-events", "model-invocations", "audit-log", "billing-events"]


def _user(acls: list[dict[str, Any]], version: str = "v1") -> Resource:
    return Resource({
        "apiVersion": f"kafka.strimzi.io/{version}",
        "kind": "KafkaUser",
        "metadata": {"name": "svc", "namespace": "ns", "labels": {"strimzi.io/cluster": "k"}},
        "spec": {"authentication": {"type": "tls"},
                 "authorization": {"type": "simple", "acls": acls}},
    })


def _least_privilege(principal: KafkaPrincipal) -> list[dict[str, Any]]:
    return [
        {"resource": {"type": kind, "name": name, "patternType": "literal"},
         "operations": sorted(ops | {"Describe"})}
        for (kind, name), ops in needs(principal).items()
    ]


principals = st.builds(
    KafkaPrincipal,
    name=st.just("svc"),
    produces=st.lists(st.sampled_from(TOPICS), unique=True, max_size=3),
    consumes=st.lists(st.sampled_from(TOPICS), unique=True, max_size=3),
    groups=st.lists(st.sampled_from(["svc", "svc-replay"]), unique=True, max_size=2),
)


@given(principals)
def test_exactly_the_needed_acls_pass(principal: KafkaPrincipal) -> None:
    assert acl_problems(_user(_least_privilege(principal)), principal) == []


@given(principals, st.data())
def test_removing_a_needed_acl_is_reported_missing(principal: KafkaPrincipal,
                                                   data: st.DataObject) -> None:
    acls = _least_privilege(principal)
    if not acls:
        return
    dropped = acls.pop(data.draw(st.integers(0, len(acls) - 1)))
    problems = acl_problems(_user(acls), principal)
    assert any(p.startswith("missing ") and repr(dropped["resource"]["name"]) in p
               for p in problems), problems


@given(principals, st.sampled_from([
    ({"type": "topic", "name": "*"}, ["Read"], "resource.name='*'"),
    ({"type": "topic", "name": "agent", "patternType": "prefix"}, ["Read"], "patternType=prefix"),
    ({"type": "group", "name": "svc"}, ["All"], "includes All"),
    ({"type": "cluster"}, ["Describe"], "does not need"),
    ({"type": "transactionalId", "name": "svc"}, ["Write"], "does not need"),
    ({"type": "topic", "name": "never-used"}, ["Read"], "is not used by svc"),
]))
def test_any_broader_grant_is_reported(principal: KafkaPrincipal,
                                       extra: tuple[dict[str, str], list[str], str]) -> None:
    resource, operations, problem = extra
    acls = [*_least_privilege(principal), {"resource": resource, "operations": operations}]
    assert any(problem in p for p in acl_problems(_user(acls), principal))


def test_an_operation_beyond_the_role_is_reported() -> None:
    consumer = KafkaPrincipal("svc", consumes=["agent-events"])
    acls = [{"resource": {"type": "topic", "name": "agent-events"},
             "operations": ["Read", "Write"]}]
    assert acl_problems(_user(acls), consumer) == [
        "spec.authorization.acls[0]: Write on topic 'agent-events' not needed "
        "(svc only consumes from it)"
    ]


def test_singular_operation_is_gone_from_v1_but_read_in_v1beta2() -> None:
    producer = KafkaPrincipal("svc", produces=["agent-events"])
    acls = [{"resource": {"type": "topic", "name": "agent-events"}, "operation": "Write"}]
    assert acl_problems(_user(acls, "v1beta2"), producer) == []
    problems = acl_problems(_user(acls, "v1"), producer)
    assert any("operation='Write' is not a field of kafka.strimzi.io/v1" in p for p in problems)
    assert any(p.startswith("missing Write on topic 'agent-events'") for p in problems)


def test_authorization_must_be_simple() -> None:
    user = _user([])
    user.spec["authorization"]["type"] = "opa"
    assert "spec.authorization.type='opa', expected simple" in acl_problems(
        user, KafkaPrincipal("svc"))


# --- topics ------------------------------------------------------------------------------

PLANNED = Topic("agent-events", partitions=3, replicas=2, retention_ms=604800000)


def _topic(spec: dict[str, Any]) -> Resource:
    return Resource({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
                     "metadata": {"name": "k8s-name", "namespace": "ns"}, "spec": spec})


def test_topic_name_prefers_spec_topic_name() -> None:
    assert topic_name(_topic({"topicName": "agent-events"})) == "agent-events"
    assert topic_name(_topic({})) == "k8s-name"


@pytest.mark.parametrize(
    ("config", "ok"),
    [
        ({"retention.ms": 604800000, "cleanup.policy": "delete"}, True),
        ({"retention.ms": "604800000", "cleanup.policy": "delete"}, True),
        ({"retention.ms": 604800000, "cleanup.policy": "compact"}, False),
        ({"retention.ms": "7d", "cleanup.policy": "delete"}, False),
        ({"cleanup.policy": "delete"}, False),
    ],
)
def test_topic_configs(config: dict[str, Any], ok: bool) -> None:
    problems = topic_problems(_topic({"partitions": 3, "replicas": 2, "config": config}), PLANNED)
    assert (problems == []) is ok, problems


def test_cleanup_policy_lists_compare_as_sets() -> None:
    planned = Topic("t", partitions=1, replicas=1, cleanup_policy="compact,delete")
    spec = {"partitions": 1, "replicas": 1, "config": {"cleanup.policy": ["delete", "compact"]}}
    assert topic_problems(_topic(spec), planned) == []


def test_replication_factor_is_an_unknown_field() -> None:
    problems = topic_problems(_topic({"partitions": 3, "replicationFactor": 2,
                                      "config": {"retention.ms": 604800000,
                                                 "cleanup.policy": "delete"}}), PLANNED)
    assert problems[0].startswith("spec.replicationFactor=2 is not a KafkaTopic field")
    assert "spec.replicas unset (the broker default applies), expected 2" in problems


def test_demo_story() -> None:
    """The bundled demo: topics declared, model-invocations under-replicated, analytics ACL *."""
    ids = ["kafka.topics-declared", "kafka.topic-replication", "kafka.user-acls"]
    report = audit_dir(REPO / "demo" / "soma-gitops", ids)
    outcome = {r.check.id: (r.status.value, {e.object for e in r.evidence}) for r in report.results}
    assert outcome["kafka.topics-declared"][0] == "pass"
    assert outcome["kafka.topic-replication"] == (
        "fail", {"KafkaTopic/soma-agent-hub/model-invocations"})
    assert outcome["kafka.user-acls"] == ("fail", {"KafkaUser/soma-agent-hub/analytics-service"})
