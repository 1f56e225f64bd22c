"""Fixtures of the integration tier: the real test environment, started or reused.

Each service fixture asks `testenv.up([group])` for just its component group: a running
environment (`make testenv`, recorded in .testenv/state.json) is reused in a second, and a
missing group is built/started. Groups this session started are stopped again at the end
(set SOMA_TESTENV_KEEP=1 to keep them for the next run); what was already running is left
alone. A group that cannot start fails only the tests that need it, with its log tail.

There is no kube-controller-manager: namespaces never finish deleting, so tests create
fresh names with `unique_name(prefix)` and never reuse one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import testenv
from tests.helpers import fresh_suffix


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real environment: mark it so."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class KubeEnv:
    """The test API server: admin and read-only kubeconfigs, URL, version, audit log."""

    admin_kubeconfig: Path
    readonly_kubeconfig: Path
    server: str
    version: str
    audit_log: Path
    readonly_user: str


@dataclass(frozen=True)
class OpenFGAEnv:
    """The OpenFGA server (memory datastore) and the id of its soma-agent-hub store."""

    url: str
    store_id: str
    store_name: str
    grpc: str


@dataclass(frozen=True)
class KafkaEnv:
    """The SASL_PLAINTEXT broker and the known principals (admin is the super user)."""

    bootstrap: str
    security_protocol: str
    sasl_mechanism: str
    admin_user: str
    users: dict[str, str] = field(repr=False)

    def client_config(self, user: str | None = None, **extra: Any) -> dict[str, Any]:
        """confluent-kafka settings for one principal (admin by default)."""
        name = user or self.admin_user
        return {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": name,
            "sasl.password": self.users[name],
            **extra,
        }


@dataclass(frozen=True)
class PrometheusEnv:
    """Our Prometheus instance, its rule file, promtool, and the SLI target it scrapes."""

    url: str
    rules_file: Path
    promtool: Path
    target: str


class _Session:
    """Which groups this pytest session started (to stop them again) or failed to start."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.started: set[str] = set()
        self.failed: dict[str, str] = {}

    def need(self, group: str) -> dict[str, Any]:
        if group in self.failed:
            pytest.fail(self.failed[group], pytrace=False)
        rows = [row for row in testenv.status() if row["group"] == group]
        was_running = all(row["running"] for row in rows)
        capture = self.request.config.pluginmanager.getplugin("capturemanager")
        # Show build/start progress live: a first build takes minutes.
        live = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        try:
            with live:
                state = testenv.up([group], quiet=was_running)
        except (testenv.UpError, testenv.ComponentError) as exc:
            self.failed[group] = f"test environment group {group!r} could not start:\n{exc}"
            pytest.fail(self.failed[group], pytrace=False)
        if not was_running:
            self.started.add(group)
        return state

    def close(self) -> None:
        if not self.started or os.environ.get("SOMA_TESTENV_KEEP") == "1":
            return
        everything = {row["group"] for row in testenv.status() if row["running"]}
        if everything <= self.started:
            testenv.down(quiet=True)  # we started all that runs: full stop, orphan sweep
        else:
            testenv.down(sorted(self.started), quiet=True)


@pytest.fixture(scope="session")
def _testenv_session(request: pytest.FixtureRequest) -> Iterator[_Session]:
    session = _Session(request)
    yield session
    session.close()


@pytest.fixture(scope="session")
def kube_env(_testenv_session: _Session) -> KubeEnv:
    """etcd + kube-apiserver with CRDs and the read-only ServiceAccount kubeconfig."""
    info = _testenv_session.need("kube")["kube"]
    return KubeEnv(
        admin_kubeconfig=Path(info["admin_kubeconfig"]),
        readonly_kubeconfig=Path(info["readonly_kubeconfig"]),
        server=info["server"],
        version=info["version"],
        audit_log=Path(info["audit_log"]),
        readonly_user=info["readonly_user"],
    )


@pytest.fixture(scope="session")
def openfga_env(_testenv_session: _Session) -> OpenFGAEnv:
    """The OpenFGA server and its soma-agent-hub store."""
    info = _testenv_session.need("openfga")["openfga"]
    return OpenFGAEnv(
        url=info["url"], store_id=info["store_id"], store_name=info["store_name"], grpc=info["grpc"]
    )


@pytest.fixture(scope="session")
def kafka_env(_testenv_session: _Session) -> KafkaEnv:
    """The Kafka broker with ACLs enforced."""
    info = _testenv_session.need("kafka")["kafka"]
    return KafkaEnv(
        bootstrap=info["bootstrap"],
        security_protocol=info["security_protocol"],
        sasl_mechanism=info["sasl_mechanism"],
        admin_user=info["admin_user"],
        users=dict(info["users"]),
    )


@pytest.fixture(scope="session")
def prometheus_env(_testenv_session: _Session) -> PrometheusEnv:
    """Prometheus scraping the SLI target with testenv/prometheus/rules.yml loaded."""
    info = _testenv_session.need("prometheus")["prometheus"]
    return PrometheusEnv(
        url=info["url"],
        rules_file=Path(info["rules_file"]),
        promtool=Path(info["promtool"]),
        target=info["target"],
    )


@pytest.fixture(scope="session")
def testenv_tools() -> dict[str, Path]:
    """External binaries the product runs: fga and k6 (venv), promtool (Debian)."""
    import shutil
    import sys

    venv_bin = Path(sys.executable).parent
    tools: dict[str, Path] = {}
    for name in ("fga", "k6", "promtool"):
        candidate = venv_bin / name
        found = candidate if candidate.exists() else shutil.which(name)
        if not found:
            pytest.fail(f"{name} is not installed (make install / apt-get install prometheus)")
        tools[name] = Path(found)
    return tools


@pytest.fixture(scope="session")
def kube_admin_client(kube_env: KubeEnv) -> Iterator[Any]:
    """An official-client ApiClient for the admin (system:masters) identity."""
    from kubernetes import config as kube_config

    client = kube_config.new_client_from_config(config_file=str(kube_env.admin_kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="session")
def kube_readonly_client(kube_env: KubeEnv) -> Iterator[Any]:
    """An official-client ApiClient for the read-only ServiceAccount soma-audit/soma-audit."""
    from kubernetes import config as kube_config

    client = kube_config.new_client_from_config(config_file=str(kube_env.readonly_kubeconfig))
    yield client
    client.close()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """unique_name(prefix) -> a fresh DNS-1123 name (namespaces are never really deleted)."""

    def make(prefix: str) -> str:
        stem = prefix.lower().strip("-")[:50] or "t"
        return f"{stem}-{fresh_suffix()}"

    return make


def _report_build(component: str, message: str) -> None:
    print(f"[testenv] {component}: {message}", file=sys.stderr)


@pytest.fixture(scope="session")
def renderers() -> dict[str, Path]:
    """The pinned helm and kustomize of the test environment (built once into its cache by
    `make testenv`, or here when missing; never skipped)."""
    from testenv import build
    from testenv import config as testenv_config

    cache = testenv_config.cache_dir()
    logs = testenv_config.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return {"helm": build.helm(cache, logs, _report_build),
            "kustomize": build.kustomize(cache, logs, _report_build)}


def run_tool(argv: list[str], cwd: Path | None = None) -> str:
    """Run a binary the test trusts; its failure fails the test with its stderr."""
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
