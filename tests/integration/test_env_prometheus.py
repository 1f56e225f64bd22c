"""The test Prometheus is real: it scrapes the SLI target and evaluates our rule file."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

import pytest
from prometheus_api_client import PrometheusConnect

from testenv.config import PACKAGE_DIR, SERVICES

pytestmark = pytest.mark.integration

RECORDED = (
    "sli:requests:rate5m",
    "sli:errors:rate5m",
    "sli:availability:ratio_rate5m",
    "sli:error:ratio_rate5m",
    "sli:latency_seconds:p99_rate5m",
)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_rule_file_is_loaded_and_healthy(prometheus_env: Any) -> None:
    groups = _get(f"{prometheus_env.url}/api/v1/rules")["data"]["groups"]
    ours = [g for g in groups if g["file"] == str(prometheus_env.rules_file)]
    assert [g["name"] for g in ours] == ["soma-sli"]
    assert [rule["name"] for rule in ours[0]["rules"]] == list(RECORDED)
    assert all(rule["health"] in ("ok", "unknown") for rule in ours[0]["rules"])


def test_recorded_sli_series_exist_for_every_service(prometheus_env: Any) -> None:
    prom = PrometheusConnect(url=prometheus_env.url, disable_ssl=True)
    deadline = time.monotonic() + 90
    for name in ("sli:availability:ratio_rate5m", "sli:latency_seconds:p99_rate5m"):
        while True:
            result = prom.custom_query(name)
            services = sorted(series["metric"]["service"] for series in result)
            if services == sorted(SERVICES):
                break
            assert time.monotonic() < deadline, f"{name}: got series for {services}"
            time.sleep(1)
        for series in result:
            value = float(series["value"][1])
            if name.startswith("sli:availability"):
                assert 0.98 <= value <= 1.0
            else:
                assert 0.0 < value < 5.0


def test_target_is_scraped(prometheus_env: Any) -> None:
    targets = _get(f"{prometheus_env.url}/api/v1/targets")["data"]["activeTargets"]
    ours = [t for t in targets if t["labels"]["job"] == "soma-agent-hub"]
    assert ours
    assert ours[0]["scrapeUrl"] == f"http://{prometheus_env.target}/metrics"


def test_promtool_checks_and_unit_tests_the_rule_file(prometheus_env: Any) -> None:
    check = subprocess.run(
        [str(prometheus_env.promtool), "check", "rules", str(prometheus_env.rules_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(RECORDED)} rules found" in check.stdout
    unit = subprocess.run(
        [str(prometheus_env.promtool), "test", "rules", "rules.test.yml"],
        cwd=PACKAGE_DIR / "prometheus",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_promtool_rejects_a_broken_rule(prometheus_env: Any, tmp_path: Any) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n  - name: bad\n    rules:\n"
        "      - record: sli:bad\n        expr: sum by (service (x)\n"
    )
    check = subprocess.run(
        [str(prometheus_env.promtool), "check", "rules", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert check.returncode != 0


def test_lifecycle_reload_is_enabled(prometheus_env: Any) -> None:
    req = urllib.request.Request(f"{prometheus_env.url}/-/reload", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
