"""Strimzi KafkaTopic and KafkaUser objects as data — the logic behind the ``kafka.*`` checks.

Strimzi serves ``kafka.strimzi.io/v1`` since 0.49 and removed ``v1beta2`` in 1.0; both are
audited. The operators only pick up objects labelled ``strimzi.io/cluster: <Kafka name>``.
A KafkaTopic's replication factor is ``spec.replicas`` (the plan's ``replicationFactor`` is
not a field), and a v1 ACL lists ``operations`` (the singular ``operation`` is gone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from soma_audit.config import KafkaPrincipal, Topic
from soma_audit.core.durations import format_duration
from soma_audit.kube.inventory import Resource

GROUP = "kafka.strimzi.io"
VERSIONS = ("v1", "v1beta2")
CLUSTER_LABEL = "strimzi.io/cluster"
TOPIC_FIELDS = ("topicName", "partitions", "replicas", "config")

#: The operation a producer needs on its topics, and a consumer on its topics and groups.
#: Describe is also allowed on them: Kafka implies it from Read/Write, so it widens nothing.
_PRODUCER, _CONSUMER = "Write", "Read"


def _mapping(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def of_kind(resources: Iterable[Resource]) -> list[Resource]:
    """The Strimzi objects among ``resources`` (other groups reuse the kind names rarely)."""
    return [r for r in resources if r.group == GROUP]


def version_problem(resource: Resource) -> str | None:
    """Why the apiVersion is not one current Strimzi serves, or None."""
    version = resource.api_version.rpartition("/")[2]
    if version in VERSIONS:
        return None
    return (
        f"apiVersion {resource.api_version} is not served by current Strimzi "
        f"(expected {GROUP}/v1, or {GROUP}/v1beta2 before Strimzi 1.0)"
    )


def cluster_label_problem(resource: Resource, cluster: str) -> str | None:
    """Without the right ``strimzi.io/cluster`` label the operator ignores the object."""
    found = resource.labels.get(CLUSTER_LABEL)
    if found is None:
        return (
            f"metadata.labels.{CLUSTER_LABEL} unset: the Strimzi operator ignores it, "
            f"expected {cluster!r}"
        )
    if found != cluster:
        return (
            f"metadata.labels.{CLUSTER_LABEL}={found!r}: owned by another Kafka cluster, "
            f"expected {cluster!r}"
        )
    return None


def topic_name(resource: Resource) -> str:
    """The Kafka topic a KafkaTopic manages: ``spec.topicName``, else its own name."""
    name = resource.spec.get("topicName")
    return name if isinstance(name, str) and name else resource.name


def _as_int(value: Any) -> int | None:
    """Kafka configs may be written as numbers or numeric strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _policies(value: Any) -> frozenset[str] | None:
    """``cleanup.policy`` as a set: "compact,delete" and [compact, delete] are the same."""
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        return None
    return frozenset(p.strip() for p in value.split(",") if p.strip())


def _ms(value: int) -> str:
    return f"{value} ({format_duration(dt.timedelta(milliseconds=value))})"


def _count_problem(spec: dict[str, Any], key: str, expected: int) -> str | None:
    found = spec.get(key)
    if found is None:
        return f"spec.{key} unset (the broker default applies), expected {expected}"
    if found != expected or isinstance(found, bool):
        return f"spec.{key}={found!r}, expected {expected}"
    return None


def topic_problems(resource: Resource, topic: Topic) -> list[str]:
    """Expected vs found partitions, replicas and configs of a KafkaTopic."""
    spec = resource.spec
    found: list[str] = []
    for key, value in spec.items():
        if key == "replicationFactor":
            found.append(
                f"spec.replicationFactor={value!r} is not a KafkaTopic field (unknown: the API "
                "server drops it, so the broker default applies); the replication factor is "
                "spec.replicas"
            )
        elif key not in TOPIC_FIELDS:
            found.append(f"spec.{key} is not a KafkaTopic field (unknown)")
    found += [
        problem
        for problem in (
            _count_problem(spec, "partitions", topic.partitions),
            _count_problem(spec, "replicas", topic.replicas),
        )
        if problem
    ]
    config = _mapping(spec.get("config")) or {}
    numbers = {"retention.ms": topic.retention_ms, "min.insync.replicas": topic.min_insync_replicas}
    for key, expected in numbers.items():
        if expected is None:
            continue
        shown = _ms(expected) if key == "retention.ms" else str(expected)
        value = config.get(key)
        if value is None:
            found.append(f"spec.config.{key} unset (the broker default applies), expected {shown}")
        elif _as_int(value) != expected:
            found.append(f"spec.config.{key}={value!r}, expected {shown}")
    policy = config.get("cleanup.policy")
    if policy is None:
        found.append(
            f"spec.config.cleanup.policy unset (the broker default applies), "
            f"expected {topic.cleanup_policy!r}"
        )
    elif _policies(policy) != _policies(topic.cleanup_policy):
        found.append(f"spec.config.cleanup.policy={policy!r}, expected {topic.cleanup_policy!r}")
    return found


def describe_topic(resource: Resource) -> str:
    spec = resource.spec
    config = _mapping(spec.get("config")) or {}
    settings = ", ".join(f"{k}={v}" for k, v in sorted(config.items()))
    return (
        f"topic {topic_name(resource)}: {spec.get('partitions')} partitions, "
        f"{spec.get('replicas')} replicas" + (f", {settings}" if settings else "")
    )


@dataclass(frozen=True)
class Grant:
    """One ``spec.authorization.acls[]`` entry, read."""

    index: int
    resource_type: str
    name: str
    pattern: str
    operations: frozenset[str]
    allow: bool

    def covers(self, resource_type: str, name: str, operation: str) -> bool:
        """Kafka's matching: literal name or ``*``, prefix pattern, or operation All."""
        if self.resource_type != resource_type:
            return False
        if self.pattern == "prefix":
            name_ok = name.startswith(self.name)
        else:
            name_ok = self.name in ("*", name)
        return name_ok and (operation in self.operations or "All" in self.operations)


def needs(principal: KafkaPrincipal) -> dict[tuple[str, str], frozenset[str]]:
    """(resource type, name) → the operations the principal must hold there."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for topic in principal.produces:
        wanted.setdefault(("topic", topic), set()).add(_PRODUCER)
    for topic in principal.consumes:
        wanted.setdefault(("topic", topic), set()).add(_CONSUMER)
    for group in principal.groups:
        wanted.setdefault(("group", group), set()).add(_CONSUMER)
    return {key: frozenset(ops) for key, ops in wanted.items()}


def _ordered(wanted: dict[tuple[str, str], frozenset[str]]
             ) -> list[tuple[tuple[str, str], frozenset[str]]]:
    """Topics first, then groups, each by name: the order evidence reads best in."""
    return sorted(wanted.items(), key=lambda item: (item[0][0] != "topic", item[0]))


def _role(resource_type: str, operations: frozenset[str]) -> str:
    """Why the principal needs ``operations`` on a resource of ``resource_type``."""
    if resource_type == "group":
        return "consumes as this group"
    roles = {_PRODUCER: "produces to it", _CONSUMER: "consumes from it"}
    return " and ".join(roles[o] for o in sorted(operations, reverse=True))


def _read_grant(acl: Any, index: int, served_v1: bool) -> tuple[Grant | None, list[str]]:
    where = f"spec.authorization.acls[{index}]"
    if not isinstance(acl, dict):
        return None, [f"{where} is not a mapping"]
    problems = []
    resource = _mapping(acl.get("resource"))
    if resource is None or not resource.get("type"):
        return None, [f"{where}.resource.type missing (topic, group, cluster or transactionalId)"]
    operations = acl.get("operations")
    operations = {str(o) for o in operations} if isinstance(operations, list) else set()
    if "operation" in acl:
        if served_v1:
            problems.append(
                f"{where}.operation={acl['operation']!r} is not a field of {GROUP}/v1 "
                "(removed; use operations: [...]), so it grants nothing"
            )
        else:
            operations.add(str(acl["operation"]))
    if not operations:
        problems.append(f"{where}.operations missing or empty")
    if resource["type"] != "cluster" and not resource.get("name"):
        return None, [*problems, f"{where}.resource.name missing"]
    grant = Grant(
        index=index,
        resource_type=str(resource["type"]),
        name=str(resource.get("name", "kafka-cluster")),
        pattern=str(resource.get("patternType", "literal")),
        operations=frozenset(operations),
        allow=acl.get("type", "allow") != "deny",
    )
    return grant, problems


def _breadth_problems(grant: Grant, principal: KafkaPrincipal,
                      wanted: dict[tuple[str, str], frozenset[str]]) -> list[str]:
    """Where an allow grant reaches beyond what the principal needs."""
    where = f"spec.authorization.acls[{grant.index}]"
    what = f"{grant.resource_type} {grant.name!r}"
    if grant.resource_type not in ("topic", "group"):
        return [f"{where}: grants {', '.join(sorted(grant.operations))} on {what}, which "
                f"{principal.name} does not need"]
    found = []
    if "All" in grant.operations:
        found.append(f"{where}.operations includes All on {what}: grants every operation")
    if grant.pattern == "prefix":
        found.append(f"{where}.resource.patternType=prefix: grants every {grant.resource_type} "
                     f"whose name starts with {grant.name!r}")
    elif grant.name == "*":
        found.append(f"{where}.resource.name='*': grants every {grant.resource_type}")
    if found:
        return found
    needed = wanted.get((grant.resource_type, grant.name))
    if needed is None:
        return [f"{where}: {what} is not used by {principal.name} (not in its plan)"]
    extra = grant.operations - needed - {"Describe"}
    if extra:
        return [f"{where}: {', '.join(sorted(extra))} on {what} not needed "
                f"({principal.name} only {_role(grant.resource_type, needed)})"]
    return []


def _access_problems(principal: KafkaPrincipal, wanted: dict[tuple[str, str], frozenset[str]],
                     grants: list[Grant]) -> list[str]:
    """Needed operations no allow grant covers, or a deny grant takes away."""
    found = []
    for (kind, name), operations in _ordered(wanted):
        for operation in sorted(operations):
            what = f"{operation} on {kind} {name!r}"
            if not any(g.allow and g.covers(kind, name, operation) for g in grants):
                role = _role(kind, frozenset({operation}))
                found.append(f"missing {what} ({principal.name} {role})")
                continue
            denied = [g for g in grants if not g.allow and g.covers(kind, name, operation)]
            if denied:
                found.append(f"{what} is denied by spec.authorization.acls[{denied[0].index}]")
    return found


def acl_problems(user: Resource, principal: KafkaPrincipal) -> list[str]:
    """Everything between a KafkaUser's ACLs and exactly the principal's least privilege."""
    authorization = _mapping(user.spec.get("authorization"))
    if authorization is None:
        return ["spec.authorization unset: no ACLs, expected type simple with least-privilege acls"]
    problems = []
    if authorization.get("type") != "simple":
        problems.append(f"spec.authorization.type={authorization.get('type')!r}, expected simple")
    acls = authorization.get("acls")
    acls = acls if isinstance(acls, list) else []
    served_v1 = user.api_version == f"{GROUP}/v1"
    wanted = needs(principal)
    grants = []
    for index, acl in enumerate(acls):
        grant, found = _read_grant(acl, index, served_v1)
        problems += found
        if grant is not None:
            grants.append(grant)
            if grant.allow:
                problems += _breadth_problems(grant, principal, wanted)
    return problems + _access_problems(principal, wanted, grants)


def describe_grants(principal: KafkaPrincipal) -> str:
    """The least privilege of a principal, for passing evidence."""
    wanted = needs(principal)
    if not wanted:
        return "no ACLs needed, none granted"
    return "; ".join(
        f"{'/'.join(sorted(ops))} on {kind} {name}" for (kind, name), ops in _ordered(wanted)
    )
