"""Merging a recipe's objects into a repository: owned paths only, lists by key, removals
only with evidence, objects found by identity and never duplicated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.core.errors import ConfigError
from soma_audit.kube.inventory import Rendering, Resource
from soma_audit.remediation.merge import merge_value, merged_target
from soma_audit.remediation.output import RenderedFile
from soma_audit.remediation.plan import RemediationError
from soma_audit.remediation.recipes import Recipe, RemovalRule, _read
from soma_audit.remediation.targets import DirectoryTarget

USER_RULE = RemovalRule("KafkaUser", "spec.authorization.acls", "kafka.user-acls",
                        "not least privilege", "wildcard-acl")


def _recipe(owns: dict[str, list[str]], removes: list[RemovalRule] | None = None) -> Recipe:
    return Recipe("r", "t", "d", ["kafka.user-acls", "pss.no-privileged"], "kubernetes",
                  owns=owns, removes=removes or [])


def _user(acls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
            "metadata": {"name": "svc", "namespace": "ns"},
            "spec": {"authorization": {"type": "simple", "acls": acls}}}


def _acl(name: str, *operations: str) -> dict[str, Any]:
    return {"resource": {"type": "topic", "name": name, "patternType": "literal"},
            "operations": list(operations)}


def test_lists_merge_by_key_and_scalars_unite() -> None:
    current = {"containers": [{"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                              {"name": "sidecar", "image": "y"}],
               "syncOptions": ["A=true"]}
    desired = {"containers": [{"name": "a", "env": [{"name": "L", "value": "2"}]}],
               "syncOptions": ["B=true", "A=true"]}
    assert merge_value(current, desired) == {
        "containers": [{"name": "a", "image": "x", "env": [{"name": "K", "value": "1"},
                                                           {"name": "L", "value": "2"}]},
                       {"name": "sidecar", "image": "y"}],
        "syncOptions": ["A=true", "B=true"]}


def test_acls_unite_operations_and_keep_their_own_defaults() -> None:
    current = _user([_acl("t", "Read")])
    desired = _user([{"type": "allow", **_acl("t", "Read", "Describe"), "host": "*"}])
    merged = merged_target(current, desired, ["spec.authorization.acls"], [])
    assert merged["spec"]["authorization"]["acls"] == [_acl("t", "Read", "Describe")]


def test_partitions_only_grow_and_defaults_never_override() -> None:
    current = {"kind": "KafkaTopic", "spec": {"partitions": 12, "replicas": 1},
               "x": {"limit": 10}}
    desired = {"kind": "KafkaTopic", "spec": {"partitions": 3, "replicas": 2},
               "x": {"limit": 5, "backoff": "5s"}}
    merged = merged_target(current, desired, ["spec", "x.limit?", "x.backoff?"], [])
    assert merged == {"kind": "KafkaTopic", "spec": {"partitions": 12, "replicas": 2},
                      "x": {"limit": 10, "backoff": "5s"}}


def test_unowned_paths_are_not_merged() -> None:
    current = {"kind": "Application", "spec": {"source": {"helm": {"valueFiles": ["v.yaml"]}}}}
    desired = {"kind": "Application", "spec": {"source": {"path": "p"},
                                               "syncPolicy": {"automated": {}}}}
    merged = merged_target(current, desired, ["spec.syncPolicy"], [])
    assert merged["spec"]["source"] == {"helm": {"valueFiles": ["v.yaml"]}}


def _repo(tmp_path: Path, text: str) -> Path:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "users.yaml").write_text(text)
    return tmp_path


USERS = """\
# team file
apiVersion: kafka.strimzi.io/v1
kind: KafkaUser
metadata: {name: svc, namespace: ns}
spec:
  authorization:
    type: simple
    acls:
      - resource: {type: topic, name: "*", patternType: literal}
        operations: [All]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: ns}
"""


def _plan(root: Path, recipe: Recipe, objects: list[dict[str, Any]],
          flagged: dict[str, set[str]] | None, allow: bool = False, path: str = "new.yaml",
          patch: bool = False) -> list[Any]:
    target = DirectoryTarget(root, allow_removals=allow)
    target.flagged = flagged
    rendered = RenderedFile(path, yaml.safe_dump_all(objects), objects, patch=patch,
                            recipe=recipe)
    changes, _ = target.plan([rendered])
    return changes


def test_a_flagged_wildcard_acl_is_removed_with_its_justification(tmp_path: Path) -> None:
    root = _repo(tmp_path, USERS)
    recipe = _recipe({"KafkaUser": ["spec.authorization.acls"]}, [USER_RULE])
    (change,) = _plan(root, recipe, [_user([_acl("t", "Read")])],
                      {"kafka.user-acls": {"KafkaUser/ns/svc"}})
    assert change.kind == "update" and change.where == "k8s/users.yaml"
    assert "justified by kafka.user-acls" in change.fields[0]
    assert 'name: "*"' not in change.after
    assert change.after.endswith(USERS.split("---\n")[1])  # the other document, as it was
    assert change.after.startswith("# team file\n")


def test_without_evidence_nothing_is_removed(tmp_path: Path) -> None:
    root = _repo(tmp_path, USERS)
    recipe = _recipe({"KafkaUser": ["spec.authorization.acls"]}, [USER_RULE])
    (change,) = _plan(root, recipe, [_user([_acl("t", "Read")])], {})
    assert 'name: "*"' in change.after and "name: t" in change.after


def test_a_removal_no_rule_justifies_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = _repo(tmp_path, USERS)
    recipe = _recipe({"KafkaUser": ["spec"]})
    body = _user([])
    body["spec"]["authorization"]["acls"] = [_acl("t", "Read")]
    (refused,) = _plan(root, recipe, [body], {}, patch=True, path="k8s/users.yaml")
    assert refused.kind == "refused" and "--allow-removals" in refused.note
    (allowed,) = _plan(root, recipe, [body], {}, allow=True, patch=True,
                       path="k8s/users.yaml")
    assert allowed.kind == "update"


def test_a_patch_outside_the_owned_paths_is_an_error(tmp_path: Path) -> None:
    root = _repo(tmp_path, USERS)
    body = yaml.safe_load(USERS.split("---\n")[0])
    body["metadata"]["labels"] = {"x": "y"}
    with pytest.raises(RemediationError, match=r"metadata\.labels, which it does not own"):
        _plan(root, _recipe({"KafkaUser": ["spec"]}), [body], {}, patch=True,
              path="k8s/users.yaml")


def test_a_missing_object_goes_beside_its_siblings(tmp_path: Path) -> None:
    two_users = USERS.replace("apiVersion: v1\nkind: ConfigMap",
                              "apiVersion: kafka.strimzi.io/v1\nkind: KafkaUser")
    root = _repo(tmp_path, two_users)
    new = _user([_acl("t", "Read")])
    new["metadata"]["name"] = "third"
    (change,) = _plan(root, _recipe({}), [new], {})
    assert change.where == "k8s/users.yaml" and change.fields == ["create KafkaUser/ns/third"]
    assert change.after.startswith(two_users)


def test_an_object_defined_twice_is_an_error(tmp_path: Path) -> None:
    root = _repo(tmp_path, USERS)
    (root / "k8s" / "again.yaml").write_text(USERS.split("---\n")[0])
    with pytest.raises(RemediationError, match="defined more than once"):
        _plan(root, _recipe({}), [_user([])], {})


def test_an_existing_object_of_a_create_only_kind_is_kept(tmp_path: Path) -> None:
    root = _repo(tmp_path, USERS)
    (change,) = _plan(root, _recipe({}), [_user([_acl("t", "Read")])], {})
    assert change.kind == "unchanged"
    assert change.fields == ["keep KafkaUser/ns/svc (exists; the recipe only creates this "
                             "kind)"]


def test_recipe_ownership_is_loaded_strictly(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    base = {"id": "x", "title": "t", "description": "d", "fixes": ["a.b"],
            "target": "kubernetes", "transform": "pss_harden"}
    path.write_text(yaml.safe_dump({**base, "ownz": {}}))
    with pytest.raises(ConfigError, match="ownz"):
        _read(path)
    path.write_text(yaml.safe_dump({**base, "removes": [
        {"kind": "X", "path": "spec", "check": "other.check", "reason": "r"}]}))
    with pytest.raises(ConfigError, match="not one of the checks it fixes"):
        _read(path)
    path.write_text(yaml.safe_dump({**base, "removes": [
        {"kind": "X", "path": "spec", "check": "a.b", "reason": "r", "when": "typo"}]}))
    with pytest.raises(ConfigError):
        _read(path)


def test_an_object_in_a_json_file_is_found_and_refused(tmp_path: Path) -> None:
    (tmp_path / "user.json").write_text('{"apiVersion": "kafka.strimzi.io/v1", '
                                        '"kind": "KafkaUser", "metadata": '
                                        '{"name": "svc", "namespace": "ns"}}')
    with pytest.raises(RemediationError, match=r"user\.json: not a YAML file"):
        _plan(tmp_path, _recipe({"KafkaUser": ["spec"]}), [_user([])], {})


def test_an_object_rendered_from_a_chart_is_never_written(tmp_path: Path) -> None:
    """The plan writes no file for it and says, in a note, where to change it."""
    target = DirectoryTarget(tmp_path)
    audited = Resource(_user([]), "charts/kafka-users/templates/users.yaml",
                       rendered=Rendering("helm", "charts/kafka-users", release="users"))
    target.rendered_elsewhere = {("kafka.strimzi.io", "KafkaUser", "ns", "svc"): audited}
    rendered = RenderedFile("k8s/users.yaml", "", [_user([])], recipe=_recipe({}))
    changes, notes = target.plan([rendered])
    assert changes == []
    assert any("is rendered by Helm chart charts/kafka-users" in note for note in notes)
    assert list(tmp_path.iterdir()) == []


def test_a_flow_mapping_whose_keys_all_change_is_written_anew(tmp_path: Path) -> None:
    """Removing its only key and adding another would edit one span twice."""
    root = _repo(tmp_path, USERS.split("---\n")[0].replace(
        "    type: simple\n", "    type: simple\n    extra: {old: 1}\n"))
    body = yaml.safe_load((root / "k8s" / "users.yaml").read_text())
    body["spec"]["authorization"]["extra"] = {"new": 2}
    (change,) = _plan(root, _recipe({"KafkaUser": ["spec"]}), [body], {}, allow=True,
                      patch=True, path="k8s/users.yaml")
    assert "    extra: {new: 2}\n" in change.after
    assert "removes spec.authorization.extra.old (no flagged evidence)" in change.fields[0]
