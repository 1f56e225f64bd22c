"""Config: bundled defaults, strict validation with one clear message, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from soma_audit.config import load_config
from soma_audit.core.errors import ConfigError


def test_defaults_hold_the_somaagenthub_facts() -> None:
    config = load_config()
    assert config.namespace == "soma-agent-hub"
    ports = {s.name: s.port for s in config.services}
    assert len(ports) == 12
    assert ports["gateway-api"] == 10000 and ports["memory-gateway"] == 10021
    topics = {t.name: t for t in config.kafka.topics}
    assert (topics["agent-events"].partitions, topics["agent-events"].replicas) == (3, 2)
    assert topics["agent-events"].retention_ms == 7 * 24 * 3600 * 1000
    assert topics["model-invocations"].retention_ms == 30 * 24 * 3600 * 1000
    assert config.namespaces["observability"].enforce == "baseline"
    assert config.service("orchestrator").selector == {"app": "orchestrator"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "soma-audit.yaml"
    path.write_text(text)
    return path


def test_user_file_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    path = _write(tmp_path, "slo: {availability_target: 0.99}\n"
                            "services: [{name: api, port: 8080}]\nflows: []\n")
    config = load_config(path)
    assert config.slo.availability_target == 0.99
    assert config.slo.latency_p99_seconds == 0.5  # merged, not replaced
    assert [s.name for s in config.services] == ["api"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("servces: []\n", "unknown key 'servces' (did you mean 'services'?)"),
        ("services: [{name: a, port: abc}]\nflows: []\n", "services[0].port: expected an integer"),
        ("namespaces: {x: {enforce: strict}}\n", "namespaces.x.enforce: must be one of"),
        ("kafka: {max_lag: true}\n", "kafka.max_lag: expected an integer, got True"),
        ("waivers: [{check: a.b, reason: r, expires: soon}]\n", "expected a date"),
        ("flows: [{from: nowhere, to: gateway-api}]\n", "'nowhere' is not a configured service"),
        ("flows: [{from: gateway-api, to: 'cidr/10.0.0.0/8', except: [192.168.0.0/16]}]\n",
         "except 192.168.0.0/16 is not inside 10.0.0.0/8"),
        ("flows: [{from: gateway-api, to: 'ns/x{app}'}]\n", "'app' is not key=value"),
        ("flows: [{from: gateway-api, to: 'ftp/host'}]\n", "is not a service name"),
        ("flows: [{from: gateway-api, to: llm-hub, except: [10.0.0.0/8]}]\n",
         "`except` needs exactly one cidr/<network> peer"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        ("a: [\n", "line 2"),
        ("services: [{port: 1}]\n", "services[0].name: required key is missing"),
    ],
)
def test_bad_config_gives_one_clear_message_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_missing_and_binary_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(binary)


def test_credentials_never_appear_in_the_config_repr() -> None:
    config = load_config(kafka={"sasl_password": "s3cr3t-kafka"},
                         openfga={"api_token": "s3cr3t-fga"},
                         prometheus={"bearer_token": "s3cr3t-prom"})
    assert config.kafka.sasl_password == "s3cr3t-kafka"
    assert "s3cr3t" not in repr(config)


def test_cluster_reading_defaults_are_the_sources_defaults() -> None:
    from soma_audit.sources.cluster import Timeouts

    reading, built_in = load_config().cluster, Timeouts()
    assert (reading.connect_timeout_seconds, reading.read_timeout_seconds, reading.retries) \
        == (built_in.connect, built_in.read, built_in.retries)


@pytest.mark.parametrize(("cluster", "message"), [
    ({"read_timeout_seconds": 0}, "cluster.read_timeout_seconds: must be more than 0 seconds"),
    ({"connect_timeout_seconds": -1}, "cluster.connect_timeout_seconds: must be more than 0"),
    ({"retries": 11}, "cluster.retries: must be 0 to 10"),
    ({"workers": 0}, "cluster.workers: must be 1 to 32"),
])
def test_cluster_reading_settings_are_bounded(cluster: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(cluster=cluster)
