"""The pure parts of live remediation: owner resolution, GitOps owners, field managers,
the team's scope, apply configurations and the API server's answers in one line."""

from __future__ import annotations

import copy
import json
from typing import Any

from soma_audit.remediation.applyconfig import (
    apply_configuration,
    conflicts,
    one_line,
    pod_security_violations,
    rejection,
)
from soma_audit.remediation.ownership import (
    application_of,
    controller_of,
    field_paths,
    gitops_owner,
    is_human,
    managers,
    owned_by,
    team_scope,
    top_owner,
)
from soma_audit.remediation.transforms import harden_pod


def _owned(kind: str, name: str, owner: tuple[str, str] | None, ns: str = "team"
           ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Other", "name": "not-the-controller"},
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True}]
    return {"apiVersion": "v1", "kind": kind, "metadata": meta}


def test_the_controller_reference_is_the_one_marked_controller() -> None:
    assert controller_of(_owned("Pod", "p", ("ReplicaSet", "web-1"))) == ("ReplicaSet", "web-1")
    assert controller_of(_owned("Pod", "p", None)) is None


def test_a_pod_resolves_to_the_top_of_its_owner_chain() -> None:
    objects = {
        ("ReplicaSet", "web-1"): _owned("ReplicaSet", "web-1", ("Deployment", "web")),
        ("Deployment", "web"): _owned("Deployment", "web", None),
        ("Job", "nightly-1"): _owned("Job", "nightly-1", ("CronJob", "nightly")),
        ("CronJob", "nightly"): _owned("CronJob", "nightly", None),
    }

    def lookup(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        assert namespace == "team"
        return objects.get((kind, name))

    assert top_owner(_owned("Pod", "web-1-x", ("ReplicaSet", "web-1")), lookup) == (
        "Deployment/team/web", ["ReplicaSet/team/web-1"])
    assert top_owner(_owned("Pod", "n", ("Job", "nightly-1")), lookup) == (
        "CronJob/team/nightly", ["Job/team/nightly-1"])
    # A ReplicaSet without a Deployment, a StatefulSet: the owner itself.
    assert top_owner(_owned("Pod", "a", ("ReplicaSet", "alone")), lookup) == (
        "ReplicaSet/team/alone", [])
    assert top_owner(_owned("Pod", "db-0", ("StatefulSet", "db")), lookup)[0] == \
        "StatefulSet/team/db"
    assert top_owner(_owned("Pod", "bare", None), lookup) == ("Pod/team/bare", [])


def _application(self_heal: bool = True, listed: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "billing-service", "namespace": "argocd"},
            "spec": {"source": {"repoURL": "https://git.example/gitops.git",
                                "path": "k8s/billing"},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": self_heal}}},
            "status": {"resources": [{"group": "apps", "kind": "Deployment",
                                      "namespace": "team", "name": n} for n in listed]}}


def _deployment(labels: dict[str, str] | None = None,
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "billing", "namespace": "team", "labels": labels or {},
                         "annotations": annotations or {}}}


def test_argo_cd_owns_what_it_tracks_lists_or_labels() -> None:
    app = application_of(_application())
    by_annotation = gitops_owner(_deployment(annotations={
        "argocd.argoproj.io/tracking-id": "billing-service:apps/Deployment:team/billing"}),
        [app])
    assert by_annotation is not None
    assert by_annotation.note() == (
        "managed by Application argocd/billing-service, auto-sync with selfHeal — a live "
        "change would be reverted; fix the repository instead: soma-audit apply … "
        "--manifests on a checkout of https://git.example/gitops.git path k8s/billing")
    listed = application_of(_application(self_heal=False, listed=("billing",)))
    assert "auto-sync —" in gitops_owner(_deployment(), [listed]).note()  # type: ignore[union-attr]
    by_label = gitops_owner(_deployment({"app.kubernetes.io/instance": "billing-service"}),
                            [app])
    assert by_label is not None and by_label.name == "argocd/billing-service"
    # The instance label alone, with no such Application, is not Argo CD's.
    assert gitops_owner(_deployment({"app.kubernetes.io/instance": "other"}), [app]) is None


def test_helm_owns_its_release_objects() -> None:
    owner = gitops_owner(_deployment({"app.kubernetes.io/managed-by": "Helm"},
                                     {"meta.helm.sh/release-name": "billing"}), [])
    assert owner is not None and owner.note().startswith("managed by Helm release team/billing")
    assert gitops_owner(_deployment({"app": "billing"}), []) is None


def test_people_and_scripts_are_not_controllers() -> None:
    for name in ("kubectl", "kubectl-client-side-apply", "kubectl-edit", "before-first-apply"):
        assert is_human(name)
    for name in ("argocd-controller", "helm", "kube-controller-manager", "kubectlish"):
        assert not is_human(name)


def test_managed_fields_become_token_paths() -> None:
    obj = {"metadata": {"managedFields": [
        {"manager": "soma-audit", "operation": "Apply", "time": "2026-01-02T00:00:00Z",
         "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
             'k:{"name":"web"}': {".": {}, "f:securityContext": {
                 "f:allowPrivilegeEscalation": {}}}}}}}}},
        {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-03T00:00:00Z",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}}]}}
    ours = owned_by(obj, "soma-audit")
    assert ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}',
            "f:securityContext", "f:allowPrivilegeEscalation") in ours
    assert ("f:spec", "f:replicas") not in ours
    assert managers(obj) == ["kubectl-edit", "soma-audit"]
    assert field_paths({"f:a": {".": {}}}) == {("f:a",)}


def test_the_team_scope_and_what_widens_it() -> None:
    scope = team_scope("app", ["observability"], ["legacy"])
    ns = {"kind": "ConfigMap", "metadata": {"namespace": "app"}}
    assert scope.allows(ns)
    assert scope.allows({"kind": "Namespace", "metadata": {"name": "observability"}})
    assert not scope.allows({"kind": "ConfigMap", "metadata": {"namespace": "other"}})
    assert not scope.allows({"kind": "ClusterRole", "metadata": {"name": "x"}})
    wider = team_scope("app", [], ["legacy"], wanted=["other"])
    assert wider.allows({"kind": "ConfigMap", "metadata": {"namespace": "other"}})
    everything = team_scope("app", [], ["legacy"], everything=True)
    assert everything.allows({"kind": "ConfigMap", "metadata": {"namespace": "other"}})
    for never in ("kube-system", "kube-public", "kube-node-lease", "legacy"):
        assert not everything.allows({"kind": "Namespace", "metadata": {"name": never}})
    for system in ("kube-system", "kube-public", "kube-node-lease"):
        named = team_scope("app", [system], [], wanted=[system])
        assert not named.allows({"kind": "Pod", "metadata": {"namespace": system}})


def _live_deployment() -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "team", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         "containers": [
                             {"name": "web", "image": "web:1", "securityContext": {
                                 "privileged": True, "runAsUser": 1000,
                                 "capabilities": {"add": ["NET_ADMIN"]}},
                              "resources": {"requests": {"cpu": "250m"}}},
                             {"name": "sidecar", "image": "side:1",
                              "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                              "securityContext": {"readOnlyRootFilesystem": True}}],
                         "volumes": [{"name": "tmp", "emptyDir": {}}]}}}}


def test_the_apply_configuration_holds_identity_and_the_owned_fields_only() -> None:
    live = _live_deployment()
    rendered = copy.deepcopy(live)
    harden_pod(rendered["spec"]["template"]["spec"], "restricted")
    sent = apply_configuration("pss_harden", rendered, live, set())
    assert sent is not None
    assert sent["metadata"] == {"name": "web", "namespace": "team"}
    assert set(sent["spec"]) == {"template"}  # replicas, selector: not ours
    pod = sent["spec"]["template"]["spec"]
    web, sidecar = pod["containers"]
    assert web["name"] == "web" and "image" not in web
    assert web["securityContext"]["privileged"] is False
    assert web["securityContext"]["allowPrivilegeEscalation"] is False
    assert web["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": []}
    assert "runAsUser" not in web["securityContext"]  # unchanged and not ours
    assert web["resources"] == {"requests": {"memory": "128Mi"},
                                "limits": {"cpu": "250m", "memory": "512Mi"}}
    # The /tmp the hardening adds is mounted, and its volume is sent with it.
    assert web["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "volumes" not in pod  # the volume "tmp" already exists, unchanged
    assert "volumeMounts" not in sidecar and "readOnlyRootFilesystem" not in \
        sidecar["securityContext"]
    assert pod["securityContext"] == {"runAsNonRoot": True,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    # Applied once, the same fields are asserted again (owned), so nothing is dropped.
    after = copy.deepcopy(rendered)
    ours = {tuple(("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}',
                   "f:securityContext", f"f:{key}"))
            for key in ("privileged", "allowPrivilegeEscalation")}
    again = apply_configuration("pss_harden", after, after, ours)
    assert again is not None
    assert again["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "securityContext": {"privileged": False,
                                            "allowPrivilegeEscalation": False}}]
    assert apply_configuration("pss_harden", after, after, set()) is None


def test_a_new_tmp_volume_is_sent_with_its_mount() -> None:
    live = _live_deployment()
    del live["spec"]["template"]["spec"]["volumes"]
    live["spec"]["template"]["spec"]["containers"] = live["spec"]["template"]["spec"][
        "containers"][:1]
    rendered = copy.deepcopy(live)
    harden_pod(rendered["spec"]["template"]["spec"], "baseline")
    pod = apply_configuration("pss_harden", rendered, live, set())["spec"]["template"][
        "spec"]  # type: ignore[index]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_namespace_labels_send_only_the_pod_security_ones() -> None:
    live = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team", "labels": {
                "owner": "a", "pod-security.kubernetes.io/warn": "baseline"}}}
    rendered = copy.deepcopy(live)
    rendered["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "baseline",
                                           "pod-security.kubernetes.io/warn": "baseline"})
    sent = apply_configuration("pss_namespaces", rendered, live, set())
    assert sent == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "team", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}
    # Templates own what they render; objects that do not exist are created whole.
    assert apply_configuration("pss_namespaces", rendered, None, set()) is rendered
    assert apply_configuration(None, rendered, live, set()) is rendered


def test_a_rejection_is_one_line_without_go_structs() -> None:
    status = {"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
              "message": 'Deployment.apps "web" is invalid: spec.template.spec: Invalid value: '
                         'core.PodSpec{Volumes:[]core.Volume{core.Volume{Name:"tmp"}}, '
                         'Containers:[]core.Container{}}: a long dump',
              "details": {"causes": [
                  {"reason": "FieldValueInvalid", "field":
                   "spec.template.spec.containers[0].securityContext",
                   "message": "Invalid value: core.SecurityContext{Privileged:(*bool)(0x1)}: "
                              "cannot set `allowPrivilegeEscalation` to false and "
                              "`privileged` to true"},
                  {"reason": "FieldValueRequired", "field": "x", "message": "Required"}]}}
    assert rejection(json.dumps(status).encode()) == (
        "spec.template.spec.containers[0].securityContext: Invalid value: …: cannot set "
        "`allowPrivilegeEscalation` to false and `privileged` to true (and 1 more)")
    del status["details"]
    assert rejection(status) == ('Deployment.apps "web" is invalid: spec.template.spec: '
                                 "Invalid value: …: a long dump")
    assert rejection(b"not json\n at all") == "not json at all"
    assert len(one_line("x" * 1000)) == 240


def test_conflicts_name_the_manager_and_the_field() -> None:
    answer = {"kind": "Status", "code": 409, "reason": "Conflict", "details": {"causes": [
        {"reason": "FieldManagerConflict", "message": 'conflict with "argocd-controller" '
         "using apps/v1", "field": ".spec.template.spec.containers[name=\"web\"].image"}]}}
    assert conflicts(answer) == [("argocd-controller",
                                  '.spec.template.spec.containers[name="web"].image')]


def test_pod_security_warnings_count_the_violating_pods() -> None:
    warnings = ['existing pods in namespace "team" violate the new PodSecurity enforce '
                'level "restricted:latest"',
                "web-1 (and 2 other pods): allowPrivilegeEscalation != false",
                "db-0: runAsNonRoot != true"]
    assert pod_security_violations(warnings) == ("restricted:latest", 4, warnings[1:])
    assert pod_security_violations(["something else"]) is None


def test_a_live_preview_starts_with_its_scope_and_names_owners() -> None:
    from soma_audit.remediation.plan import Change, Plan
    from soma_audit.remediation.targets import DirectoryTarget

    changes = [Change("managed", "Deployment/team/billing", None, None, "",
                      note="managed by Helm release team/billing"),
               Change("recreate", "Pod/team/debug", None, "kind: Pod\n",
                      "+kind: Pod\n", note="a Pod's spec cannot be changed")]
    plan = Plan("pss-hardening", DirectoryTarget("."), changes,
                scope="2 objects in 1 namespaces (scope: team)")
    text = plan.render_diff()
    assert text.splitlines()[:3] == [
        "# 2 objects in 1 namespaces (scope: team)",
        "# not patched live: Deployment/team/billing: managed by Helm release team/billing",
        "# recreate Pod/team/debug (a Pod's spec cannot be changed)"]
    assert plan.pending == [] and plan.blocked == []
    assert plan.summary().endswith("1 bare Pods to recreate, 1 managed by GitOps (nothing to do)")


def test_the_scope_line_names_five_namespaces_and_counts_the_rest() -> None:
    scope = team_scope("a", ["b", "c", "d", "e", "f", "g"], [])
    assert scope.describe() == "a, b, c, d, e and 2 more"
    assert team_scope("a", [], [], everything=True).describe() == \
        "every namespace but the system and exempt ones"
