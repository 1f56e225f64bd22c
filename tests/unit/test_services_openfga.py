"""OpenFGA model normalisation, model differences and scenario reading (pure logic of the
live fga checks; the live calls are covered by tests/integration/live)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.services.openfga import (
    ScenarioError,
    canonical_model,
    model_differences,
    render,
    scenario_assertions,
)


def _this() -> dict[str, Any]:
    return {"this": {}}


def _computed(relation: str) -> dict[str, Any]:
    return {"computedUserset": {"object": "", "relation": relation}}


def _model() -> dict[str, Any]:
    """The JSON form `fga model transform` and the HTTP API use (camelCase rewrites)."""
    return {
        "id": "01HXYZ",
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "project",
                "relations": {
                    "owner": _this(),
                    "maintainer": _this(),
                    "developer": _this(),
                    "can_edit": {"union": {"child": [_computed("owner"), _computed("maintainer")]}},
                    "can_run": {"union": {"child": [
                        _computed("developer"),
                        {"union": {"child": [_computed("maintainer"), _computed("owner")]}},
                    ]}},
                    "blocked": {"difference": {"base": _computed("developer"),
                                               "subtract": _computed("owner")}},
                },
                "metadata": {"relations": {
                    "owner": {"directly_related_user_types": [{"type": "user"}]},
                    "maintainer": {"directly_related_user_types": [
                        {"type": "user"}, {"type": "team", "relation": "member"}]},
                    "developer": {"directly_related_user_types": [
                        {"type": "user", "wildcard": {}}]},
                    "can_edit": {}, "can_run": {}, "blocked": {},
                }},
            },
            {
                "type": "agent",
                "relations": {
                    "parent": _this(),
                    "can_execute": {"tupleToUserset": {
                        "tupleset": {"relation": "parent"},
                        "computedUserset": {"relation": "can_run"}}},
                },
                "metadata": {"relations": {
                    "parent": {"directly_related_user_types": [{"type": "project"}]},
                }},
            },
        ],
    }


def _snake(value: Any) -> Any:
    """The same model as openfga-sdk's ``to_dict()`` writes it: snake_case keys, None for
    unset fields."""
    renames = {"computedUserset": "computed_userset", "tupleToUserset": "tuple_to_userset"}
    if isinstance(value, dict):
        out = {renames.get(k, k): _snake(v) for k, v in value.items()}
        if "this" in out or "union" in out or "computed_userset" in out:
            for key in ("this", "computed_userset", "tuple_to_userset", "union",
                        "intersection", "difference"):
                out.setdefault(key, None)
        return out
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def test_sdk_and_api_forms_of_one_model_are_equal() -> None:
    api = _model()
    sdk = _snake(copy.deepcopy(api))
    sdk["id"] = "01OTHER"
    assert model_differences(canonical_model(api), canonical_model(sdk)) == []


def test_ordering_ids_and_nesting_do_not_count() -> None:
    reordered = _model()
    reordered["id"] = "01DIFFERENT"
    reordered["type_definitions"].reverse()
    project = reordered["type_definitions"][1]
    project["relations"] = dict(reversed(list(project["relations"].items())))
    project["relations"]["can_edit"]["union"]["child"].reverse()
    # a or (b or c) is the same union as (a or b) or c
    project["relations"]["can_run"] = {"union": {"child": [
        {"union": {"child": [_computed("owner"), _computed("developer")]}},
        _computed("maintainer"),
    ]}}
    meta = project["metadata"]["relations"]["maintainer"]["directly_related_user_types"]
    meta.reverse()
    assert model_differences(canonical_model(_model()), canonical_model(reordered)) == []


def test_difference_is_not_commutative() -> None:
    swapped = _model()
    swapped["type_definitions"][1]["relations"]["blocked"] = {"difference": {
        "base": _computed("owner"), "subtract": _computed("developer")}}
    found = model_differences(canonical_model(_model()), canonical_model(swapped))
    assert found == ["project#blocked: repository `developer but not owner`, "
                     "store `owner but not developer`"]


def test_changed_relation_is_reported_with_both_definitions() -> None:
    live = _model()
    live["type_definitions"][1]["relations"]["can_edit"]["union"]["child"].append(
        _computed("developer"))
    found = model_differences(canonical_model(_model()), canonical_model(live))
    assert found == ["project#can_edit: repository `maintainer or owner`, "
                     "store `developer or maintainer or owner`"]


def test_direct_types_count() -> None:
    live = _model()
    live["type_definitions"][1]["metadata"]["relations"]["owner"][
        "directly_related_user_types"].append({"type": "user", "wildcard": {}})
    found = model_differences(canonical_model(_model()), canonical_model(live))
    assert found == ["project#owner: repository `[user]`, store `[user, user:*]`"]


def test_missing_and_extra_types_and_relations() -> None:
    live = _model()
    del live["type_definitions"][2]
    live["type_definitions"][1]["relations"]["deployer"] = _this()
    live["type_definitions"][1]["metadata"]["relations"]["deployer"] = {
        "directly_related_user_types": [{"type": "user"}]}
    del live["type_definitions"][1]["relations"]["developer"]
    live["type_definitions"].append({"type": "team"})
    found = model_differences(canonical_model(_model()), canonical_model(live))
    assert "type agent: in the repository model, missing from the store's model" in found
    assert "type team: in the store's model, not in the repository model" in found
    assert "project#developer: in the repository model (`[user:*]`), missing from the " \
           "store's model" in found
    assert "project#deployer: in the store's model (`[user]`), not in the repository model" \
           in found


def test_schema_and_conditions() -> None:
    repo = _model()
    repo["conditions"] = {"in_hours": {"name": "in_hours", "expression": "hour < 18",
                                       "parameters": {"hour": {"type_name": "TYPE_NAME_INT"}}}}
    live = copy.deepcopy(repo)
    live["schema_version"] = "1.2"
    live["conditions"]["in_hours"]["expression"] = "hour < 20"
    found = model_differences(canonical_model(repo), canonical_model(live))
    assert found == ["schema 1.2 in the store, 1.1 in the repository",
                     "condition in_hours: repository `hour < 18`, store `hour < 20`"]


def test_render_reads_like_the_dsl() -> None:
    relations = canonical_model(_model()).types
    assert render(relations["project"]["maintainer"]) == "[team#member, user]"
    assert render(relations["agent"]["can_execute"]) == "can_run from parent"
    assert render(relations["project"]["can_run"]) == "developer or maintainer or owner"


# -- scenarios ---------------------------------------------------------------------------

SCENARIOS = """
name: demo
model_file: ./model.fga
tuples:
  - {user: user:anne, relation: owner, object: project:p}
tuple_file: ./more.yaml
tests:
  - name: owners edit
    tuples:
      - {user: user:bob, relation: developer, object: project:p}
    check:
      - user: user:anne
        object: project:p
        context: {hour: 10}
        assertions: {can_edit: true, blocked: false}
      - users: [user:bob, user:carl]
        object: project:p
        assertions: {can_edit: false}
    list_objects:
      - user: user:anne
        type: project
        assertions: {can_edit: [project:p]}
    list_users:
      - object: project:p
        user_filter: [{type: user}]
        assertions: {can_edit: {users: [user:anne]}}
"""


def test_scenario_assertions_carry_the_file_and_test_tuples(tmp_path: Path) -> None:
    (tmp_path / "more.yaml").write_text(
        "- {user: 'user:dan', relation: maintainer, object: 'project:p'}\n")
    found = scenario_assertions(yaml.safe_load(SCENARIOS), tmp_path)
    kinds = [(a.kind, a.describe(), a.expected) for a in found]
    assert kinds == [
        ("check", "user:anne can_edit project:p", True),
        ("check", "user:anne blocked project:p", False),
        ("check", "user:bob can_edit project:p", False),
        ("check", "user:carl can_edit project:p", False),
        ("list_objects", "user:anne can_edit objects of type project", ("project:p",)),
        ("list_users", "users of project:p can_edit", ("user:anne",)),
    ]
    first = found[0]
    assert [t.user for t in first.tuples] == ["user:anne", "user:dan", "user:bob"]
    assert first.context == {"hour": 10}
    assert found[-1].user_filters == (("user", ""),)


def test_demo_scenarios_are_readable() -> None:
    path = Path(__file__).resolve().parents[2] / "demo/soma-gitops/infra/openfga/model.fga.yaml"
    found = scenario_assertions(yaml.safe_load(path.read_text()), path.parent)
    assert len({a.test for a in found}) == 10  # the scenarios and the permission table
    assert all(a.tuples for a in found)


@pytest.mark.parametrize("text, message", [
    ("[]", "not a mapping"),
    ("tuples: [{user: 'user:a', relation: r}]", "needs user, relation and object"),
    ("tuple_file: t.csv", "only YAML/JSON tuple files"),
    ("tests: [1]", r"tests\[0\] is not a mapping"),
])
def test_unreadable_scenarios(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_assertions(yaml.safe_load(text), tmp_path)
