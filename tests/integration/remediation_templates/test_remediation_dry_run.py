"""Every rendered Kubernetes manifest is accepted by the real API server.

Server-side apply with ``dryRun=All`` and ``fieldValidation=Strict`` against the test
kube-apiserver, whose CRDs (Argo CD, Argo Events, Strimzi v1 + v1beta2, Chaos Mesh,
Prometheus Operator) carry structural schemas: a misspelt or removed field is an error,
not a silent drop. Objects go to fresh namespaces (namespaces never finish deleting).
PodSecurity admission is the ground truth for hardening: pods built from the hardened
templates are admitted by a ``restricted`` namespace, the originals are not.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from soma_audit.config import load_config
from soma_audit.domain.pss import evaluate
from soma_audit.kube.workloads import TEMPLATE_PATHS
from soma_audit.remediation.recipes import load_recipes
from soma_audit.remediation.render import render
from soma_audit.sources.manifests import ManifestsSource
from tests.unit.test_remediation_render import CUSTOM, DEMO, _custom_tree

pytestmark = pytest.mark.integration

RECIPES = load_recipes()
KUBERNETES = sorted(r.id for r in RECIPES.values() if r.target == "kubernetes")
RESTRICTED = {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}


def _objects(recipe_id: str, custom: bool, tmp_path: Path,
             api_versions: dict[str, str] | None = None) -> list[dict[str, Any]]:
    root = _custom_tree(tmp_path / "repo") if custom else DEMO
    config = load_config(**(CUSTOM if custom else {}))
    inventory = ManifestsSource(root).load(frozenset())
    files = render(RECIPES[recipe_id], config, inventory, api_versions)
    return [obj for f in files for obj in f.objects]


class Cluster:
    """Fresh namespaces standing in for the rendered ones, and a strict SSA dry run."""

    def __init__(self, api: Any, unique_name: Callable[[str], str]) -> None:
        self.api = api
        self.dynamic = DynamicClient(api)
        self.unique_name = unique_name
        self.renamed: dict[str, str] = {}

    def namespace(self, original: str, labels: dict[str, str] | None = None) -> str:
        if original not in self.renamed:
            name = self.unique_name(original)
            client.CoreV1Api(self.api).create_namespace(client.V1Namespace(
                metadata=client.V1ObjectMeta(name=name, labels=labels or {})))
            self.renamed[original] = name
        return self.renamed[original]

    def dry_run_apply(self, obj: dict[str, Any]) -> list[str]:
        """Server-side apply (dry run, strict field validation); returns the warnings."""
        body = copy.deepcopy(obj)
        meta = body["metadata"]
        resource = self.dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        namespace = None
        if body["kind"] == "Namespace":
            meta["name"] = self.unique_name(meta["name"])
            meta.get("labels", {}).pop("kubernetes.io/metadata.name", None)
        elif resource.namespaced:
            namespace = self.namespace(meta.get("namespace") or "default")
            meta["namespace"] = namespace
        path = resource.path(name=meta["name"], namespace=namespace)
        return dry_run(self.api, "PATCH", path, json.dumps(body),
                       "application/apply-patch+yaml", [("fieldManager", "soma-audit"),
                                                        ("fieldValidation", "Strict")])

    def dry_run_create(self, obj: dict[str, Any]) -> list[str]:
        """POST ``obj`` as it is (dry run, strict field validation); returns the warnings."""
        resource = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        namespace = obj["metadata"]["namespace"] if resource.namespaced else None
        return dry_run(self.api, "POST", resource.path(namespace=namespace), obj,
                       "application/json", [("fieldValidation", "Strict")])


def dry_run(api: Any, method: str, path: str, body: Any, content_type: str,
            query: Sequence[tuple[str, str]] = ()) -> list[str]:
    """One ``dryRun=All`` request as raw JSON (quantities may be YAML integers); the
    Warning headers of the answer; ApiException for an error status."""
    verb, url, headers, payload, post = api.param_serialize(
        method, path, query_params=[("dryRun", "All"), *query],
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body, auth_settings=["BearerToken"],
    )
    response = api.call_api(verb, url, header_params=headers, body=payload, post_params=post)
    response.read()
    if response.status >= 400:
        raise ApiException(http_resp=response)
    return list(response.getheaders().get_all("Warning") or [])


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


@pytest.mark.parametrize("custom", [False, True], ids=["default", "custom"])
@pytest.mark.parametrize("recipe_id", KUBERNETES)
def test_rendered_manifests_pass_a_strict_server_side_dry_run(
        recipe_id: str, custom: bool, kube_admin_client: Any,
        unique_name: Callable[[str], str], tmp_path: Path) -> None:
    cluster = Cluster(kube_admin_client, unique_name)
    objects = _objects(recipe_id, custom, tmp_path)
    if not objects:
        pytest.skip("renders no Kubernetes objects for this tree")
    errors = []
    for obj in objects:
        try:
            warnings = cluster.dry_run_apply(obj)
        except ApiException as exc:
            errors.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {_message(exc)}")
        else:
            errors += [f"{obj['kind']}/{obj['metadata'].get('name')}: warning {w}"
                       for w in warnings]
    assert not errors, "\n".join(errors)


def test_strimzi_v1beta2_rendering_is_accepted(kube_admin_client: Any,
                                               unique_name: Callable[[str], str],
                                               tmp_path: Path) -> None:
    """Clusters older than Strimzi 0.49 only serve v1beta2: that rendering is valid too."""
    cluster = Cluster(kube_admin_client, unique_name)
    old = {"KafkaTopic": "kafka.strimzi.io/v1beta2", "KafkaUser": "kafka.strimzi.io/v1beta2"}
    for recipe_id in ("kafka-topics", "kafka-users"):
        for obj in _objects(recipe_id, False, tmp_path, old):
            assert obj["apiVersion"] == "kafka.strimzi.io/v1beta2"
            cluster.dry_run_apply(obj)


def test_a_wrong_field_is_rejected_so_the_dry_run_proves_something(
        kube_admin_client: Any, unique_name: Callable[[str], str], tmp_path: Path) -> None:
    cluster = Cluster(kube_admin_client, unique_name)
    schedule = _objects("chaos-schedules", False, tmp_path)[0]
    schedule["spec"]["stressChaos"]["scheduler"] = {"cron": "@daily"}  # the removed 1.x form
    with pytest.raises(ApiException) as rejected:
        cluster.dry_run_apply(schedule)
    assert "scheduler" in _message(rejected.value)


def _pod_of(workload: dict[str, Any], name: str) -> dict[str, Any]:
    node: Any = workload
    for key in TEMPLATE_PATHS[workload["kind"]]:
        node = node[key]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": (node.get("metadata") or {}).get("labels", {})},
            "spec": copy.deepcopy(node["spec"])}


@pytest.mark.parametrize("custom", [False, True], ids=["default", "custom"])
def test_hardened_workloads_are_admitted_by_a_restricted_namespace(
        custom: bool, kube_admin_client: Any, unique_name: Callable[[str], str],
        tmp_path: Path) -> None:
    """PodSecurity (enforce = restricted) admits a pod of every hardened template; the
    originals our own evaluator flags are rejected by it too (same verdict, two engines)."""
    namespace = unique_name("restricted")
    client.CoreV1Api(kube_admin_client).create_namespace(client.V1Namespace(
        metadata=client.V1ObjectMeta(name=namespace, labels=RESTRICTED)))
    hardened = [o for o in _objects("pss-hardening", custom, tmp_path)
                if o["kind"] in TEMPLATE_PATHS]
    assert hardened
    rejected_before = 0
    root = _custom_tree(tmp_path / "before") if custom else DEMO
    before = {(r.kind, r.name): r.body for r in ManifestsSource(root).load(frozenset())}
    for workload in hardened:
        name = unique_name(workload["metadata"]["name"])
        pod = _pod_of(workload, name)
        pods = f"/api/v1/namespaces/{namespace}/pods"
        dry_run(kube_admin_client, "POST", pods, pod, "application/json")
        original = _pod_of(before[(workload["kind"], workload["metadata"]["name"])], name)
        if not list(evaluate(original["spec"], original["metadata"], "restricted")):
            continue  # only readOnlyRootFilesystem/resources were missing: PSS allows it
        with pytest.raises(ApiException) as rejected:
            dry_run(kube_admin_client, "POST", pods, original, "application/json")
        assert 'violates PodSecurity "restricted:latest"' in _message(rejected.value)
        rejected_before += 1
    assert rejected_before > 0
