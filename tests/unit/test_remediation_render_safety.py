"""The renderer's guarantees: confined paths, sandboxed strict templates, strict recipes,
discovery-driven apiVersions, and transforms that keep the rest of a file intact."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from jinja2.exceptions import SecurityError, UndefinedError

from soma_audit.config import Service, load_config
from soma_audit.core.errors import ConfigError
from soma_audit.domain.pss import evaluate
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.remediation import render as render_module
from soma_audit.remediation.output import RenderError, safe_path
from soma_audit.remediation.recipes import Recipe, TemplateSpec, load_recipes
from soma_audit.remediation.render import environment, render
from soma_audit.remediation.transforms import chaos_legacy, harden_pod, pss_harden

RECIPES = load_recipes()


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.yaml", "k8s/../../x.yaml",
                                  "k8s/../..", "\\windows\\x", "C:/x.yaml", "", ".", "a/\x00"])
def test_paths_outside_the_repository_are_rejected(path: str) -> None:
    with pytest.raises(RenderError):
        safe_path(path)


@pytest.mark.parametrize(("path", "normal"), [("k8s//apps/./x.yaml", "k8s/apps/x.yaml"),
                                              ("k8s\\net\\a.yaml", "k8s/net/a.yaml")])
def test_paths_are_normalised(path: str, normal: str) -> None:
    assert safe_path(path) == normal


def _recipe(path: str, template: str = "netpol/default-deny.yaml.j2",
            for_each: str | None = None) -> Recipe:
    return Recipe("t", "t", "t", ["netpol.default-deny"], "kubernetes",
                  [TemplateSpec(template, path, for_each)])


def test_a_config_value_cannot_steer_output_outside_the_repository() -> None:
    # The config refuses such a name at load; the renderer's own guard still holds for a
    # Config built in code.
    config = dataclasses.replace(load_config(flows=[]),
                                 services=[Service("../../../etc/cron.d/x", 1)])
    recipe = _recipe("k8s/network/{{ item.name }}.yaml", "netpol/service.yaml.j2",
                     "network_policies")
    with pytest.raises(RenderError, match="escapes"):
        render(recipe, config, Inventory())


def test_two_outputs_on_one_path_are_an_error() -> None:
    config = load_config()
    recipe = _recipe("k8s/network/all.yaml", "netpol/service.yaml.j2", "network_policies")
    with pytest.raises(RenderError, match="two outputs"):
        render(recipe, config, Inventory())


def test_templates_are_sandboxed_and_strict() -> None:
    env = environment()
    with pytest.raises(SecurityError):
        env.from_string("{{ config.__class__.__mro__ }}").render(config=load_config())
    with pytest.raises(UndefinedError):
        env.from_string("{{ nothing_here }}").render()


def test_unknown_for_each_list_is_an_error() -> None:
    with pytest.raises(RenderError, match="unknown list"):
        render(_recipe("x/{{ item }}.yaml", for_each="no_such"), load_config(), Inventory())


def test_recipes_load_strictly(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({
        "id": "bad", "title": "t", "description": "d", "fixes": ["x"], "target": "kubernetes",
        "templates": [{"template": "a.j2", "path": "a", "foreach": "services"}]}))
    with pytest.raises(ConfigError, match="foreach"):
        load_recipes(tmp_path)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({
        "id": "other", "title": "t", "description": "d", "fixes": ["x"],
        "target": "kubernetes", "transform": "pss_harden"}))
    with pytest.raises(ConfigError, match="file name"):
        load_recipes(tmp_path)


def test_every_recipe_renders_valid_output_for_the_default_config() -> None:
    config = load_config()
    for recipe in RECIPES.values():
        for rendered in render(recipe, config, Inventory()):
            assert rendered.text.strip(), rendered.path
            assert not rendered.path.startswith("/")
            for obj in rendered.objects:
                assert obj["metadata"]["name"], rendered.path


def test_strimzi_version_follows_discovery() -> None:
    """A cluster older than Strimzi 0.49 serves only v1beta2: render what it serves."""
    config = load_config()
    old = {"KafkaTopic": "kafka.strimzi.io/v1beta2", "KafkaUser": "kafka.strimzi.io/v1beta2"}
    for recipe_id in ("kafka-topics", "kafka-users"):
        (current,) = render(RECIPES[recipe_id], config, Inventory())
        (legacy,) = render(RECIPES[recipe_id], config, Inventory(), old)
        assert {o["apiVersion"] for o in current.objects} == {"kafka.strimzi.io/v1"}
        assert {o["apiVersion"] for o in legacy.objects} == {"kafka.strimzi.io/v1beta2"}
    assert render_module.DEFAULT_API_VERSIONS["KafkaTopic"] == "kafka.strimzi.io/v1"


def test_kafka_acls_are_exactly_the_plan() -> None:
    (users,) = render(RECIPES["kafka-users"], load_config(), Inventory())
    analytics = next(o for o in users.objects if o["metadata"]["name"] == "analytics-service")
    acls = analytics["spec"]["authorization"]["acls"]
    assert [(a["resource"]["type"], a["resource"]["name"], a["operations"]) for a in acls] == [
        ("topic", "agent-events", ["Read", "Describe"]),
        ("topic", "model-invocations", ["Read", "Describe"]),
        ("group", "analytics-service", ["Read"]),
    ]
    assert all("operation" not in a for o in users.objects
               for a in o["spec"]["authorization"]["acls"])


def test_chaos_schedules_are_2x_and_daily() -> None:
    files = render(RECIPES["chaos-schedules"], load_config(), Inventory())
    schedules = [o for f in files for o in f.objects]
    assert {o["kind"] for o in schedules} == {"Schedule"}
    crons = [o["spec"]["schedule"] for o in schedules]
    assert len(set(crons)) == len(crons)  # staggered, never two at once
    for schedule in schedules:
        key = {"StressChaos": "stressChaos", "NetworkChaos": "networkChaos",
               "PodChaos": "podChaos"}[schedule["spec"]["type"]]
        assert "scheduler" not in schedule["spec"][key]


def _resource(body: dict[str, object], origin: str) -> Resource:
    return Resource(body, origin)


def test_legacy_chaos_is_migrated_as_a_replacement_in_its_file() -> None:
    legacy = {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
              "metadata": {"name": "lat", "namespace": "x"},
              "spec": {"action": "delay", "mode": "all", "delay": {"latency": "100ms"},
                       "duration": "15m", "scheduler": {"interval": "12h"}}}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}}
    inventory = Inventory.of([_resource(other, "k8s/chaos.yaml:1"),
                              _resource(legacy, "k8s/chaos.yaml:5")])
    (rendered,) = chaos_legacy(load_config(), inventory)
    assert rendered.path == "k8s/chaos.yaml" and rendered.patch
    (second,) = rendered.objects  # the ConfigMap is not part of the patch: it stays as is
    assert rendered.replaces == {0: ("NetworkChaos", "x", "lat")}
    assert rendered.replaced_because.startswith("chaos.no-legacy-scheduler")
    assert second["kind"] == "Schedule"
    assert second["spec"]["schedule"] == "@every 12h"
    assert second["spec"]["type"] == "NetworkChaos"
    assert "scheduler" not in second["spec"]["networkChaos"]
    assert second["spec"]["networkChaos"]["delay"] == {"latency": "100ms"}


def test_hardened_pod_meets_restricted_per_the_pss_evaluator() -> None:
    pod = {"containers": [{"name": "a", "image": "i", "securityContext": {
        "privileged": True, "runAsUser": 0, "capabilities": {"add": ["SYS_ADMIN"]},
        "seccompProfile": {"type": "Unconfined"}}}],
        "initContainers": [{"name": "init", "image": "i"}]}
    harden_pod(pod, "restricted")
    assert list(evaluate(pod, {}, "restricted", template=True)) == []
    container = pod["containers"][0]
    assert container["securityContext"]["privileged"] is False  # set, not dropped (SSA)
    assert container["securityContext"]["runAsUser"] != 0
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert pod["initContainers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_a_request_above_the_default_limit_keeps_limit_at_least_the_request() -> None:
    pod = {"containers": [{"name": "a", "image": "i",
                           "resources": {"requests": {"cpu": "4", "memory": "8Gi"}}}]}
    harden_pod(pod, "restricted")
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}


def test_hardening_leaves_exempt_namespaces_and_untouched_files_alone() -> None:
    def deployment(namespace: str) -> dict[str, object]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "d", "namespace": namespace},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    inventory = Inventory.of([_resource(deployment("kube-system"), "a.yaml:1"),
                              _resource(deployment("soma-agent-hub"), "b.yaml:1")])
    files = pss_harden(load_config(), inventory)
    assert [f.path for f in files] == ["b.yaml"]


def _pod_in(namespace: str, spec: dict[str, object], origin: str) -> Resource:
    return Resource({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": namespace}, "spec": spec}, origin)


def test_unlisted_namespaces_enforce_the_strictest_level_their_pods_already_meet() -> None:
    """Labelling must not lock out running agents: a hostNetwork collector's namespace
    enforces privileged (audit/warn restricted still report it), a compliant one more."""
    from soma_audit.remediation.transforms import pss_namespaces

    collector = {"hostNetwork": True, "containers": [{"name": "c", "image": "i"}]}
    plain = {"containers": [{"name": "c", "image": "i"}]}
    inventory = Inventory.of([_pod_in("node-agents", collector, "a.yaml:1"),
                              _pod_in("tools", plain, "b.yaml:1")])
    (rendered,) = pss_namespaces(load_config(), inventory)
    levels = {o["metadata"]["name"]: o["metadata"]["labels"] for o in rendered.objects}
    prefix = "pod-security.kubernetes.io/"
    assert levels["node-agents"][prefix + "enforce"] == "privileged"
    assert levels["tools"][prefix + "enforce"] == "baseline"
    assert levels["node-agents"][prefix + "audit"] == "restricted"
    assert levels["soma-agent-hub"][prefix + "enforce"] == "restricted"  # configured


def test_baseline_namespaces_get_hardening_without_restricted_only_controls() -> None:
    pod = {"containers": [{"name": "a", "image": "i", "securityContext": {
        "privileged": True, "capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}]}
    harden_pod(pod, "baseline")
    security = pod["containers"][0]["securityContext"]
    assert security == {"privileged": False, "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True, "capabilities": {"add": ["CHOWN"]}}
    assert "securityContext" not in pod
    assert list(evaluate(pod, {}, "baseline", template=True)) == []


def test_a_flow_the_policies_cannot_express_fails_only_the_netpol_recipe() -> None:
    config = load_config(flows=[{"from": "gateway-api", "to": "ns/openfga"}])
    with pytest.raises(RenderError, match="set `port:`"):
        render(RECIPES["netpol-services"], config, Inventory())
    assert render(RECIPES["kafka-topics"], config, Inventory())


def test_hardening_keeps_an_explicit_privileged_false() -> None:
    """Only a privileged container loses the field (what pss.no-privileged flags)."""
    pod = {"containers": [{"name": "a", "image": "i",
                           "securityContext": {"privileged": False}}]}
    harden_pod(pod, "restricted")
    assert pod["containers"][0]["securityContext"]["privileged"] is False
    assert list(evaluate(pod, {}, "restricted", template=True)) == []
