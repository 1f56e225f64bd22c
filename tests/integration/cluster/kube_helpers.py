"""Helpers for live-cluster tests: admin access, throw-away identities, scoped audits.

The test API server is shared with other engineers' tests, so every audit here is scoped
to the test's own fresh namespaces by :class:`ScopedClusterSource` — the real source doing
the real LISTs, with the inventory then cut down to those namespaces (the engine only ever
sees the inventory, so this changes no code path under test).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.model import Result
from soma_audit.engine.scan import AuditRequest, run_audit
from soma_audit.kube.inventory import Inventory
from soma_audit.results.report import Report
from soma_audit.sources.cluster import ClusterSource, Timeouts
from testenv.kubeclient import Kube, KubeError

__all__ = ["Kube", "KubeError"]


class AdminKube(Kube):
    """The testenv's stdlib client with the admin certificate, knowing its CA file."""

    def __init__(self, server: str, pki: Path) -> None:
        super().__init__(server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
        self.ca = pki / "ca.crt"


def admin_kube(admin_kubeconfig: Path, server: str) -> AdminKube:
    """Admin access; the certificates live next to the admin kubeconfig."""
    return AdminKube(server, admin_kubeconfig.parent / "kube" / "pki")


def create(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    """POST one object (not apply: a create is what PodSecurity admission judges), with
    strict field validation so that a field the schema would silently prune is refused."""
    path = kube.path(obj).rsplit("/", 1)[0]
    result: dict[str, Any] = kube.request("POST", path, obj,
                                          query={"fieldValidation": "Strict"})
    return result


def restricted_pod(name: str) -> dict[str, Any]:
    """The smallest Pod that Pod Security ``restricted`` admits."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"securityContext": {"runAsNonRoot": True,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "app", "image": "registry.invalid/app:1",
                                     "securityContext": {
                                         "allowPrivilegeEscalation": False,
                                         "capabilities": {"drop": ["ALL"]}}}]}}


def set_status(kube: Kube, obj: dict[str, Any], status: dict[str, Any]) -> None:
    """Write ``status`` the way a controller does: through the status subresource when the
    CRD has one, else with the main resource (our Argo CD CRD declares none)."""
    path = kube.path(obj)
    body = {"status": status}
    try:
        kube.request("PATCH", f"{path}/status", body,
                     content_type="application/merge-patch+json")
    except KubeError as exc:
        if exc.status != 404:
            raise
        kube.request("PATCH", path, body, content_type="application/merge-patch+json")


def renamer(names: Iterable[str], suffix: str) -> Callable[[str], str]:
    """A text rewrite giving each of ``names`` the suffix wherever it stands as a name: not
    inside a longer name, nor as the first label of a domain (``argocd.example.io``)."""
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(sorted(map(re.escape, names),
                                                          key=len, reverse=True))
                         + r")(?![\w-])(?!\.[a-z-]+\.(?:com|io|org)\b)")
    return lambda text: pattern.sub(lambda m: f"{m.group(1)}-{suffix}", text)


def namespace(kube: Kube, name: str, labels: dict[str, str] | None = None) -> str:
    kube.request("POST", "/api/v1/namespaces",
                 {"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": name, "labels": labels or {}}})
    return name


def service_account_kubeconfig(kube: AdminKube, home: Path, name: str,
                               cluster_roles: Iterable[str],
                               rules: list[dict[str, Any]] | None = None) -> tuple[Path, str]:
    """A fresh ServiceAccount bound to ``cluster_roles`` (and a fresh role of ``rules``),
    and a kubeconfig for it: (path, username as the audit log records it)."""
    namespace(kube, name)
    kube.request("POST", f"/api/v1/namespaces/{name}/serviceaccounts",
                 {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    roles = list(cluster_roles)
    if rules is not None:
        kube.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": {"name": name}, "rules": rules})
        roles.append(name)
    for role in roles:
        kube.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{name}-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": name}],
        })
    token = kube.request(
        "POST", f"/api/v1/namespaces/{name}/serviceaccounts/{name}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 3600}},
    )["status"]["token"]
    ca = base64.b64encode(kube.ca.read_bytes()).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "t", "cluster": {"server": kube.server,
                                               "certificate-authority-data": ca}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "t", "user": name}}],
    }
    path = home / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path, f"system:serviceaccount:{name}:{name}"


def rbac_rules(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text())["rules"])


class ScopedClusterSource:
    """The real ClusterSource, its inventory cut down to the test's own namespaces."""

    def __init__(self, source: ClusterSource, namespaces: Iterable[str]) -> None:
        self.inner = source
        self.namespaces = set(namespaces)
        self.info = source.info

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        full = self.inner.load(kinds, status_of)
        scoped = Inventory(problems=full.problems, unavailable=full.unavailable,
                           absent=full.absent)
        scoped.add_all(r for r in full if (r.namespace in self.namespaces) or (
            r.namespace is None and r.kind == "Namespace" and r.name in self.namespaces))
        return scoped

    # Live probes reach the API server through the source (dry-run admission).
    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def cluster_source(kubeconfig: Path, **kwargs: Any) -> ClusterSource:
    kwargs.setdefault("timeouts", Timeouts(connect=3, read=20, retries=1, backoff=0.1))
    return ClusterSource(str(kubeconfig), **kwargs)


def audit(source: Any, check_ids: list[str] | None, config: dict[str, Any] | None = None,
          ) -> Report:
    """Run the real engine on ``source`` with the given checks and config overrides."""
    checks = load_catalog()
    if check_ids is not None:
        checks = [c for c in checks if c.id in check_ids]
        assert {c.id for c in checks} == set(check_ids), "unknown check id"
    return run_audit(AuditRequest(source=source, config=load_config(**(config or {})),
                                  checks=checks))


def only(report: Report, check_id: str) -> Result:
    (result,) = [r for r in report.results if r.check.id == check_id]
    return result


def show(result: Result) -> str:
    """Status and evidence, for assertion messages."""
    lines = [f"{result.check.id}: {result.status.value}"]
    lines += [f"  {e.object}: {e.message}" for e in result.evidence]
    return "\n".join(lines)


def audit_events(log: Path, user: str, offset: int) -> list[dict[str, Any]]:
    """Audit-log events of ``user`` written after byte ``offset`` (ResponseComplete)."""
    events = []
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (event.get("user", {}).get("username") == user
                    and event.get("stage") == "ResponseComplete"):
                events.append(event)
    return events


_SAMPLE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def request_totals(kube: Kube) -> dict[tuple[str, str, str], float]:
    """``apiserver_request_total`` by (verb, group, resource), from the server's /metrics."""
    text = kube.request("GET", "/metrics")
    totals: dict[tuple[str, str, str], float] = {}
    for line in str(text).splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        key = (labels.get("verb", ""), labels.get("group", ""), labels.get("resource", ""))
        if labels.get("subresource"):
            key = (key[0], key[1], f"{key[2]}/{labels['subresource']}")
        totals[key] = totals.get(key, 0.0) + float(match["value"])
    return totals
