"""Differential test: soma_audit.domain.pss (offline) against the API server's PodSecurity
admission (ground truth), over a seeded corpus of a few hundred generated pods.

Each pod is created with ``dryRun=All`` in two fresh namespaces enforcing ``baseline`` and
``restricted`` (version latest); a 403 names the violated controls ("violates PodSecurity
"restricted:latest": privileged (...), runAsNonRoot != true (...)"), a 201 admits it. The
offline verdict must name exactly the same controls. Ephemeral containers cannot be set on
create, so they are tried as a dry-run update of the ``ephemeralcontainers`` subresource
of a real, compliant pod (it stays Pending: there is no kubelet). A pod the API server
refuses as invalid (422) is never judged by PodSecurity and is left out of the comparison;
the generator avoids such combinations, and the test bounds how many there are.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from soma_audit.domain import pss
from tests.helpers import fresh_suffix
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    KubeError,
    create,
    namespace,
    restricted_pod,
)

pytestmark = pytest.mark.integration

SEED = 20261128
PODS = 320
EPHEMERAL = 80
LEVELS = ("baseline", "restricted")

#: The reason PodSecurity prints for each upstream check id (policy/check_*.go).
REASONS: dict[str, str] = {
    "appArmorProfile": "forbidden AppArmor profile",
    "capabilities_baseline": "non-default capabilities",
    "hostNamespaces": "host namespaces",
    "hostPathVolumes": "hostPath volumes",
    "hostPorts": "hostPort",
    "hostProbesAndHostLifecycle": "probe or lifecycle host",
    "privileged": "privileged",
    "procMount": "procMount",
    "procMount_restricted": "procMount",
    "seLinuxOptions": "seLinuxOptions",
    "seccompProfile_baseline": "seccompProfile",
    "seccompProfile_restricted": "seccompProfile",
    "sysctls": "forbidden sysctls",
    "windowsHostProcess": "hostProcess",
    "allowPrivilegeEscalation": "allowPrivilegeEscalation != false",
    "capabilities_restricted": "unrestricted capabilities",
    "restrictedVolumes": "restricted volume types",
    "runAsNonRoot": "runAsNonRoot != true",
    "runAsUser": "runAsUser=0",
}


def _reason_family(reason: str) -> str:
    """Singular/plural forms ("forbidden AppArmor profiles") compare equal."""
    return reason.removesuffix("s") if reason.startswith("forbidden AppArmor") else reason


# -- the corpus -----------------------------------------------------------------------------
def _pick(rng: random.Random, *weighted: tuple[float, Any]) -> Any:
    roll = rng.random()
    for weight, value in weighted:
        if roll < weight:
            return copy.deepcopy(value)
        roll -= weight
    return None


def _profile(rng: random.Random, bad: str, localhost_key: str = "localhostProfile") -> Any:
    return _pick(rng, (0.1, {"type": "RuntimeDefault"}),
                 (0.05, {"type": "Localhost", localhost_key: "profiles/audit.json"}),
                 (0.06, {"type": bad}))


def _container_security(rng: random.Random, windows: bool, ephemeral: bool,
                        user_namespace: bool = False) -> Any:
    if rng.random() < 0.15:
        return None
    sc: dict[str, Any] = {}
    if windows:
        if rng.random() < 0.3:
            sc["runAsNonRoot"] = rng.choice([True, False])
        return sc
    privileged = _pick(rng, (0.08, True), (0.1, False))
    if privileged is not None:
        sc["privileged"] = privileged
    escalation = _pick(rng, (0.6, False), (0.1, True))
    if escalation is not None and not (escalation is False and privileged):
        sc["allowPrivilegeEscalation"] = escalation
    caps: dict[str, Any] = {}
    drop = _pick(rng, (0.6, ["ALL"]), (0.1, ["NET_RAW"]), (0.05, ["all"]))
    if drop is not None:
        caps["drop"] = drop
    add = _pick(rng, (0.1, ["NET_BIND_SERVICE"]), (0.05, ["CHOWN"]), (0.05, ["NET_ADMIN"]),
                (0.03, ["SYS_TIME", "NET_BIND_SERVICE"]))
    if add is not None:
        caps["add"] = add
    if caps:
        sc["capabilities"] = caps
    for key, value in (("runAsNonRoot", _pick(rng, (0.35, True), (0.05, False))),
                       ("runAsUser", _pick(rng, (0.2, 10001), (0.05, 0))),
                       ("seccompProfile", _profile(rng, "Unconfined")),
                       ("appArmorProfile", _profile(rng, "Unconfined")),
                       ("seLinuxOptions", _pick(rng, (0.05, {"type": "container_t"}),
                                                (0.03, {"type": "spc_t"}),
                                                (0.02, {"user": "system_u"}),
                                                (0.02, {"role": "object_r"}))),
                       ("procMount", _pick(rng, (0.05, "Default"), (0.03, "Unmasked"))),
                       ("readOnlyRootFilesystem", _pick(rng, (0.3, True)))):
        if value is not None:
            sc[key] = value
    if ephemeral or (sc.get("procMount") == "Unmasked" and not user_namespace):
        sc.pop("procMount", None)  # Unmasked is only valid with hostUsers: false
    return sc


def _handler(rng: random.Random) -> dict[str, Any]:
    host = _pick(rng, (0.15, "evil.example"), (0.1, ""))
    action = rng.choice(["httpGet", "tcpSocket"])
    target: dict[str, Any] = {"port": 8080}
    if action == "httpGet":
        target["path"] = "/healthz"
    if host is not None:
        target["host"] = host
    return {action: target}


def _container(rng: random.Random, name: str, windows: bool, host_network: bool,
               init: bool, user_namespace: bool, number: int) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "registry.invalid/app:1"}
    sc = _container_security(rng, windows, ephemeral=False, user_namespace=user_namespace)
    if sc is not None:
        container["securityContext"] = sc
    if rng.random() < 0.5:
        port: dict[str, Any] = {"containerPort": 8080 + number}
        host_port = _pick(rng, (0.08, "same"), (0.05, 0))
        if host_port == "same" or (host_network and rng.random() < 0.3):
            port["hostPort"] = port["containerPort"]
        elif host_port == 0:
            port["hostPort"] = 0
        container["ports"] = [port]
    if not init and rng.random() < 0.3:
        container["livenessProbe"] = _handler(rng)
    if not init and rng.random() < 0.15:
        container["lifecycle"] = {"postStart": _handler(rng)}
    return container


_VOLUMES: list[dict[str, Any]] = [
    {"emptyDir": {}}, {"configMap": {"name": "cm"}}, {"secret": {"secretName": "s"}},
    {"projected": {"sources": []}}, {"downwardAPI": {"items": []}},
    {"persistentVolumeClaim": {"claimName": "data"}}, {"csi": {"driver": "x.csi.example"}},
    {"ephemeral": {"volumeClaimTemplate": {"spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}},
    {"hostPath": {"path": "/var/log"}}, {"nfs": {"server": "nfs.example", "path": "/x"}},
    {},  # no source: the API server defaults it to emptyDir
]

_SYSCTLS = ["kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
            "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_rmem", "kernel.msgmax",
            "net.core.somaxconn", "kernel.shmmax", "net.ipv4.tcp_slow_start_after_idle"]
_SYSCTL_VALUES = {"net.ipv4.ip_local_port_range": "32768 60999",
                  "net.ipv4.tcp_rmem": "4096 87380 6291456"}


def generate_pod(rng: random.Random, index: int) -> dict[str, Any]:
    """One valid pod covering a random mix of every control (pod and container level)."""
    windows = rng.random() < 0.06
    spec: dict[str, Any] = {}
    metadata: dict[str, Any] = {"name": f"p{index}"}
    host_process = windows and rng.random() < 0.4
    host_network = host_process or (not windows and rng.random() < 0.06)
    if host_network:
        spec["hostNetwork"] = True
    if windows:
        spec["os"] = {"name": "windows"}
    user_namespace = not windows and not host_network and rng.random() < 0.12
    if user_namespace:
        spec["hostUsers"] = False
    elif not windows:
        for key in ("hostPID", "hostIPC"):
            if rng.random() < 0.04:
                spec[key] = True
    psc: dict[str, Any] = {}
    if windows:
        if host_process:
            psc["windowsOptions"] = {"hostProcess": True}
        if rng.random() < 0.4:
            psc["runAsNonRoot"] = rng.choice([True, False])
    else:
        for key, value in (("runAsNonRoot", _pick(rng, (0.45, True), (0.05, False))),
                           ("runAsUser", _pick(rng, (0.3, 10001), (0.07, 0))),
                           ("seccompProfile", _pick(rng, (0.45, {"type": "RuntimeDefault"}),
                                                    (0.05, {"type": "Localhost",
                                                            "localhostProfile": "p.json"}),
                                                    (0.06, {"type": "Unconfined"}))),
                           ("appArmorProfile", _profile(rng, "Unconfined")),
                           ("seLinuxOptions", _pick(rng, (0.05, {"type": "container_init_t"}),
                                                    (0.03, {"type": "unconfined_t"}),
                                                    (0.02, {"user": "u", "role": "r"})))):
            if value is not None:
                psc[key] = value
        if rng.random() < 0.15:
            names = rng.sample(_SYSCTLS, rng.randint(1, 2))
            if host_network:
                names = [n for n in names if not n.startswith("net.")]
            psc["sysctls"] = [{"name": n, "value": _SYSCTL_VALUES.get(n, "1")} for n in names]
    if psc:
        spec["securityContext"] = psc
    containers = [_container(rng, f"c{i}", windows, host_network, False, user_namespace, i)
                  for i in range(rng.randint(1, 2))]
    inits = [_container(rng, f"init{i}", windows, host_network, True, user_namespace, 10 + i)
             for i in range(_pick(rng, (0.3, 1), (0.05, 2)) or 0)]
    if host_process:
        for c in containers + inits:
            sc = c.setdefault("securityContext", {})
            sc["windowsOptions"] = {"hostProcess": True}
    spec["containers"] = containers
    if inits:
        spec["initContainers"] = inits
    if not windows or rng.random() < 0.5:
        chosen = rng.sample(_VOLUMES, _pick(rng, (0.4, 1), (0.2, 2)) or 0)
        spec["volumes"] = [{"name": f"v{i}", **copy.deepcopy(v)} for i, v in enumerate(chosen)]
    if not windows and rng.random() < 0.12:
        # The annotation form of AppArmor (still read by PodSecurity), one container only,
        # and only where that container has no appArmorProfile field to contradict it.
        target = rng.choice(containers + inits)
        if "appArmorProfile" not in (target.get("securityContext") or {}):
            value = rng.choice(["runtime/default", "localhost/audit", "unconfined"])
            metadata["annotations"] = {
                f"container.apparmor.security.beta.kubernetes.io/{target['name']}": value}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


# -- verdicts -------------------------------------------------------------------------------
def _split_top_level(text: str) -> list[str]:
    parts, depth, quoted, current = [], 0, False, ""
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def server_reasons(message: str) -> set[str]:
    """The control names in a PodSecurity rejection message."""
    _, marker, rest = message.partition('": ')
    assert marker and "violates PodSecurity" in message, message
    return {_reason_family(part.split(" (", 1)[0]) for part in _split_top_level(rest)}


def offline_reasons(pod: dict[str, Any], level: str) -> set[str]:
    found = pss.evaluate(pod["spec"], pod["metadata"], level)
    unknown = [v for v in found if v.check not in REASONS]
    assert not unknown, f"evaluator reported checks the server does not have: {unknown}"
    return {_reason_family(REASONS[v.check]) for v in found}


Verdict = set[str] | None  # None: the API server refused the object as invalid


def _dry_run_create(kube: AdminKube, ns: str, pod: dict[str, Any]) -> tuple[Verdict, str]:
    body = {**pod, "metadata": {**pod["metadata"], "namespace": ns}}
    try:
        kube.request("POST", f"/api/v1/namespaces/{ns}/pods", body, query={"dryRun": "All"})
    except KubeError as exc:
        if exc.status == 403 and "violates PodSecurity" in str(exc):
            return server_reasons(str(exc)), str(exc)
        if exc.status == 422:
            return None, str(exc)
        raise
    return set(), "admitted"


def _report(pod: dict[str, Any], level: str, offline: set[str], server: set[str],
            message: str) -> str:
    return (f"\n=== {pod['metadata']['name']} at {level}: offline {sorted(offline)} vs "
            f"server {sorted(server)}\n{message}\n{json.dumps(pod, indent=1)}")


@pytest.fixture(scope="module")
def level_namespaces(kube: AdminKube, unique_name: Callable[[str], str]) -> dict[str, str]:
    unique = unique_name
    return {level: namespace(kube, unique(f"pss-diff-{level}"), {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest"}) for level in LEVELS}


@pytest.fixture(scope="module")
def unique_name() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}-{fresh_suffix()}"


def test_corpus_covers_every_control() -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    for i in range(PODS):
        pod = generate_pod(rng, i)
        for level in LEVELS:
            seen |= {v.check for v in pss.evaluate(pod["spec"], pod["metadata"], level)}
    # Baseline procMount cannot be violated by a valid pod: Unmasked needs hostUsers: false,
    # which exempts the pod from that check (restricted's procMount still applies).
    reachable = set(REASONS) - {"procMount"}
    assert seen == reachable, f"controls never violated: {reachable - seen}"


def test_offline_verdicts_equal_the_api_servers(kube: AdminKube,
                                                level_namespaces: dict[str, str]) -> None:
    rng = random.Random(SEED)
    disagreements: list[str] = []
    invalid: list[str] = []
    judged = 0
    for i in range(PODS):
        pod = generate_pod(rng, i)
        for level in LEVELS:
            server, message = _dry_run_create(kube, level_namespaces[level], pod)
            if server is None:
                invalid.append(f"{pod['metadata']['name']}: {message}")
                continue
            judged += 1
            offline = offline_reasons(pod, level)
            if offline != server:
                disagreements.append(_report(pod, level, offline, server, message))
    print(f"\n{judged} verdicts compared, {len(invalid)} invalid pods left out")
    assert not disagreements, "".join(disagreements)
    assert len(invalid) <= PODS * 2 // 20, "\n".join(invalid[:20])


def test_ephemeral_containers_agree(kube: AdminKube, level_namespaces: dict[str, str]) -> None:
    rng = random.Random(SEED + 1)
    disagreements: list[str] = []
    bases = {}
    for level, ns in level_namespaces.items():
        pod = restricted_pod("base")
        create(kube, {**pod, "metadata": {"name": "base", "namespace": ns}})
        bases[level] = kube.request("GET", f"/api/v1/namespaces/{ns}/pods/base")
    for i in range(EPHEMERAL):
        debug: dict[str, Any] = {"name": f"debug{i}", "image": "registry.invalid/debug:1",
                                 "targetContainerName": "app"}
        sc = _container_security(rng, windows=False, ephemeral=True)
        if sc is not None:
            debug["securityContext"] = sc
        for level, ns in level_namespaces.items():
            live = copy.deepcopy(bases[level])
            live["spec"]["ephemeralContainers"] = [debug]
            try:
                kube.request("PUT", f"/api/v1/namespaces/{ns}/pods/base/ephemeralcontainers",
                             live, query={"dryRun": "All"})
                server, message = set(), "admitted"
            except KubeError as exc:
                if exc.status != 403:
                    raise
                server, message = server_reasons(str(exc)), str(exc)
            offline = offline_reasons(live, level)
            if offline != server:
                disagreements.append(_report(live, level, offline, server, message))
    assert not disagreements, "".join(disagreements)
