"""An offline evaluator of the Pod Security Standards, as the API server enforces them.

It follows the checks of the PodSecurity admission plugin (``k8s.io/pod-security-admission``,
package ``policy``) at policy version ``latest`` as served by kube-apiserver 1.37: the same
check ids, the same fields (containers, initContainers and ephemeralContainers), the same
exemptions (Windows pods, pods in a user namespace) and the same restricted-over-baseline
overrides — so that its verdict is the verdict the API server would give. Being offline, it
also applies the API server's defaulting that changes a verdict (a volume without a source
becomes ``emptyDir``; a Pod on the host network gets ``hostPort = containerPort``).

It reads plain dicts as decoded from YAML or JSON and never raises on them: a field of the
wrong type, which the API server would refuse to decode, is reported as a ``malformed``
violation and otherwise read as absent.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from soma_audit.config import PssLevel

#: Levels from least to most strict (``privileged`` enforces nothing).
LEVELS: tuple[PssLevel, ...] = ("privileged", "baseline", "restricted")

#: Namespace labels of PodSecurity admission: ``<prefix><mode>`` and ``<prefix><mode>-version``.
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")

#: Pseudo check id for fields of the wrong type (the API server rejects such objects).
MALFORMED = "malformed"

_DEFAULT_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
_SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",  # 1.27
    "net.ipv4.tcp_keepalive_time",  # 1.29
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",  # 1.32
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_slow_start_after_idle",  # 1.37
    "net.ipv4.tcp_notsent_lowat",
})
_SELINUX_TYPES = frozenset({
    "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t",
})
_PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
#: Every volume source of core/v1 1.37, and the ones the restricted level allows.
_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image",
)
_RESTRICTED_VOLUME_SOURCES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
    "persistentVolumeClaim", "projected", "secret",
})
_CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Violation:
    """One field that breaks one control: where it is, what was found, what is allowed."""

    #: Upstream check id (``privileged``, ``runAsNonRoot``, ...) or ``malformed``.
    check: str
    #: Field path inside the pod or pod template: ``spec.containers[0].securityContext...``.
    path: str
    found: str
    allowed: str
    #: Name of the container the field belongs to; None for pod-level fields.
    container: str | None = None

    @property
    def subject(self) -> str:
        return "pod" if self.container is None else f"container {self.container!r}"

    def describe(self, prefix: str = "") -> str:
        """``<subject>: <prefix><path>=<found>, expected <allowed> [<check>]``."""
        return (
            f"{self.subject}: {prefix}{self.path}={self.found}, "
            f"expected {self.allowed} [{self.check}]"
        )


def show(value: Any) -> str:
    """A short, safe rendering of a found value (even for recursive or huge input)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 200 else value[:200] + "...")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and len(value) <= 20 and all(
        item is None or isinstance(item, str | int | float) for item in value
    ):
        return json.dumps(value)
    return reprlib.repr(value)


@dataclass(frozen=True)
class _Container:
    name: str
    path: str
    #: ``containers``, ``initContainers`` or ``ephemeralContainers``.
    field: str
    body: dict[str, Any]
    #: securityContext, None when unset (as Go's nil pointer).
    security: dict[str, Any] | None


class _Pod:
    """Typed read access to a pod as Go's decoder would see it, recording wrong types."""

    def __init__(self, spec: Any, metadata: Any, *, template: bool) -> None:
        self.malformed: dict[str, Violation] = {}
        self.template = template
        self.spec = self._root(spec, "spec")
        self.metadata = self._root(metadata, "metadata")
        self.security = self.struct(self.spec, "securityContext", "spec")
        self.containers = list(self._containers())

    def _root(self, value: Any, path: str) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        self.bad(path, value, "an object")
        return {}

    def bad(self, path: str, value: Any, expected: str, container: str | None = None) -> None:
        self.malformed.setdefault(
            path, Violation(MALFORMED, path, show(value), expected, container)
        )

    def struct(self, parent: dict[str, Any] | None, key: str, path: str,
               container: str | None = None) -> dict[str, Any] | None:
        """A nested object, None when absent or null (a nil pointer)."""
        value = parent.get(key) if parent else None
        if value is None or isinstance(value, dict):
            return value
        self.bad(f"{path}.{key}", value, "an object", container)
        return None

    def boolean(self, parent: dict[str, Any] | None, key: str, path: str,
                container: str | None = None) -> bool | None:
        value = parent.get(key) if parent else None
        if value is None or isinstance(value, bool):
            return value
        self.bad(f"{path}.{key}", value, "true or false", container)
        return None

    def string(self, parent: dict[str, Any] | None, key: str, path: str,
               container: str | None = None) -> str | None:
        """A string field, None when absent or null (nil for pointers, "" for values)."""
        value = parent.get(key) if parent else None
        if value is None or isinstance(value, str):
            return value
        self.bad(f"{path}.{key}", value, "a string", container)
        return None

    def integer(self, parent: dict[str, Any] | None, key: str, path: str,
                container: str | None = None) -> int | None:
        value = parent.get(key) if parent else None
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self.bad(f"{path}.{key}", value, "an integer", container)
        return None

    def items(self, parent: dict[str, Any] | None, key: str, path: str,
              container: str | None = None) -> Iterator[tuple[str, Any]]:
        """(path, item) of a list field; absent or null is empty."""
        value = parent.get(key) if parent else None
        if value is None:
            return
        if not isinstance(value, list):
            self.bad(f"{path}.{key}", value, "a list", container)
            return
        for i, item in enumerate(value):
            yield f"{path}.{key}[{i}]", item

    def objects(self, parent: dict[str, Any] | None, key: str, path: str,
                container: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        for item_path, item in self.items(parent, key, path, container):
            if isinstance(item, dict):
                yield item_path, item
            else:
                self.bad(item_path, item, "an object", container)

    def strings(self, parent: dict[str, Any] | None, key: str, path: str,
                container: str | None = None) -> Iterator[tuple[str, str]]:
        for item_path, item in self.items(parent, key, path, container):
            if isinstance(item, str):
                yield item_path, item
            else:
                self.bad(item_path, item, "a string", container)

    def _containers(self) -> Iterator[_Container]:
        for field in _CONTAINER_FIELDS:
            for path, body in self.objects(self.spec, field, "spec"):
                name = self.string(body, "name", path) or ""
                security = self.struct(body, "securityContext", path, name)
                yield _Container(name, path, field, body, security)

    def security_contexts(self) -> list[tuple[str, dict[str, Any] | None, str | None]]:
        """(path, securityContext, container name) of the pod (name None), then containers."""
        found: list[tuple[str, dict[str, Any] | None, str | None]] = [
            ("spec.securityContext", self.security, None)
        ]
        found += [(f"{c.path}.securityContext", c.security, c.name) for c in self.containers]
        return found

    @property
    def windows(self) -> bool:
        os = self.struct(self.spec, "os", "spec")
        return self.string(os, "name", "spec.os") == "windows"

    @property
    def user_namespace(self) -> bool:
        """``hostUsers: false``: the pod runs in a user namespace (relaxes some controls)."""
        return self.boolean(self.spec, "hostUsers", "spec") is False

    def annotations(self) -> Iterator[tuple[str, str]]:
        value = self.metadata.get("annotations")
        if value is None:
            return
        if not isinstance(value, dict):
            self.bad("metadata.annotations", value, "a map of strings")
            return
        for key, text in value.items():
            if text is None or isinstance(text, str):
                yield str(key), text or ""
            else:
                self.bad(f"metadata.annotations[{key}]", text, "a string")


Check = Callable[[_Pod], list[Violation]]


def _windows_host_process(pod: _Pod) -> list[Violation]:
    found = []
    for where, security, name in pod.security_contexts():
        options = pod.struct(security, "windowsOptions", where, name)
        if pod.boolean(options, "hostProcess", f"{where}.windowsOptions", name):
            found.append(Violation("windowsHostProcess", f"{where}.windowsOptions.hostProcess",
                                   "true", "false or unset", name))
    return found


def _host_namespaces(pod: _Pod) -> list[Violation]:
    return [
        Violation("hostNamespaces", f"spec.{key}", "true", "false or unset")
        for key in ("hostNetwork", "hostPID", "hostIPC")
        if pod.boolean(pod.spec, key, "spec")
    ]


def _privileged(pod: _Pod) -> list[Violation]:
    return [
        Violation("privileged", f"{c.path}.securityContext.privileged", "true",
                  "false or unset", c.name)
        for c in pod.containers
        if pod.boolean(c.security, "privileged", f"{c.path}.securityContext", c.name)
    ]


def _added_capabilities(pod: _Pod, c: _Container) -> list[tuple[str, str]]:
    where = f"{c.path}.securityContext"
    caps = pod.struct(c.security, "capabilities", where, c.name)
    return list(pod.strings(caps, "add", f"{where}.capabilities", c.name))


def _capabilities_baseline(pod: _Pod) -> list[Violation]:
    allowed = "only the default set (" + ", ".join(sorted(_DEFAULT_CAPABILITIES)) + ")"
    return [
        Violation("capabilities_baseline", path, show(cap), allowed, c.name)
        for c in pod.containers
        for path, cap in _added_capabilities(pod, c)
        if cap not in _DEFAULT_CAPABILITIES
    ]


def _host_path_volumes(pod: _Pod) -> list[Violation]:
    found = []
    for path, volume in pod.objects(pod.spec, "volumes", "spec"):
        if pod.struct(volume, "hostPath", path) is not None:
            name = pod.string(volume, "name", path) or ""
            found.append(Violation("hostPathVolumes", f"{path}.hostPath",
                                   f"hostPath volume {name!r}", "no hostPath volumes"))
    return found


def _host_ports(pod: _Pod) -> list[Violation]:
    # The API server defaults hostPort to containerPort for Pods on the host network
    # (not for pod templates, not for ephemeral containers).
    host_network = not pod.template and pod.boolean(pod.spec, "hostNetwork", "spec") is True
    found = []
    for c in pod.containers:
        for path, port in pod.objects(c.body, "ports", c.path, c.name):
            host_port = pod.integer(port, "hostPort", path, c.name) or 0
            shown = str(host_port)
            if host_port == 0 and host_network and c.field != "ephemeralContainers":
                host_port = pod.integer(port, "containerPort", path, c.name) or 0
                shown = f"{host_port} (defaulted from containerPort on hostNetwork)"
            if host_port != 0:
                found.append(Violation("hostPorts", f"{path}.hostPort", shown, "0 or unset",
                                       c.name))
    return found


def _host_probes_and_lifecycle(pod: _Pod) -> list[Violation]:
    found = []
    for c in pod.containers:
        handlers = [
            (f"{c.path}.{probe}", pod.struct(c.body, probe, c.path, c.name))
            for probe in ("livenessProbe", "readinessProbe", "startupProbe")
        ]
        lifecycle = pod.struct(c.body, "lifecycle", c.path, c.name)
        handlers += [
            (f"{c.path}.lifecycle.{hook}",
             pod.struct(lifecycle, hook, f"{c.path}.lifecycle", c.name))
            for hook in ("postStart", "preStop")
        ]
        for where, handler in handlers:
            for action in ("httpGet", "tcpSocket"):
                target = pod.struct(handler, action, where, c.name)
                host = pod.string(target, "host", f"{where}.{action}", c.name)
                if host:
                    found.append(Violation("hostProbesAndHostLifecycle",
                                           f"{where}.{action}.host", show(host),
                                           '"" or unset', c.name))
    return found


def _app_armor_profile(pod: _Pod) -> list[Violation]:
    allowed = '"RuntimeDefault" or "Localhost" (or unset)'
    found = []
    for where, security, name in pod.security_contexts():
        profile = pod.struct(security, "appArmorProfile", where, name)
        if profile is not None:
            kind = pod.string(profile, "type", f"{where}.appArmorProfile", name) or ""
            if kind not in _PROFILE_TYPES:
                found.append(Violation("appArmorProfile", f"{where}.appArmorProfile.type",
                                       show(kind), allowed, name))
    for key, value in pod.annotations():
        if key.startswith(_APPARMOR_ANNOTATION) and not (
            value in ("", "runtime/default") or value.startswith("localhost/")
        ):
            found.append(Violation(
                "appArmorProfile", f"metadata.annotations[{key}]", show(value),
                '"runtime/default", "localhost/*" or empty',
                key.removeprefix(_APPARMOR_ANNOTATION),
            ))
    return found


def _se_linux_options(pod: _Pod) -> list[Violation]:
    found = []
    for where, security, name in pod.security_contexts():
        options = pod.struct(security, "seLinuxOptions", where, name)
        if options is None:
            continue
        path = f"{where}.seLinuxOptions"
        kind = pod.string(options, "type", path, name) or ""
        if kind not in _SELINUX_TYPES:
            allowed = "unset or one of " + ", ".join(sorted(_SELINUX_TYPES - {""}))
            found.append(Violation("seLinuxOptions", f"{path}.type", show(kind), allowed, name))
        for key in ("user", "role"):
            value = pod.string(options, key, path, name)
            if value:
                found.append(Violation("seLinuxOptions", f"{path}.{key}", show(value),
                                       "unset", name))
    return found


def _proc_mount(pod: _Pod, check: str) -> list[Violation]:
    found = []
    for c in pod.containers:
        where = f"{c.path}.securityContext"
        mount = pod.string(c.security, "procMount", where, c.name)
        if mount is not None and mount != "Default":
            found.append(Violation(check, f"{where}.procMount", show(mount),
                                   '"Default" or unset', c.name))
    return found


def _proc_mount_baseline(pod: _Pod) -> list[Violation]:
    return [] if pod.user_namespace else _proc_mount(pod, "procMount")


def _proc_mount_restricted(pod: _Pod) -> list[Violation]:
    return _proc_mount(pod, "procMount_restricted")


def _seccomp_setters(pod: _Pod) -> Iterator[tuple[str, str | None, str | None]]:
    """(path, type or None when no profile is set, container) for the pod and containers."""
    for where, security, name in pod.security_contexts():
        profile = pod.struct(security, "seccompProfile", where, name)
        kind = None
        if profile is not None:
            kind = pod.string(profile, "type", f"{where}.seccompProfile", name) or ""
        yield f"{where}.seccompProfile.type", kind, name


def _seccomp_profile_baseline(pod: _Pod) -> list[Violation]:
    return [
        Violation("seccompProfile_baseline", path, show(kind),
                  '"RuntimeDefault" or "Localhost" (or unset)', name)
        for path, kind, name in _seccomp_setters(pod)
        if kind is not None and kind not in _PROFILE_TYPES
    ]


def _sysctls(pod: _Pod) -> list[Violation]:
    found = []
    for path, sysctl in pod.objects(pod.security, "sysctls", "spec.securityContext"):
        name = pod.string(sysctl, "name", path) or ""
        if name not in _SAFE_SYSCTLS:
            found.append(Violation("sysctls", f"{path}.name", show(name),
                                   "a safe sysctl (" + ", ".join(sorted(_SAFE_SYSCTLS)) + ")"))
    return found


def _allow_privilege_escalation(pod: _Pod) -> list[Violation]:
    if pod.windows:
        return []
    found = []
    for c in pod.containers:
        where = f"{c.path}.securityContext"
        value = pod.boolean(c.security, "allowPrivilegeEscalation", where, c.name)
        if value is not False:
            found.append(Violation("allowPrivilegeEscalation", f"{where}.allowPrivilegeEscalation",
                                   show(value), "false", c.name))
    return found


def _capabilities_restricted(pod: _Pod) -> list[Violation]:
    if pod.windows:
        return []
    found = []
    for c in pod.containers:
        where = f"{c.path}.securityContext.capabilities"
        caps = pod.struct(c.security, "capabilities", f"{c.path}.securityContext", c.name)
        drop = [cap for _, cap in pod.strings(caps, "drop", where, c.name)]
        if "ALL" not in drop:
            found.append(Violation("capabilities_restricted", f"{where}.drop",
                                   show(drop or None), 'a list including "ALL"', c.name))
        found += [
            Violation("capabilities_restricted", path, show(cap),
                      '"NET_BIND_SERVICE" only', c.name)
            for path, cap in _added_capabilities(pod, c)
            if cap != "NET_BIND_SERVICE"
        ]
    return found


def _restricted_volumes(pod: _Pod) -> list[Violation]:
    allowed = "one of " + ", ".join(sorted(_RESTRICTED_VOLUME_SOURCES))
    found = []
    for path, volume in pod.objects(pod.spec, "volumes", "spec"):
        sources = [key for key in _VOLUME_SOURCES if pod.struct(volume, key, path) is not None]
        # A volume without any source is defaulted to emptyDir by the API server.
        if not sources or any(key in _RESTRICTED_VOLUME_SOURCES for key in sources):
            continue
        name = pod.string(volume, "name", path) or ""
        found.append(Violation("restrictedVolumes", f"{path}.{sources[0]}",
                               f"{sources[0]} volume {name!r}", allowed))
    return found


def _run_as_non_root(pod: _Pod) -> list[Violation]:
    if pod.user_namespace:
        return []
    found = []
    pod_value = pod.boolean(pod.security, "runAsNonRoot", "spec.securityContext")
    if pod_value is False:
        found.append(Violation("runAsNonRoot", "spec.securityContext.runAsNonRoot", "false",
                               "true"))
    for c in pod.containers:
        where = f"{c.path}.securityContext"
        value = pod.boolean(c.security, "runAsNonRoot", where, c.name)
        if value is False or (value is None and pod_value is not True):
            found.append(Violation("runAsNonRoot", f"{where}.runAsNonRoot", show(value),
                                   "true (here or in spec.securityContext)", c.name))
    return found


def _run_as_user(pod: _Pod) -> list[Violation]:
    if pod.user_namespace:
        return []
    return [
        Violation("runAsUser", f"{where}.runAsUser", "0", "non-zero or unset", name)
        for where, security, name in pod.security_contexts()
        if pod.integer(security, "runAsUser", where, name) == 0
    ]


def _seccomp_profile_restricted(pod: _Pod) -> list[Violation]:
    if pod.windows:
        return []
    allowed = '"RuntimeDefault" or "Localhost"'
    (pod_path, pod_kind, _), *containers = _seccomp_setters(pod)
    pod_set = pod_kind in _PROFILE_TYPES
    found = []
    if pod_kind is not None and not pod_set:
        found.append(Violation("seccompProfile_restricted", pod_path, show(pod_kind), allowed))
    for path, kind, name in containers:
        if kind is not None and kind not in _PROFILE_TYPES:
            found.append(Violation("seccompProfile_restricted", path, show(kind), allowed, name))
        elif kind is None and not pod_set:
            found.append(Violation("seccompProfile_restricted", path, "unset",
                                   f"{allowed} (here or in spec.securityContext)", name))
    return found


#: Checks of each level in the order the API server runs them (ids sorted, baseline first).
BASELINE_CHECKS: dict[str, Check] = {
    "appArmorProfile": _app_armor_profile,
    "capabilities_baseline": _capabilities_baseline,
    "hostNamespaces": _host_namespaces,
    "hostPathVolumes": _host_path_volumes,
    "hostPorts": _host_ports,
    "hostProbesAndHostLifecycle": _host_probes_and_lifecycle,
    "privileged": _privileged,
    "procMount": _proc_mount_baseline,
    "seLinuxOptions": _se_linux_options,
    "seccompProfile_baseline": _seccomp_profile_baseline,
    "sysctls": _sysctls,
    "windowsHostProcess": _windows_host_process,
}
RESTRICTED_ONLY_CHECKS: dict[str, Check] = {
    "allowPrivilegeEscalation": _allow_privilege_escalation,
    "capabilities_restricted": _capabilities_restricted,
    "procMount_restricted": _proc_mount_restricted,
    "restrictedVolumes": _restricted_volumes,
    "runAsNonRoot": _run_as_non_root,
    "runAsUser": _run_as_user,
    "seccompProfile_restricted": _seccomp_profile_restricted,
}
#: Baseline checks a restricted check replaces at the restricted level (upstream overrides).
OVERRIDDEN_BY_RESTRICTED = frozenset(
    {"capabilities_baseline", "hostPathVolumes", "procMount", "seccompProfile_baseline"}
)

CHECKS: dict[PssLevel, tuple[str, ...]] = {
    "privileged": (),
    "baseline": tuple(BASELINE_CHECKS),
    "restricted": tuple(
        [c for c in BASELINE_CHECKS if c not in OVERRIDDEN_BY_RESTRICTED]
        + list(RESTRICTED_ONLY_CHECKS)
    ),
}
_ALL_CHECKS: dict[str, Check] = {**BASELINE_CHECKS, **RESTRICTED_ONLY_CHECKS}


def run_checks(pod_spec: Any, pod_metadata: Any, check_ids: Sequence[str],
               *, template: bool = False) -> list[Violation]:
    """Run the named checks; malformed fields they read are reported once, at the end."""
    pod = _Pod(pod_spec, pod_metadata, template=template)
    found = [v for check_id in check_ids for v in _ALL_CHECKS[check_id](pod)]
    return found + list(pod.malformed.values())


def evaluate(pod_spec: Any, pod_metadata: Any, level: str, *,
             template: bool = False) -> list[Violation]:
    """Every violation of ``level`` (policy version latest) by a pod or pod template.

    ``template`` is true for the pod template of a workload (Deployment, Job, ...), which
    the API server defaults slightly differently from a Pod. An empty list means the API
    server's PodSecurity admission would admit it at that level.
    """
    if level not in CHECKS:
        raise ValueError(f"unknown Pod Security level {level!r}; expected one of {LEVELS}")
    return run_checks(pod_spec, pod_metadata, CHECKS[level], template=template)


def parse_level(value: str | None) -> PssLevel | None:
    """The level a namespace label names, None when unset or not a valid level."""
    return next((level for level in LEVELS if level == value), None)


def at_least(level: PssLevel, minimum: PssLevel) -> bool:
    """Whether ``level`` is as strict as ``minimum`` or stricter."""
    return LEVELS.index(level) >= LEVELS.index(minimum)
