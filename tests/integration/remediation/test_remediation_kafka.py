"""The Kafka target (no Strimzi) on the real broker: topics created, configs altered and
ACLs created with the AdminClient; diffs per topic and per principal; rollback deletes
what the apply created and puts configs back; a broker rejection mid-way undoes the rest.
Names are unique per test: the broker is shared."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.engine.session import AuditSession
from soma_audit.remediation.apply import ApplyFailed, apply_plan, rollback
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.workflow import prepare
from soma_audit.services import connect_services
from soma_audit.sources.manifests import ManifestsSource

pytestmark = pytest.mark.integration


class Broker:
    def __init__(self, kafka_env: Any, prefix: str, tmp: Path,
                 topics: list[dict[str, Any]], users: list[dict[str, Any]]) -> None:
        repo = tmp / "repo"
        repo.mkdir()
        (repo / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\n"
                                      "metadata: {name: soma-agent-hub}\n")
        self.config = load_config(kafka={
            "bootstrap": kafka_env.bootstrap, "security_protocol": kafka_env.security_protocol,
            "sasl_mechanism": kafka_env.sasl_mechanism, "sasl_username": kafka_env.admin_user,
            "sasl_password": kafka_env.users[kafka_env.admin_user],
            "topics": topics, "users": users})
        self.session = AuditSession(ManifestsSource(repo), self.config, load_catalog(),
                                    tmp / "attestations.yaml",
                                    services=connect_services(self.config))
        self.store = BackupStore(tmp / "state")
        self.prefix = prefix
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient(kafka_env.client_config())

    def topics(self) -> set[str]:
        return {t for t in self.admin.list_topics(timeout=10).topics if t.startswith(self.prefix)}

    def retention(self, topic: str, want: tuple[str, bool] | None = None) -> tuple[str, bool]:
        """retention.ms of ``topic``; with ``want``, polled for a while (a broker answers
        describe_configs from metadata that may lag a just-acknowledged change)."""
        from confluent_kafka.admin import ConfigResource, ResourceType

        deadline = time.monotonic() + 10
        while True:
            (future,) = self.admin.describe_configs(
                [ConfigResource(ResourceType.TOPIC, topic)]).values()
            entry = future.result(timeout=10)["retention.ms"]
            found = entry.value, bool(entry.is_default)
            if want is None or found == want or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def acls(self, principal: str) -> list[Any]:
        from confluent_kafka.admin import (
            AclBindingFilter,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
        )

        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                                      principal, None, AclOperation.ANY, AclPermissionType.ANY)
        return list(self.admin.describe_acls(everything).result(timeout=10))

    def statuses(self, ids: set[str]) -> dict[str, str]:
        report = self.session.scan(only=ids)
        return {r.check.id: r.status.value for r in report.results if r.check.id in ids}

    def wait_gone(self, names: set[str]) -> None:
        deadline = time.monotonic() + 20
        while self.topics() & names and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not self.topics() & names


@pytest.fixture
def prefix(unique_name: Callable[[str], str]) -> str:
    return unique_name("rem") + "-"


def _topics(prefix: str, replicas: int = 1) -> list[dict[str, Any]]:
    return [
        {"name": f"{prefix}agent-events", "partitions": 3, "replicas": 1,
         "retention_ms": 604800000},
        {"name": f"{prefix}model-invocations", "partitions": 2, "replicas": replicas,
         "retention_ms": 2592000000},
    ]


def test_topics_diff_apply_rollback(kafka_env: Any, prefix: str, tmp_path: Path) -> None:
    broker = Broker(kafka_env, prefix, tmp_path, _topics(prefix), [])
    existing = f"{prefix}agent-events"
    # The failing state: one topic exists with the wrong retention, one is missing.
    from confluent_kafka.admin import NewTopic

    for future in broker.admin.create_topics([NewTopic(existing, 3, 1, config={
            "retention.ms": "1000"})]).values():
        future.result(timeout=20)
    assert broker.statuses({"kafka.live-topics"}) == {"kafka.live-topics": "fail"}

    plan = prepare(broker.session, "kafka-topics", "kafka")
    kinds = {c.where: c.kind for c in plan.changes}
    assert kinds == {f"topic {existing}": "update", f"topic {prefix}model-invocations": "create"}
    update = next(c for c in plan.changes if c.kind == "update")
    assert "-  retention.ms: '1000'\n+  retention.ms: '604800000'" in update.diff
    result = apply_plan(plan, broker.store)
    assert broker.topics() == {existing, f"{prefix}model-invocations"}
    assert broker.retention(existing, ("604800000", False)) == ("604800000", False)
    assert broker.statuses({"kafka.live-topics"}) == {"kafka.live-topics": "pass"}
    assert [c.kind for c in prepare(broker.session, "kafka-topics", "kafka").changes] == [
        "unchanged", "unchanged"]

    assert result.backup is not None
    assert rollback(broker.store.load(result.backup.id), plan.target, broker.store) == []
    broker.wait_gone({f"{prefix}model-invocations"})
    assert broker.topics() == {existing}
    assert broker.retention(existing, ("1000", False)) == ("1000", False)


def test_config_that_was_a_default_goes_back_to_default(kafka_env: Any, prefix: str,
                                                         tmp_path: Path) -> None:
    from confluent_kafka.admin import NewTopic

    topics = [{**_topics(prefix)[0], "retention_ms": 86400000}]
    broker = Broker(kafka_env, prefix, tmp_path, topics, [])
    for future in broker.admin.create_topics([NewTopic(topics[0]["name"], 3, 1)]).values():
        future.result(timeout=20)
    default = broker.retention(topics[0]["name"])
    assert default[1]
    plan = prepare(broker.session, "kafka-topics", "kafka")
    result = apply_plan(plan, broker.store)
    assert broker.retention(topics[0]["name"], ("86400000", False)) == ("86400000", False)
    assert result.backup is not None
    rollback(broker.store.load(result.backup.id), plan.target, broker.store)
    assert broker.retention(topics[0]["name"], default) == default


def test_broker_rejection_mid_way_leaves_nothing(kafka_env: Any, prefix: str,
                                                 tmp_path: Path) -> None:
    # Replication 3 on a one-broker cluster: the broker refuses the second topic.
    broker = Broker(kafka_env, prefix, tmp_path, _topics(prefix, replicas=3), [])
    plan = prepare(broker.session, "kafka-topics", "kafka")
    assert [c.kind for c in plan.changes] == ["create", "create"]
    with pytest.raises(ApplyFailed, match=r"model-invocations.*rolled back"):
        apply_plan(plan, broker.store)
    broker.wait_gone({f"{prefix}agent-events"})
    assert broker.topics() == set()
    assert broker.store.list()[0].status == "failed"


def test_acls_diff_apply_rollback(kafka_env: Any, prefix: str, tmp_path: Path) -> None:
    topics = _topics(prefix)[:1]
    user = f"{prefix}orchestrator"
    broker = Broker(kafka_env, prefix, tmp_path, topics, [
        {"name": user, "produces": [topics[0]["name"]], "groups": []}])
    principal = f"User:{user}"
    plan = prepare(broker.session, "kafka-users", "kafka")
    (change,) = plan.changes
    assert change.kind == "create" and change.where == f"ACLs of {principal}"
    assert f"+ALLOW WRITE on TOPIC {topics[0]['name']} (literal) from *" in change.diff
    assert any("credentials are not created" in n for n in plan.notes)
    result = apply_plan(plan, broker.store)
    created = broker.acls(principal)
    assert {(b.operation.name, b.name) for b in created} >= {("WRITE", topics[0]["name"])}
    assert [c.kind for c in prepare(broker.session, "kafka-users", "kafka").changes] == [
        "unchanged"]
    assert result.backup is not None
    assert rollback(broker.store.load(result.backup.id), plan.target, broker.store) == []
    deadline = time.monotonic() + 10
    while broker.acls(principal) and time.monotonic() < deadline:
        time.sleep(0.2)  # ACL changes reach describe_acls through metadata, not at once
    assert broker.acls(principal) == []
