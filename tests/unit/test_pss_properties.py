"""Property tests of the Pod Security Standards evaluator (soma_audit.domain.pss).

Two families: arbitrary JSON-like garbage must never make it raise, and well-typed pod
specs built from the fields the controls read must obey the invariants of the standard
(restricted is stricter than baseline, the pod-level settings are inherited, ...).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soma_audit.domain.pss import CHECKS, MALFORMED, Violation, evaluate, run_checks

# --- arbitrary JSON-like input -------------------------------------------------------------

_KEYS = st.sampled_from([
    "containers", "initContainers", "ephemeralContainers", "securityContext", "volumes",
    "name", "privileged", "capabilities", "add", "drop", "hostNetwork", "hostPID", "hostIPC",
    "hostUsers", "os", "seccompProfile", "appArmorProfile", "type", "seLinuxOptions", "user",
    "role", "sysctls", "ports", "hostPort", "containerPort", "procMount", "runAsUser",
    "runAsNonRoot", "allowPrivilegeEscalation", "windowsOptions", "hostProcess", "hostPath",
    "livenessProbe", "httpGet", "tcpSocket", "host", "lifecycle", "postStart", "annotations",
]) | st.text(max_size=8)
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.text(max_size=10))
JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(spec=JSON, metadata=JSON, level=st.sampled_from(list(CHECKS)), template=st.booleans())
def test_never_raises_on_arbitrary_input(spec: Any, metadata: Any, level: str,
                                         template: bool) -> None:
    violations = evaluate(spec, metadata, level, template=template)
    for violation in violations:
        assert isinstance(violation, Violation)
        assert violation.describe()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(containers=st.lists(JSON, max_size=3), security=JSON, volumes=JSON)
def test_never_raises_on_garbage_below_a_plausible_pod(containers: list[Any], security: Any,
                                                       volumes: Any) -> None:
    spec = {"containers": containers, "initContainers": containers,
            "securityContext": security, "volumes": volumes}
    for level in CHECKS:
        evaluate(spec, {"annotations": security}, level)


def test_never_raises_on_recursive_input() -> None:
    loop: list[Any] = []
    loop.append(loop)
    spec: dict[str, Any] = {"containers": [{"name": "c", "securityContext": {"privileged": loop}}]}
    spec["volumes"] = [spec]
    found = evaluate(spec, {"annotations": {"a": loop}}, "restricted")
    assert any(v.check == MALFORMED for v in found)


# --- well-typed pods ----------------------------------------------------------------------

_CAPS = st.sampled_from([
    "AUDIT_WRITE", "CHOWN", "KILL", "NET_BIND_SERVICE", "SETUID", "NET_RAW", "SYS_ADMIN",
    "ALL", "chown", "CAP_CHOWN",
])
_PROFILE = st.sampled_from(["RuntimeDefault", "Localhost", "Unconfined", "", "runtimedefault"])


def _maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict holding any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


_PROBE = _maybe(
    httpGet=_maybe(port=st.just(80), host=st.sampled_from(["", "10.0.0.1"])),
    tcpSocket=_maybe(port=st.just(80), host=st.sampled_from(["", "example.org"])),
)
_SECURITY = _maybe(
    privileged=st.none() | st.booleans(),
    allowPrivilegeEscalation=st.none() | st.booleans(),
    runAsNonRoot=st.none() | st.booleans(),
    runAsUser=st.none() | st.sampled_from([0, 1000]),
    readOnlyRootFilesystem=st.none() | st.booleans(),
    procMount=st.none() | st.sampled_from(["Default", "Unmasked"]),
    capabilities=st.none() | _maybe(add=st.lists(_CAPS, max_size=3),
                                    drop=st.lists(st.sampled_from(["ALL", "all", "NET_RAW"]),
                                                  max_size=2)),
    seccompProfile=st.none() | _maybe(type=_PROFILE),
    appArmorProfile=st.none() | _maybe(type=_PROFILE),
    seLinuxOptions=st.none() | _maybe(
        type=st.sampled_from(["", "container_t", "container_engine_t", "spc_t"]),
        user=st.sampled_from(["", "system_u"]), role=st.sampled_from(["", "sysadm_r"])),
    windowsOptions=st.none() | _maybe(hostProcess=st.none() | st.booleans()),
)


def _container(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.just(name), "image": st.just("registry.k8s.io/pause")},
        optional={
            "securityContext": _SECURITY,
            "ports": st.lists(_maybe(containerPort=st.sampled_from([80, 8080]),
                                     hostPort=st.sampled_from([0, 9090])), max_size=2),
            "livenessProbe": _PROBE, "readinessProbe": _PROBE, "startupProbe": _PROBE,
            "lifecycle": _maybe(postStart=_PROBE, preStop=_PROBE),
        },
    )


_VOLUME_SOURCES = st.sampled_from([
    "emptyDir", "configMap", "secret", "projected", "downwardAPI", "csi", "ephemeral",
    "persistentVolumeClaim", "image", "hostPath", "nfs", "gitRepo", "iscsi", "cephfs", None,
])
_SYSCTLS = st.sampled_from([
    "kernel.shm_rmid_forced", "net.ipv4.tcp_rmem", "net.ipv4.tcp_notsent_lowat",
    "net.ipv4.tcp_slow_start_after_idle", "kernel.msgmax", "net.core.somaxconn",
])


@st.composite
def _volume(draw: st.DrawFn) -> dict[str, Any]:
    source = draw(_VOLUME_SOURCES)
    volume: dict[str, Any] = {"name": f"v{draw(st.integers(0, 9))}"}
    if source is not None:
        volume[source] = {}
    return volume


POD_SPECS = st.fixed_dictionaries(
    {"containers": st.lists(_container("app"), min_size=1, max_size=2)},
    optional={
        "initContainers": st.lists(_container("init"), max_size=1),
        "ephemeralContainers": st.lists(_container("debug"), max_size=1),
        "hostNetwork": st.booleans(), "hostPID": st.booleans(), "hostIPC": st.booleans(),
        "hostUsers": st.booleans(),
        "os": st.fixed_dictionaries({"name": st.sampled_from(["linux", "windows"])}),
        "volumes": st.lists(_volume(), max_size=2),
        "securityContext": _maybe(
            runAsNonRoot=st.none() | st.booleans(),
            runAsUser=st.none() | st.sampled_from([0, 1000]),
            seccompProfile=st.none() | _maybe(type=_PROFILE),
            appArmorProfile=st.none() | _maybe(type=_PROFILE),
            seLinuxOptions=st.none() | _maybe(type=st.sampled_from(["", "spc_t"])),
            windowsOptions=_maybe(hostProcess=st.booleans()),
            sysctls=st.lists(st.fixed_dictionaries({"name": _SYSCTLS, "value": st.just("1")}),
                             max_size=2),
        ),
    },
)
POD_METADATA = _maybe(annotations=st.dictionaries(
    st.sampled_from([
        "container.apparmor.security.beta.kubernetes.io/app",
        "container.apparmor.security.beta.kubernetes.io/ghost",
        "seccomp.security.alpha.kubernetes.io/pod",
        "example.com/other",
    ]),
    st.sampled_from(["runtime/default", "localhost/prof", "unconfined", ""]),
    max_size=2,
))


def _ids(violations: list[Violation]) -> set[str]:
    return {v.check for v in violations}


@settings(max_examples=300)
@given(spec=POD_SPECS, metadata=POD_METADATA)
def test_well_typed_pods_are_never_malformed(spec: dict[str, Any],
                                             metadata: dict[str, Any]) -> None:
    for level in ("baseline", "restricted"):
        assert MALFORMED not in _ids(evaluate(spec, metadata, level))


@settings(max_examples=300)
@given(spec=POD_SPECS, metadata=POD_METADATA)
def test_restricted_rejects_whatever_baseline_rejects(spec: dict[str, Any],
                                                      metadata: dict[str, Any]) -> None:
    baseline = evaluate(spec, metadata, "baseline")
    restricted = evaluate(spec, metadata, "restricted")
    windows = spec.get("os", {}).get("name") == "windows"
    # Upstream exception: restricted replaces capabilities/seccomp checks with versions
    # that exempt Windows pods, so a Windows pod may pass restricted but not baseline.
    if baseline and not windows:
        assert restricted
    assert evaluate(spec, metadata, "privileged") == []


@settings(max_examples=300)
@given(spec=POD_SPECS, metadata=POD_METADATA, level=st.sampled_from(["baseline", "restricted"]))
def test_violations_name_checks_of_their_level(spec: dict[str, Any], metadata: dict[str, Any],
                                               level: str) -> None:
    for violation in evaluate(spec, metadata, level):
        assert violation.check in CHECKS[level]
        assert violation.path.startswith(("spec.", "metadata."))


@settings(max_examples=300)
@given(spec=POD_SPECS, metadata=POD_METADATA)
def test_evaluate_is_the_union_of_its_checks(spec: dict[str, Any],
                                             metadata: dict[str, Any]) -> None:
    whole = evaluate(spec, metadata, "restricted")
    one_by_one = [v for check in CHECKS["restricted"] for v in run_checks(spec, metadata, [check])]
    assert whole == one_by_one


@settings(max_examples=300)
@given(spec=POD_SPECS, metadata=POD_METADATA)
def test_input_is_not_modified(spec: dict[str, Any], metadata: dict[str, Any]) -> None:
    before = copy.deepcopy((spec, metadata))
    evaluate(spec, metadata, "restricted")
    assert (spec, metadata) == before


@settings(max_examples=200)
@given(spec=POD_SPECS, metadata=POD_METADATA)
def test_privileged_container_always_fails_baseline(spec: dict[str, Any],
                                                    metadata: dict[str, Any]) -> None:
    container = spec["containers"][0]
    container["securityContext"] = {**(container.get("securityContext") or {}),
                                    "privileged": True}
    found = evaluate(spec, metadata, "baseline")
    assert any(v.check == "privileged" and v.path == "spec.containers[0].securityContext."
               "privileged" for v in found)
