"""etcd + kube-apiserver: start, wait for /readyz, install CRDs and the read-only identity.

There is no kube-controller-manager and no kubelet: objects are stored and validated (schema,
admission, RBAC) but nothing reconciles them. Namespaces therefore never finish deleting,
pods stay Pending, and no `default` ServiceAccount appears in new namespaces (which is why
the ServiceAccount admission plugin is disabled: it would reject every pod without one).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import yaml

from testenv import build, certs, config
from testenv.context import Context
from testenv.kubeclient import Kube, KubeError
from testenv.proc import ComponentError, spawn, wait_for

ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CIDR = "10.96.0.0/16"

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    # Only the read-only identity is audited: enough to prove a scan never writes, and
    # cheap enough not to slow a benchmark that uses the admin identity.
    "rules": [
        {
            "level": "Metadata",
            "users": [
                f"system:serviceaccount:{config.READONLY_NAMESPACE}:{config.READONLY_SERVICE_ACCOUNT}"
            ],
        },
        {"level": "None"},
    ],
}


def prepare(ctx: Context) -> dict[str, Path]:
    """Build (or find cached) etcd and kube-apiserver."""
    return {
        "etcd": build.etcd(ctx.cache, ctx.logs, ctx.report),
        "kube-apiserver": build.kube_apiserver(ctx.cache, ctx.logs, ctx.report),
    }


def start_etcd(ctx: Context, binary: Path) -> None:
    """Spawn a single-member etcd on loopback (plain HTTP: nothing leaves the machine)."""
    proc = ctx.process("etcd")
    client = ctx.port("etcd", "client")
    peer = ctx.port("etcd", "peer")
    data = ctx.home / "data/etcd"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        "--name=testenv",
        f"--data-dir={data}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=testenv=http://127.0.0.1:{peer}",
        "--listen-metrics-urls=",
        "--quota-backend-bytes=4294967296",
        "--unsafe-no-fsync",  # test data only: durability is not worth the fsync latency
        "--log-level=warn",
    ]
    proc.update(binary=str(binary), log=str(ctx.log_path("etcd")))
    proc["pid"], proc["start"] = spawn(argv, ctx.log_path("etcd"), home=ctx.home)
    ctx.save()


def wait_etcd(ctx: Context) -> None:
    """Wait until etcd answers /health."""
    proc = ctx.process("etcd")
    url = f"http://127.0.0.1:{proc['ports']['client']}/health"
    wait_for(
        lambda: json.loads(_http_get(url)).get("health") == "true",
        what=url,
        component="etcd",
        timeout=60,
        log=ctx.log_path("etcd"),
        pid=proc["pid"],
        started=proc["start"],
    )


def start_apiserver(ctx: Context, binary: Path, etcd_prefix: str | None = None) -> None:
    """Spawn kube-apiserver against our etcd, with RBAC, PodSecurity and SA tokens.

    ``etcd_prefix`` gives a further server its own storage in the same etcd (a second,
    independent cluster for the fleet tests); the default is the API server's /registry.
    """
    proc = ctx.process("kube-apiserver")
    port = ctx.port("kube-apiserver", "https")
    etcd_port = ctx.process("etcd")["ports"]["client"]
    files = certs.ensure(ctx.home / "kube/pki")
    audit_policy = ctx.home / "kube/audit-policy.yaml"
    audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    argv = [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        *([f"--etcd-prefix={etcd_prefix}"] if etcd_prefix else []),
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={ctx.home / 'kube/pki'}",
        f"--tls-cert-file={files['server_crt']}",
        f"--tls-private-key-file={files['server_key']}",
        f"--client-ca-file={files['ca_crt']}",
        f"--service-account-issuer={ISSUER}",
        f"--service-account-key-file={files['sa_pub']}",
        f"--service-account-signing-key-file={files['sa_key']}",
        "--service-account-max-token-expiration=8760h",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        # Privileged pods must reach PodSecurity admission (the ground truth we test) instead
        # of being refused earlier by the cluster-wide --allow-privileged=false validation.
        "--allow-privileged=true",
        # Without kube-controller-manager no namespace gets a `default` ServiceAccount, and
        # this plugin would reject every pod before PodSecurity runs.
        "--disable-admission-plugins=ServiceAccount",
        # Loopback is not a valid Endpoints address; nothing here needs the kubernetes Service.
        "--endpoint-reconciler-type=none",
        f"--audit-policy-file={audit_policy}",
        f"--audit-log-path={ctx.logs / 'kube-audit.log'}",
        "--audit-log-maxsize=100",
        "--audit-log-maxbackup=1",
        "--profiling=false",
        "--v=1",
    ]
    proc.update(binary=str(binary), log=str(ctx.log_path("kube-apiserver")))
    proc["pid"], proc["start"] = spawn(argv, ctx.log_path("kube-apiserver"), home=ctx.home)
    ctx.state["kube"] = {
        "server": f"https://127.0.0.1:{port}",
        "version": config.kubernetes_version(),
        "etcd_version": config.etcd_version(),
        "audit_log": str(ctx.logs / "kube-audit.log"),
    }
    ctx.save()


def admin_client(ctx: Context) -> Kube:
    """A Kube client with the admin (system:masters) certificate."""
    pki = ctx.home / "kube/pki"
    return Kube(ctx.state["kube"]["server"], pki / "ca.crt", pki / "admin.crt", pki / "admin.key")


def wait_apiserver(ctx: Context) -> None:
    """Wait for /readyz, then bootstrap."""
    proc = ctx.process("kube-apiserver")
    kube = admin_client(ctx)
    wait_for(
        lambda: kube.request("GET", "/readyz", timeout=5) == "ok",
        what="/readyz",
        component="kube-apiserver",
        timeout=180,
        log=ctx.log_path("kube-apiserver"),
        pid=proc["pid"],
        started=proc["start"],
    )
    bootstrap(ctx)


def bootstrap(ctx: Context) -> None:
    """Install CRDs, RBAC and kubeconfigs; idempotent (server-side apply), also on reuse.

    Re-running it on a reused server picks up edited CRDs and product RBAC manifests.
    """
    began = time.monotonic()
    kube = admin_client(ctx)
    try:
        crds = install_crds(kube)
        _write_admin_kubeconfig(ctx)
        role_source = install_readonly_identity(ctx, kube)
    except KubeError as exc:
        raise ComponentError("kube-apiserver", f"bootstrap failed: {exc}") from exc
    ctx.state["kube"]["crds"] = crds
    ctx.state["kube"]["readonly_role_source"] = role_source
    ctx.save()
    ctx.report(
        "kube-apiserver",
        f"{len(crds)} CRDs, read-only identity ({role_source}) in {time.monotonic() - began:.1f}s",
    )


def healthy(ctx: Context) -> bool:
    """Whether a recorded API server answers /readyz with our admin identity."""
    try:
        return admin_client(ctx).request("GET", "/readyz", timeout=5) == "ok"
    except Exception:
        return False


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Kubernetes objects of a YAML file (multi-document, `kind: List` items flattened)."""
    objects: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            continue
        if doc["kind"] == "List":
            objects.extend(item for item in doc.get("items") or [] if isinstance(item, dict))
        else:
            objects.append(doc)
    return objects


def install_crds(kube: Kube) -> list[str]:
    """Apply testenv/crds/*.yaml and wait until each CRD is Established."""
    names = []
    for path in sorted((config.PACKAGE_DIR / "crds").glob("*.yaml")):
        for obj in load_documents(path):
            kube.apply(obj)
            names.append(obj["metadata"]["name"])
    for name in names:
        wait_for(
            lambda name=name: _established(kube, name),
            what=f"CRD {name} Established",
            component="kube-apiserver",
            timeout=60,
        )
    return names


def _established(kube: Kube, name: str) -> bool:
    crd = kube.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conditions = crd.get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _role_objects() -> tuple[list[dict[str, Any]], str]:
    """The product's RBAC manifests if they exist (plain YAML only), else our fallback role."""
    product = config.REPO / "manifests/rbac"
    objects: list[dict[str, Any]] = []
    if product.is_dir():
        for path in sorted([*product.glob("*.yaml"), *product.glob("*.yml")]):
            text = path.read_text()
            if "{{" in text or "{%" in text:
                continue  # a Jinja template: not an object until the product renders it
            try:
                objects.extend(load_documents(path))
            except yaml.YAMLError:
                continue
    has_role = any(
        o["kind"] == "ClusterRole" and o["metadata"].get("name") == config.READONLY_CLUSTER_ROLE
        for o in objects
    )
    if has_role:
        return objects, "manifests/rbac"
    fallback = load_documents(config.PACKAGE_DIR / "rbac/readonly-clusterrole.yaml")
    return objects + fallback, "testenv/rbac fallback"


def install_readonly_identity(ctx: Context, kube: Kube) -> str:
    """ServiceAccount soma-audit/soma-audit bound to soma-audit-readonly, plus its kubeconfig."""
    ns, sa = config.READONLY_NAMESPACE, config.READONLY_SERVICE_ACCOUNT
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}
    )
    objects, source = _role_objects()
    for obj in objects:
        kube.apply(obj)
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "soma-testenv-readonly"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": config.READONLY_CLUSTER_ROLE,
            },
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        }
    )
    token = kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": config.READONLY_TOKEN_SECONDS},
        },
    )["status"]["token"]
    path = ctx.home / "readonly.kubeconfig"
    _write_kubeconfig(path, ctx, user="soma-audit-readonly", credentials={"token": token})
    ctx.state["kube"]["readonly_kubeconfig"] = str(path)
    ctx.state["kube"]["readonly_user"] = f"system:serviceaccount:{ns}:{sa}"
    return source


def _write_admin_kubeconfig(ctx: Context) -> None:
    pki = ctx.home / "kube/pki"
    path = ctx.home / "admin.kubeconfig"
    _write_kubeconfig(
        path,
        ctx,
        user="soma-testenv-admin",
        credentials={
            "client-certificate-data": _b64(pki / "admin.crt"),
            "client-key-data": _b64(pki / "admin.key"),
        },
    )
    ctx.state["kube"]["admin_kubeconfig"] = str(path)


def _write_kubeconfig(path: Path, ctx: Context, *, user: str, credentials: dict[str, str]) -> None:
    """A self-contained kubeconfig (CA and credentials inline), mode 0600."""
    cluster = "soma-testenv"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": ctx.state["kube"]["server"],
                    "certificate-authority-data": _b64(ctx.home / "kube/pki/ca.crt"),
                },
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": cluster, "user": user}}],
        "current-context": user,
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.rename(path)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _http_get(url: str, timeout: float = 3.0) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())
