"""A fleet audit in the Prometheus text exposition format (version 0.0.4).

One code path for one cluster and many: the input is always a :class:`FleetReport`. The
exposition itself is written by ``prometheus_client`` (a fresh registry per render), so
label values — check ids, cluster names, kube context names — are escaped as Prometheus
expects. The metric names are a contract: the alert rules in
``manifests/deploy/prometheusrule.yaml`` and docs/exporter.md depend on them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from soma_audit.core.model import PHASES, Status
from soma_audit.results.fleet import ClusterScan, FleetReport

#: The Content-Type of what :func:`render` returns.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "soma_audit"


def render(fleet: FleetReport, errors: Mapping[str, int] | None = None,
           interval: float | None = None) -> str:
    """The metrics of every cluster of ``fleet``.

    A cluster's scan may carry both an ``error`` and a report: a long-running exporter
    keeps serving the last report that ran when a later scan cannot (``up`` is then 0).
    ``errors`` counts each cluster's scans that could not run since the process started;
    without an entry it is this fleet's own count (1 for a failed cluster, else 0).
    ``interval`` is the exporter's re-audit period, exported so the staleness alert needs
    no hard-coded period; a one-shot run has none.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FleetCollector(fleet, dict(errors or {}), interval, time.time()))
    return generate_latest(registry).decode("utf-8")


def _failed(scan: ClusterScan) -> bool:
    return scan.error is not None or scan.report is None


def _timing(scan: ClusterScan, now: float) -> tuple[float, float]:
    """(Unix time the cluster's last attempt ended, seconds it took); "now" and 0 when
    neither the scan nor its report says."""
    if scan.started is not None:
        return scan.started.timestamp() + scan.duration_seconds, scan.duration_seconds
    if scan.report is not None:
        took = scan.report.duration_seconds
        return scan.report.started.timestamp() + took, took
    return now, 0.0


class _FleetCollector:
    """Yields the metric families of one render (registered in a throw-away registry)."""

    def __init__(self, fleet: FleetReport, errors: dict[str, int],
                 interval: float | None, now: float) -> None:
        self._fleet = fleet
        self._errors = errors
        self._interval = interval
        self._now = now

    def collect(self) -> Iterator[Metric]:
        check_labels = ["cluster", "check", "phase", "area", "severity", "status"]
        status = GaugeMetricFamily(
            f"{PREFIX}_check_status",
            "State set of each check's current status: 1 for the status it has, 0 for the "
            "other five (pass, fail, error, skip, manual, waived).",
            labels=check_labels,
        )
        counts = GaugeMetricFamily(
            f"{PREFIX}_checks", "Number of checks per status in the last report that ran.",
            labels=["cluster", "status"])
        phase_score = GaugeMetricFamily(
            f"{PREFIX}_phase_score_ratio",
            "Share of a phase's evaluated (not skipped) checks that pass or are waived, "
            "0 to 1; absent when the phase has nothing to score.",
            labels=["cluster", "phase"])
        ready = GaugeMetricFamily(
            f"{PREFIX}_ready_ratio",
            "Share of all evaluated (not skipped) checks that pass or are waived, 0 to 1; "
            "absent when nothing could be scored.",
            labels=["cluster"])
        last_run = GaugeMetricFamily(
            f"{PREFIX}_last_run_timestamp_seconds",
            "Unix time the last scan attempt of the cluster finished (ran or not).",
            labels=["cluster"])
        duration = GaugeMetricFamily(
            f"{PREFIX}_scan_duration_seconds",
            "Seconds the last scan attempt of the cluster took.", labels=["cluster"])
        up = GaugeMetricFamily(
            f"{PREFIX}_up",
            "1 if the last scan of the cluster ran, 0 if it could not (the check series "
            "then still show the last scan that ran).",
            labels=["cluster"])
        errors = CounterMetricFamily(
            f"{PREFIX}_scan_errors",
            "Scans of the cluster that could not run (unreachable API server, bad "
            "credentials ...) since the exporter started.",
            labels=["cluster"])
        interval = GaugeMetricFamily(
            f"{PREFIX}_scan_interval_seconds",
            "Seconds between two scans of the exporter (absent for one-shot runs); the "
            "staleness alert compares the last run against it.",
            labels=["cluster"])
        for scan in self._fleet.clusters:
            name = scan.cluster
            failed = _failed(scan)
            up.add_metric([name], 0.0 if failed else 1.0)
            errors.add_metric([name], float(self._errors.get(name, int(failed))))
            finished, took = _timing(scan, self._now)
            last_run.add_metric([name], finished)
            duration.add_metric([name], took)
            if self._interval is not None:
                interval.add_metric([name], self._interval)
            report = scan.report
            if report is None:
                continue
            for result in report.results:
                check = result.check
                labels = [name, check.id, str(check.phase), check.area, check.severity.value]
                for value in Status:
                    status.add_metric([*labels, value.value],
                                      1.0 if result.status is value else 0.0)
            for value, count in report.summary().items():
                counts.add_metric([name, value], float(count))
            for phase in PHASES:
                score = report.phase_score(phase)
                if score is not None:
                    phase_score.add_metric([name, str(phase)], score)
            if report.overall_score is not None:
                ready.add_metric([name], report.overall_score)
        yield from (status, counts, phase_score, ready, last_run, duration, up, errors)
        if self._interval is not None:
            yield interval
