"""Planning on a directory target: diffs per file, path confinement (.., absolute,
symlinks), and the pure helpers the cluster and Kafka targets share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from soma_audit.remediation.cluster import order_key
from soma_audit.remediation.live import kafka_bindings
from soma_audit.remediation.output import RenderedFile
from soma_audit.remediation.plan import Plan, RemediationError, strip_server_fields, unified
from soma_audit.remediation.targets import DirectoryTarget


def _files(**texts: str) -> list[RenderedFile]:
    return [RenderedFile(path, text, []) for path, text in texts.items()]


def test_plan_create_update_unchanged(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "same.yaml").write_text("a: 1\n")
    (tmp_path / "k8s" / "old.yaml").write_text("a: 1\n")
    target = DirectoryTarget(tmp_path)
    files = [RenderedFile("k8s/same.yaml", "a: 1\n"), RenderedFile("k8s/old.yaml", "a: 2\n"),
             RenderedFile("k8s/new/x.yaml", "b: 1\n")]
    changes, notes = target.plan(files)
    # a file holding no Kubernetes object and no merge strategy is the team's: kept
    assert [(c.kind, c.where) for c in changes] == [
        ("unchanged", "k8s/same.yaml"), ("unchanged", "k8s/old.yaml"),
        ("create", "k8s/new/x.yaml")]
    assert notes == ["k8s/old.yaml exists and is the team's: not overwritten"]
    assert changes[2].diff.startswith("--- /dev/null\n+++ b/k8s/new/x.yaml\n")
    plan = Plan("demo", target, changes)
    assert [c.where for c in plan.pending] == ["k8s/new/x.yaml"]
    assert plan.summary() == (f"demo on directory {target.ref}: 1 to create, 2 unchanged")
    assert "# create k8s/new/x.yaml" in plan.render_diff()
    assert "same.yaml" not in plan.render_diff()


def test_plan_writes_nothing(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path)
    target.plan(_files(**{"a/b.yaml": "x: 1\n"}))
    assert list(tmp_path.iterdir()) == []


def test_diff_marks_missing_final_newline(tmp_path: Path) -> None:
    text = unified("a\n", "a\nb", "f")
    assert "+b\n\\ No newline at end of file\n" in text


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.yaml", "a/../../x.yaml",
                                  "~/x.yaml", "", "a/../../../etc/x"])
def test_paths_escaping_the_root_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(RemediationError, match="refusing path"):
        DirectoryTarget(tmp_path).plan([RenderedFile(path, "x: 1\n")])


def test_symlinked_folder_leading_out_is_refused(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    repo.mkdir()
    outside.mkdir()
    (repo / "k8s").symlink_to(outside, target_is_directory=True)
    target = DirectoryTarget(repo)
    with pytest.raises(RemediationError, match="outside"):
        target.plan(_files(**{"k8s/x.yaml": "x: 1\n"}))
    assert list(outside.iterdir()) == []


def test_symlinked_file_leading_out_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (repo / "x.yaml").symlink_to(victim)
    with pytest.raises(RemediationError, match="outside"):
        DirectoryTarget(repo).plan(_files(**{"x.yaml": "x: 1\n"}))
    assert victim.read_text() == "keep me\n"


def test_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    changes, _ = DirectoryTarget(tmp_path).plan(_files(**{"link/x.yaml": "x: 1\n"}))
    assert changes[0].where == "real/x.yaml"


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    with pytest.raises(RemediationError, match="directory"):
        DirectoryTarget(tmp_path).plan(_files(k8s="x"))


def test_rendering_one_path_twice_is_refused(tmp_path: Path) -> None:
    files = [RenderedFile("a.yaml", "1"), RenderedFile("./a.yaml", "2")]
    with pytest.raises(RemediationError, match="twice"):
        DirectoryTarget(tmp_path).plan(files)


def test_missing_target_directory(tmp_path: Path) -> None:
    with pytest.raises(RemediationError, match="not found"):
        DirectoryTarget(tmp_path / "nope")


def test_strip_server_fields() -> None:
    live = {"apiVersion": "v1", "kind": "Namespace", "status": {"phase": "Active"},
            "metadata": {"name": "x", "uid": "u", "resourceVersion": "7", "generation": 2,
                         "creationTimestamp": "t", "managedFields": [{}], "labels": {"a": "b"}}}
    assert strip_server_fields(live) == {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": "x", "labels": {"a": "b"}}}
    assert live["metadata"]["uid"] == "u"  # the input is not modified


def test_creation_order_namespaces_and_builtins_first() -> None:
    objects = [
        {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "Schedule"},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"},
        {"apiVersion": "apps/v1", "kind": "Deployment"},
        {"apiVersion": "v1", "kind": "Namespace"},
    ]
    ordered = [o["kind"] for o in sorted(objects, key=order_key)]
    assert ordered == ["Namespace", "CustomResourceDefinition", "NetworkPolicy", "Deployment",
                       "Schedule"]


def test_kafka_user_acls_become_bindings() -> None:
    user = {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
            "metadata": {"name": "orchestrator"},
            "spec": {"authorization": {"type": "simple", "acls": [
                {"resource": {"type": "topic", "name": "agent-events",
                              "patternType": "literal"},
                 "operations": ["Write", "Describe"]},
                {"resource": {"type": "group", "name": "orch", "patternType": "prefix"},
                 "operations": ["Read"], "host": "10.0.0.1"},
                {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
            ]}}}
    found = kafka_bindings(user)
    assert [(b["resource_type"], b["name"], b["pattern"], b["operation"], b["host"])
            for b in found] == [
        ("TOPIC", "agent-events", "LITERAL", "WRITE", "*"),
        ("TOPIC", "agent-events", "LITERAL", "DESCRIBE", "*"),
        ("GROUP", "orch", "PREFIXED", "READ", "10.0.0.1"),
        ("BROKER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE", "*"),
    ]
    assert {b["principal"] for b in found} == {"User:orchestrator"}
    assert {b["permission"] for b in found} == {"ALLOW"}


def test_unknown_acl_resource_is_an_error() -> None:
    user = {"metadata": {"name": "u"}, "spec": {"authorization": {"acls": [
        {"resource": {"type": "queue"}, "operations": ["Read"]}]}}}
    with pytest.raises(RemediationError, match="queue"):
        kafka_bindings(user)


def test_plan_reads_unreadable_file_as_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    path = tmp_path / "x.yaml"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(RemediationError, match="cannot read"):
        DirectoryTarget(tmp_path).plan(_files(**{"x.yaml": "y"}))


# -- which target a recipe goes to --------------------------------------------------------

def _session(kind: str, root: Path | None = None, **config: Any) -> Any:
    """Just what target selection reads of an AuditSession."""
    from types import SimpleNamespace

    from soma_audit.config import load_config
    from soma_audit.sources import SourceInfo

    source = SimpleNamespace(info=SourceInfo(kind, "x"), root=root)
    return SimpleNamespace(source=source, config=load_config(**config))


class _Cluster:
    kind = "cluster"

    def __init__(self, strimzi: bool) -> None:
        self.strimzi = strimzi

    def served_versions(self) -> dict[str, str]:
        return {"KafkaTopic": "kafka.strimzi.io/v1"} if self.strimzi else {}


TOPIC = RenderedFile("k8s/kafka/topics.yaml", "", [
    {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic", "metadata": {"name": "t"}}])
SCRIPT = RenderedFile("scripts/k6/load.js", "export default function () {}\n")


def test_target_choice(tmp_path: Path) -> None:
    from soma_audit.remediation.live import KafkaTarget
    from soma_audit.remediation.recipes import get_recipe
    from soma_audit.remediation.workflow import choose_target

    topics, k6 = get_recipe("kafka-topics"), get_recipe("k6-scripts")
    manifests = _session("manifests", tmp_path)
    assert isinstance(choose_target(manifests, topics, [TOPIC]), DirectoryTarget)
    with pytest.raises(RemediationError, match="snapshot is not a target"):
        choose_target(_session("snapshot"), topics, [TOPIC])
    cluster = _Cluster(strimzi=True)
    live = _session("cluster", kafka={"bootstrap": "127.0.0.1:1"})
    assert choose_target(live, topics, [TOPIC], cluster=cluster) is cluster  # type: ignore[arg-type]
    # Without Strimzi, the same topics go through the Kafka AdminClient ...
    chosen = choose_target(live, topics, [TOPIC], cluster=_Cluster(strimzi=False))  # type: ignore[arg-type]
    assert isinstance(chosen, KafkaTarget)
    # ... which needs a bootstrap.
    with pytest.raises(RemediationError, match="--kafka-bootstrap"):
        choose_target(_session("cluster"), topics, [TOPIC], cluster=_Cluster(strimzi=False))  # type: ignore[arg-type]
    # Files without Kubernetes objects belong to the repository.
    with pytest.raises(RemediationError, match="--repo DIR"):
        choose_target(_session("cluster"), k6, [SCRIPT], cluster=cluster)  # type: ignore[arg-type]
    repo = _session("cluster", repo=str(tmp_path))
    assert isinstance(choose_target(repo, k6, [SCRIPT], cluster=cluster), DirectoryTarget)  # type: ignore[arg-type]
    with pytest.raises(RemediationError, match="--openfga-url"):
        choose_target(_session("cluster"), get_recipe("fga-model"), [SCRIPT])
