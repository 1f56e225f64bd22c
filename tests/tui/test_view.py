"""The TUI's pure view logic: scopes, the filter language, tallies and gap order."""

from __future__ import annotations

from pathlib import Path

import pytest

from soma_audit.core.model import Evidence, Result, Severity, Status
from soma_audit.remediation.plan import Change, Plan
from soma_audit.remediation.targets import DirectoryTarget
from soma_audit.tui.view import (
    Filter,
    Scope,
    apply_refusal,
    next_gap,
    only_unjustified_removals,
    phases_and_areas,
    tally,
    target_label,
)
from tests.tui.scenario import fixture_checks

pytestmark = pytest.mark.tui

CHECKS = fixture_checks()
BY_ID = {c.id: c for c in CHECKS}


def _results(**statuses: Status) -> dict[str, Result]:
    return {c.id: Result(c, statuses.get(c.id.replace(".", "_").replace("-", "_"),
                                        Status.PASS)) for c in CHECKS}


def test_scope_titles_and_membership() -> None:
    assert Scope().title == "All checks"
    assert Scope(1).title == "Phase 1 · Governance"
    assert Scope(1, "pss").title == "Phase 1 · Pod Security"
    assert Scope(1, "pss").contains(BY_ID["pss.no-privileged"])
    assert not Scope(2).contains(BY_ID["pss.no-privileged"])


def test_filter_language() -> None:
    parsed = Filter.parse("  FAIL error Critical gateway ")
    assert parsed.statuses == {Status.FAIL, Status.ERROR}
    assert parsed.severities == {Severity.CRITICAL}
    assert parsed.words == ("gateway",)
    assert parsed.text == "FAIL error Critical gateway"
    assert not Filter.parse("   ")
    check = BY_ID["argocd.apps-per-service"]
    failing = Result(check, Status.FAIL, (Evidence("Application/argocd/llm-hub", "missing"),))
    assert Filter.parse("fail high").matches(check, failing)
    assert Filter.parse("llm-hub").matches(check, failing)  # evidence text
    assert Filter.parse("argocd-apps").matches(check, failing)  # the remediation id
    assert not Filter.parse("pass").matches(check, failing)
    assert not Filter.parse("fail").matches(check, None)  # not evaluated yet
    assert Filter.parse("application service").matches(check, None)  # words: all of them


def test_tally_counts_like_the_report_score() -> None:
    results = _results(fga_store_in_sync=Status.SKIP, fga_decision_audit_log=Status.MANUAL)
    fga = [c for c in CHECKS if c.area == "fga"]
    counts = tally(fga, results)
    assert (counts.total, counts.evaluated, counts.done, counts.counted) == (3, 3, 1, 2)
    assert counts.ratio == 0.5 and counts.gaps == 1
    waiting = tally(fga, results, pending={"fga.model-valid"})
    assert waiting.evaluated == 2
    assert tally([BY_ID["fga.store-in-sync"]], results).ratio is None


def test_shape_is_phases_then_areas_in_catalog_order() -> None:
    assert phases_and_areas(CHECKS) == {1: ["fga", "argocd", "kafka", "pss", "netpol"],
                                        2: ["chaos", "slo", "k6"], 3: ["ops"]}


def test_next_gap_wraps_and_respects_the_filter() -> None:
    results = _results(kafka_topics=Status.ERROR, chaos_schedules=Status.FAIL)
    assert next_gap(CHECKS, results, None).id == "kafka.topics"
    assert next_gap(CHECKS, results, "kafka.topics").id == "chaos.schedules"
    assert next_gap(CHECKS, results, "chaos.schedules").id == "kafka.topics"
    assert next_gap(CHECKS, results, "kafka.topics", forward=False).id == "chaos.schedules"
    assert next_gap(CHECKS, results, None, visible=Filter.parse("medium")).id == \
        "chaos.schedules"
    assert next_gap(CHECKS, _results(), None) is None


def test_target_label_is_relative_inside_the_working_directory(tmp_path: Path) -> None:
    inside = tmp_path / "soma-gitops"
    assert target_label("directory", str(inside), tmp_path) == "directory soma-gitops"
    assert target_label("directory", "/srv/gitops", tmp_path) == "directory /srv/gitops"
    assert target_label("kafka", "kafka:9092", tmp_path) == "kafka kafka:9092"


def test_check_detail_names_the_template_and_the_rendering() -> None:
    from soma_audit.tui.widgets.check_detail import CheckDetail

    evidence = Evidence("Deployment/soma-dev/gateway-api", "privileged=true",
                        "k8s/helm/soma/templates/deployment.yaml",
                        "helm k8s/helm/soma (release soma-dev; Application/argocd/soma-dev)")
    check = CHECKS[0]
    text = CheckDetail.describe(check, Result(check, Status.FAIL, (evidence,)), False).plain
    assert ("Deployment/soma-dev/gateway-api: privileged=true  "
            "(k8s/helm/soma/templates/deployment.yaml)\n    rendered by helm k8s/helm/soma "
            "(release soma-dev; Application/argocd/soma-dev)") in text


def test_unjustified_removals_alone_may_be_allowed_by_typing(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path)
    refused = Change("refused", "k8s/x.yaml", "a", "b", "", note="removes what no check "
                     "flagged: X (--allow-removals to allow)")
    plan = Plan("r", target, [refused])
    assert only_unjustified_removals(plan)
    assert "allow them with a typed confirmation" in apply_refusal(plan)
    conflict = Change("conflict", "Namespace/x", None, None, "", note="kubectl")
    assert not only_unjustified_removals(Plan("r", target, [refused, conflict]))
    assert not only_unjustified_removals(Plan("r", target, []))
