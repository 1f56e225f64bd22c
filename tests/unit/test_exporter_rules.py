"""The exporter's alert rules (manifests/deploy/prometheusrule.yaml) under the real promtool:
`check rules` accepts them and `test rules` shows each alert firing when it should and
only then (promtool from Debian's prometheus package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.core.paths import data_path

CHECK = {"cluster": "prod", "phase": "1", "area": "pss", "severity": "critical",
         "job": "soma-audit", "instance": "10.0.0.5:9464"}


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed (apt-get install prometheus)")
    return found


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """The PrometheusRule's spec as a plain rule file (promtool does not read the CR)."""
    rule = yaml.safe_load(data_path("manifests", "deploy", "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    path = tmp_path / "soma-audit.rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def _status(check: str, status: str, values: str) -> dict[str, str]:
    labels = ",".join(f'{k}="{v}"' for k, v in {**CHECK, "check": check,
                                                 "status": status}.items())
    return {"series": f"soma_audit_check_status{{{labels}}}", "values": values}


def _regressed(check: str) -> dict[str, Any]:
    return {
        "exp_labels": {"alertname": "SomaAuditCheckRegressed", "cluster": "prod",
                       "check": check, "phase": "1", "area": "pss",
                       "severity": "critical"},
        "exp_annotations": {
            "summary": f"{check} regressed on prod",
            "description": f"Check {check} (phase 1, area pss, severity critical) passed "
                           "within the last 6 hours and now fails or cannot be evaluated on "
                           "cluster prod. The evidence is in the exporter's /report.json.",
            "runbook_url": "docs/exporter.md#somaauditcheckregressed",
        },
    }


def _unit_tests(rule_file: Path) -> dict[str, Any]:
    # One sample a minute. pss.no-privileged passes for 10 minutes, then fails;
    # pss.resources fails throughout; pss.readonly-root passes, errors, then fails (one
    # alert, not two); pss.audit-label fails once for good and passed 7 hours ago only.
    regressing = "1x9 0x400"
    return {
        "rule_files": [rule_file.name],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                _status("pss.no-privileged", "pass", regressing),
                _status("pss.no-privileged", "fail", "0x9 1x400"),
                _status("pss.no-privileged", "error", "0x410"),
                _status("pss.resources", "pass", "0x410"),
                _status("pss.resources", "fail", "1x410"),
                _status("pss.readonly-root", "pass", "1x9 0x400"),
                _status("pss.readonly-root", "error", "0x9 1x4 0x396"),
                _status("pss.readonly-root", "fail", "0x14 1x396"),
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "SomaAuditCheckRegressed", "exp_alerts": []},
                {"eval_time": "12m", "alertname": "SomaAuditCheckRegressed",
                 "exp_alerts": [_regressed("pss.no-privileged"),
                                _regressed("pss.readonly-root")]},
                {"eval_time": "20m", "alertname": "SomaAuditCheckRegressed",
                 "exp_alerts": [_regressed("pss.no-privileged"),
                                _regressed("pss.readonly-root")]},
                # Six hours after the last pass, the regression is old news.
                {"eval_time": "6h20m", "alertname": "SomaAuditCheckRegressed",
                 "exp_alerts": []},
            ],
        }, {
            "interval": "1m",
            "input_series": [
                {"series": 'soma_audit_up{cluster="prod",job="soma-audit"}', "values": "0x30"},
                {"series": 'soma_audit_up{cluster="dev",job="soma-audit"}',
                 "values": "0x10 1x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "SomaAuditScanFailing", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "SomaAuditScanFailing", "exp_alerts": [{
                    "exp_labels": {"alertname": "SomaAuditScanFailing", "cluster": "prod",
                                   "job": "soma-audit", "severity": "high"},
                    "exp_annotations": {
                        "summary": "soma-audit cannot scan prod",
                        "description": "Every scan of cluster prod for 15 minutes failed; the "
                                       "readiness metrics are those of the last scan that "
                                       "ran. The exporter's log has one line per failed scan "
                                       "with the reason.",
                        "runbook_url": "docs/exporter.md#somaauditscanfailing",
                    },
                }]},
            ],
        }, {
            # Interval 60 s: "fresh" finishes a scan every minute, "stuck" stopped at t=0.
            "interval": "1m",
            "input_series": [
                {"series": 'soma_audit_last_run_timestamp_seconds{cluster="fresh",job="a"}',
                 "values": "0+60x20"},
                {"series": 'soma_audit_scan_interval_seconds{cluster="fresh",job="a"}',
                 "values": "60x20"},
                {"series": 'soma_audit_last_run_timestamp_seconds{cluster="stuck",job="a"}',
                 "values": "0x20"},
                {"series": 'soma_audit_scan_interval_seconds{cluster="stuck",job="a"}',
                 "values": "60x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "SomaAuditStale", "exp_alerts": []},
                {"eval_time": "4m", "alertname": "SomaAuditStale", "exp_alerts": [{
                    "exp_labels": {"alertname": "SomaAuditStale", "cluster": "stuck",
                                   "job": "a", "severity": "high"},
                    "exp_annotations": {
                        "summary": "soma-audit results for stuck are stale",
                        "description": "The last scan attempt of cluster stuck finished 4m 0s "
                                       "ago, more than three scan intervals.",
                        "runbook_url": "docs/exporter.md#somaauditstale",
                    },
                }]},
            ],
        }],
    }


def test_rules_pass_promtool_check(rules: Path) -> None:
    checked = _run("check", "rules", rules.name, cwd=rules.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


def test_alerts_fire_on_regressions_failures_and_staleness_only(rules: Path) -> None:
    tests = rules.parent / "soma-audit.rules.test.yml"
    tests.write_text(yaml.safe_dump(_unit_tests(rules), sort_keys=False, width=200))
    tested = _run("test", "rules", tests.name, cwd=rules.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_promtool_test_catches_a_rule_that_fires_on_steady_failures(rules: Path) -> None:
    """The unit test can fail: with the 'was pass' condition removed, the steadily failing
    pss.resources fires too and promtool says so."""
    spec = yaml.safe_load(rules.read_text())
    (regressed,) = [r for r in spec["groups"][0]["rules"]
                    if r.get("alert") == "SomaAuditCheckRegressed"]
    regressed["expr"] = regressed["expr"].split("and on")[0]
    rules.write_text(yaml.safe_dump(spec))
    tests = rules.parent / "soma-audit.rules.test.yml"
    tests.write_text(yaml.safe_dump(_unit_tests(rules), sort_keys=False, width=200))
    tested = _run("test", "rules", tests.name, cwd=rules.parent)
    assert tested.returncode != 0
    assert "pss.resources" in tested.stdout + tested.stderr
