"""Transforms: remediations that patch objects already in the inventory.

A template can create what is missing, but hardening a Deployment or migrating a Chaos
Mesh 1.x experiment must change the object the team already has, in the file it lives in
(directory mode) or in place (cluster). Each transform returns the rewritten objects as
patches grouped by their file; the directory target edits only what differs, in place.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any

from soma_audit.config import Config, NamespaceLevels, PssLevel
from soma_audit.domain.chaos import mesh as chaosmesh
from soma_audit.domain.pss import LABEL_PREFIX, MODES, at_least, evaluate, parse_level
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.workloads import TEMPLATE_PATHS, workload_of, workloads
from soma_audit.remediation.output import RenderedFile, dump_objects, safe_path

Transform = Callable[[Config, Inventory], list[RenderedFile]]
TRANSFORMS: dict[str, Transform] = {}

#: Requests and limits filled in when a container declares neither.
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"},
                     "limits": {"cpu": "500m", "memory": "512Mi"}}
#: A non-root UID for workloads that explicitly asked for root (distroless "nonroot").
NON_ROOT_UID = 65532
#: Capabilities a restricted pod may add back; baseline allows the runtime default set.
_RESTRICTED_ADD = {"NET_BIND_SERVICE"}
_BASELINE_ADD = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
NEW_NAMESPACES_FILE = "k8s/namespaces.yaml"


def transform(name: str) -> Callable[[Transform], Transform]:
    def register(function: Transform) -> Transform:
        TRANSFORMS[name] = function
        return function
    return register


# ------------------------------------------------------------------------- file writing


def _split_origin(resource: Resource) -> tuple[str | None, int]:
    path, sep, line = resource.origin.rpartition(":")
    if sep and line.isdigit() and path and path != "cluster":
        return path, int(line)
    return None, 0


def _fallback_path(body: dict[str, Any]) -> str:
    """Where a patched object goes when it did not come from a file (a live cluster)."""
    meta = body.get("metadata") or {}
    parts = [str(body.get("kind", "object")).lower(), meta.get("namespace"), meta.get("name")]
    return "patches/" + "-".join(str(p) for p in parts if p) + ".yaml"


def patched_files(patched: list[tuple[Resource, dict[str, Any]]],
                  replaced_because: str = "") -> list[RenderedFile]:
    """The ``(existing object, rewritten body)`` pairs grouped by the file each came from,
    as patches: the directory target diffs each object in place and leaves the rest of its
    file byte for byte. A body of another kind replaces its object (a migration)."""
    by_path: dict[str, list[tuple[Resource, dict[str, Any]]]] = {}
    for resource, body in patched:
        path, _ = _split_origin(resource)
        by_path.setdefault(safe_path(path or _fallback_path(body)), []).append((resource, body))
    files = []
    for path, pairs in sorted(by_path.items()):
        objects = [body for _, body in pairs]
        replaces = {index: (resource.kind, resource.namespace, resource.name)
                    for index, (resource, body) in enumerate(pairs)
                    if body.get("kind") != resource.kind}
        files.append(RenderedFile(path, dump_objects(objects), objects, patch=True,
                                  replaces=replaces,
                                  replaced_because=replaced_because if replaces else ""))
    return files


# ------------------------------------------------------------------------ PSS namespaces


def _strictest_met(inventory: Inventory, name: str) -> PssLevel:
    """The strictest level every known workload of namespace ``name`` already meets, so
    enforcing it breaks nothing (baseline when the namespace holds no known workload)."""
    pods = list(workloads(inventory, name))
    if not pods:
        return "baseline"
    candidates: tuple[PssLevel, ...] = ("restricted", "baseline")
    for level in candidates:
        if all(not evaluate(w.template.get("spec"), w.template.get("metadata"), level,
                            template=w.resource.kind != "Pod") for w in pods):
            return level
    return "privileged"


def _levels_for(config: Config, inventory: Inventory, name: str) -> NamespaceLevels:
    """Configured levels (never weakening a stricter label already set); for other
    namespaces their own valid labels, else enforce the strictest level their workloads
    already meet and audit/warn at restricted (violations are logged, nothing breaks)."""
    configured = config.namespaces.get(name)
    namespace = inventory.get("Namespace", name)
    labels = namespace.labels if namespace is not None else {}
    levels: dict[str, PssLevel] = {}
    for mode in MODES:
        found = parse_level(labels.get(f"{LABEL_PREFIX}{mode}"))
        want: PssLevel | None = getattr(configured, mode) if configured else None
        if want is not None:
            levels[mode] = found if found is not None and at_least(found, want) else want
        elif found is not None:
            levels[mode] = found
        else:
            levels[mode] = _strictest_met(inventory, name) if mode == "enforce" else "restricted"
    if not at_least(levels["audit"], levels["enforce"]):
        levels["audit"] = levels["enforce"]  # audit at least what is enforced
    return NamespaceLevels(**levels)


#: A policy version label PodSecurity admission accepts: ``latest`` or ``v1.<minor>``.
_VALID_VERSION = re.compile(r"^(latest|v1\.[0-9]+)$")


def namespace_labels(levels: NamespaceLevels,
                     current: dict[str, str] | None = None) -> dict[str, str]:
    """The PSS labels for ``levels``; a valid ``-version`` label already set (a pinned
    policy version) is kept, a missing or invalid one becomes ``latest``."""
    labels = {}
    for mode in MODES:
        labels[f"{LABEL_PREFIX}{mode}"] = getattr(levels, mode)
        version = str((current or {}).get(f"{LABEL_PREFIX}{mode}-version", ""))
        labels[f"{LABEL_PREFIX}{mode}-version"] = (
            version if _VALID_VERSION.match(version) else "latest")
    return labels


def _in_scope(config: Config, inventory: Inventory) -> list[str]:
    used = {r.namespace for r in inventory if r.namespace and r.kind != "Secret"}
    declared = {r.name for r in inventory.of_kind("Namespace") if r.name}
    names = used | declared | set(config.namespaces)
    return sorted(names - set(config.pss_exempt_namespaces))


@transform("pss_namespaces")
def pss_namespaces(config: Config, inventory: Inventory) -> list[RenderedFile]:
    """Label every namespace for Pod Security Admission; declare the missing ones."""
    objects = {r.name: r for r in inventory.of_kind("Namespace")}
    patched: list[tuple[Resource, dict[str, Any]]] = []
    created: list[dict[str, Any]] = []
    for name in _in_scope(config, inventory):
        existing = objects.get(name)
        labels = namespace_labels(_levels_for(config, inventory, name),
                                  existing.labels if existing is not None else None)
        if existing is None:
            created.append({"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": name, "labels": {
                                "kubernetes.io/metadata.name": name, **labels}}})
            continue
        body = copy.deepcopy(existing.body)
        meta = body.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        if body != existing.body:
            patched.append((existing, body))
    files = patched_files(patched)
    if created:
        files.append(RenderedFile(NEW_NAMESPACES_FILE, dump_objects(created), created))
    return files


# ------------------------------------------------------------------------- PSS hardening


def _enforce(config: Config, inventory: Inventory, name: str | None) -> PssLevel:
    if name is None:
        return "restricted"
    return _levels_for(config, inventory, name).enforce


def _no_unconfined(security: dict[str, Any]) -> None:
    seccomp = security.get("seccompProfile")
    if isinstance(seccomp, dict) and seccomp.get("type") == "Unconfined":
        security["seccompProfile"] = {"type": "RuntimeDefault"}


def _harden_security(container: dict[str, Any], level: PssLevel) -> None:
    """Every level: not privileged, no privilege escalation, read-only root, no
    Unconfined seccomp, only baseline capabilities. Restricted adds non-root and drop ALL."""
    security = container.setdefault("securityContext", {})
    if "privileged" in security:
        # Explicitly false (not dropped): a live apply cannot remove a field another
        # manager set, and the API server refuses privileged with no privilege escalation.
        security["privileged"] = False
    security["allowPrivilegeEscalation"] = False
    security["readOnlyRootFilesystem"] = True
    _no_unconfined(security)
    capabilities = security.get("capabilities")
    capabilities = capabilities if isinstance(capabilities, dict) else {}
    allowed = _BASELINE_ADD
    if level == "restricted":
        allowed = _RESTRICTED_ADD
        dropped = [c for c in capabilities.get("drop") or [] if str(c) != "ALL"]
        capabilities["drop"] = [*dropped, "ALL"]
        if security.get("runAsUser") == 0:
            security["runAsUser"] = NON_ROOT_UID
        if security.get("runAsNonRoot") is False:
            security["runAsNonRoot"] = True
    kept = [c for c in capabilities.get("add") or [] if str(c) in allowed]
    if kept:
        capabilities["add"] = kept
    else:
        capabilities.pop("add", None)
    if capabilities:
        security["capabilities"] = capabilities
    else:
        security.pop("capabilities", None)


def _fill_resources(container: dict[str, Any]) -> None:
    """Missing requests/limits: a limit defaults to the request (never below it), a request
    to the limit, and both to :data:`DEFAULT_RESOURCES`."""
    resources = container.setdefault("resources", {})
    requests = resources.setdefault("requests", {})
    limits = resources.setdefault("limits", {})
    for key in ("cpu", "memory"):
        if key not in limits and key not in requests:
            requests[key] = DEFAULT_RESOURCES["requests"][key]
            limits[key] = DEFAULT_RESOURCES["limits"][key]
        elif key not in limits:
            limits[key] = requests[key]
        elif key not in requests:
            requests[key] = limits[key]


def _writable_tmp(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """A read-only root needs somewhere to write: an emptyDir on /tmp unless mounted."""
    mounts = container.setdefault("volumeMounts", [])
    if any(isinstance(m, dict) and m.get("mountPath") == "/tmp" for m in mounts):
        return
    volumes = pod.setdefault("volumes", [])
    known = {str(v.get("name")): v for v in volumes if isinstance(v, dict)}
    name = "tmp"
    if "emptyDir" not in known.get(name, {"emptyDir": {}}):
        name = next(f"tmp-{i}" for i in range(1, len(known) + 2) if f"tmp-{i}" not in known)
    if name not in known:
        volumes.append({"name": name, "emptyDir": {}})
    mounts.append({"name": name, "mountPath": "/tmp"})


def harden_pod(pod: dict[str, Any], level: PssLevel) -> None:
    """Harden a pod spec for its namespace's ``level``: at ``restricted`` it then meets the
    Pod Security Standard; at lower levels the restricted-only controls (non-root, drop
    ALL, a required seccomp profile) are left alone so privileged agents keep working."""
    security = pod.setdefault("securityContext", {})
    _no_unconfined(security)
    if level == "restricted":
        security["runAsNonRoot"] = True
        if security.get("runAsUser") == 0:
            security["runAsUser"] = NON_ROOT_UID
        seccomp = security.get("seccompProfile")
        if not (isinstance(seccomp, dict)
                and seccomp.get("type") in ("RuntimeDefault", "Localhost")):
            security["seccompProfile"] = {"type": "RuntimeDefault"}
    if not security:
        pod.pop("securityContext")
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(field) or []:
            if not isinstance(container, dict):
                continue
            already_readonly = (container.get("securityContext") or {}).get(
                "readOnlyRootFilesystem") is True
            _harden_security(container, level)
            if field != "ephemeralContainers":
                _fill_resources(container)
                if not already_readonly:
                    _writable_tmp(pod, container)


def _pod_spec(body: dict[str, Any], kind: str) -> dict[str, Any] | None:
    node: Any = body
    for key in (*TEMPLATE_PATHS[kind], "spec"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _workloads(config: Config, inventory: Inventory) -> Iterable[Resource]:
    exempt = set(config.pss_exempt_namespaces)
    for resource in inventory.of_kind(*TEMPLATE_PATHS):
        if resource.namespace in exempt or workload_of(resource) is None:
            continue
        yield resource


@transform("pss_harden")
def pss_harden(config: Config, inventory: Inventory) -> list[RenderedFile]:
    """Harden every workload outside the exempt namespaces, in the file it came from."""
    patched: list[tuple[Resource, dict[str, Any]]] = []
    for resource in _workloads(config, inventory):
        body = copy.deepcopy(resource.body)
        pod = _pod_spec(body, resource.kind)
        if pod is None:
            continue
        harden_pod(pod, _enforce(config, inventory, resource.namespace))
        if body != resource.body:
            patched.append((resource, body))
    return patched_files(patched)


# ----------------------------------------------------------------- Chaos Mesh migration


def _cron_of(legacy: dict[str, Any]) -> str:
    """A Chaos Mesh 1.x ``scheduler`` as a 2.x ``Schedule`` cron (``@every`` for intervals)."""
    cron = legacy.get("cron")
    if isinstance(cron, str) and cron.strip():
        return cron.strip()
    interval = legacy.get("interval") or legacy.get("duration")
    return f"@every {interval}" if interval else "@daily"


@transform("chaos_legacy")
def chaos_legacy(config: Config, inventory: Inventory) -> list[RenderedFile]:
    """Rewrite each 1.x experiment with ``spec.scheduler`` as the equivalent 2.x Schedule
    (same name and namespace), and drop a stray ``scheduler`` inside a Schedule."""
    patched: list[tuple[Resource, dict[str, Any]]] = []
    for resource in inventory.of_kind(*chaosmesh.EXPERIMENT_KINDS):
        if resource.group != chaosmesh.GROUP:
            continue
        spec = copy.deepcopy(resource.spec)
        legacy = spec.pop("scheduler", None)
        if not isinstance(legacy, dict):
            continue
        key = chaosmesh.TEMPLATE_KEYS[resource.kind]
        meta = {k: v for k, v in resource.metadata.items()
                if k in ("name", "namespace", "labels", "annotations")}
        patched.append((resource, {
            "apiVersion": resource.api_version,
            "kind": "Schedule",
            "metadata": meta,
            "spec": {"schedule": _cron_of(legacy), "type": resource.kind, "historyLimit": 5,
                     "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 600, key: spec},
        }))
    for resource in inventory.of_kind("Schedule"):
        if resource.group != chaosmesh.GROUP:
            continue
        key = chaosmesh.TEMPLATE_KEYS.get(str(resource.spec.get("type")))
        inline = resource.spec.get(key) if key else None
        if isinstance(inline, dict) and "scheduler" in inline:
            body = copy.deepcopy(resource.body)
            body["spec"][key].pop("scheduler")
            patched.append((resource, body))
    return patched_files(patched, "chaos.no-legacy-scheduler: the removed Chaos Mesh 1.x "
                         "scheduler field")
