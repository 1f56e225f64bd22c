"""fga.store-model and fga.live-scenarios against the real OpenFGA server: a fresh store
per test, the demo repository's model and scenarios, the real `fga` CLI."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.live.conftest import (
    FGA_MODEL,
    Live,
    fga_repo,
    get_json,
    messages,
    model_json,
)

pytestmark = pytest.mark.integration

CHECKS = ["fga.store-model", "fga.live-scenarios"]


def _config(openfga_env: Any, store: str) -> dict[str, Any]:
    return {"openfga": {"url": openfga_env.url, "store": store}}


def _developers_may_edit() -> dict[str, Any]:
    """The plan's wrong intent: project developers can edit (an older model version)."""
    model = model_json(FGA_MODEL)
    project = next(t for t in model["type_definitions"] if t["type"] == "project")
    project["relations"]["can_edit_project"]["union"]["child"].append(
        {"computedUserset": {"relation": "developer"}})
    return model


def test_ready_store_passes_both_checks_and_nothing_is_written(
    run_live: Live, openfga_env: Any, fresh_store: Callable[..., str]
) -> None:
    store = fresh_store(_developers_may_edit(), FGA_MODEL)  # the latest model is the repo's
    results = run_live(CHECKS, _config(openfga_env, store), source=_source(run_live))
    assert results["fga.store-model"].status.value == "pass", messages(results["fga.store-model"])
    assert "equals infra/openfga/model.fga: 6 types" in messages(results["fga.store-model"])[0]
    scenarios = results["fga.live-scenarios"]
    assert scenarios.status.value == "pass", messages(scenarios)
    assert "10 tests, 61 assertions" in messages(scenarios)[0]
    tuples = get_json(f"{openfga_env.url}/stores/{store}/read", {})
    assert tuples["tuples"] == [], "the scenarios must run with contextual tuples only"


def _source(live: Live) -> Any:
    from soma_audit.sources.manifests import ManifestsSource

    return ManifestsSource(fga_repo(live))


def test_wrong_model_version_fails_with_the_differing_relation(
    run_live: Live, openfga_env: Any, fresh_store: Callable[..., str]
) -> None:
    store = fresh_store(FGA_MODEL, _developers_may_edit())
    results = run_live(CHECKS, _config(openfga_env, store), source=_source(run_live))
    model = results["fga.store-model"]
    assert model.status.value == "fail"
    (difference,) = messages(model)
    assert f"openfga:{openfga_env.url}/stores/{store}" in difference
    assert ("differs from infra/openfga/model.fga: project#can_edit_project: repository "
            "`admin or maintainer`, store `admin or developer or maintainer`") in difference
    scenarios = results["fga.live-scenarios"]
    assert scenarios.status.value == "fail"
    failing = [m for m in messages(scenarios) if "expected" in m]
    # the permission table's developer row catches the widened grant
    assert failing == [
        'infra/openfga/model.fga.yaml: test "permission table: developer (alice)": check '
        "user:alice can_edit_project project:agent-platform: expected false, got true",
    ]


def test_model_with_a_missing_type_is_reported(
    run_live: Live, openfga_env: Any, fresh_store: Callable[..., str]
) -> None:
    model = model_json(FGA_MODEL)
    smaller = copy.deepcopy(model)
    smaller["type_definitions"] = [t for t in model["type_definitions"] if t["type"] != "service"]
    store = fresh_store(smaller)
    results = run_live(CHECKS, _config(openfga_env, store), source=_source(run_live))
    assert results["fga.store-model"].status.value == "fail"
    assert any("type service: in the repository model, missing from the store's model" in m
               for m in messages(results["fga.store-model"]))
    scenarios = messages(results["fga.live-scenarios"])
    assert results["fga.live-scenarios"].status.value == "fail"
    assert any("user:sam can_invoke service:llm-hub: expected true, got an error" in m
               for m in scenarios), scenarios


def test_missing_store_and_empty_store_fail(
    run_live: Live, openfga_env: Any, fresh_store: Callable[..., str]
) -> None:
    absent = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    results = run_live(CHECKS, _config(openfga_env, absent), source=_source(run_live))
    for check in CHECKS:
        assert results[check].status.value == "fail"
        assert f"store {absent} does not exist" in messages(results[check])[0]
    empty = fresh_store()
    results = run_live(CHECKS, _config(openfga_env, empty), source=_source(run_live))
    for check in CHECKS:
        assert results[check].status.value == "fail"
        assert "the store has no authorization model" in messages(results[check])[0]


def test_store_id_that_is_no_ulid_is_an_error(run_live: Live, openfga_env: Any) -> None:
    results = run_live(CHECKS, _config(openfga_env, "not-a-store"), source=_source(run_live))
    for check in CHECKS:
        assert results[check].status.value == "error"
        assert "OpenFGA rejected" in messages(results[check])[0]


def test_url_without_store_is_an_error_not_a_skip(run_live: Live, openfga_env: Any) -> None:
    results = run_live(CHECKS, {"openfga": {"url": openfga_env.url}}, source=_source(run_live))
    for check in CHECKS:
        assert results[check].status.value == "error"
        assert "no store id configured" in messages(results[check])[0]
