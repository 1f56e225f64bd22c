"""The CLI with live endpoints, run as a subprocess like a user or CI would: unreachable
endpoints give errors on their checks only, and credentials never reach any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from testenv.proc import free_port
from tests.integration.live.conftest import REPO

pytestmark = pytest.mark.integration

FORMATS = ("table", "json", "markdown", "junit", "sarif")
LIVE_ONLY = {"openfga": {"fga.store-model", "fga.live-scenarios"},
             "kafka": {"kafka.live-topics", "kafka.live-acls", "kafka.consumer-groups",
                       "kafka.consumer-lag"},
             "prometheus": {"slo.series-present", "slo.rules-loaded", "ops.stability-24h"}}


def _soma(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                                  float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOMA_AUDIT_")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "soma_audit", "--ci", "--demo", *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**clean, **(env or {})})
    return proc, time.monotonic() - started


def _statuses(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


def test_unreachable_endpoints_error_on_their_checks_only() -> None:
    offline, offline_seconds = _soma("--format", "json")
    ports = [free_port() for _ in range(3)]
    live, live_seconds = _soma(
        "--format", "json",
        "--openfga-url", f"http://127.0.0.1:{ports[0]}",
        "--openfga-store", "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--kafka-bootstrap", f"127.0.0.1:{ports[1]}",
        "--prometheus-url", f"http://127.0.0.1:{ports[2]}",
    )
    assert live.returncode == 1, live.stderr
    assert "Traceback" not in live.stderr and "FAIL" not in live.stderr, live.stderr
    before, after = _statuses(offline), _statuses(live)
    for service, checks in LIVE_ONLY.items():
        for check in checks:
            assert before[check]["status"] == "skip"
            assert after[check]["status"] == "error", (check, after[check])
            (evidence,) = after[check]["evidence"]
            assert f"127.0.0.1:{ports[list(LIVE_ONLY).index(service)]}" in evidence["message"]
            assert "unreachable" in evidence["message"]
    assert after["kafka.event-flow"]["status"] == "skip"  # no --probe-writes
    assert after["chaos.slo-verified"]["status"] == "skip"  # needs a cluster too
    untouched = set(before) - set().union(*LIVE_ONLY.values())
    assert {c: after[c]["status"] for c in untouched} == \
           {c: before[c]["status"] for c in untouched}
    print(f"\nunreachable endpoints: {live_seconds:.2f}s vs {offline_seconds:.2f}s offline")


def test_credentials_never_appear_in_any_output(openfga_env: Any, kafka_env: Any,
                                                prometheus_env: Any) -> None:
    token, bearer = f"fga-token-{uuid.uuid4().hex}", f"prom-bearer-{uuid.uuid4().hex}"
    wrong = f"wrong-kafka-password-{uuid.uuid4().hex}"
    right = kafka_env.users[kafka_env.admin_user]
    base = {
        "SOMA_AUDIT_OPENFGA_URL": openfga_env.url,
        "SOMA_AUDIT_OPENFGA_STORE": openfga_env.store_id,
        "SOMA_AUDIT_OPENFGA_API_TOKEN": token,
        "SOMA_AUDIT_PROMETHEUS_URL": prometheus_env.url,
        "SOMA_AUDIT_PROMETHEUS_BEARER_TOKEN": bearer,
        "SOMA_AUDIT_KAFKA_BOOTSTRAP": kafka_env.bootstrap,
        "SOMA_AUDIT_KAFKA_SECURITY_PROTOCOL": kafka_env.security_protocol,
        "SOMA_AUDIT_KAFKA_SASL_MECHANISM": kafka_env.sasl_mechanism,
        "SOMA_AUDIT_KAFKA_SASL_USERNAME": kafka_env.admin_user,
    }
    secrets = [token, bearer, wrong, right]
    runs = [(password, fmt) for password in (wrong, right) for fmt in FORMATS]

    def run(password: str, fmt: str) -> subprocess.CompletedProcess[str]:
        args = ["--format", fmt] + (["--debug"] if fmt == "table" else [])
        return _soma(*args, env={**base, "SOMA_AUDIT_KAFKA_SASL_PASSWORD": password})[0]

    with ThreadPoolExecutor(max_workers=5) as pool:
        done = dict(zip(runs, pool.map(lambda r: run(*r), runs), strict=True))
    for (_, fmt), proc in done.items():
        assert proc.returncode in (0, 1), proc.stderr
        output = proc.stdout + proc.stderr
        leaked = [s for s in secrets if s in output]
        assert not leaked, f"{fmt}: credentials in the output"
    for password, status in ((wrong, "error"), (right, None)):
        kafka = _statuses_of(done[(password, "json")].stdout)["kafka.live-topics"]
        if status == "error":
            assert kafka["status"] == "error"
            assert "Kafka unauthorised" in kafka["evidence"][0]["message"]
        else:
            assert kafka["status"] in ("pass", "fail"), kafka


def _statuses_of(text: str) -> dict[str, dict[str, Any]]:
    start = text.index("{")
    report, _ = json.JSONDecoder().raw_decode(text[start:])
    return {c["id"]: c for c in report["checks"]}
