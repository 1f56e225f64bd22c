"""Fixtures of the live-probe tests: the real OpenFGA, Kafka and Prometheus of the test
environment (tests/integration/conftest.py), plus what only these tests need:

- ``run_live``: audit some checks in-process with live service clients built from a
  config, exactly as the CLI does (``connect_services``);
- fresh OpenFGA stores, fresh Kafka topics/principals/groups (the environment is shared);
- ``alerting_prometheus``: a second, private Prometheus whose rule files add SLO alerts
  and which sends to a real Alertmanager (Debian ``prometheus-alertmanager``), and
  ``bare_prometheus`` without either — the shared instance is left as it is.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.model import Result
from soma_audit.engine.scan import AuditRequest, run_audit
from soma_audit.services import connect_services
from soma_audit.sources.manifests import ManifestsSource
from testenv.proc import free_port

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "demo" / "soma-gitops"
FGA_MODEL = DEMO / "infra/openfga/model.fga"
FGA_TESTS = DEMO / "infra/openfga/model.fga.yaml"

#: The SLO alerts the private Prometheus loads (SRE-workbook burn rates over the SLIs the
#: shared rules.yml records).
SLO_ALERTS = {
    "groups": [{
        "name": "soma-slo-alerts",
        "interval": "5s",
        "rules": [
            {"alert": "SLOErrorBudgetBurnFast",
             "expr": "sli:error:ratio_rate5m > (14.4 * 0.001)",
             "for": "2m",
             "labels": {"severity": "critical"},
             "annotations": {"runbook_url": "docs/runbooks/SLOErrorBudgetBurnFast.md"}},
            {"alert": "SLOLatencyP99High",
             "expr": "sli:latency_seconds:p99_rate5m > 0.5",
             "for": "10m",
             "labels": {"severity": "warning"},
             "annotations": {"runbook_url": "docs/runbooks/SLOLatencyP99High.md"}},
        ],
    }],
}


def get_json(url: str, body: Any = None, method: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


@dataclass
class Live:
    """Runs checks in-process against live services built from a config."""

    tmp: Path

    def repo(self, *files: tuple[str, str]) -> Path:
        """A fresh manifests directory holding ``files`` (path, text) and a Namespace."""
        root = self.tmp / f"repo-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        (root / "namespace.yaml").write_text(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: soma-agent-hub}\n")
        for relative, text in files:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    def __call__(self, check_ids: list[str], config: dict[str, Any],
                 source: Any = None, params: dict[str, dict[str, Any]] | None = None,
                 ) -> dict[str, Result]:
        settings = load_config(**config)
        checks = [c for c in load_catalog() if c.id in check_ids]
        assert {c.id for c in checks} == set(check_ids), "unknown check id"
        params = params or {}
        checks = [replace(c, params={**c.params, **params.get(c.id, {})}) for c in checks]
        request = AuditRequest(
            source=source or ManifestsSource(self.repo()),
            config=settings,
            checks=checks,
            services=connect_services(settings),
        )
        return {r.check.id: r for r in run_audit(request).results}


@pytest.fixture
def run_live(tmp_path: Path) -> Live:
    return Live(tmp_path)


def messages(result: Result) -> list[str]:
    return [f"{e.object}: {e.message}" for e in result.evidence]


# -- OpenFGA ------------------------------------------------------------------------------

def model_json(model: Path) -> dict[str, Any]:
    """The model's JSON form, from the real fga CLI (as the probe converts it)."""
    fga = shutil.which("fga", path=str(Path(sys.executable).parent)) or "fga"
    out = subprocess.run([fga, "model", "transform", "--file", str(model),
                          "--output-format", "json"],
                         capture_output=True, text=True, check=True, timeout=60)
    return dict(json.loads(out.stdout))


@pytest.fixture
def fresh_store(openfga_env: Any, unique_name: Callable[[str], str]) -> Callable[..., str]:
    """fresh_store(*models) -> id of a new store with ``models`` written in order (the last
    is the latest); models are DSL files or JSON dicts."""

    def make(*models: Path | dict[str, Any]) -> str:
        store = get_json(f"{openfga_env.url}/stores", {"name": unique_name("soma-audit-live")})
        for model in models:
            body = model_json(model) if isinstance(model, Path) else model
            get_json(f"{openfga_env.url}/stores/{store['id']}/authorization-models", body)
        return str(store["id"])

    return make


def fga_repo(live: Live, model: Path = FGA_MODEL, tests: Path = FGA_TESTS) -> Path:
    return live.repo(("infra/openfga/model.fga", model.read_text()),
                     ("infra/openfga/model.fga.yaml", tests.read_text()))


# -- Kafka --------------------------------------------------------------------------------

class _Quiet:
    def log(self, level: int, message: str, *args: Any) -> None:
        """librdkafka's log lines are not what these tests assert."""


@pytest.fixture
def kafka_admin(kafka_env: Any) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka_env.client_config(logger=_Quiet()))


def kafka_config(kafka_env: Any, probe_writes: bool = False, **kafka: Any) -> dict[str, Any]:
    """Config overrides for the broker, with the admin principal's SASL credentials."""
    return {"probe_writes": probe_writes, "kafka": {
        "bootstrap": kafka_env.bootstrap,
        "security_protocol": kafka_env.security_protocol,
        "sasl_mechanism": kafka_env.sasl_mechanism,
        "sasl_username": kafka_env.admin_user,
        "sasl_password": kafka_env.users[kafka_env.admin_user],
        "timeout_seconds": 10,
        **kafka,
    }}


def create_topic(admin: Any, name: str, partitions: int, config: dict[str, str]) -> None:
    from confluent_kafka.admin import NewTopic

    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1, config=config)])
    futures[name].result(timeout=30)
    deadline = time.monotonic() + 30
    while name not in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"topic {name} never appeared"
        time.sleep(0.2)


def grant(admin: Any, principal: str, resource: str, name: str, operation: str,
          pattern: str = "LITERAL") -> None:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    binding = AclBinding(ResourceType[resource], name, ResourcePatternType[pattern], principal,
                         "*", AclOperation[operation], AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        future.result(timeout=30)


def wait_for_acls(admin: Any, principal: str, count: int) -> None:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    acl_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal,
                                  None, AclOperation.ANY, AclPermissionType.ANY)
    deadline = time.monotonic() + 30
    while len(admin.describe_acls(acl_filter).result(timeout=30)) < count:
        assert time.monotonic() < deadline, f"ACLs of {principal} never became visible"
        time.sleep(0.2)


def produce(kafka_env: Any, topic: str, count: int, partition: int = 0) -> None:
    from confluent_kafka import Producer

    producer = Producer(kafka_env.client_config(**{"logger": _Quiet(), "linger.ms": 0}))
    for i in range(count):
        producer.produce(topic, value=f"event-{i}".encode(), partition=partition)
    assert producer.flush(30) == 0


def commit_at_end(kafka_env: Any, admin: Any, group: str, topic: str, partitions: int) -> None:
    """Make ``group`` exist with committed offsets at the end of every partition of
    ``topic`` (a consumer that has read everything)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(kafka_env.client_config(**{
        "group.id": group, "enable.auto.commit": False, "logger": _Quiet()}))
    try:
        offsets = []
        for p in range(partitions):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            offsets.append(TopicPartition(topic, p, high))
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


# -- Prometheus ---------------------------------------------------------------------------

def wait_for_history(url: str, seconds: float, metric: str = "http_requests_total") -> None:
    """Block until Prometheus holds ``metric`` from at least ``seconds`` ago (a freshly
    started test environment has no history yet)."""
    deadline = time.monotonic() + seconds + 120
    while True:
        at = time.time() - seconds
        data = get_json(f"{url}/api/v1/query?query=count({metric})&time={at:.3f}")
        if data["data"]["result"]:
            return
        assert time.monotonic() < deadline, f"Prometheus at {url} has no history {seconds}s back"
        time.sleep(2)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{url} did not start:\n{log.read_text()[-2000:]}", pytrace=False)
        time.sleep(0.3)


def _alertmanager_binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found:
        return found
    from testenv import build  # the test environment's apt helper (no daemon started)

    logs = REPO / ".testenv" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        build._ensure_debian("prometheus-alertmanager", "prometheus-alertmanager",
                             "alertmanager", logs)
    except Exception as exc:
        pytest.fail(f"Alertmanager missing: apt-get install prometheus-alertmanager ({exc})",
                    pytrace=False)
    return shutil.which("prometheus-alertmanager") or "prometheus-alertmanager"


@dataclass(frozen=True)
class PrivatePrometheus:
    url: str
    alertmanager: str | None


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _prometheus(prometheus_env: Any, home: Path, alerting: bool,
                processes: list[subprocess.Popen[bytes]]) -> PrivatePrometheus:
    home.mkdir(parents=True, exist_ok=True)
    rule_files = [str(prometheus_env.rules_file)]
    alertmanager = None
    config: dict[str, Any] = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "5s"},
        "scrape_configs": [{"job_name": "soma-agent-hub",
                            "static_configs": [{"targets": [prometheus_env.target]}]}],
    }
    if alerting:
        alerts = home / "slo-alerts.yml"
        alerts.write_text(yaml.safe_dump(SLO_ALERTS, sort_keys=False))
        rule_files.append(str(alerts))
        am_port = free_port()
        am_home = home / "alertmanager"
        am_home.mkdir()
        (am_home / "alertmanager.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "incident-response"},
            "receivers": [{"name": "incident-response"}],
        }))
        am = _spawn([_alertmanager_binary(), f"--config.file={am_home / 'alertmanager.yml'}",
                     f"--storage.path={am_home / 'data'}",
                     f"--web.listen-address=127.0.0.1:{am_port}",
                     "--cluster.listen-address="], am_home / "alertmanager.log")
        processes.append(am)
        alertmanager = f"http://127.0.0.1:{am_port}"
        _wait_ready(alertmanager, am, am_home / "alertmanager.log")
        config["alerting"] = {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]}
    config["rule_files"] = rule_files
    (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    process = _spawn([shutil.which("prometheus") or "prometheus",
                      f"--config.file={home / 'prometheus.yml'}",
                      f"--storage.tsdb.path={home / 'data'}",
                      f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                     home / "prometheus.log")
    processes.append(process)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, process, home / "prometheus.log")
    deadline = time.monotonic() + 60
    while not any(g["rules"] for g in get_json(f"{url}/api/v1/rules")["data"]["groups"]):
        assert time.monotonic() < deadline, "rules never loaded"
        time.sleep(0.5)
    while alerting and not get_json(f"{url}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]:
        assert time.monotonic() < deadline, "the Alertmanager was never discovered"
        time.sleep(0.5)
    return PrivatePrometheus(url, alertmanager)


@pytest.fixture(scope="session")
def private_prometheus(prometheus_env: Any, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[Callable[[bool], PrivatePrometheus]]:
    """private_prometheus(alerting) -> a Prometheus of our own scraping the SLI target:
    with alerting, SLO alert rules plus a real Alertmanager; without, neither."""
    processes: list[subprocess.Popen[bytes]] = []
    started: dict[bool, PrivatePrometheus] = {}

    def get(alerting: bool) -> PrivatePrometheus:
        if alerting not in started:
            home = tmp_path_factory.mktemp("alerting" if alerting else "bare")
            started[alerting] = _prometheus(prometheus_env, home, alerting, processes)
        return started[alerting]

    yield get
    for process in reversed(processes):
        _stop(process)


def prometheus_rule(name: str, spec: dict[str, Any]) -> str:
    """A PrometheusRule manifest (what the inventory of a GitOps repo holds)."""
    return yaml.safe_dump({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": "observability"},
        "spec": spec,
    }, sort_keys=False)


def shared_rules() -> dict[str, Any]:
    """The shared Prometheus' recording rules (testenv/prometheus/rules.yml)."""
    return dict(yaml.safe_load((REPO / "testenv/prometheus/rules.yml").read_text()))
