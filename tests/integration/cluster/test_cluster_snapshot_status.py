"""A dump of the real API server, written as `kubectl get -o yaml` writes it (a `kind:
List` whose items carry apiVersion, kind and status), audited as a snapshot: the status
checks reach the live verdicts, "as of the snapshot"; without status they are skipped."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.core.model import Status
from soma_audit.sources.snapshot import SnapshotSource
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    ScopedClusterSource,
    audit,
    cluster_source,
    create,
    namespace,
    only,
    set_status,
    show,
)

pytestmark = pytest.mark.integration

CHECKS = ["argocd.apps-healthy", "argocd.last-sync", "chaos.recent-runs"]


def _objects(ns: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
           "metadata": {"name": "billing-service", "namespace": ns},
           "spec": {"project": "default",
                    "source": {"repoURL": "https://git.example/soma.git", "path": "k8s/billing"},
                    "destination": {"server": "https://kubernetes.default.svc",
                                    "namespace": ns}}}
    app_status = {"sync": {"status": "OutOfSync"}, "health": {"status": "Degraded"},
                  "operationState": {"operation": {"sync": {"revision": "abc"}},
                                     "phase": "Failed", "startedAt": "2026-11-28T01:00:00Z"}}
    schedule = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule",
                "metadata": {"name": "daily-pod-kill", "namespace": ns},
                "spec": {"schedule": "0 3 * * *", "type": "PodChaos", "historyLimit": 1,
                         "concurrencyPolicy": "Forbid",
                         "podChaos": {"action": "pod-kill", "mode": "one",
                                      "selector": {"namespaces": [ns]}}}}
    three_days = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    return [(app, app_status),
            (schedule, {"time": three_days.strftime("%Y-%m-%dT%H:%M:%SZ")})]


def _dump(kube: AdminKube, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """What `kubectl get <kinds> -o yaml` prints: a List of the stored objects."""
    items = []
    for obj in objects:
        stored = kube.request("GET", kube.path(obj))
        items.append({"apiVersion": obj["apiVersion"], "kind": obj["kind"], **stored})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _statuses(report: Any) -> dict[str, tuple[Status, list[str]]]:
    """Status and messages per check; a last run's age (measured at audit time, to the
    millisecond) is masked."""
    return {c: (only(report, c).status,
                [re.sub(r"last run [0-9hms.]+ ago", "last run … ago", e.message)
                 for e in only(report, c).evidence])
            for c in CHECKS}


def test_a_dump_with_status_reaches_the_live_verdicts(
        kube: AdminKube, kube_env: Any, unique_name: Callable[[str], str],
        tmp_path: Path) -> None:
    ns = namespace(kube, unique_name("snapshot-status"))
    created = []
    for obj, status in _objects(ns):
        stored = create(kube, obj)
        set_status(kube, stored, status)
        created.append(obj)
    config = {"argocd": {"namespace": ns}, "chaos": {"namespace": ns}}
    live = _statuses(audit(ScopedClusterSource(
        cluster_source(kube_env.readonly_kubeconfig), [ns]), CHECKS, config))
    dump = _dump(kube, created)
    path = tmp_path / "cluster-dump.yaml"
    path.write_text(yaml.safe_dump(dump))
    snapshot = _statuses(audit(SnapshotSource(path), CHECKS, config))
    for check in CHECKS:
        assert live[check][0] is Status.FAIL, (check, live[check])
        assert snapshot[check][0] is Status.FAIL, (check, snapshot[check])
        assert [m.removesuffix(" (as of the snapshot)") for m in snapshot[check][1]] \
            == live[check][1], check
        assert all(m.endswith("(as of the snapshot)") for m in snapshot[check][1])

    bare = copy.deepcopy(dump)
    for item in bare["items"]:
        item.pop("status", None)
    path.write_text(yaml.safe_dump(bare))
    report = audit(SnapshotSource(path), CHECKS, config)
    for check in CHECKS:
        result = only(report, check)
        assert result.status is Status.SKIP, show(result)
        assert "the snapshot has no status for its 1" in result.evidence[0].message
