"""The test API server is a real kube-apiserver: PodSecurity, CRD schemas, SSA, RBAC.

Each test proves behaviour the product relies on as ground truth; none of it could come
from a fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

pytestmark = pytest.mark.integration


def _namespace(api: Any, name: str, labels: dict[str, str] | None = None) -> str:
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or {}))
    )
    return name


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def _pod(name: str, *, privileged: bool) -> dict[str, Any]:
    if privileged:
        security: dict[str, Any] = {"privileged": True}
        pod_security: dict[str, Any] = {}
    else:  # everything `restricted` asks for
        security = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        pod_security = {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": pod_security,
            "containers": [
                {"name": "app", "image": "registry.invalid/app:1", "securityContext": security}
            ],
        },
    }


def test_server_is_a_current_kubernetes_release(kube_admin_client: Any, kube_env: Any) -> None:
    info = client.VersionApi(kube_admin_client).get_code()
    assert info.major == "1"
    assert int(info.minor.rstrip("+")) >= 33
    assert info.git_version == kube_env.version


def test_privileged_pod_is_rejected_by_pod_security_in_restricted_namespace(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    ns = _namespace(
        kube_admin_client,
        unique_name("pss-restricted"),
        {"pod-security.kubernetes.io/enforce": "restricted"},
    )
    core = client.CoreV1Api(kube_admin_client)
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(ns, _pod("privileged", privileged=True))
    assert rejected.value.status == 403
    message = _message(rejected.value)
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "privileged" in message
    # The same namespace admits a pod that meets `restricted`: the verdict is PodSecurity's.
    created = core.create_namespaced_pod(ns, _pod("compliant", privileged=False))
    assert created.metadata.name == "compliant"


def test_privileged_pod_is_admitted_without_enforce_label(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    ns = _namespace(kube_admin_client, unique_name("pss-none"))
    pod = client.CoreV1Api(kube_admin_client).create_namespaced_pod(
        ns, _pod("privileged", privileged=True)
    )
    assert pod.spec.containers[0].security_context.privileged is True


def test_expected_custom_resources_are_served(kube_admin_client: Any) -> None:
    dyn = DynamicClient(kube_admin_client)
    expected = {
        "argoproj.io/v1alpha1": ["Application", "EventSource", "Sensor", "EventBus"],
        "kafka.strimzi.io/v1": ["KafkaTopic", "KafkaUser"],
        "kafka.strimzi.io/v1beta2": ["KafkaTopic", "KafkaUser"],
        "chaos-mesh.org/v1alpha1": ["Schedule", "StressChaos", "NetworkChaos", "PodChaos"],
        "monitoring.coreos.com/v1": ["PrometheusRule", "ServiceMonitor", "Alertmanager"],
        "monitoring.coreos.com/v1alpha1": ["AlertmanagerConfig"],
        "security.istio.io/v1": ["AuthorizationPolicy", "PeerAuthentication"],
        "security.istio.io/v1beta1": ["AuthorizationPolicy", "PeerAuthentication"],
    }
    for api_version, kinds in expected.items():
        for kind in kinds:
            assert dyn.resources.get(api_version=api_version, kind=kind).kind == kind


def test_stresschaos_with_removed_1x_scheduler_field_is_rejected(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    ns = _namespace(kube_admin_client, unique_name("chaos"))
    custom = client.CustomObjectsApi(kube_admin_client)
    spec = {
        "mode": "one",
        "selector": {"namespaces": ["soma-agent-hub"], "labelSelectors": {"app": "llm-hub"}},
        "stressors": {"cpu": {"workers": 1, "load": 50}},
        "duration": "5m",
    }
    legacy = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "StressChaos",
        "metadata": {"name": "legacy"},
        "spec": {**spec, "scheduler": {"cron": "@every 10m"}},
    }
    args = ("chaos-mesh.org", "v1alpha1", ns, "stresschaos")
    # kubectl sends fieldValidation=Strict: the 1.x field is an error.
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(*args, legacy, field_validation="Strict")
    assert rejected.value.status == 400
    assert 'unknown field "spec.scheduler"' in _message(rejected.value)
    # Without Strict the server prunes it: it never reaches storage.
    stored = custom.create_namespaced_custom_object(*args, legacy, field_validation="Ignore")
    assert "scheduler" not in stored["spec"]
    # The 2.x form is accepted, and so is a Schedule wrapping it.
    custom.create_namespaced_custom_object(
        *args,
        {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "StressChaos",
         "metadata": {"name": "current"}, "spec": spec},
        field_validation="Strict",
    )  # fmt: skip
    schedule = custom.create_namespaced_custom_object(
        "chaos-mesh.org", "v1alpha1", ns, "schedules",
        {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule",
         "metadata": {"name": "daily-cpu"},
         "spec": {"schedule": "0 3 * * *", "type": "StressChaos", "historyLimit": 3,
                  "concurrencyPolicy": "Forbid", "stressChaos": spec}},
        field_validation="Strict",
    )  # fmt: skip
    assert schedule["spec"]["stressChaos"]["stressors"]["cpu"]["workers"] == 1


def test_chaos_schema_enforces_enums_and_required_fields(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    ns = _namespace(kube_admin_client, unique_name("chaos-schema"))
    custom = client.CustomObjectsApi(kube_admin_client)
    bad_delay = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "NetworkChaos",
        "metadata": {"name": "bad"},
        "spec": {"action": "slow", "mode": "sometimes", "selector": {}, "delay": {"jitter": "1ms"}},
    }
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(
            "chaos-mesh.org", "v1alpha1", ns, "networkchaos", bad_delay
        )
    message = _message(rejected.value)
    assert rejected.value.status == 422
    for field in ("spec.action", "spec.mode", "spec.delay.latency"):
        assert field in message


def test_kafkatopic_with_non_integer_partitions_is_rejected(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    ns = _namespace(kube_admin_client, unique_name("kafka-schema"))
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "agent-events", "labels": {"strimzi.io/cluster": "soma"}},
        "spec": {"partitions": "x", "replicas": 2},
    }
    with pytest.raises(ApiException) as rejected:
        client.CustomObjectsApi(kube_admin_client).create_namespaced_custom_object(
            "kafka.strimzi.io", "v1", ns, "kafkatopics", topic
        )
    assert rejected.value.status == 422
    message = _message(rejected.value)
    assert "spec.partitions" in message
    assert "must be of type integer" in message


def test_kafkatopic_server_side_applied_as_v1_reads_back_as_v1beta2(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    ns = _namespace(kube_admin_client, unique_name("kafka-ssa"))
    dyn = DynamicClient(kube_admin_client)
    v1 = dyn.resources.get(api_version="kafka.strimzi.io/v1", kind="KafkaTopic")
    v1beta2 = dyn.resources.get(api_version="kafka.strimzi.io/v1beta2", kind="KafkaTopic")
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "model-invocations", "namespace": ns,
                     "labels": {"strimzi.io/cluster": "soma"}},
        "spec": {"partitions": 5, "replicas": 2,
                 "config": {"retention.ms": 2592000000, "cleanup.policy": "delete"}},
    }  # fmt: skip
    applied = v1.server_side_apply(
        body=topic, namespace=ns, field_manager="soma-audit-test", force_conflicts=True
    )
    assert applied.apiVersion == "kafka.strimzi.io/v1"
    managers = {(m.manager, m.operation) for m in applied.metadata.managedFields}
    assert ("soma-audit-test", "Apply") in managers
    old = v1beta2.get(name="model-invocations", namespace=ns)
    assert old.apiVersion == "kafka.strimzi.io/v1beta2"
    assert old.spec.partitions == 5
    assert old.spec.config["retention.ms"] == 2592000000
    # A second apply with a change is a real SSA update, not a create.
    topic["spec"]["partitions"] = 6
    again = v1.server_side_apply(
        body=topic, namespace=ns, field_manager="soma-audit-test", force_conflicts=True
    )
    assert again.metadata.generation == 2
    assert v1beta2.get(name="model-invocations", namespace=ns).spec.partitions == 6


def test_application_keeps_status_written_with_the_object(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    ns = _namespace(kube_admin_client, unique_name("argocd"))
    custom = client.CustomObjectsApi(kube_admin_client)
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "gateway-api"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/soma.git", "path": "apps/gateway-api",
                       "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc",
                            "namespace": "soma-agent-hub"},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
                "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2,
                                                  "maxDuration": "3m"}},
            },
        },
        "status": {
            "sync": {"status": "Synced", "revision": "abc123"},
            "health": {"status": "Healthy"},
            "operationState": {"operation": {"sync": {"revision": "abc123"}},
                               "phase": "Succeeded", "startedAt": "2026-11-28T10:00:00Z",
                               "finishedAt": "2026-11-28T10:00:05Z"},
        },
    }  # fmt: skip
    args = ("argoproj.io", "v1alpha1", ns, "applications")
    custom.create_namespaced_custom_object(*args, app, field_validation="Strict")
    stored = custom.get_namespaced_custom_object(*args[:3], "applications", "gateway-api")
    assert stored["status"]["sync"]["status"] == "Synced"
    assert stored["status"]["health"]["status"] == "Healthy"
    assert stored["status"]["operationState"]["phase"] == "Succeeded"
    assert stored["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    broken = {**app, "metadata": {"name": "no-destination"},
              "spec": {k: v for k, v in app["spec"].items() if k != "destination"}}  # fmt: skip
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(*args, broken)
    assert "spec.destination" in _message(rejected.value)


def test_readonly_identity_lists_but_cannot_write_or_read_secrets(
    kube_env: Any, kube_readonly_client: Any, kube_admin_client: Any
) -> None:
    whoami = client.AuthenticationV1Api(kube_readonly_client).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    assert whoami.status.user_info.username == kube_env.readonly_user
    core = client.CoreV1Api(kube_readonly_client)
    assert core.list_pod_for_all_namespaces(limit=10).items is not None
    assert core.list_namespace(limit=10).items
    with pytest.raises(ApiException) as write:
        core.create_namespaced_config_map(
            "soma-audit",
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="should-not-exist")),
        )
    assert write.value.status == 403
    for attempt in (
        lambda: core.list_namespaced_secret("soma-audit"),
        lambda: core.list_secret_for_all_namespaces(limit=1),
    ):
        with pytest.raises(ApiException) as secrets:
            attempt()
        assert secrets.value.status == 403
    # The API server's audit log records the refused write of that identity.
    deadline = time.monotonic() + 15
    while True:
        events = [
            json.loads(line)
            for line in kube_env.audit_log.read_text().splitlines()
            if '"configmaps"' in line
        ]
        if any(
            e["verb"] == "create" and e["responseStatus"]["code"] == 403
            and e["user"]["username"] == kube_env.readonly_user
            for e in events
        ):  # fmt: skip
            break
        assert time.monotonic() < deadline, "refused create not in the audit log"
        time.sleep(0.5)


_ACL = {"resource": {"type": "topic", "name": "agent-events"}, "host": "*"}
_SCHEMA_CASES = [
    pytest.param(
        "security.istio.io", "v1", "peerauthentications",
        {"kind": "PeerAuthentication", "spec": {"mtls": {"mode": "STRICTEST"}}},
        "spec.mtls.mode", id="istio-mtls-mode-enum",
    ),
    pytest.param(
        "monitoring.coreos.com", "v1", "prometheusrules",
        {"kind": "PrometheusRule",
         "spec": {"groups": [{"name": "slo", "rules": [
             {"alert": "Burn", "expr": "vector(1)", "for": "5 minutes"}]}]}},
        "spec.groups[0].rules[0].for", id="promrule-duration-pattern",
    ),
    pytest.param(
        "kafka.strimzi.io", "v1", "kafkausers",
        {"kind": "KafkaUser",
         "spec": {"authentication": {"type": "scram-sha-512"},
                  "authorization": {"type": "simple",
                                    "acls": [{**_ACL, "operation": "Write"}]}}},
        'unknown field "spec.authorization.acls[0].operation"', id="kafkauser-v1-singular-op",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("group", "version", "plural", "body", "expected"), _SCHEMA_CASES)
def test_schemas_reject_what_upstream_rejects(
    kube_admin_client: Any,
    unique_name: Callable[[str], str],
    group: str,
    version: str,
    plural: str,
    body: dict[str, Any],
    expected: str,
) -> None:
    ns = _namespace(kube_admin_client, unique_name("schema"))
    obj = {"apiVersion": f"{group}/{version}", "metadata": {"name": "bad"}, **body}
    with pytest.raises(ApiException) as rejected:
        client.CustomObjectsApi(kube_admin_client).create_namespaced_custom_object(
            group, version, ns, plural, obj, field_validation="Strict"
        )
    assert expected in _message(rejected.value)


def test_kafkauser_v1beta2_singular_acl_operation_is_lost_in_v1_storage(
    kube_admin_client: Any, unique_name: Callable[[str], str]
) -> None:
    """v1beta2 still accepts `operation`, but v1 (storage) has no such field: it is pruned.

    The migration hazard Strimzi documents for v1: manifests must move to `operations`.
    """
    ns = _namespace(kube_admin_client, unique_name("kafka-user"))
    user = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": {"name": "orchestrator", "labels": {"strimzi.io/cluster": "soma"}},
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {
                "type": "simple",
                "acls": [
                    {**_ACL, "operation": "Write"},
                    {**_ACL, "operations": ["Describe", "Write"]},
                ],
            },
        },
    }
    created = client.CustomObjectsApi(kube_admin_client).create_namespaced_custom_object(
        "kafka.strimzi.io", "v1beta2", ns, "kafkausers", user, field_validation="Strict"
    )
    acls = created["spec"]["authorization"]["acls"]
    assert "operation" not in acls[0]
    assert acls[1]["operations"] == ["Describe", "Write"]
