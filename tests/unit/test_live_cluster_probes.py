"""Live-only probes on in-memory inventories (the real API server tests live in
tests/integration/cluster): Argo CD status, Chaos Mesh run history, the dry-run labels of
the admission verdict, and the Warning-header parser of the cluster source."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from urllib3 import HTTPHeaderDict

from soma_audit.config import load_config
from soma_audit.core.model import Status
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.probes import ProbeContext, load_probes
from soma_audit.probes.chaos_runs_live import judge
from soma_audit.probes.pss_live import FORBIDDEN, OPT_IN, dry_run_labels
from soma_audit.services.tools import ToolRunner
from soma_audit.sources import SourceInfo
from soma_audit.sources.cluster import ListError, _warnings

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _ctx(*bodies: dict[str, Any], services: dict[str, Any] | None = None,
         **config: Any) -> ProbeContext:
    cfg = load_config(**config)
    return ProbeContext(Inventory.of(Resource(b, "cluster") for b in bodies), cfg,
                        SourceInfo("cluster", "test"), ToolRunner(cfg.tools), services or {})


def _app(name: str, status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                            "metadata": {"name": name, "namespace": "argocd"}, "spec": {}}
    if status is not None:
        body["status"] = status
    return body


def _run(probe: str, ctx: ProbeContext) -> Any:
    return load_probes()[probe].fn(ctx, {})


def test_apps_healthy_names_the_found_statuses() -> None:
    ctx = _ctx(_app("a", {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}}),
               _app("b", {"sync": {"status": "OutOfSync"},
                          "health": {"status": "Degraded", "message": "crash loop"}}),
               _app("c", None))
    outcome = _run("argocd.apps-healthy", ctx)
    assert outcome.status is Status.FAIL
    assert [(e.object, e.message) for e in outcome.evidence] == [
        ("Application/argocd/b", "status.sync.status=OutOfSync, status.health.status=Degraded, "
                                 "expected Synced and Healthy (crash loop)"),
        ("Application/argocd/c", "status.sync.status=unset, status.health.status=unset, "
                                 "expected Synced and Healthy"),
    ]


def test_last_sync_wants_succeeded() -> None:
    ok = {"operationState": {"phase": "Succeeded", "finishedAt": "2026-11-28T10:00:00Z"}}
    running = {"operationState": {"phase": "Running", "startedAt": "2026-11-28T11:59:00Z"}}
    outcome = _run("argocd.last-sync", _ctx(_app("a", ok), _app("b", running)))
    assert outcome.status is Status.FAIL
    assert [e.object for e in outcome.evidence] == ["Application/argocd/b"]
    assert "phase=Running" in outcome.evidence[0].message
    assert _run("argocd.last-sync", _ctx(_app("a", ok))).status is Status.PASS


def _schedule(cron: str, status: dict[str, Any] | None = None,
              created: dt.datetime = NOW - 48 * HOUR, paused: bool = False) -> Resource:
    meta: dict[str, Any] = {"name": "s", "namespace": "soma-agent-hub",
                            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if paused:
        meta["annotations"] = {"experiment.chaos-mesh.org/pause": "true"}
    body = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule", "metadata": meta,
            "spec": {"schedule": cron, "type": "PodChaos",
                     "podChaos": {"action": "pod-kill", "mode": "one",
                                  "selector": {"labelSelectors": {"app": "x"}}}},
            "status": status or {}}
    return Resource(body, "cluster")


def _at(delta: dt.timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("cron", "status", "created", "recent", "words"), [
    ("@daily", {"time": _at(23 * HOUR)}, NOW - 48 * HOUR, True, "within 24h interval"),
    ("@daily", {"time": _at(26 * HOUR)}, NOW - 48 * HOUR, False, "last run 26h ago"),
    # a weekday schedule's longest gap is the weekend: 72h, not 24h
    ("0 9 * * 1-5", {"time": _at(70 * HOUR)}, NOW - 200 * HOUR, True, "within 72h interval"),
    ("@hourly", None, NOW - 30 * dt.timedelta(minutes=1), True, "first run not due yet"),
    ("@hourly", None, NOW - 5 * HOUR, False, "never ran since creation"),
    ("@hourly", {"lastScheduleTime": _at(HOUR)}, NOW - 5 * HOUR, True, "lastScheduleTime"),
    ("not a cron", {"time": _at(HOUR)}, NOW - 5 * HOUR, False, "spec.schedule"),
])
def test_recent_runs_judges_against_the_longest_gap(
        cron: str, status: dict[str, Any] | None, created: dt.datetime, recent: bool,
        words: str) -> None:
    ok, message = judge(_schedule(cron, status, created), NOW, HOUR)
    assert (ok, words in message) == (recent, True), message


def _namespace(labels: dict[str, str]) -> Resource:
    return Resource({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": "n", "labels": labels}}, "cluster")


def test_dry_run_pins_the_version_when_the_label_would_not_change() -> None:
    enforce = "pod-security.kubernetes.io/enforce"
    version = "pod-security.kubernetes.io/enforce-version"
    assert dry_run_labels(_namespace({}), "restricted", 37) == {
        enforce: "restricted", version: "latest"}
    assert dry_run_labels(_namespace({enforce: "restricted"}), "restricted", 37) == {
        enforce: "restricted", version: "v1.37"}
    assert dry_run_labels(_namespace({enforce: "restricted", version: "v1.30"}),
                          "restricted", 37)[version] == "latest"


class _Cluster:
    def __init__(self, outcome: list[str] | ListError) -> None:
        self.outcome = outcome
        self.sent: list[tuple[str, dict[str, str]]] = []

    def server_minor(self) -> int:
        return 37

    def dry_run_label_namespace(self, name: str, labels: dict[str, str]) -> list[str]:
        self.sent.append((name, labels))
        if isinstance(self.outcome, ListError):
            raise self.outcome
        return self.outcome


def _ns(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}}}


def test_admission_verdict_turns_warnings_into_evidence() -> None:
    cluster = _Cluster(['existing pods in namespace "soma-agent-hub" violate the new '
                        'PodSecurity enforce level "restricted:latest"', "api: privileged"])
    ctx = _ctx(_ns("soma-agent-hub"), _ns("observability"), _ns("scratch"),
               services={"cluster": cluster}, probe_writes=True)
    outcome = _run("pss.admission-verdict", ctx)
    assert outcome.status is Status.FAIL
    assert [name for name, _ in cluster.sent] == ["observability", "soma-agent-hub"]
    assert any(e.message.endswith("api: privileged") for e in outcome.evidence)


def test_admission_verdict_without_patch_is_forbidden() -> None:
    cluster = _Cluster(ListError("forbidden: no", 403))
    ctx = _ctx(_ns("soma-agent-hub"), services={"cluster": cluster},
               pss_exempt_namespaces=["observability"], probe_writes=True)
    outcome = _run("pss.admission-verdict", ctx)
    assert (outcome.status, outcome.evidence[0].message) == (Status.ERROR, FORBIDDEN)


def test_admission_verdict_sends_nothing_without_the_opt_in() -> None:
    cluster = _Cluster([])
    ctx = _ctx(_ns("soma-agent-hub"), services={"cluster": cluster})
    outcome = _run("pss.admission-verdict", ctx)
    assert (outcome.status, outcome.evidence[0].message) == (Status.SKIP, OPT_IN)
    assert cluster.sent == []


def test_warning_headers_are_unquoted_in_order() -> None:
    headers = HTTPHeaderDict()
    headers.add("Warning", '299 - "existing pods in namespace \\"x\\" violate"')
    headers.add("Warning", '299 - "p: privileged, seccompProfile"')
    assert _warnings(headers) == ['existing pods in namespace "x" violate',
                                  "p: privileged, seccompProfile"]
    assert _warnings(HTTPHeaderDict()) == []
