"""manifests/deploy on the real API server: strict dry-run creates, and PodSecurity.

Every object `kubectl apply -k manifests/deploy` installs — plus any YAML file in the
folder not listed in its kustomization yet — is POSTed with ``dryRun=All`` and
``fieldValidation=Strict`` (a misspelt field is an error, not a silent drop; the testenv
CRDs give ServiceMonitor and PrometheusRule structural schemas). Namespaced objects go to
a fresh, really created namespace carrying the manifest's restricted labels (a dry-run
Namespace is not persisted, and namespaces never finish deleting); cluster-scoped ones get
a unique suffix, since the shared server may already hold the originals. Pods built from
the Deployment's and the CronJob's templates must be admitted there by PodSecurity
``restricted``; a pod with the hardening stripped must not (the control that makes the
first verdict mean something).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException

from tests.helpers import REPO, fresh_suffix
from tests.integration.remediation_templates.test_remediation_dry_run import Cluster, _message
from tests.unit.test_deploy import (
    DEPLOY,
    deploy_objects,
    kustomization_file,
    kustomize_files,
    load_objects,
    one,
    pod_templates,
)

pytestmark = pytest.mark.integration


def _folder_files() -> list[Path]:
    """What `apply -k` reads, then the folder's other YAML files (a new file is tested even
    before it is added to kustomization.yaml, which tests/unit/test_deploy.py demands)."""
    files = kustomize_files(DEPLOY)
    skip = {*files, kustomization_file(DEPLOY)}
    return files + sorted(p.resolve() for p in DEPLOY.glob("*.y*ml") if p.resolve() not in skip)


def _restricted_namespace(cluster: Cluster, objects: list[dict[str, Any]]) -> str:
    """A fresh namespace with the labels of the manifest's Namespace soma-audit."""
    labels = one(objects, "Namespace", "soma-audit")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    return cluster.namespace("soma-audit", labels=labels)


def _placed(cluster: Cluster, obj: dict[str, Any], namespace: str, suffix: str) -> dict[str, Any]:
    """A copy of ``obj`` in ``namespace``, or with ``suffix`` on its cluster-wide name."""
    body = copy.deepcopy(obj)
    meta = body["metadata"]
    resource = cluster.dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    if resource.namespaced:
        meta["namespace"] = namespace
    else:
        meta["name"] = f"{meta['name']}-{suffix}"
    if body["kind"] == "ClusterRoleBinding":
        body["roleRef"]["name"] = f"{body['roleRef']['name']}-{suffix}"
        for subject in body["subjects"]:
            subject["namespace"] = namespace
    if body["kind"] == "ServiceMonitor":
        body["spec"]["namespaceSelector"] = {"matchNames": [namespace]}
    return body


def _pod(template: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": template["metadata"]["labels"]},
            "spec": copy.deepcopy(template["spec"])}


def test_kubectl_kustomize_builds_what_the_tests_read() -> None:
    """The unit tests' reading of the kustomization is the real kustomize build."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH: cannot run the real kustomize build")
    proc = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True,
                          text=True, timeout=60, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    built = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]

    def key(obj: dict[str, Any]) -> tuple[str, str, str]:
        return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]

    assert sorted(built, key=key) == sorted(deploy_objects(), key=key)


def test_every_deploy_object_passes_a_strict_dry_run_create(
        kube_admin_client: Any, unique_name: Callable[[str], str]) -> None:
    cluster = Cluster(kube_admin_client, unique_name)
    objects = load_objects(_folder_files())
    namespace = _restricted_namespace(cluster, objects)
    suffix = fresh_suffix()
    problems: list[str] = []
    accepted: list[str] = []
    for obj in objects:
        ref = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            warnings = cluster.dry_run_create(_placed(cluster, obj, namespace, suffix))
        except ApiException as exc:
            problems.append(f"{ref}: HTTP {exc.status} {_message(exc)}")
            continue
        problems += [f"{ref}: warning {w}" for w in warnings]
        accepted.append(ref)
    assert not problems, "\n".join(problems)
    kinds = {ref.split("/")[0] for ref in accepted}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
            "Service", "ServiceMonitor", "NetworkPolicy", "CronJob",
            "PersistentVolumeClaim", "PrometheusRule"} <= kinds, kinds
    assert len(accepted) == len(objects)


def test_pods_of_both_workloads_are_admitted_by_pod_security_restricted(
        kube_admin_client: Any, unique_name: Callable[[str], str]) -> None:
    cluster = Cluster(kube_admin_client, unique_name)
    objects = deploy_objects()
    namespace = _restricted_namespace(cluster, objects)
    templates = pod_templates(objects)
    assert set(templates) == {"Deployment/soma-audit", "CronJob/soma-audit-report"}
    for ref, template in templates.items():
        warnings = cluster.dry_run_create(_pod(template, namespace, unique_name("pod")))
        assert warnings == [], (ref, warnings)

    # The control: the same pod without its hardening is refused by the same namespace.
    weak = _pod(templates["Deployment/soma-audit"], namespace, unique_name("weak"))
    del weak["spec"]["securityContext"]
    for container in weak["spec"]["containers"]:
        del container["securityContext"]
    with pytest.raises(ApiException) as refused:
        cluster.dry_run_create(weak)
    assert refused.value.status == 403
    message = _message(refused.value)
    assert 'violates PodSecurity "restricted:latest"' in message, message
    for control in ("allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile"):
        assert control in message, message
