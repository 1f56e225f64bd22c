"""Every Kubernetes-side check, live: its ready state passes and each variation fails with
the expected evidence, on the real API server.

The states are the checks' own fixture cases (tests/fixtures/checks/<id>/<case>/: a small
GitOps tree and ``expect.yaml``), so the live path is held to exactly the expectations of
the offline one. Each case is created for real in fresh namespaces (every namespace the
case uses is renamed ``<name>-<suffix>``, in the objects, the config and the expected
evidence alike), read back by the live source with the read-only ServiceAccount, and
audited with only that check. Cases the live path cannot express are skipped with the
reason: files that are not Kubernetes objects (FGA models, k6 scripts…), objects without a
namespace or in a shared system namespace, and objects the API server itself refuses
(PodSecurity or schema validation — which is the API server agreeing with the check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.probes import AS_OF_SNAPSHOT, load_probes
from tests.helpers import FIXTURES, fresh_suffix
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    KubeError,
    ScopedClusterSource,
    audit,
    cluster_source,
    create,
    only,
    renamer,
    set_status,
    show,
)

pytestmark = pytest.mark.integration

#: Namespaces the bundled config names; renamed with the case's own.
CONFIG_NAMESPACES = ("soma-agent-hub", "observability", "argocd")
#: Shared namespaces a case may not write into.
SHARED = ("kube-system", "kube-public", "kube-node-lease", "default", "istio-system")


def _kubernetes_checks() -> list[str]:
    probes = load_probes()
    return sorted(c.id for c in load_catalog()
                  if not c.manual and set(c.requires) <= {"cluster", "status"}
                  and probes[c.probe].kinds)


def _cases() -> list[Path]:
    return sorted(case for check in _kubernetes_checks()
                  for case in (FIXTURES / "checks" / check).glob("*")
                  if (case / "expect.yaml").is_file())


def _documents(case: Path) -> tuple[list[str], str | None]:
    """The YAML texts of the case, or why it is not made of Kubernetes objects only."""
    texts = []
    for path in sorted(p for p in case.rglob("*") if p.is_file() and p.name != "expect.yaml"):
        if path.suffix not in (".yaml", ".yml", ".json"):
            return [], f"{path.name} is not a Kubernetes manifest (a repository file)"
        try:
            texts.append(path.read_text())
        except UnicodeDecodeError:
            return [], f"{path.name} is not text (an offline-only case)"
    return texts, None


def _objects(texts: list[str]) -> tuple[list[dict[str, Any]], str | None]:
    objects: list[dict[str, Any]] = []
    for text in texts:
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as exc:
            return [], f"not valid YAML (an offline-only case): {str(exc).splitlines()[0]}"
        for doc in docs:
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                return [], "holds a document that is not a Kubernetes object"
            if doc["kind"] == "List":
                objects += doc.get("items") or []
            else:
                objects.append(doc)
    return objects, None


def _case_id(case: Path) -> str:
    return f"{case.parent.name}/{case.name}"


#: Cases whose live reading differs from the offline one for a reason of the real API
#: server (each reported to the probe's owner).
LIVE_DIFFERS = {
    "kafka.user-acls/pass-least-privilege":
        "a v1beta2 KafkaUser with the singular `operation`, listed as v1 (the storage "
        "version, no conversion webhook), has no operations: the v1 schema prunes it — live, "
        "the user really has no Read ACL as Strimzi 1.x sees it",
    "netpol.default-deny/fail-ingress-only-defaulted":
        "the API server writes the defaulted policyTypes into the object, so live evidence "
        "cannot say '(defaulted)' (same verdict)",
    **{f"{check}/skip-snapshot-without-status":
       "only a dump can lack status: live, an object without status is judged as it is "
       "(unset sync, health, operation or last run)"
       for check in ("argocd.apps-healthy", "argocd.last-sync", "chaos.recent-runs")},
    "ops.cost-controls/fail-gaps":
        "an autoscaling/v1 HorizontalPodAutoscaler is served as autoscaling/v2 by the API "
        "server: 'is autoscaling/v1' cannot be observed live",
}


@pytest.mark.parametrize("case", _cases(), ids=_case_id)
def test_check_case_on_the_live_cluster(case: Path, kube: AdminKube, kube_env: Any) -> None:
    check_id = case.parent.name
    expect_text = (case / "expect.yaml").read_text()
    texts, why = _documents(case)
    if why:
        pytest.skip(why)
    objects, why = _objects(texts)
    if why:
        pytest.skip(why)
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    names |= {o["metadata"].get("namespace") for o in objects} - {None}
    if names & set(SHARED):
        pytest.skip(f"writes into a shared namespace ({', '.join(sorted(names & set(SHARED)))})")
    for obj in objects:
        _, namespaced = kube.resource(obj["apiVersion"], obj["kind"]) if _served(kube, obj) \
            else ("", True)
        if namespaced and not obj["metadata"].get("namespace"):
            pytest.skip(f"{obj['kind']}/{obj['metadata'].get('name')} has no namespace")
        if not namespaced and obj["kind"] != "Namespace":
            pytest.skip(f"{obj['kind']}/{obj['metadata'].get('name')} is cluster-scoped "
                        "(shared by every test on the server)")
    if _case_id(case) in LIVE_DIFFERS:
        pytest.xfail(LIVE_DIFFERS[_case_id(case)])
    names |= set(CONFIG_NAMESPACES)
    rename = renamer(names, fresh_suffix())
    objects, _ = _objects([rename(t) for t in texts])
    expect = yaml.safe_load(rename(expect_text))
    if expect.get("source") == "snapshot":  # the same status, read live: not "as of" a dump
        for wanted in expect.get("evidence", []):
            text = wanted.get("contains", "").replace(AS_OF_SNAPSHOT, "")
            wanted["contains"] = text.replace(AS_OF_SNAPSHOT.strip(), "")
    expect_config = yaml.safe_load(expect_text).get("config") or {}
    declared = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    used = {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}
    if used - declared and check_id.startswith("pss."):
        pytest.skip("uses a namespace it does not declare: on a live cluster every namespace "
                    "has a Namespace object")
    fresh = sorted(declared | used)
    ordered = sorted(objects, key=lambda o: o["kind"] != "Namespace")
    for ns in fresh:
        if ns not in declared:
            ordered.insert(0, {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": ns}})
    for obj in ordered:
        if not _served(kube, obj):
            pytest.skip(f"{obj['apiVersion']} {obj['kind']} is not served by the test "
                        "server (no CRD)")
        try:
            created = create(kube, obj)
        except KubeError as exc:
            if exc.status in (403, 422, 400):
                pytest.skip(f"the API server refuses {obj['kind']}/"
                            f"{obj['metadata'].get('name')}: {exc}")
            raise
        if isinstance(obj.get("status"), dict) and obj["status"] != created.get("status"):
            set_status(kube, created, obj["status"])
    config = _rename_config(_merge(_default_config(), expect_config), rename)
    scope = [*fresh, *(rename(n) for n in CONFIG_NAMESPACES)]
    source = ScopedClusterSource(cluster_source(kube_env.readonly_kubeconfig), scope)
    result = only(audit(source, [check_id], config), check_id)
    got = [(e.object, e.message) for e in result.evidence]
    assert result.status.value == expect["status"], show(result)
    for wanted in expect.get("evidence", []):
        assert any((wanted.get("object") is None or obj == wanted["object"])
                   and wanted.get("contains", "") in msg for obj, msg in got), \
            f"no evidence matching {wanted}\n{show(result)}"


def _default_config() -> dict[str, Any]:
    from soma_audit.core.paths import data_path

    return dict(yaml.safe_load(data_path("config", "default.yaml").read_text()))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """As load_config merges: mappings key by key, anything else replaces."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _rename_config(value: Any, rename: Any, key: str = "") -> Any:
    """Namespace names renamed in every string and in the keys of ``namespaces``."""
    if isinstance(value, dict):
        return {(rename(k) if key == "namespaces" else k): _rename_config(v, rename, k)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_rename_config(v, rename, key) for v in value]
    return rename(value) if isinstance(value, str) else value


def _served(kube: AdminKube, obj: dict[str, Any]) -> bool:
    try:
        kube.resource(obj["apiVersion"], obj["kind"])
    except KubeError:
        return False
    return True
