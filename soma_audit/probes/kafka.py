"""Probes for the kafka area (see checks/kafka.yaml). Logic: soma_audit/domain/kafka.py."""

from __future__ import annotations

from soma_audit.config import Topic
from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain import kafka as strimzi
from soma_audit.kube.inventory import Resource
from soma_audit.probes import Params, ProbeContext, ev, probe, skipped, verdict


def _declaring(ctx: ProbeContext, topic: Topic) -> list[Resource]:
    """Strimzi KafkaTopics (any version, anywhere) that manage the Kafka topic ``topic``."""
    topics = strimzi.of_kind(ctx.inventory.of_kind("KafkaTopic"))
    return [r for r in topics if strimzi.topic_name(r) == topic.name]


def _placement_problems(ctx: ProbeContext, resource: Resource) -> list[str]:
    """Served apiVersion, the expected namespace, and the cluster label the operator needs."""
    kafka = ctx.config.kafka
    found = [strimzi.version_problem(resource)]
    if resource.namespace != kafka.namespace:
        found.append(f"in namespace {resource.namespace}, expected {kafka.namespace} "
                     "(where the Strimzi operators watch)")
    found.append(strimzi.cluster_label_problem(resource, kafka.cluster))
    return [p for p in found if p]


@probe("kafka.topics-declared", kinds=["KafkaTopic"])
def topics_declared(ctx: ProbeContext, params: Params) -> Outcome:
    """Every planned topic has a KafkaTopic the Topic Operator will actually manage."""
    kafka = ctx.config.kafka
    if not kafka.topics:
        return skipped("config.kafka.topics is empty: no event types to check", "config")
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for topic in kafka.topics:
        candidates = _declaring(ctx, topic)
        good = [r for r in candidates if not _placement_problems(ctx, r)]
        if len(good) > 1:
            refs = ", ".join(r.ref for r in good)
            problems.append(ev(good[1].ref, f"topic {topic.name} declared twice ({refs}): the "
                                            "Topic Operator leaves the second not ready"))
        elif good:
            ok.append(ev(good[0].ref, f"declares topic {topic.name} for Kafka cluster "
                                      f"{kafka.cluster} ({good[0].api_version})"))
        elif candidates:
            problems += [ev(r.ref, p) for r in candidates for p in _placement_problems(ctx, r)]
        else:
            problems.append(ev(f"KafkaTopic/{kafka.namespace}/{topic.name}",
                               f"missing: no KafkaTopic declares topic {topic.name} "
                               "(spec.topicName or metadata.name)"))
    return verdict(problems, ok)


@probe("kafka.topic-replication", kinds=["KafkaTopic"])
def topic_replication(ctx: ProbeContext, params: Params) -> Outcome:
    """Declared topics carry the planned partitions, replicas, retention and cleanup policy."""
    kafka = ctx.config.kafka
    if not kafka.topics:
        return skipped("config.kafka.topics is empty: no event types to check", "config")
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for topic in kafka.topics:
        declared = [r for r in _declaring(ctx, topic)
                    if r.namespace == kafka.namespace and not strimzi.version_problem(r)]
        if not declared:
            problems.append(ev(f"KafkaTopic/{kafka.namespace}/{topic.name}",
                               f"missing: no KafkaTopic for topic {topic.name} in namespace "
                               f"{kafka.namespace}, so its partitions and replication are "
                               "not declared"))
        for resource in declared:
            found = strimzi.topic_problems(resource, topic)
            problems += [ev(resource.ref, p) for p in found]
            if not found:
                ok.append(ev(resource.ref, strimzi.describe_topic(resource)))
    return verdict(problems, ok)


@probe("kafka.user-acls", kinds=["KafkaUser"])
def user_acls(ctx: ProbeContext, params: Params) -> Outcome:
    """Each service's KafkaUser grants exactly what it produces, consumes and commits."""
    kafka = ctx.config.kafka
    if not kafka.users:
        return skipped("config.kafka.users is empty: no service principals to check", "config")
    users = strimzi.of_kind(ctx.inventory.of_kind("KafkaUser", namespace=kafka.namespace))
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for principal in kafka.users:
        found_users = [u for u in users if u.name == principal.name]
        if not found_users:
            problems.append(ev(f"KafkaUser/{kafka.namespace}/{principal.name}",
                               f"missing: no KafkaUser for {principal.name}; it needs "
                               f"{strimzi.describe_grants(principal)}"))
        for user in found_users:
            found = _placement_problems(ctx, user) + strimzi.acl_problems(user, principal)
            problems += [ev(user.ref, p) for p in found]
            if not found:
                ok.append(ev(user.ref, f"least privilege: {strimzi.describe_grants(principal)}"))
    return verdict(problems, ok)
