"""charts/soma-audit: lints, renders exactly what manifests/deploy installs, and passes our
own audit of its rendering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.model import Status
from soma_audit.engine.scan import AuditRequest, run_audit
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import REPO
from tests.integration.conftest import run_tool

CHART = REPO / "charts" / "soma-audit"


def _objects(stream: str) -> dict[tuple[str, str, str], str]:
    docs = [d for d in yaml.safe_load_all(stream) if d]
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]):
            json.dumps(d, sort_keys=True) for d in docs}


def test_helm_lint_passes(renderers: dict[str, Path]) -> None:
    out = run_tool([str(renderers["helm"]), "lint", "--strict", str(CHART)])
    assert "0 chart(s) failed" in out


def test_default_rendering_equals_manifests_deploy(renderers: dict[str, Path]) -> None:
    """One source of truth: the chart's defaults are `kubectl apply -k manifests/deploy`."""
    chart = _objects(run_tool([str(renderers["helm"]), "template", "soma-audit", str(CHART),
                               "--namespace", "soma-audit"]))
    kustomized = _objects(run_tool([str(renderers["kustomize"]), "build",
                                    str(REPO / "manifests" / "deploy")]))
    assert sorted(chart) == sorted(kustomized)
    assert chart == kustomized


def test_values_switch_parts_off_and_move_the_namespace(renderers: dict[str, Path]) -> None:
    chart = _objects(run_tool([
        str(renderers["helm"]), "template", "audit", str(CHART), "--namespace", "platform",
        "--set", "report.enabled=false,serviceMonitor.enabled=false,createNamespace=false",
        "--set", "clusterName=eu-1"]))
    kinds = {kind for kind, _, _ in chart}
    assert "CronJob" not in kinds and "ServiceMonitor" not in kinds and "Namespace" not in kinds
    assert {ns for _, ns, _ in chart} == {"", "platform"}
    assert '"value": "eu-1"' in chart[("Deployment", "platform", "soma-audit")]


def test_our_own_audit_of_the_rendering_passes(renderers: dict[str, Path],
                                               tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(CHART, repo / "charts" / "soma-audit")
    config = load_config(
        namespace="soma-audit", namespaces={"soma-audit": {"enforce": "restricted"}},
        tools={"helm": str(renderers["helm"]), "kustomize": str(renderers["kustomize"])})
    wanted = ["ops.manifests-parse", "pss.namespace-labels", "pss.pod-compliance",
              "pss.no-privileged", "pss.readonly-root", "pss.resources", "pss.audit-label",
              "netpol.default-deny"]
    checks = [c for c in load_catalog() if c.id in wanted]
    report = run_audit(AuditRequest(ManifestsSource(repo, config=config), config, checks))
    statuses: dict[str, Any] = {r.check.id: (r.status, r.evidence) for r in report.results}
    assert all(status is Status.PASS for status, _ in statuses.values()), statuses
    (chart,) = [s for s in report.sources if s.kind == "helm"]
    assert chart.status == "rendered" and chart.objects == 13
