"""Charts and overlays rendered by the real ``helm`` and ``kustomize``: differential tests.

The platform repository of tests/fixtures/platform (a chart with values per environment
and a vendored dependency, a Kustomize base with two overlays, Argo CD Applications for
all of them, plain namespaces and a front-end folder of non-manifests) is audited in
manifests mode; the inventory must equal, object for object, what the binaries print for
the inputs each Application names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.model import Status
from soma_audit.engine.scan import AuditRequest, run_audit
from soma_audit.kube.inventory import Inventory
from soma_audit.sources import rendering
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.sources.rendering import CLUSTER_SCOPED
from tests.helpers import FIXTURES
from tests.integration.conftest import run_tool as _run

PLATFORM = FIXTURES / "platform"
CHART = "k8s/helm/soma"
OVERLAYS = "k8s/kustomize/worker/overlays"


@pytest.fixture
def platform(tmp_path: Path, renderers: dict[str, Path]) -> Path:
    """A copy of the platform repository with its chart dependency vendored by `helm package`."""
    root = tmp_path / "platform"
    shutil.copytree(PLATFORM, root)
    _run([str(renderers["helm"]), "package", str(root / "dependencies/soma-cache"),
          "--destination", str(root / CHART / "charts")])
    return root


def _config(renderers: dict[str, Path], **extra: Any) -> Any:
    tools = {"helm": str(renderers["helm"]), "kustomize": str(renderers["kustomize"])}
    return load_config(tools=tools, **extra)


def _load(root: Path, renderers: dict[str, Path], **extra: Any) -> Inventory:
    return ManifestsSource(root, config=_config(renderers, **extra)).load(frozenset())


def _placed(documents: list[Any], namespace: str) -> list[dict[str, Any]]:
    """The documented rule: a namespaced object rendered without a namespace is placed in
    the release/destination namespace, as `helm install -n` and an Argo CD sync do."""
    placed = []
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        meta = doc.setdefault("metadata", {})
        if doc["kind"] not in CLUSTER_SCOPED and namespace and "namespace" not in meta:
            meta["namespace"] = namespace
        placed.append(doc)
    return placed


def _helm(renderers: dict[str, Path], root: Path, release: str, namespace: str,
          *args: str) -> list[dict[str, Any]]:
    out = _run([str(renderers["helm"]), "template", release, str(root / CHART), "--namespace",
                namespace, "--include-crds", *args])
    return _placed(list(yaml.safe_load_all(out)), namespace)


def _kustomize(renderers: dict[str, Path], root: Path, env: str,
               namespace: str) -> list[dict[str, Any]]:
    out = _run([str(renderers["kustomize"]), "build", str(root / OVERLAYS / env)])
    return _placed(list(yaml.safe_load_all(out)), namespace)


def _kustomize_dev_with_overrides(renderers: dict[str, Path], root: Path,
                                  scratch: Path) -> list[dict[str, Any]]:
    """worker-dev's `kustomize:` block written by hand as the kustomization Argo CD's
    `kustomize edit` would make of it (image tag, common labels)."""
    wrapper = scratch / "wrapper"
    wrapper.mkdir()
    (wrapper / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(root / OVERLAYS / 'dev', wrapper)}]\n"
        "images:\n- {name: ghcr.io/somatechlat/task-capsule-repo, newTag: 1.5.0-rc1}\n"
        "commonLabels: {team: platform}\n")
    out = _run([str(renderers["kustomize"]), "build", str(wrapper)])
    return _placed(list(yaml.safe_load_all(out)), "soma-dev")


def _key(body: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = body.get("metadata", {})
    return (body["apiVersion"], body["kind"], meta.get("namespace", ""), meta["name"])


def test_inventory_equals_what_helm_and_kustomize_render(
        platform: Path, renderers: dict[str, Path], tmp_path: Path) -> None:
    inline = tmp_path / "prod-values.yaml"
    inline.write_text("replicas: 4\n")
    expected = [
        # soma-dev: values-dev.yaml (values-local.yaml is missing and ignored), then the
        # Application's parameter; release and namespace default to the Application's.
        *_helm(renderers, platform, "soma-dev", "soma-dev",
               "--values", str(platform / CHART / "values-dev.yaml"),
               "--set", "image.tag=1.5.0-rc1"),
        # soma-prod: releaseName soma, values.prod.yaml, then valuesObject.
        *_helm(renderers, platform, "soma", "soma-agent-hub",
               "--values", str(platform / CHART / "values.prod.yaml"),
               "--values", str(inline)),
        *_kustomize_dev_with_overrides(renderers, platform, tmp_path),
        *_kustomize(renderers, platform, "prod", "soma-agent-hub"),
    ]
    plain = [doc for path in sorted((platform / "argocd").glob("*.yaml"))
             for doc in yaml.safe_load_all(path.read_text())]
    plain += [doc for doc in yaml.safe_load_all(
        (platform / "k8s/namespaces/namespaces.yaml").read_text()) if doc["kind"] == "Namespace"]
    inventory = _load(platform, renderers)
    got = sorted((_key(r.body), json.dumps(r.body, sort_keys=True)) for r in inventory)
    want = sorted((_key(b), json.dumps(b, sort_keys=True)) for b in [*expected, *plain])
    assert [k for k, _ in got] == [k for k, _ in want]  # nothing missing, nothing twice
    assert got == want
    assert len({k for k, _ in got}) == len(got)
    # The dev rendering really differs from prod (values per environment were used).
    dev = inventory.get("Deployment", "gateway-api", "soma-dev")
    prod = inventory.get("Deployment", "gateway-api", "soma-agent-hub")
    assert dev is not None and prod is not None
    assert dev.spec["replicas"] == 1 and prod.spec["replicas"] == 4
    cache = inventory.get("ConfigMap", "soma-cache", "soma-agent-hub")  # the vendored chart
    assert cache is not None
    assert cache.origin == f"{CHART}/charts/soma-cache/templates/configmap.yaml"
    service = inventory.get("Service", "gateway-api", "soma-agent-hub")
    assert service.origin == f"{CHART}/templates/service.yaml"
    assert dev.origin == f"{CHART}/templates/deployment.yaml"
    assert inventory.get("Deployment", "task-capsule-repo", "soma-agent-hub").spec[
        "replicas"] == 3  # the prod overlay's patch, not the base
    worker_dev = inventory.get("Deployment", "task-capsule-repo", "soma-dev")
    assert worker_dev.labels["team"] == "platform"  # the Application's kustomize overrides
    assert worker_dev.spec["template"]["spec"]["containers"][0]["image"].endswith(":1.5.0-rc1")


def test_sources_list_says_what_was_rendered_skipped_and_ignored(
        platform: Path, renderers: dict[str, Path]) -> None:
    inventory = _load(platform, renderers)
    entries = {(e.kind, e.path, e.via): e for e in inventory.sources}
    dev = entries[("helm", CHART, "Application/argocd/soma-dev")]
    assert dev.status == "rendered" and dev.objects == 6
    assert "values values.yaml, k8s/helm/soma/values-dev.yaml" in dev.detail
    assert "values-local.yaml missing, ignored" in dev.detail
    prod = entries[("helm", CHART, "Application/argocd/soma-prod")]
    assert prod.status == "rendered" and "release soma," in prod.detail
    assert entries[("helm", "dependencies/soma-cache", "")].status == "skipped"
    assert entries[("kustomize", "k8s/kustomize/worker/base", "")].detail.startswith(
        "base of k8s/kustomize/worker/overlays/dev, k8s/kustomize/worker/overlays/prod")
    for env in ("dev", "prod"):
        overlay = entries[("kustomize", f"{OVERLAYS}/{env}", f"Application/argocd/worker-{env}")]
        assert overlay.status == "rendered" and overlay.objects == 2
    remote = entries[("application", "https://kubernetes.github.io/ingress-nginx",
                      "Application/argocd/ingress-nginx")]
    assert remote.status == "skipped" and "Helm repository" in remote.detail
    files = entries[("files", ".", "")]
    assert "4 files without Kubernetes objects ignored" in files.detail
    assert "1 objects also rendered" in files.detail
    assert not inventory.problems


def test_verdicts_name_the_template_file_and_the_values(
        platform: Path, renderers: dict[str, Path]) -> None:
    config = _config(renderers)
    checks = [c for c in load_catalog() if c.id in ("pss.no-privileged", "ops.manifests-parse")]
    report = run_audit(AuditRequest(ManifestsSource(platform, config=config), config, checks))
    privileged = report.result("pss.no-privileged")
    assert privileged is not None and privileged.status is Status.FAIL
    by_object = {e.object: e for e in privileged.evidence}
    gateway = by_object["Deployment/soma-dev/gateway-api"]
    assert gateway.location == f"{CHART}/templates/deployment.yaml"
    assert "values-dev.yaml" in gateway.rendered and "Application/argocd/soma-dev" in \
        gateway.rendered
    assert gateway.to_dict()["origin"] == f"{CHART}/templates/deployment.yaml"
    assert "Deployment/soma-agent-hub/gateway-api" not in by_object  # prod is hardened
    parse = report.result("ops.manifests-parse")
    assert parse is not None and parse.status is Status.PASS
    assert report.to_dict()["sources"][0]["kind"] == "files"


def test_config_helm_charts_override_the_applications(
        platform: Path, renderers: dict[str, Path]) -> None:
    inventory = _load(platform, renderers, helm={"charts": [
        {"path": CHART, "release": "qa", "namespace": "soma-qa",
         "values": ["values.prod.yaml"], "set": {"replicas": 2}}]})
    expected = _helm(renderers, platform, "qa", "soma-qa",
                     "--values", str(platform / CHART / "values.prod.yaml"),
                     "--set-json", "replicas=2")
    rendered = sorted(json.dumps(r.body, sort_keys=True) for r in inventory
                      if r.rendered and r.rendered.tool == "helm")
    assert rendered == sorted(json.dumps(b, sort_keys=True) for b in expected)
    assert {r.rendered.via for r in inventory if r.rendered and r.rendered.tool == "helm"} == {
        "config helm.charts[0]"}


def test_a_chart_without_an_application_renders_its_defaults(
        platform: Path, renderers: dict[str, Path]) -> None:
    for name in ("soma-dev.yaml", "soma-prod.yaml"):
        (platform / "argocd" / name).unlink()
    inventory = _load(platform, renderers, namespace="soma-defaults")
    expected = _helm(renderers, platform, "soma", "soma-defaults")
    rendered = [r for r in inventory if r.rendered and r.rendered.tool == "helm"]
    assert sorted(json.dumps(r.body, sort_keys=True) for r in rendered) == sorted(
        json.dumps(b, sort_keys=True) for b in expected)
    assert all(r.rendered.via == "defaults" for r in rendered)
    assert "chart/overlay defaults" in rendered[0].rendered.describe()


def _audit_errors(root: Path, renderers: dict[str, Path]) -> dict[str, Any]:
    config = _config(renderers)
    checks = [c for c in load_catalog() if c.id in ("ops.manifests-parse", "pss.no-privileged")]
    report = run_audit(AuditRequest(ManifestsSource(root, config=config), config, checks))
    return {r.check.id: r for r in report.results} | {"sources": report.sources}


def test_a_template_error_fails_the_chart_and_quotes_helm(
        platform: Path, renderers: dict[str, Path]) -> None:
    (platform / CHART / "templates/broken.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.deeper }}\n")
    results = _audit_errors(platform, renderers)
    failed = [e for e in results["sources"] if e.status == "failed"]
    assert {e.via for e in failed} == {"Application/argocd/soma-dev",
                                       "Application/argocd/soma-prod"}
    assert all(e.detail.startswith(f"helm template {CHART} failed: Error:") for e in failed)
    assert all("broken.yaml" in e.detail and "nil pointer" in e.detail for e in failed)
    parse = results["ops.manifests-parse"]
    assert parse.status is Status.FAIL and parse.evidence[0].object == CHART
    # The chart's Deployments are hidden: the checks reading Deployments cannot conclude.
    privileged = results["pss.no-privileged"]
    assert privileged.status is Status.ERROR
    assert any(e.object == "Deployment" and "helm k8s/helm/soma not rendered" in e.message
               for e in privileged.evidence)


def test_a_missing_dependency_names_the_chart_and_the_dependency(
        platform: Path, renderers: dict[str, Path]) -> None:
    for archive in (platform / CHART / "charts").glob("*.tgz"):
        archive.unlink()
    results = _audit_errors(platform, renderers)
    failed = [e for e in results["sources"] if e.status == "failed"]
    assert failed and all(
        e.detail == f"chart {CHART}: dependency soma-cache 0.1.0 from "
        "file://../../../dependencies/soma-cache missing from k8s/helm/soma/charts/ (vendor "
        "it with `helm dependency build`; the audit runs offline)" for e in failed)
    assert results["ops.manifests-parse"].status is Status.FAIL


def test_a_broken_overlay_fails_and_quotes_kustomize(
        platform: Path, renderers: dict[str, Path]) -> None:
    overlay = platform / OVERLAYS / "dev/kustomization.yaml"
    overlay.write_text(overlay.read_text() + "  - ../../missing-base\n")
    results = _audit_errors(platform, renderers)
    (failed,) = [e for e in results["sources"] if e.status == "failed"]
    assert failed.kind == "kustomize" and failed.path == f"{OVERLAYS}/dev"
    assert failed.detail.startswith(f"kustomize build {OVERLAYS}/dev failed: Error:")
    assert "missing-base" in failed.detail
    assert results["ops.manifests-parse"].status is Status.FAIL


def test_renderings_run_at_once_read_exactly_as_one_by_one(
        platform: Path, renderers: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct inputs render concurrently; the inventory (objects in order, origins,
    sources, problems, unavailable kinds) equals a one-at-a-time load, failures included."""
    (platform / "k8s/helm/broken").mkdir(parents=True)
    (platform / "k8s/helm/broken/Chart.yaml").write_text("apiVersion: v2\nname: broken\n"
                                                          "version: 0.1.0\n")
    (platform / "k8s/helm/broken/templates").mkdir()
    (platform / "k8s/helm/broken/templates/cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.no.such }}\n")
    overlay = platform / OVERLAYS / "dev/kustomization.yaml"
    overlay.write_text(overlay.read_text() + "  - ../../missing-base\n")
    prod = (platform / "argocd/soma-prod.yaml").read_text()
    (platform / "argocd/soma-prod-mirror.yaml").write_text(
        prod.replace("name: soma-prod\n", "name: soma-prod-mirror\n"))

    def snapshot() -> tuple[Any, ...]:
        inventory = _load(platform, renderers)
        return ([(r.origin, r.rendered, json.dumps(r.body, sort_keys=True)) for r in inventory],
                inventory.sources, inventory.problems, inventory.unavailable)

    assert rendering.RENDER_WORKERS > 1
    at_once = snapshot()
    monkeypatch.setattr(rendering, "RENDER_WORKERS", 1)
    one_by_one = snapshot()
    assert at_once == one_by_one
    _, sources, problems, _ = at_once
    assert [s.status for s in sources].count("failed") == 2 and len(problems) == 2
    # The mirror's file sorts first: soma-prod repeats its inputs, rendered once.
    assert any(s.via == "Application/argocd/soma-prod" and s.detail.endswith("counted once")
               for s in sources)


def test_cli_finds_the_binaries_on_path_and_reports_sources(
        platform: Path, renderers: dict[str, Path], tmp_path: Path) -> None:
    """The way a user runs it: helm and kustomize on PATH, JSON with the sources list."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, binary in renderers.items():
        (bindir / name).symlink_to(binary)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(
        [sys.executable, "-m", "soma_audit", "--manifests", str(platform), "--ci",
         "--format", "json", "--only", "pss.*", "--only", "ops.manifests-parse"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    rendered = [s for s in report["sources"] if s["status"] == "rendered"]
    assert len(rendered) == 4
    parse = next(c for c in report["checks"] if c["id"] == "ops.manifests-parse")
    assert parse["status"] == "pass"


def test_a_fix_for_an_overlay_object_is_a_verified_patch_in_the_overlay(
        platform: Path, renderers: dict[str, Path]) -> None:
    """The remediation side: built by the real kustomize before it is offered, and after
    writing it the audit sees the fixed object; the base and the build stay untouched."""
    import copy

    from soma_audit.remediation.rendered import propose
    from soma_audit.sources.rendering import Renderer

    config = _config(renderers)
    inventory = _load(platform, renderers)
    worker = inventory.get("Deployment", "task-capsule-repo", "soma-agent-hub")
    assert worker is not None and worker.rendered is not None
    desired = copy.deepcopy(worker.body)
    desired["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
    base = (platform / "k8s/kustomize/worker/base/deployment.yaml").read_bytes()
    fix = propose(worker, desired, platform, Renderer(platform, config))
    assert not fix.refusal, fix.refusal
    assert {e.path for e in fix.edits} == {
        f"{OVERLAYS}/prod/soma-audit-deployment-task-capsule-repo.yaml",
        f"{OVERLAYS}/prod/kustomization.yaml"}
    for edit in fix.edits:
        (platform / edit.path).write_text(edit.after)
    fixed = _load(platform, renderers).get("Deployment", "task-capsule-repo", "soma-agent-hub")
    assert fixed is not None and fixed.body == desired
    dev = _load(platform, renderers).get("Deployment", "task-capsule-repo", "soma-dev")
    assert "securityContext" not in dev.spec["template"]["spec"]["containers"][0]
    assert (platform / "k8s/kustomize/worker/base/deployment.yaml").read_bytes() == base
    chart_object = inventory.get("Deployment", "gateway-api", "soma-dev")
    refused = propose(chart_object, desired, platform, Renderer(platform, config))
    assert "rendered by Helm chart k8s/helm/soma" in refused.refusal and not refused.edits


def test_a_patch_that_kustomize_cannot_apply_is_refused(
        platform: Path, renderers: dict[str, Path]) -> None:
    import copy

    from soma_audit.remediation.rendered import propose
    from soma_audit.sources.rendering import Renderer

    inventory = _load(platform, renderers)
    worker = inventory.get("Deployment", "task-capsule-repo", "soma-agent-hub")
    desired = copy.deepcopy(worker.body)
    desired["spec"]["selector"] = {"matchLabels": "not-a-map"}  # no strategic merge of it
    fix = propose(worker, desired, platform, Renderer(platform, _config(renderers)))
    assert not fix.edits
    assert fix.refusal.startswith(
        "the patch for Deployment/soma-agent-hub/task-capsule-repo does not build: kustomize "
        f"build {OVERLAYS}/prod failed: Error:")


def test_a_release_name_that_looks_like_a_flag_is_refused(
        platform: Path, renderers: dict[str, Path], tmp_path: Path) -> None:
    """A name from the repository never reaches helm's command line as an option."""
    app = platform / "argocd/soma-dev.yaml"
    escape = tmp_path / "written-by-helm"
    app.write_text(app.read_text().replace(
        "    helm:\n", f"    helm:\n      releaseName: --output-dir={escape}\n"))
    inventory = _load(platform, renderers)
    (failed,) = [e for e in inventory.sources if e.status == "failed"]
    assert failed.via == "Application/argocd/soma-dev"
    assert "is not a valid Helm release name" in failed.detail
    assert not escape.exists()


def test_a_missing_value_file_fails_unless_argo_cd_may_ignore_it(
        platform: Path, renderers: dict[str, Path]) -> None:
    app = platform / "argocd/soma-dev.yaml"
    app.write_text(app.read_text().replace("      ignoreMissingValueFiles: true\n", ""))
    inventory = _load(platform, renderers, helm={"charts": []})
    (failed,) = [e for e in inventory.sources if e.status == "failed"]
    assert failed.via == "Application/argocd/soma-dev"
    assert failed.detail == f"chart {CHART}: value file values-local.yaml not found in the " \
        "repository"
    assert [p.where for p in inventory.problems] == [CHART]


def test_a_configured_chart_path_without_a_chart_is_reported(
        platform: Path, renderers: dict[str, Path]) -> None:
    inventory = _load(platform, renderers, helm={"charts": [{"path": "k8s/nothing-here"}]})
    (failed,) = [e for e in inventory.sources if e.status == "failed"]
    assert (failed.kind, failed.path, failed.via) == ("helm", "k8s/nothing-here",
                                                      "config helm.charts[0]")
    assert any(p.where == "config helm.charts[0]" for p in inventory.problems)


def test_a_fifo_inside_a_chart_is_refused_before_helm_blocks_on_it(
        platform: Path, renderers: dict[str, Path]) -> None:
    os.mkfifo(platform / CHART / "templates" / "pipe.yaml")
    inventory = _load(platform, renderers)
    failed = [e for e in inventory.sources if e.status == "failed"]
    assert len(failed) == 2 and all(
        e.detail == f"chart {CHART}: {CHART}/templates/pipe.yaml is not a regular file (helm "
        "would block reading it): not rendered" for e in failed)


def test_a_fix_for_rendered_objects_patches_the_overlay_and_names_the_chart(
        platform: Path, renderers: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """pss-hardening on a repository whose workloads come from a chart and an overlay:
    the overlay gets a strategic-merge patch it lists (its build then carries the fix), the
    chart's templates and rendered output are never written, and the plan says why."""
    from soma_audit.cli import main

    monkeypatch.setenv("SOMA_AUDIT_STATE", str(tmp_path / "state"))
    config = tmp_path / "tools.yaml"
    config.write_text(yaml.safe_dump({"tools": {"helm": str(renderers["helm"]),
                                                "kustomize": str(renderers["kustomize"])}}))
    chart_before = {p: p.read_bytes() for p in (platform / CHART).rglob("*") if p.is_file()}
    assert main(["apply", "pss-hardening", "--manifests", str(platform), "--config",
                 str(config), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "overlay patch for Deployment/" in out
    assert "is rendered by Helm chart k8s/helm/soma" in out
    assert {p: p.read_bytes() for p in (platform / CHART).rglob("*") if p.is_file()} \
        == chart_before
    # worker-prod's overlay is patched; worker-dev's build carries its Application's
    # kustomize overrides, which the overlay alone does not, so its patch is not offered
    assert "the patch for Deployment/soma-dev/task-capsule-repo does not give" in out
    built = _kustomize(renderers, platform, "prod", "soma-agent-hub")
    workers = [d for d in built if d["kind"] == "Deployment"]
    assert workers
    for deployment in workers:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
