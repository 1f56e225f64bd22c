"""Kafka: a thin client over confluent-kafka's AdminClient (plus a Producer/Consumer pair
for the opt-in canary) and the pure logic the live checks need — topic drift, least
privilege of each principal's ACLs, and consumer lag.

Least privilege follows :mod:`soma_audit.domain.kafka` (the declared KafkaUsers): a producer
needs WRITE on its topics, a consumer READ on its topics and groups; DESCRIBE on those is
tolerated because Kafka implies it from READ/WRITE. Anything else that an ALLOW binding
of ``User:<name>`` (or ``User:*``, which applies to everyone) grants is excess: operation
ALL, a ``*`` or prefixed resource, another topic or group, the cluster, transactional ids.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from soma_audit.services.base import Failure, Guard, ServiceError, one_line, redact

if TYPE_CHECKING:
    from soma_audit.config import Kafka, KafkaPrincipal, Topic

T = TypeVar("T")
NAME = "Kafka"
log = logging.getLogger(__name__)

#: A partition as (topic, partition number).
Partition = tuple[str, int]

PRODUCE, CONSUME, DESCRIBE, ALL = "WRITE", "READ", "DESCRIBE", "ALL"


# -- pure logic -------------------------------------------------------------------------

@dataclass(frozen=True)
class TopicState:
    """A topic as the broker describes it."""

    name: str
    partitions: int
    #: Replica count of each partition, in partition order.
    replicas: tuple[int, ...]


def topic_differences(expected: Topic, state: TopicState, configs: dict[str, str]) -> list[str]:
    """How a broker topic differs from its planned definition (empty when it matches)."""
    found = []
    if state.partitions != expected.partitions:
        found.append(f"{state.partitions} partitions, expected {expected.partitions}")
    wrong = sorted({r for r in state.replicas if r != expected.replicas})
    if wrong:
        found.append(f"replication factor {'/'.join(map(str, wrong))}, "
                     f"expected {expected.replicas}")
    wanted = {
        "retention.ms": expected.retention_ms,
        "cleanup.policy": expected.cleanup_policy,
        "min.insync.replicas": expected.min_insync_replicas,
    }
    for key, value in wanted.items():
        if value is None:
            continue
        got = configs.get(key)
        if got is None:
            found.append(f"{key} not reported by the broker, expected {value}")
        elif _config_value(key, got) != _config_value(key, str(value)):
            found.append(f"{key}={got}, expected {value}")
    return found


def _config_value(key: str, value: str) -> str | frozenset[str]:
    """``cleanup.policy`` is a list (``compact,delete``): compare it as a set."""
    if key == "cleanup.policy":
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    return value.strip()


@dataclass(frozen=True)
class Acl:
    """One ACL binding as the broker reports it (enum names upper-cased, as Kafka's)."""

    principal: str
    resource_type: str
    name: str
    pattern: str
    operation: str
    permission: str
    host: str = "*"

    def covers(self, resource_type: str, name: str, operation: str) -> bool:
        """Kafka's matching: literal name or ``*``, prefixed pattern, operation or ALL."""
        if self.resource_type != resource_type:
            return False
        if self.pattern == "PREFIXED":
            name_ok = name.startswith(self.name)
        else:
            name_ok = self.name in ("*", name)
        return name_ok and self.operation in (operation, ALL)

    def describe(self) -> str:
        host = "" if self.host in ("*", "") else f" from host {self.host}"
        pattern = "" if self.pattern == "LITERAL" else f" ({self.pattern.lower()})"
        return (f"{self.permission} {self.operation} on {self.resource_type} "
                f"{self.name!r}{pattern} for {self.principal}{host}")


def needs(principal: KafkaPrincipal) -> dict[tuple[str, str], frozenset[str]]:
    """(resource type, name) → the operations the principal must be allowed there."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for topic in principal.produces:
        wanted.setdefault(("TOPIC", topic), set()).add(PRODUCE)
    for topic in principal.consumes:
        wanted.setdefault(("TOPIC", topic), set()).add(CONSUME)
    for group in principal.groups:
        wanted.setdefault(("GROUP", group), set()).add(CONSUME)
    return {key: frozenset(ops) for key, ops in wanted.items()}


def _role(resource_type: str, operation: str) -> str:
    if resource_type == "GROUP":
        return "consumes as this group"
    return "produces to it" if operation == PRODUCE else "consumes from it"


def _excess(acl: Acl, principal: str, wanted: dict[tuple[str, str], frozenset[str]]) -> str | None:
    """Why an ALLOW binding reaches beyond the principal's plan, or None."""
    what = acl.describe()
    if acl.principal == "User:*":
        what += " (applies to every principal)"
    if acl.operation == ALL:
        return f"excess: {what} — grants every operation"
    if acl.resource_type not in ("TOPIC", "GROUP"):
        return f"excess: {what} — {principal} needs nothing on the {acl.resource_type.lower()}"
    if acl.pattern == "PREFIXED":
        return (f"excess: {what} — grants every {acl.resource_type.lower()} whose name starts "
                f"with {acl.name!r}")
    if acl.name == "*":
        return f"excess: {what} — grants every {acl.resource_type.lower()}"
    needed = wanted.get((acl.resource_type, acl.name))
    if needed is None:
        return f"excess: {what} — not in {principal}'s plan"
    if acl.operation not in needed | {DESCRIBE}:
        roles = " and ".join(sorted({_role(acl.resource_type, op) for op in needed}))
        return f"excess: {what} — not needed ({principal} only {roles})"
    return None


def acl_findings(principal: KafkaPrincipal, acls: Iterable[Acl]) -> tuple[list[str], int]:
    """(problems, number of bindings that apply) between the broker's ACLs and exactly
    the principal's least privilege: each excess binding, each missing or denied grant."""
    name = f"User:{principal.name}"
    applicable = sorted((a for a in acls if a.principal in (name, "User:*")),
                        key=lambda a: (a.resource_type != "TOPIC", a.resource_type, a.name,
                                       a.operation, a.principal))
    allows = [a for a in applicable if a.permission == "ALLOW"]
    denies = [a for a in applicable if a.permission == "DENY"]
    wanted = needs(principal)
    problems = [p for a in allows if (p := _excess(a, principal.name, wanted))]
    for (resource_type, resource), operations in sorted(
        wanted.items(), key=lambda item: (item[0][0] != "TOPIC", item[0])
    ):
        for operation in sorted(operations):
            what = f"{operation} on {resource_type} {resource!r}"
            why = f"{principal.name} {_role(resource_type, operation)}"
            if not any(a.covers(resource_type, resource, operation) for a in allows):
                problems.append(f"missing: ALLOW {what} for {name} ({why})")
                continue
            denied = [a for a in denies if a.covers(resource_type, resource, operation)]
            if denied:
                problems.append(f"denied: {what} is taken away by {denied[0].describe()} "
                                f"({why})")
    return problems, len(applicable)


def group_lag(committed: dict[Partition, int], high: dict[Partition, int]
              ) -> tuple[int, list[tuple[Partition, int]]]:
    """(total lag, per-partition lag) of a group: high watermark - committed offset over
    the partitions it has committed (negative offsets mean "no commit" and are skipped)."""
    per_partition = []
    for partition, offset in sorted(committed.items()):
        if offset < 0 or partition not in high:
            continue
        per_partition.append((partition, max(0, high[partition] - offset)))
    return sum(lag for _, lag in per_partition), per_partition


# -- the client -------------------------------------------------------------------------

class _Quiet:
    """librdkafka's log lines go to our debug log: failures reach the report as errors,
    so repeating them on stderr (once per reconnect attempt) is only noise."""

    def log(self, level: int, message: str, *args: Any) -> None:
        log.debug(message, *args)


@dataclass(frozen=True)
class RoundTrip:
    """The canary message produced and read back."""

    partition: int
    offset: int
    seconds: float


class KafkaService:
    """Read-only access to the cluster (the config's ``kafka`` section); the canary round
    trip is the only write, and only when the caller asks for it."""

    name = NAME

    def __init__(self, settings: Kafka) -> None:
        self.bootstrap = settings.bootstrap or ""
        self._settings = settings
        self._timeout = settings.timeout_seconds
        self._secrets = [settings.sasl_password]
        self._admin: Any = None
        self._errors: list[Any] = []
        self._guard = Guard(ttl=max(5.0, 2 * self._timeout))

    def __repr__(self) -> str:
        return f"KafkaService(bootstrap={self.bootstrap!r})"

    def _client_config(self, **extra: Any) -> dict[str, Any]:
        settings = self._settings
        milliseconds = max(1000, int(self._timeout * 1000))
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": settings.security_protocol,
            "client.id": "soma-audit",
            "socket.timeout.ms": milliseconds,
            "socket.connection.setup.timeout.ms": milliseconds,
            "reconnect.backoff.ms": 200,
            "logger": _Quiet(),
            "error_cb": self._errors.append,
        }
        if settings.sasl_mechanism:
            config["sasl.mechanism"] = settings.sasl_mechanism
        if settings.sasl_username is not None:
            config["sasl.username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl.password"] = settings.sasl_password
        return {**config, **extra}

    def _client(self) -> Any:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            try:
                self._admin = AdminClient(self._client_config())
            except Exception as exc:  # bad settings (unknown protocol, mechanism ...)
                raise self._guard.record(ServiceError(
                    NAME, Failure.REJECTED, self._text(f"client settings: {exc}"))) from None
            self._metadata()  # first contact: fail fast when unreachable/unauthorised
        return self._admin

    def _text(self, message: str) -> str:
        return one_line(redact(message, self._secrets))

    def _connection_failure(self) -> ServiceError | None:
        """The cause librdkafka reported through error_cb, when it is about the connection."""
        if self._admin is not None:
            self._admin.poll(0)
        errors, self._errors[:] = list(self._errors), []
        by_name = {e.name(): e for e in errors}
        if "_AUTHENTICATION" in by_name:
            detail = _strip_broker(by_name["_AUTHENTICATION"].str())
            # A connection lost during the SASL handshake is reported as an authentication
            # error too; the credentials were not refused.
            lost = "Broker transport failure" in detail
            return ServiceError(NAME, Failure.UNREACHABLE if lost else Failure.UNAUTHORISED,
                                self._text(f"{self.bootstrap}: {detail}"))
        for name in ("_SSL", "_TRANSPORT", "_RESOLVE"):
            if name in by_name and "_ALL_BROKERS_DOWN" in by_name:
                detail = _strip_broker(by_name[name].str())
                return ServiceError(NAME, Failure.UNREACHABLE,
                                    self._text(f"{self.bootstrap}: {detail}"))
        return None

    def _metadata(self, topic: str | None = None) -> Any:
        """Cluster metadata; retried in short slices so a refused connection or a failed
        SASL handshake is reported at once instead of after the whole timeout. Each slice
        is twice the last: a request abandoned when its slice ends is not answered later,
        so fixed short slices would never reach a broker slower than one slice."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + self._timeout
        wait = 0.25
        while True:
            remaining = deadline - time.monotonic()
            try:
                return self._admin.list_topics(topic=topic, timeout=max(0.05, min(wait, remaining)))
            except KafkaException as exc:
                wait *= 2
                failure = self._connection_failure()
                if failure is not None:
                    raise self._guard.record(failure) from None
                if deadline - time.monotonic() <= 0:
                    raise self._guard.record(ServiceError(
                        NAME, Failure.TIMEOUT,
                        self._text(f"{self.bootstrap}: no metadata within {self._timeout:g}s "
                                   f"({exc.args[0].str() if exc.args else exc})"))) from None

    def _call(self, what: str, call: Callable[[Any], T]) -> T:
        """Run ``call(admin client)`` with every failure turned into a safe ServiceError."""
        self._guard.check()
        admin = self._client()
        admin.poll(0)  # errors reported before this call are not about it
        self._errors.clear()
        try:
            return call(admin)
        except ServiceError:
            raise
        except FutureTimeout:
            failure = self._connection_failure() or ServiceError(
                NAME, Failure.TIMEOUT, self._text(f"{what}: no answer within {self._timeout:g}s"))
            raise self._guard.record(failure) from None
        except Exception as exc:
            raise self._guard.record(self._translate(what, exc)) from None

    def _translate(self, what: str, exc: Exception) -> ServiceError:
        from confluent_kafka import KafkaException

        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if error is None or not hasattr(error, "name"):
            return ServiceError(NAME, Failure.BAD_RESPONSE,
                                self._text(f"{what}: {type(exc).__name__}: {exc}"))
        name, text = error.name(), _strip_broker(error.str())
        if name.endswith("AUTHORIZATION_FAILED"):
            return ServiceError(NAME, Failure.FORBIDDEN,
                                self._text(f"{what}: {text} (the audit principal needs "
                                           "Describe/DescribeConfigs on the cluster, topics "
                                           "and groups)"))
        if name == "SECURITY_DISABLED":
            return ServiceError(NAME, Failure.REJECTED, self._text(f"{what}: {name}: {text}"))
        if name in ("_TIMED_OUT", "REQUEST_TIMED_OUT"):
            return ServiceError(NAME, Failure.TIMEOUT, self._text(f"{what}: {text}"))
        if name in ("UNKNOWN_TOPIC_OR_PART", "GROUP_ID_NOT_FOUND"):
            return ServiceError(NAME, Failure.NOT_FOUND, self._text(f"{what}: {text}"))
        failure = self._connection_failure()
        if failure is not None:
            return failure
        return ServiceError(NAME, Failure.REJECTED, self._text(f"{what}: {name}: {text}"))

    # -- reads --

    def topics(self) -> dict[str, TopicState]:
        """Every topic the audit principal may describe (internal ones excluded)."""
        def read(admin: Any) -> dict[str, TopicState]:
            metadata = self._metadata()
            found = {}
            for name, topic in metadata.topics.items():
                if name.startswith("__") or topic.error is not None:
                    continue
                partitions = [topic.partitions[p] for p in sorted(topic.partitions)]
                found[name] = TopicState(name, len(partitions),
                                         tuple(len(p.replicas) for p in partitions))
            return found

        return self._call("list topics", read)

    def topic(self, name: str) -> TopicState | None:
        """One topic asked for by name: None when it does not exist. Listing all topics
        silently leaves out those the audit principal may not describe; asked by name, the
        broker says which (a FORBIDDEN error), so "missing" is never a guess."""
        def read(admin: Any) -> TopicState | None:
            found = self._metadata(topic=name).topics.get(name)
            if found is None:
                return None
            if found.error is not None:
                if found.error.name() in ("UNKNOWN_TOPIC_OR_PART", "UNKNOWN_TOPIC_ID"):
                    return None
                raise ServiceError(NAME, _failure_of(found.error.name()), self._text(
                    f"describe topic {name}: {found.error.name()}: "
                    f"{_strip_broker(found.error.str())}"))
            partitions = [found.partitions[p] for p in sorted(found.partitions)]
            return TopicState(name, len(partitions), tuple(len(p.replicas) for p in partitions))

        return self._call(f"describe topic {name}", read)

    def group_state(self, group: str) -> str | None:
        """The state of one group asked for by name; None when it does not exist (Kafka
        describes unknown groups as DEAD). Raises FORBIDDEN when it may not be described —
        listing groups leaves those out silently."""
        def read(admin: Any) -> str | None:
            futures = admin.describe_consumer_groups([group], request_timeout=self._timeout)
            description = futures[group].result(timeout=self._timeout + 1)
            state = description.state.name
            return None if state in ("DEAD", "UNKNOWN") and not description.members else state

        return self._call(f"describe group {group}", read)

    def topic_configs(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        """Effective configs (explicit or broker default) of each topic."""
        from confluent_kafka.admin import ConfigResource, ResourceType

        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        if not resources:
            return {}

        def read(admin: Any) -> dict[str, dict[str, str]]:
            futures = admin.describe_configs(resources, request_timeout=self._timeout)
            return {
                resource.name: {k: str(v.value) for k, v in
                                future.result(timeout=self._timeout + 1).items()
                                if v.value is not None}
                for resource, future in futures.items()
            }

        return self._call("describe topic configs", read)

    def acls(self) -> list[Acl]:
        """Every ACL binding on the cluster (needs Describe on the cluster)."""
        from confluent_kafka.admin import (
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                      AclOperation.ANY, AclPermissionType.ANY)

        def read(admin: Any) -> list[Acl]:
            # A principal without Describe on the cluster gets an empty ACL list, not an
            # error: ask what it may do first (KIP-430, Kafka >= 2.3; librdkafka reports an
            # empty set as None), so "no ACLs" is never a guess.
            cluster = admin.describe_cluster(include_authorized_operations=True,
                                             request_timeout=self._timeout)
            allowed = cluster.result(timeout=self._timeout + 1).authorized_operations or []
            if not {o.name for o in allowed} & {"DESCRIBE", "ALL"}:
                raise ServiceError(NAME, Failure.FORBIDDEN, self._text(
                    f"describe ACLs: the audit principal may not (it needs Describe on the "
                    f"cluster of {self.bootstrap})"))
            bindings = admin.describe_acls(everything, request_timeout=self._timeout)
            return [
                Acl(str(b.principal), b.restype.name, str(b.name),
                    b.resource_pattern_type.name, b.operation.name, b.permission_type.name,
                    str(b.host))
                for b in bindings.result(timeout=self._timeout + 1)
            ]

        return self._call("describe ACLs", read)

    def groups(self) -> dict[str, str]:
        """Consumer group id → state (STABLE, EMPTY, ...)."""
        from confluent_kafka import KafkaException

        def read(admin: Any) -> dict[str, str]:
            result = admin.list_consumer_groups(request_timeout=self._timeout).result(
                timeout=self._timeout + 1)
            if result.errors and not result.valid:
                error = result.errors[0]
                raise error if isinstance(error, BaseException) else KafkaException(error)
            return {g.group_id: g.state.name for g in result.valid}

        return self._call("list consumer groups", read)

    def committed(self, group: str) -> dict[Partition, int]:
        """The group's committed offset of every partition it has committed."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        def read(admin: Any) -> dict[Partition, int]:
            futures = admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=self._timeout)
            result = futures[group].result(timeout=self._timeout + 1)
            return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or []}

        return self._call(f"committed offsets of group {group}", read)

    def high_watermarks(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """The log end offset of each partition."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in set(partitions)}
        if not request:
            return {}

        def read(admin: Any) -> dict[Partition, int]:
            futures = admin.list_offsets(request, request_timeout=self._timeout)
            return {(tp.topic, tp.partition): f.result(timeout=self._timeout + 1).offset
                    for tp, f in futures.items()}

        return self._call("high watermarks", read)

    # -- the opt-in write --

    def round_trip(self, topic: str) -> RoundTrip:
        """Produce one uniquely keyed message to ``topic`` and read it back from the
        partition and offset the broker acknowledged. Commits nothing, creates no group."""
        from confluent_kafka import Consumer, Producer, TopicPartition

        self._guard.check()
        self._client()
        key = f"soma-audit-canary-{uuid.uuid4().hex}".encode()
        started = time.monotonic()
        deadline = started + self._timeout
        milliseconds = max(1000, int(self._timeout * 1000))
        reports: list[tuple[Any, Any]] = []
        producer = Producer(self._client_config(**{
            "acks": "all", "message.timeout.ms": milliseconds, "linger.ms": 0}))
        try:
            producer.produce(topic, key=key, value=b'{"probe": "soma-audit canary"}',
                             on_delivery=lambda err, msg: reports.append((err, msg)))
            producer.flush(max(0.1, deadline - time.monotonic()))
        except Exception as exc:
            raise self._translate(f"produce to {topic}", exc) from None
        if not reports:
            raise ServiceError(NAME, Failure.TIMEOUT, self._text(
                f"produce to {topic}: not acknowledged within {self._timeout:g}s"))
        error, message = reports[0]
        if error is not None:
            raise ServiceError(NAME, _failure_of(error.name()), self._text(
                f"produce to {topic}: {error.name()}: {_strip_broker(error.str())}"))
        partition, offset = message.partition(), message.offset()
        consumer = Consumer(self._client_config(**{
            "group.id": f"soma-audit-canary-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }))
        try:
            consumer.assign([TopicPartition(topic, partition, offset)])
            while time.monotonic() < deadline:
                read = consumer.poll(min(0.5, max(0.05, deadline - time.monotonic())))
                if read is None:
                    continue
                if read.error() is not None:
                    raise ServiceError(NAME, _failure_of(read.error().name()), self._text(
                        f"consume from {topic}: {read.error().name()}: "
                        f"{_strip_broker(read.error().str())}"))
                if read.key() == key:
                    return RoundTrip(partition, offset, time.monotonic() - started)
        finally:
            consumer.close()
        raise ServiceError(NAME, Failure.TIMEOUT, self._text(
            f"the canary written to {topic}[{partition}]@{offset} was not read back within "
            f"{self._timeout:g}s"))


def _failure_of(error_name: str) -> Failure:
    """An authorization error is the audit identity's problem (forbidden), anything else a
    refusal of the operation itself."""
    return Failure.FORBIDDEN if error_name.endswith("AUTHORIZATION_FAILED") else Failure.REJECTED


def _strip_broker(text: str) -> str:
    """librdkafka prefixes errors with ``sasl_plaintext://host:port/bootstrap: ``."""
    _, sep, rest = text.partition("/bootstrap: ")
    text = rest if sep else text
    return text.split(" (after ", 1)[0]
