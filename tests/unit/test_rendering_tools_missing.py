"""A repository with charts or overlays and no renderer: the affected checks say `error`
with the install hint, never a silent skip, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from soma_audit.core.model import Status
from tests.helpers import audit_dir

CHART = {
    "k8s/helm/soma/Chart.yaml": "apiVersion: v2\nname: soma\nversion: 0.1.0\n",
    "k8s/helm/soma/values.yaml": "replicas: 1\n",
    "k8s/helm/soma/templates/deployment.yaml":
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: gateway-api\n"
        "spec:\n  replicas: {{ .Values.replicas }}\n",
    "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: soma-agent-hub}\n",
}
OVERLAY = {
    "k8s/worker/kustomization.yaml": "resources: [deployment.yaml]\n",
    "k8s/worker/deployment.yaml":
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\n",
}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def no_renderers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with neither helm, kustomize nor kubectl."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.usefixtures("no_renderers")
@pytest.mark.parametrize(("files", "tool", "hint"), [
    (CHART, "helm", "install Helm v4"),
    (OVERLAY, "kustomize", "install kustomize v5"),
], ids=["helm", "kustomize"])
def test_missing_renderer_is_an_error_with_the_install_hint(
        tmp_path: Path, files: dict[str, str], tool: str, hint: str) -> None:
    root = _tree(tmp_path / "repo", files)
    report = audit_dir(root, ["ops.manifests-parse", "pss.no-privileged"])
    results = {r.check.id: r for r in report.results}
    parse = results["ops.manifests-parse"]
    assert parse.status is Status.ERROR
    assert f"{tool} not found; {hint}" in parse.evidence[0].message
    privileged = results["pss.no-privileged"]
    assert privileged.status is Status.ERROR
    assert privileged.evidence[0].object == "Deployment"
    assert f"{tool} not found" in privileged.evidence[0].message
    (failed,) = [s for s in report.sources if s.status == "failed"]
    assert failed.kind == tool and f"{tool} not found" in failed.detail


@pytest.mark.usefixtures("no_renderers")
def test_configured_path_that_does_not_exist_names_it(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo", CHART)
    report = audit_dir(root, ["ops.manifests-parse"],
                       {"tools": {"helm": str(tmp_path / "nope/helm")}})
    (result,) = report.results
    assert result.status is Status.ERROR
    assert f"helm not found at configured path {tmp_path / 'nope/helm'}" in \
        result.evidence[0].message


def test_raw_templates_are_never_read_as_manifests(tmp_path: Path) -> None:
    """Whatever the renderer does, a template file is not an object of its own."""
    root = _tree(tmp_path / "repo", {
        **CHART,
        "k8s/helm/soma/templates/plain.yaml":
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: looks-plain}\n",
    })
    report = audit_dir(root, ["ops.manifests-parse"],
                       {"tools": {"helm": str(tmp_path / "absent")}})
    assert report.sources[0].kind == "files" and report.sources[0].objects == 1
