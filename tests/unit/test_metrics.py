"""Prometheus metrics of real engine reports, read back with prometheus_client's parser.

The reports come from the real engine on a small manifests tree (a privileged pod in a
labelled namespace), so every status the metrics carry is one a probe really returned.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from soma_audit.core.model import Status
from soma_audit.reports.metrics import render
from soma_audit.results.fleet import ClusterScan, FleetReport
from soma_audit.results.report import Report
from tests.helpers import audit_dir

MANIFESTS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/audit: restricted
    pod-security.kubernetes.io/warn: restricted
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
    - name: web
      image: nginx
      securityContext: {privileged: %s}
"""
#: pass, fail, skip (needs a cluster), manual, waived, and a phase-2 check; no phase 3.
CHECKS = ["pss.no-privileged", "pss.audit-label", "pss.readonly-root",
          "pss.admission-verdict", "netpol.denial-logging", "slo.recording-rules"]
CONFIG: dict[str, Any] = {
    "namespaces": {},
    "waivers": [{"check": "pss.readonly-root", "reason": "image rebuild pending (OPS-7)",
                 "expires": (dt.date.today() + dt.timedelta(days=30)).isoformat()}],
}


def _report(tmp_path: Path, privileged: bool) -> Report:
    root = tmp_path / ("privileged" if privileged else "hardened")
    root.mkdir()
    (root / "shop.yaml").write_text(MANIFESTS % str(privileged).lower())
    return audit_dir(root, CHECKS, CONFIG)


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric family name → its samples, as Prometheus would read the exposition."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _value(samples: list[tuple[dict[str, str], float]], **labels: str) -> float:
    (value,) = [v for have, v in samples if all(have.get(k) == x for k, x in labels.items())]
    return value


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Report, Report]:
    return _report(tmp_path, privileged=True), _report(tmp_path, privileged=False)


def test_check_status_is_a_state_set_of_each_real_result(reports: tuple[Report, Report],
                                                         ) -> None:
    prod, _ = reports
    statuses = {r.check.id: r.status for r in prod.results}
    # The fixture really yields every status but error.
    assert set(statuses.values()) == set(Status) - {Status.ERROR}
    assert statuses["pss.no-privileged"] is Status.FAIL
    samples = _samples(render(FleetReport([ClusterScan("prod", prod)])))
    series = samples["soma_audit_check_status"]
    assert len(series) == len(CHECKS) * len(Status)
    for result in prod.results:
        check = result.check
        mine = [(labels, v) for labels, v in series if labels["check"] == check.id]
        assert {labels["status"]: v for labels, v in mine} == {
            s.value: float(s is result.status) for s in Status}
        for labels, _ in mine:
            assert labels == {**labels, "cluster": "prod", "phase": str(check.phase),
                              "area": check.area, "severity": check.severity.value}
            assert set(labels) == {"cluster", "check", "phase", "area", "severity", "status"}


def test_counts_scores_and_timing_follow_the_report(reports: tuple[Report, Report]) -> None:
    prod, _ = reports
    samples = _samples(render(FleetReport([ClusterScan("prod", prod)])))
    for status, count in prod.summary().items():
        assert _value(samples["soma_audit_checks"], status=status) == count
    assert prod.phase_score(1) is not None and prod.phase_score(2) == 0.0
    assert prod.phase_score(3) is None
    scores = {labels["phase"]: v for labels, v in samples["soma_audit_phase_score_ratio"]}
    assert scores == pytest.approx({"1": prod.phase_score(1), "2": 0.0})  # phase 3 absent
    assert _value(samples["soma_audit_ready_ratio"]) == pytest.approx(prod.overall_score)
    assert _value(samples["soma_audit_up"]) == 1.0
    assert _value(samples["soma_audit_scan_errors_total"]) == 0.0
    assert _value(samples["soma_audit_scan_duration_seconds"]) == pytest.approx(
        prod.duration_seconds)
    assert _value(samples["soma_audit_last_run_timestamp_seconds"]) == pytest.approx(
        prod.started.timestamp() + prod.duration_seconds)
    assert "soma_audit_scan_interval_seconds" not in samples  # a one-shot run has none


def test_one_code_path_for_many_clusters_including_one_that_could_not_run(
        reports: tuple[Report, Report]) -> None:
    prod, staging = reports
    began = dt.datetime.now(dt.UTC)
    down = ClusterScan("down", error="cannot reach the API server at https://10.0.0.1",
                       started=began, duration_seconds=3.5)
    samples = _samples(render(FleetReport([ClusterScan("prod", prod),
                                           ClusterScan("staging", staging), down])))
    assert _value(samples["soma_audit_check_status"], cluster="prod",
                  check="pss.no-privileged", status="fail") == 1.0
    assert _value(samples["soma_audit_check_status"], cluster="staging",
                  check="pss.no-privileged", status="pass") == 1.0
    assert {labels["cluster"] for labels, _ in samples["soma_audit_check_status"]} == {
        "prod", "staging"}  # nothing is invented for the cluster that could not run
    assert {labels["cluster"]: v for labels, v in samples["soma_audit_up"]} == {
        "prod": 1.0, "staging": 1.0, "down": 0.0}
    assert _value(samples["soma_audit_scan_errors_total"], cluster="down") == 1.0
    assert _value(samples["soma_audit_scan_duration_seconds"], cluster="down") == 3.5
    assert _value(samples["soma_audit_last_run_timestamp_seconds"],
                  cluster="down") == pytest.approx(began.timestamp() + 3.5)
    assert "down" not in {labels["cluster"] for labels, _ in samples["soma_audit_checks"]}


def test_an_exporter_keeps_the_last_report_that_ran_beside_a_failed_attempt(
        reports: tuple[Report, Report]) -> None:
    prod, _ = reports
    failed = ClusterScan("prod", prod, error="lost the API server",
                         started=dt.datetime.now(dt.UTC), duration_seconds=1.0)
    samples = _samples(render(FleetReport([failed]), errors={"prod": 4}, interval=30))
    assert _value(samples["soma_audit_up"]) == 0.0
    assert _value(samples["soma_audit_scan_errors_total"]) == 4.0
    assert _value(samples["soma_audit_check_status"], check="pss.no-privileged",
                  status="fail") == 1.0
    assert _value(samples["soma_audit_scan_interval_seconds"]) == 30.0


def test_a_cluster_with_neither_report_nor_time_is_stamped_now() -> None:
    before = time.time()
    samples = _samples(render(FleetReport([ClusterScan("lost", error="no kubeconfig")])))
    assert before <= _value(samples["soma_audit_last_run_timestamp_seconds"]) <= time.time()
    assert _value(samples["soma_audit_scan_duration_seconds"]) == 0.0


def test_label_values_are_escaped(reports: tuple[Report, Report]) -> None:
    prod, _ = reports
    odd = 'ctx "blue"\\green\nline'
    text = render(FleetReport([ClusterScan(odd, prod)]))
    samples = _samples(text)
    assert {labels["cluster"] for labels, _ in samples["soma_audit_up"]} == {odd}
    assert '\\"blue\\"' in text and "\\\\green" in text and "\\nline" in text


def test_every_family_has_help_and_the_contracted_name(reports: tuple[Report, Report]) -> None:
    prod, _ = reports
    text = render(FleetReport([ClusterScan("prod", prod)]), interval=300)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == {
        "soma_audit_check_status", "soma_audit_checks", "soma_audit_phase_score_ratio",
        "soma_audit_ready_ratio", "soma_audit_last_run_timestamp_seconds",
        "soma_audit_scan_duration_seconds", "soma_audit_up", "soma_audit_scan_errors",
        "soma_audit_scan_interval_seconds"}
    assert families["soma_audit_scan_errors"].type == "counter"
    assert all(f.documentation for f in families.values())
    assert all(f.type == "gauge" for n, f in families.items() if n != "soma_audit_scan_errors")
