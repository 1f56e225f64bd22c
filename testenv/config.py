"""Pins, paths and fixed facts of the test environment.

The versions of what we build live in the build inputs themselves (the go.mod files and the
Kafka pom), so that there is one source of truth; this module reads them from there.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent

#: Bump when the cache layout changes incompatibly. Artifacts inside it are already keyed by
#: a hash of their build inputs, so changing a pin never reuses a stale binary.
CACHE_LAYOUT = "v1"

OPENFGA_VERSION = "v1.22.1"
OPENFGA_MODULE = "github.com/openfga/openfga/cmd/openfga"
OPENFGA_STORE_NAME = "soma-agent-hub"

#: The fault-injecting TCP proxy of the reliability tier (tests/reliability/test_faults.py).
TOXIPROXY_VERSION = "v2.5.0"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"

#: The chart renderer and the overlay builder that manifests mode runs (no process to start:
#: `up` builds them once and links them into .testenv/bin).
HELM_VERSION = "v4.3.2"
HELM_MODULE = "helm.sh/helm/v4/cmd/helm"
KUSTOMIZE_VERSION = "v5.8.2"  # v5.8.3 needs Go 1.27
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"

#: Debian package that ships both `prometheus` and `promtool`.
PROMETHEUS_DEB = "prometheus"

#: The twelve SomaAgentHub services, used by the SLI metrics target.
SERVICES: tuple[str, ...] = (
    "gateway-api",
    "orchestrator",
    "identity-service",
    "policy-engine",
    "llm-hub",
    "tool-service",
    "analytics-service",
    "settings-service",
    "billing-service",
    "constitution-service",
    "task-capsule-repo",
    "memory-gateway",
)

#: Kafka SASL/PLAIN principals. Loopback-only test credentials, known on purpose so that
#: tests and `source .testenv/env.sh` can use them.
KAFKA_USERS: dict[str, str] = {
    "admin": "admin-secret",
    "orchestrator": "orchestrator-secret",
    "analytics-service": "analytics-service-secret",
}
KAFKA_SUPERUSER = "admin"

READONLY_NAMESPACE = "soma-audit"
READONLY_SERVICE_ACCOUNT = "soma-audit"
READONLY_CLUSTER_ROLE = "soma-audit-readonly"
READONLY_TOKEN_SECONDS = 365 * 24 * 3600

#: Component groups that `up(only=...)` accepts, in start order.
GROUPS: tuple[str, ...] = ("kube", "openfga", "kafka", "prometheus")


def cache_dir() -> Path:
    """The versioned cache of everything built or downloaded (outside the repo)."""
    base = os.environ.get("SOMA_TESTENV_CACHE") or str(Path.home() / ".cache/soma-audit-testenv")
    return Path(base).expanduser().resolve() / CACHE_LAYOUT


def state_dir() -> Path:
    """Runtime state (data, certs, logs, pids) of the running environment, git-ignored."""
    override = os.environ.get("SOMA_TESTENV_DIR")
    return Path(override).resolve() if override else REPO / ".testenv"


def kubernetes_version() -> str:
    """The k8s.io/kubernetes version required by testenv/kube-apiserver/go.mod."""
    text = (PACKAGE_DIR / "kube-apiserver/go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", text, re.MULTILINE)
    if not match:
        raise RuntimeError("testenv/kube-apiserver/go.mod has no `require k8s.io/kubernetes`")
    return match.group(1)


def etcd_version() -> str:
    """The etcd server version required by testenv/etcd/go.mod."""
    text = (PACKAGE_DIR / "etcd/go.mod").read_text()
    match = re.search(r"go\.etcd\.io/etcd/server/v3 (v\S+)", text)
    if not match:
        raise RuntimeError("testenv/etcd/go.mod does not require go.etcd.io/etcd/server/v3")
    return match.group(1)


def kafka_version() -> str:
    """The Apache Kafka version pinned in testenv/kafka/pom.xml."""
    text = (PACKAGE_DIR / "kafka/pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
    if not match:
        raise RuntimeError("testenv/kafka/pom.xml has no <kafka.version> property")
    return match.group(1)


def inputs_key(*paths: Path, extra: str = "") -> str:
    """Short hash of build inputs: the cache key that makes a pin change rebuild."""
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
