"""The test broker is a real Kafka: topics with configs, SASL identities, enforced ACLs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

pytestmark = pytest.mark.integration

# librdkafka reports authorization failures on its log too; the test asserts them instead.
QUIET = logging.getLogger("tests.kafka.quiet")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def _create_topic(admin: AdminClient, name: str, partitions: int, config: dict[str, str]) -> None:
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)]
    )
    futures[name].result(timeout=30)


def _produce(kafka_env: Any, user: str, topic: str) -> KafkaError | None:
    """Produce one message as user; return the delivery error (None when delivered)."""
    outcome: list[KafkaError | None] = []
    producer = Producer(
        kafka_env.client_config(user, **{"message.timeout.ms": 15000, "logger": QUIET})
    )
    producer.produce(topic, b"event", on_delivery=lambda err, _msg: outcome.append(err))
    remaining = producer.flush(30)
    assert remaining == 0, "delivery report never came"
    return outcome[0]


def test_topic_is_created_and_described_with_its_configs(
    kafka_env: Any, unique_name: Callable[[str], str]
) -> None:
    admin = AdminClient(kafka_env.client_config(logger=QUIET))
    name = unique_name("agent-events")
    _create_topic(admin, name, 3, {"retention.ms": "604800000", "cleanup.policy": "delete"})
    metadata = admin.list_topics(topic=name, timeout=10)
    assert len(metadata.topics[name].partitions) == 3
    resource = ConfigResource(ResourceType.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["retention.ms"].value == "604800000"
    assert configs["cleanup.policy"].value == "delete"
    assert not configs["retention.ms"].is_default


def test_wrong_password_is_refused(kafka_env: Any) -> None:
    records: list[logging.LogRecord] = []
    collector = logging.getLogger("tests.kafka.auth")
    collector.propagate = False
    collector.setLevel(logging.DEBUG)
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    collector.addHandler(handler)
    settings = kafka_env.client_config(logger=collector)
    settings["sasl.password"] = "not-the-password"
    admin = AdminClient(settings)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(0.5)  # librdkafka hands its log lines to Python from poll()
    assert any("Authentication failed" in record.getMessage() for record in records)


def test_acl_denies_unauthorised_produce_and_allows_authorised_one(
    kafka_env: Any, unique_name: Callable[[str], str]
) -> None:
    admin = AdminClient(kafka_env.client_config(logger=QUIET))
    topic = unique_name("model-invocations")
    _create_topic(admin, topic, 1, {})
    grants = [
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                   "User:analytics-service", "*", operation, AclPermissionType.ALLOW)
        for operation in (AclOperation.WRITE, AclOperation.DESCRIBE)
    ]  # fmt: skip
    for future in admin.create_acls(grants).values():
        future.result(timeout=30)
    acl_filter = AclBindingFilter(
        ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
        None, None, AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(admin.describe_acls(acl_filter).result(timeout=30)) < 2:
        assert time.monotonic() < deadline, "ACLs never became visible"
        time.sleep(0.5)

    denied = _produce(kafka_env, "orchestrator", topic)
    assert denied is not None
    assert denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    assert _produce(kafka_env, "analytics-service", topic) is None

    # The authorised message really landed: the super user reads it back.
    consumer = Consumer(
        kafka_env.client_config(
            **{"group.id": unique_name("verify"), "auto.offset.reset": "earliest",
               "logger": QUIET}
        )
    )  # fmt: skip
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        message = None
        while message is None or message.error():
            assert time.monotonic() < deadline, "produced message not consumed"
            message = consumer.poll(1.0)
        assert message.value() == b"event"
    finally:
        consumer.close()
