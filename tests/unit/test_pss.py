"""Example tests of the Pod Security Standards evaluator: each control passes and fails.

Each case starts from a pod that meets restricted and changes one thing; the expected
verdicts follow the upstream checks (k8s.io/pod-security-admission/policy, latest).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from soma_audit.domain.pss import (
    CHECKS,
    MALFORMED,
    at_least,
    evaluate,
    parse_level,
    run_checks,
    show,
)

Pod = dict[str, Any]


def hardened() -> Pod:
    """A pod (spec and metadata) that meets restricted, with an init container."""
    security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {
        "metadata": {"annotations": {}},
        "spec": {
            "securityContext": {"runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "initContainers": [{"name": "init", "image": "x",
                                "securityContext": copy.deepcopy(security)}],
            "containers": [{"name": "app", "image": "x",
                            "securityContext": copy.deepcopy(security),
                            "ports": [{"containerPort": 8080}]}],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def ids(pod: Pod, level: str, **kwargs: Any) -> set[str]:
    return {v.check for v in evaluate(pod["spec"], pod["metadata"], level, **kwargs)}


def app(pod: Pod) -> dict[str, Any]:
    return pod["spec"]["containers"][0]


def app_sc(pod: Pod) -> dict[str, Any]:
    return app(pod)["securityContext"]


def init_sc(pod: Pod) -> dict[str, Any]:
    return pod["spec"]["initContainers"][0]["securityContext"]


def pod_sc(pod: Pod) -> dict[str, Any]:
    return pod["spec"]["securityContext"]


def test_the_hardened_pod_meets_every_level() -> None:
    pod = hardened()
    for level in ("privileged", "baseline", "restricted"):
        assert evaluate(pod["spec"], pod["metadata"], level) == []


def test_no_containers_no_spec_is_allowed() -> None:
    assert evaluate({}, {}, "restricted") == []
    assert evaluate(None, None, "restricted") == []


Change = Callable[[Pod], object]

#: (case, change to the hardened pod, failing checks at baseline, at restricted)
CASES: list[tuple[str, Change, set[str], set[str]]] = [
    # baseline controls
    ("hostNetwork", lambda p: p["spec"].update(hostNetwork=True),
     {"hostNamespaces", "hostPorts"}, {"hostNamespaces", "hostPorts"}),
    ("hostPID", lambda p: p["spec"].update(hostPID=True), {"hostNamespaces"}, {"hostNamespaces"}),
    ("hostIPC", lambda p: p["spec"].update(hostIPC=True), {"hostNamespaces"}, {"hostNamespaces"}),
    ("hostNetwork false", lambda p: p["spec"].update(hostNetwork=False), set(), set()),
    ("privileged", lambda p: app_sc(p).update(privileged=True, allowPrivilegeEscalation=None),
     {"privileged"}, {"privileged", "allowPrivilegeEscalation"}),
    ("privileged init", lambda p: init_sc(p).update(privileged=True), {"privileged"},
     {"privileged"}),
    ("privileged false", lambda p: app_sc(p).update(privileged=False), set(), set()),
    ("hostProcess pod", lambda p: pod_sc(p).update(windowsOptions={"hostProcess": True}),
     {"windowsHostProcess"}, {"windowsHostProcess"}),
    ("hostProcess container", lambda p: app_sc(p).update(windowsOptions={"hostProcess": True}),
     {"windowsHostProcess"}, {"windowsHostProcess"}),
    ("hostProcess false", lambda p: app_sc(p).update(windowsOptions={"hostProcess": False}),
     set(), set()),
    ("add default capability", lambda p: app_sc(p)["capabilities"].update(add=["CHOWN"]),
     set(), {"capabilities_restricted"}),
    ("add NET_BIND_SERVICE",
     lambda p: app_sc(p)["capabilities"].update(add=["NET_BIND_SERVICE"]), set(), set()),
    ("add NET_RAW", lambda p: app_sc(p)["capabilities"].update(add=["NET_RAW"]),
     {"capabilities_baseline"}, {"capabilities_restricted"}),
    ("add lower-case chown", lambda p: app_sc(p)["capabilities"].update(add=["chown"]),
     {"capabilities_baseline"}, {"capabilities_restricted"}),
    ("hostPath volume", lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {}}),
     {"hostPathVolumes"}, {"restrictedVolumes"}),
    ("hostPort", lambda p: app(p)["ports"][0].update(hostPort=8080), {"hostPorts"},
     {"hostPorts"}),
    ("hostPort 0", lambda p: app(p)["ports"][0].update(hostPort=0), set(), set()),
    ("probe host", lambda p: app(p).update(livenessProbe={"httpGet": {"host": "1.2.3.4"}}),
     {"hostProbesAndHostLifecycle"}, {"hostProbesAndHostLifecycle"}),
    ("tcp probe host", lambda p: app(p).update(startupProbe={"tcpSocket": {"host": "db"}}),
     {"hostProbesAndHostLifecycle"}, {"hostProbesAndHostLifecycle"}),
    ("lifecycle host",
     lambda p: app(p).update(lifecycle={"preStop": {"httpGet": {"host": "evil"}}}),
     {"hostProbesAndHostLifecycle"}, {"hostProbesAndHostLifecycle"}),
    ("probe without host", lambda p: app(p).update(readinessProbe={"httpGet": {"host": ""}}),
     set(), set()),
    ("AppArmor field unconfined",
     lambda p: app_sc(p).update(appArmorProfile={"type": "Unconfined"}),
     {"appArmorProfile"}, {"appArmorProfile"}),
    ("AppArmor pod localhost",
     lambda p: pod_sc(p).update(appArmorProfile={"type": "Localhost"}), set(), set()),
    ("AppArmor annotation unconfined",
     lambda p: p["metadata"]["annotations"].update(
         {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}),
     {"appArmorProfile"}, {"appArmorProfile"}),
    ("AppArmor annotation localhost",
     lambda p: p["metadata"]["annotations"].update(
         {"container.apparmor.security.beta.kubernetes.io/app": "localhost/p"}), set(), set()),
    ("SELinux type spc_t", lambda p: app_sc(p).update(seLinuxOptions={"type": "spc_t"}),
     {"seLinuxOptions"}, {"seLinuxOptions"}),
    ("SELinux engine type",
     lambda p: pod_sc(p).update(seLinuxOptions={"type": "container_engine_t"}), set(), set()),
    ("SELinux user", lambda p: pod_sc(p).update(seLinuxOptions={"user": "system_u"}),
     {"seLinuxOptions"}, {"seLinuxOptions"}),
    ("SELinux role", lambda p: init_sc(p).update(seLinuxOptions={"role": "r"}),
     {"seLinuxOptions"}, {"seLinuxOptions"}),
    ("procMount unmasked", lambda p: app_sc(p).update(procMount="Unmasked"),
     {"procMount"}, {"procMount_restricted"}),
    ("procMount unmasked in user namespace",
     lambda p: (app_sc(p).update(procMount="Unmasked"), p["spec"].update(hostUsers=False)),
     set(), {"procMount_restricted"}),
    ("procMount default", lambda p: app_sc(p).update(procMount="Default"), set(), set()),
    ("seccomp unconfined container",
     lambda p: app_sc(p).update(seccompProfile={"type": "Unconfined"}),
     {"seccompProfile_baseline"}, {"seccompProfile_restricted"}),
    ("seccomp localhost container",
     lambda p: app_sc(p).update(seccompProfile={"type": "Localhost"}), set(), set()),
    ("safe sysctl of 1.37",
     lambda p: pod_sc(p).update(sysctls=[{"name": "net.ipv4.tcp_notsent_lowat"}]), set(), set()),
    ("unsafe sysctl", lambda p: pod_sc(p).update(sysctls=[{"name": "kernel.msgmax"}]),
     {"sysctls"}, {"sysctls"}),
    # restricted controls
    ("allowPrivilegeEscalation unset",
     lambda p: app_sc(p).pop("allowPrivilegeEscalation"), set(), {"allowPrivilegeEscalation"}),
    ("allowPrivilegeEscalation true",
     lambda p: init_sc(p).update(allowPrivilegeEscalation=True), set(),
     {"allowPrivilegeEscalation"}),
    ("no securityContext", lambda p: app(p).pop("securityContext"), set(),
     {"allowPrivilegeEscalation", "capabilities_restricted"}),
    ("drop without ALL", lambda p: app_sc(p)["capabilities"].update(drop=["NET_RAW"]), set(),
     {"capabilities_restricted"}),
    ("drop lower-case all", lambda p: app_sc(p)["capabilities"].update(drop=["all"]), set(),
     {"capabilities_restricted"}),
    ("configMap and PVC volumes", lambda p: p["spec"]["volumes"].extend([
        {"name": "c", "configMap": {"name": "x"}},
        {"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]), set(), set()),
    ("nfs volume", lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {}}), set(),
     {"restrictedVolumes"}),
    ("volume without source is emptyDir",
     lambda p: p["spec"]["volumes"].append({"name": "e"}), set(), set()),
    ("runAsNonRoot unset everywhere", lambda p: pod_sc(p).pop("runAsNonRoot"), set(),
     {"runAsNonRoot"}),
    ("runAsNonRoot in every container only", lambda p: (
        pod_sc(p).pop("runAsNonRoot"), app_sc(p).update(runAsNonRoot=True),
        init_sc(p).update(runAsNonRoot=True)), set(), set()),
    ("runAsNonRoot false in a container", lambda p: app_sc(p).update(runAsNonRoot=False),
     set(), {"runAsNonRoot"}),
    ("runAsNonRoot false at pod level", lambda p: pod_sc(p).update(runAsNonRoot=False), set(),
     {"runAsNonRoot"}),
    ("runAsNonRoot unset in a user namespace",
     lambda p: (pod_sc(p).pop("runAsNonRoot"), p["spec"].update(hostUsers=False)), set(), set()),
    ("runAsUser 0", lambda p: app_sc(p).update(runAsUser=0), set(), {"runAsUser"}),
    ("runAsUser 0 at pod level", lambda p: pod_sc(p).update(runAsUser=0), set(),
     {"runAsUser"}),
    ("runAsUser 0 in a user namespace",
     lambda p: (pod_sc(p).update(runAsUser=0), p["spec"].update(hostUsers=False)), set(), set()),
    ("runAsUser 1000", lambda p: app_sc(p).update(runAsUser=1000), set(), set()),
    ("seccomp unset everywhere", lambda p: pod_sc(p).pop("seccompProfile"), set(),
     {"seccompProfile_restricted"}),
    ("seccomp in every container only", lambda p: (
        pod_sc(p).pop("seccompProfile"), app_sc(p).update(seccompProfile={"type": "Localhost"}),
        init_sc(p).update(seccompProfile={"type": "RuntimeDefault"})), set(), set()),
    ("seccomp unconfined at pod level",
     lambda p: pod_sc(p).update(seccompProfile={"type": "Unconfined"}),
     {"seccompProfile_baseline"}, {"seccompProfile_restricted"}),
    ("seccomp unconfined at pod level, containers set", lambda p: (
        pod_sc(p).update(seccompProfile={"type": "Unconfined"}),
        app_sc(p).update(seccompProfile={"type": "RuntimeDefault"}),
        init_sc(p).update(seccompProfile={"type": "RuntimeDefault"})),
     {"seccompProfile_baseline"}, {"seccompProfile_restricted"}),
    ("ephemeral container unhardened",
     lambda p: p["spec"].update(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
     set(), {"allowPrivilegeEscalation", "capabilities_restricted"}),
    ("ephemeral container privileged", lambda p: p["spec"].update(ephemeralContainers=[
        {"name": "debug", "securityContext": {"privileged": True}}]),
     {"privileged"}, {"privileged", "allowPrivilegeEscalation", "capabilities_restricted"}),
    # Windows pods are exempt from three restricted controls (and their baseline twins).
    ("windows pod without Linux settings", lambda p: (
        p["spec"].update(os={"name": "windows"}), pod_sc(p).pop("seccompProfile"),
        app(p).pop("securityContext"), init_sc(p).clear()), set(), set()),
    ("windows pod adding SYS_ADMIN", lambda p: (
        p["spec"].update(os={"name": "windows"}),
        app_sc(p)["capabilities"].update(add=["SYS_ADMIN"])), {"capabilities_baseline"}, set()),
    ("linux pod without Linux settings", lambda p: (
        p["spec"].update(os={"name": "linux"}), app(p).pop("securityContext")),
     set(), {"allowPrivilegeEscalation", "capabilities_restricted"}),
]


@pytest.mark.parametrize(("change", "baseline", "restricted"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_control(change: Change, baseline: set[str], restricted: set[str]) -> None:
    pod = hardened()
    change(pod)
    assert ids(pod, "baseline") == baseline
    assert ids(pod, "restricted") == restricted
    assert ids(pod, "privileged") == set()


def test_violation_names_container_path_found_and_allowed() -> None:
    pod = hardened()
    app_sc(pod)["privileged"] = True
    (found,) = evaluate(pod["spec"], pod["metadata"], "baseline")
    assert found.check == "privileged"
    assert found.container == "app"
    assert found.path == "spec.containers[0].securityContext.privileged"
    assert found.found == "true"
    assert found.allowed == "false or unset"
    assert found.describe("spec.template.") == (
        "container 'app': spec.template.spec.containers[0].securityContext.privileged=true, "
        "expected false or unset [privileged]")


def test_pod_level_violation_has_no_container() -> None:
    pod = hardened()
    pod["spec"]["hostPID"] = True
    (found,) = evaluate(pod["spec"], pod["metadata"], "baseline")
    assert (found.container, found.subject, found.path) == (None, "pod", "spec.hostPID")


def test_each_offending_field_is_its_own_violation() -> None:
    pod = hardened()
    pod["spec"].update(hostNetwork=True, hostIPC=True)
    app_sc(pod)["capabilities"]["add"] = ["SYS_ADMIN", "NET_RAW"]
    found = evaluate(pod["spec"], pod["metadata"], "baseline")
    assert [(v.check, v.path, v.found) for v in found] == [
        ("capabilities_baseline", "spec.containers[0].securityContext.capabilities.add[0]",
         '"SYS_ADMIN"'),
        ("capabilities_baseline", "spec.containers[0].securityContext.capabilities.add[1]",
         '"NET_RAW"'),
        ("hostNamespaces", "spec.hostNetwork", "true"),
        ("hostNamespaces", "spec.hostIPC", "true"),
        ("hostPorts", "spec.containers[0].ports[0].hostPort",
         "8080 (defaulted from containerPort on hostNetwork)"),
    ]


def test_host_ports_are_defaulted_for_pods_only() -> None:
    pod = hardened()
    pod["spec"]["hostNetwork"] = True
    assert ids(pod, "baseline") == {"hostNamespaces", "hostPorts"}
    assert ids(pod, "baseline", template=True) == {"hostNamespaces"}


def test_annotation_violation_names_its_container() -> None:
    key = "container.apparmor.security.beta.kubernetes.io/ghost"
    (found,) = evaluate({}, {"annotations": {key: "unconfined"}}, "baseline")
    assert (found.check, found.container, found.path) == (
        "appArmorProfile", "ghost", f"metadata.annotations[{key}]")


def test_seccomp_annotations_are_ignored_at_latest() -> None:
    pod = hardened()
    pod["metadata"]["annotations"]["seccomp.security.alpha.kubernetes.io/pod"] = "unconfined"
    assert ids(pod, "restricted") == set()


def test_restricted_overrides_four_baseline_checks() -> None:
    assert set(CHECKS["baseline"]) - set(CHECKS["restricted"]) == {
        "capabilities_baseline", "hostPathVolumes", "procMount", "seccompProfile_baseline"}
    assert len(CHECKS["restricted"]) == 15


@pytest.mark.parametrize(("spec", "metadata", "path"), [
    ("not a spec", {}, "spec"),
    ({"containers": "app"}, {}, "spec.containers"),
    ({"containers": [42]}, {}, "spec.containers[0]"),
    ({"containers": [{"name": "a", "securityContext": "yes"}]}, {},
     "spec.containers[0].securityContext"),
    ({"containers": [{"name": "a", "securityContext": {"privileged": "true"}}]}, {},
     "spec.containers[0].securityContext.privileged"),
    ({"hostNetwork": "yes"}, {}, "spec.hostNetwork"),
    ({"securityContext": {"sysctls": [{"name": 5}]}}, {}, "spec.securityContext.sysctls[0].name"),
    ({"containers": [{"ports": [{"hostPort": "80"}]}]}, {}, "spec.containers[0].ports[0].hostPort"),
    ({}, {"annotations": ["x"]}, "metadata.annotations"),
    ({}, {"annotations": {"k": 1}}, "metadata.annotations[k]"),
])
def test_wrong_types_are_malformed_violations(spec: Any, metadata: Any, path: str) -> None:
    found = evaluate(spec, metadata, "baseline")
    assert (MALFORMED, path) in {(v.check, v.path) for v in found}


def test_a_malformed_field_is_reported_once() -> None:
    spec = {"containers": [{"name": "a", "securityContext": "yes"}]}
    found = [v for v in evaluate(spec, {}, "restricted") if v.check == MALFORMED]
    assert len(found) == 1


def test_run_checks_runs_only_the_named_checks() -> None:
    pod = hardened()
    pod["spec"]["hostPID"] = True
    app_sc(pod)["privileged"] = True
    found = run_checks(pod["spec"], pod["metadata"], ["privileged"])
    assert [v.check for v in found] == ["privileged"]


def test_unknown_level_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown Pod Security level"):
        evaluate({}, {}, "strict")


def test_levels() -> None:
    assert parse_level("baseline") == "baseline"
    assert parse_level("Baseline") is None
    assert parse_level(None) is None
    assert at_least("restricted", "baseline")
    assert at_least("baseline", "baseline")
    assert not at_least("privileged", "baseline")


@pytest.mark.parametrize(("value", "shown"), [
    (None, "unset"), (True, "true"), (0, "0"), ("x", '"x"'), (["ALL"], '["ALL"]'),
    ("y" * 500, '"' + "y" * 200 + '..."'),
])
def test_show(value: Any, shown: str) -> None:
    assert show(value) == shown
