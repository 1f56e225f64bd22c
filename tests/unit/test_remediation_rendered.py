"""Fixes for rendered objects: the minimal strategic-merge patch, the kustomization edit
that lists it (the rest byte for byte), and the refusal for a Helm-rendered object."""

from __future__ import annotations

from pathlib import Path

from soma_audit.kube.inventory import Rendering, Resource
from soma_audit.remediation.rendered import _with_patch_listed, merge_patch, propose

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "worker", "namespace": "prod", "labels": {"app": "worker"}},
    "spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "worker", "image": "w:1"}, {"name": "sidecar", "image": "s:1"}]}}},
}


def _desired() -> dict:
    import copy

    desired = copy.deepcopy(DEPLOYMENT)
    desired["spec"]["replicas"] = 3
    desired["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "readOnlyRootFilesystem": True}
    del desired["metadata"]["labels"]
    return desired


def test_merge_patch_keeps_only_what_changes_and_merges_containers_by_name() -> None:
    assert merge_patch(DEPLOYMENT, _desired()) == {
        "metadata": {"labels": None},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "worker", "securityContext": {"readOnlyRootFilesystem": True}}]}}},
    }
    assert merge_patch(DEPLOYMENT, DEPLOYMENT) == {}


def test_patch_is_listed_under_patches_and_nothing_else_moves() -> None:
    text = ("# prod overlay\nresources:\n  - ../../base\npatches:\n  # replicas\n"
            "  - path: replicas.yaml\nnamespace: prod  # keep\n")
    assert _with_patch_listed(text, "fix.yaml") == (
        "# prod overlay\nresources:\n  - ../../base\npatches:\n  # replicas\n"
        "  - path: replicas.yaml\n  - path: fix.yaml\nnamespace: prod  # keep\n")
    assert _with_patch_listed("resources: [a.yaml]", "fix.yaml") == (
        "resources: [a.yaml]\npatches:\n  - path: fix.yaml\n")
    assert _with_patch_listed("patches: [{path: a.yaml}]\n", "fix.yaml") is None


def test_a_helm_rendered_object_is_refused_with_the_reason(tmp_path: Path) -> None:
    rendering = Rendering("helm", "k8s/helm/soma", "soma-dev", "soma-dev",
                          ("values.yaml", "k8s/helm/soma/values-dev.yaml"),
                          "Application/argocd/soma-dev")
    resource = Resource(DEPLOYMENT, "k8s/helm/soma/templates/deployment.yaml", rendering)
    fix = propose(resource, _desired(), tmp_path)
    assert not fix.edits
    assert fix.refusal.startswith(
        "Deployment/prod/worker is rendered by Helm chart k8s/helm/soma from "
        "k8s/helm/soma/templates/deployment.yaml (Application/argocd/soma-dev; values "
        "values.yaml, k8s/helm/soma/values-dev.yaml): soma-audit does not write into "
        "templates or rendered output.")


def test_a_kustomize_object_gets_a_patch_file_in_its_overlay(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays/prod"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text("resources: [../../base]\n")
    resource = Resource(DEPLOYMENT, "overlays/prod/kustomization.yaml",
                        Rendering("kustomize", "overlays/prod", namespace="prod"))
    fix = propose(resource, _desired(), tmp_path)
    assert not fix.refusal
    assert [e.path for e in fix.edits] == ["overlays/prod/soma-audit-deployment-worker.yaml",
                                           "overlays/prod/kustomization.yaml"]
    assert "+++ b/overlays/prod/soma-audit-deployment-worker.yaml" in fix.diff
    assert "+  - path: soma-audit-deployment-worker.yaml" in fix.diff
