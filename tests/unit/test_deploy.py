"""manifests/deploy: what `kubectl apply -k manifests/deploy` installs, checked offline.

The objects are read the way kustomize reads them (``resources:`` only, which the first
test pins down; the integration tier compares with the real ``kubectl kustomize``), then
held to the deploy contract: the bundled read-only role and nothing more, a pinned image
in step with the package version, restricted-grade pods, the `serve` CLI shape, and our
own audit (pss.*, netpol.*) passing on them.
"""

from __future__ import annotations

import copy
import json
from functools import reduce
from pathlib import Path
from typing import Any

import yaml

from soma_audit import __version__
from soma_audit.kube.workloads import TEMPLATE_PATHS
from tests.helpers import REPO
from tests.unit.test_cli import run as run_cli

DEPLOY = REPO / "manifests" / "deploy"
RBAC = REPO / "manifests" / "rbac"
#: The file names kustomize recognises as a kustomization, in its order of preference.
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
IMAGE = f"ghcr.io/soma/soma-audit:{__version__}"
UID = 10001
#: The audit's view of the deployment: one service, scraped from the monitoring namespace.
AUDIT_CONFIG = {
    "namespace": "soma-audit",
    "services": [{"name": "soma-audit", "port": 9464,
                  "labels": {"app.kubernetes.io/name": "soma-audit",
                             "app.kubernetes.io/component": "server"}}],
    "namespaces": {"soma-audit": {"enforce": "restricted"}},
    "flows": [{"from": "ns/monitoring", "to": "soma-audit"},
              # the API server is no pod: any address, on its Service and endpoint ports
              {"from": "soma-audit", "to": "cidr/0.0.0.0/0", "port": 443},
              {"from": "soma-audit", "to": "cidr/0.0.0.0/0", "port": 6443}],
}
#: What applies to a single-workload namespace read from files; the rest must skip.
AUDIT_PASSES = {
    "pss.namespace-labels", "pss.pod-compliance", "pss.no-privileged", "pss.readonly-root",
    "pss.resources", "pss.audit-label", "netpol.default-deny", "netpol.service-coverage",
    "netpol.flows", "netpol.dns-egress",
}


def kustomization_file(folder: Path) -> Path:
    """The one kustomization of ``folder``."""
    (found,) = [folder / n for n in KUSTOMIZATION_NAMES if (folder / n).is_file()]
    return found


def kustomize_files(folder: Path) -> list[Path]:
    """The manifest files a kustomize build of ``folder`` reads, in order."""
    files: list[Path] = []
    for entry in yaml.safe_load(kustomization_file(folder).read_text())["resources"]:
        target = (folder / entry).resolve()
        files += kustomize_files(target) if target.is_dir() else [target]
    return files


def load_objects(paths: list[Path]) -> list[dict[str, Any]]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


def deploy_objects() -> list[dict[str, Any]]:
    return load_objects(kustomize_files(DEPLOY))


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [o for o in objects
                if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def pod_templates(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``Kind/name`` → pod template of every workload in ``objects``."""
    return {
        f"{o['kind']}/{o['metadata']['name']}":
            reduce(dict.__getitem__, TEMPLATE_PATHS[o["kind"]], o)
        for o in objects if o["kind"] in TEMPLATE_PATHS
    }


def test_kustomizations_only_list_resources() -> None:
    """So `kustomize_files` reads exactly what kustomize builds (no patches, generators)."""
    for folder in (DEPLOY, RBAC):
        data = yaml.safe_load(kustomization_file(folder).read_text())
        assert data.keys() == {"apiVersion", "kind", "resources"}, folder
        assert data["kind"] == "Kustomization"


def test_every_manifest_in_the_folder_is_installed() -> None:
    listed = {p for p in kustomize_files(DEPLOY) if p.parent == DEPLOY}
    present = {p.resolve() for p in DEPLOY.glob("*.y*ml")} - {kustomization_file(DEPLOY)}
    assert present == listed, "add every manifests/deploy/*.yaml to kustomization.yaml"


def test_the_namespace_is_restricted_and_holds_everything() -> None:
    objects = deploy_objects()
    labels = one(objects, "Namespace", "soma-audit")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    namespaced = [o for o in objects if o["kind"] not in
                  ("Namespace", "ClusterRole", "ClusterRoleBinding")]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"soma-audit"}


def test_rbac_is_the_bundled_read_only_role_and_never_secrets() -> None:
    files = kustomize_files(DEPLOY)
    assert RBAC / "clusterrole.yaml" in files  # reused, not copied
    assert RBAC / "clusterrole-dryrun.yaml" not in files  # the opt-in write role stays out
    objects = deploy_objects()
    roles = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
    assert [r["metadata"]["name"] for r in roles] == ["soma-audit-readonly"]
    for rule in roles[0]["rules"]:
        assert rule["verbs"] == ["list"], rule
        assert "secrets" not in rule["resources"] and "*" not in rule["resources"], rule
    assert not [o for o in objects if o["kind"] in ("Secret", "RoleBinding")]
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": "soma-audit-readonly"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "soma-audit",
                                    "namespace": "soma-audit"}]
    account = one(objects, "ServiceAccount", "soma-audit")
    assert account["automountServiceAccountToken"] is True  # the pods authenticate with it
    for ref, template in pod_templates(objects).items():
        assert template["spec"]["serviceAccountName"] == "soma-audit", ref
        assert template["spec"]["automountServiceAccountToken"] is True, ref


def test_images_and_version_labels_follow_the_package_version() -> None:
    objects = deploy_objects()
    templates = pod_templates(objects)
    assert set(templates) == {"Deployment/soma-audit", "CronJob/soma-audit-report"}
    for ref, template in templates.items():
        images = [c["image"] for c in template["spec"]["containers"]]
        assert images == [IMAGE], ref
        assert template["metadata"]["labels"]["app.kubernetes.io/version"] == __version__
    for obj in objects:
        version = obj["metadata"].get("labels", {}).get("app.kubernetes.io/version")
        assert version in (None, __version__), obj["metadata"]["name"]
    assert f"ARG VERSION={__version__}\n" in (REPO / "Dockerfile").read_text()


def test_pods_are_hardened_for_pod_security_restricted() -> None:
    for ref, template in pod_templates(deploy_objects()).items():
        spec = template["spec"]
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, ref
        assert pod_context["runAsUser"] == UID and pod_context["runAsGroup"] == UID, ref
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, ref
        volumes = {v["name"]: v for v in spec["volumes"]}
        (container,) = spec["containers"]
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, ref
        assert context["readOnlyRootFilesystem"] is True, ref
        assert context["capabilities"] == {"drop": ["ALL"]}, ref
        assert context["runAsUser"] == UID, ref
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], ref  # the only writable scratch space
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, ref


def test_deployment_serves_metrics_the_service_and_servicemonitor_reach() -> None:
    objects = deploy_objects()
    deployment = one(objects, "Deployment", "soma-audit")
    assert deployment["spec"]["replicas"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for key in ("name", "instance", "component", "part-of", "version"):
        assert f"app.kubernetes.io/{key}" in pod_labels
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "serve"
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert options.keys() == {"--port", "--bind", "--interval", "--cluster-name"}
    assert (options["--port"], options["--bind"]) == ("9464", "0.0.0.0")
    assert int(options["--interval"]) > 0
    assert container["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}, probe

    service = one(objects, "Service", "soma-audit")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9464,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    monitor = one(objects, "ServiceMonitor", "soma-audit")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service_labels = service["metadata"]["labels"].items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["soma-audit"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["interval"]


def test_cronjob_writes_a_daily_report_to_its_claim_one_run_at_a_time() -> None:
    objects = deploy_objects()
    cron = one(objects, "CronJob", "soma-audit-report")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1
    minute, hour, *every_day = cron["schedule"].split()
    assert every_day == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()
    job = cron["jobTemplate"]["spec"]
    (rule,) = job["podFailurePolicy"]["rules"]  # exit 1 = "not ready": report kept, no retry
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [1]
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "--ci" and args[args.index("--format") + 1] == "json"
    report, metrics = args[args.index("-o") + 1], args[args.index("--metrics-file") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    reports = next(name for name, path in mounts.items() if report.startswith(path + "/"))
    assert metrics.startswith(mounts[reports] + "/")
    claim = volumes[reports]["persistentVolumeClaim"]["claimName"]
    assert one(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pod["securityContext"]["fsGroup"] == UID  # the claim is writable by the uid


def _audit(directory: Path, tmp_path: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    config = tmp_path / "soma-audit-deploy.yaml"
    config.write_text(yaml.safe_dump(AUDIT_CONFIG))
    proc = run_cli("--manifests", str(directory), "--config", str(config), "--ci",
                   "--format", "json", "--only", "pss.*", "--only", "netpol.*", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


def _write(objects: list[dict[str, Any]], directory: Path) -> Path:
    directory.mkdir()
    (directory / "deploy.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return directory


def _evidence(check: dict[str, Any]) -> str:
    return "\n".join(f"{e['object']}: {e['message']}" for e in check["evidence"])


def test_our_own_audit_passes_on_the_deployment(tmp_path: Path) -> None:
    """The real CLI on what `kubectl apply -k` installs (manifests/deploy alone lacks the
    Namespace, which comes from ../rbac)."""
    code, checks = _audit(_write(deploy_objects(), tmp_path / "deploy"), tmp_path)
    for check_id in AUDIT_PASSES:
        assert checks[check_id]["status"] == "pass", _evidence(checks[check_id])
    assert {i for i, c in checks.items() if c["status"] == "fail"} == set()
    assert code == 0
    evidence = {i: _evidence(c) for i, c in checks.items()}
    assert "Namespace/soma-audit: enforce=restricted audit=restricted warn=restricted" in (
        evidence["pss.namespace-labels"])
    assert "2 workload(s) comply with restricted" in evidence["pss.pod-compliance"]
    assert "2 container(s) in 2 workload(s) set readOnlyRootFilesystem=true" in (
        evidence["pss.readonly-root"])
    assert "NetworkPolicy/soma-audit/default-deny-all" in evidence["netpol.default-deny"]
    assert "soma-audit reaches kube-dns on 53/UDP and 53/TCP" in evidence["netpol.dns-egress"]
    assert "3 intended and 0 derived flows allowed" in evidence["netpol.flows"]
    assert "needs a live cluster" in evidence["pss.admission-verdict"]


def test_our_own_audit_fails_when_the_deployment_is_weakened(tmp_path: Path) -> None:
    """The same audit sees a removed default deny and a writable root filesystem."""
    objects = [o for o in copy.deepcopy(deploy_objects())
               if o["metadata"]["name"] != "default-deny-all"]
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    code, checks = _audit(_write(objects, tmp_path / "weak"), tmp_path)
    assert code == 1
    assert checks["netpol.default-deny"]["status"] == "fail"
    assert checks["pss.readonly-root"]["status"] == "fail"
    assert "Deployment/soma-audit/soma-audit" in _evidence(checks["pss.readonly-root"])
