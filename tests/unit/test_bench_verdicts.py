"""The pure parts of bench/verdicts.py: how two reports' verdicts are compared, and how
a recording answers (the record/replay itself is tests/integration/test_verdicts.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bench import verdicts
from bench.verdicts import Answer, Recording, json_differences, request_key, sarif_differences

REPORT: dict[str, Any] = {"checks": [
    {"id": "pss.no-privileged", "status": "fail", "title": "t",
     "evidence": [{"object": "Deployment/a/x", "message": "privileged: true"},
                  {"object": "Deployment/b/y", "message": "privileged: true"}]},
    {"id": "chaos.recent-runs", "status": "pass",
     "evidence": [{"object": "Schedule/c/s", "message": "last run 5m ago"}]},
]}
SARIF: dict[str, Any] = {"runs": [{"results": [
    {"ruleId": "pss.no-privileged", "level": "error", "message": {"text": "fail: x"},
     "locations": [{"logicalLocations": [{"name": "Deployment/a/x", "kind": "resource"}]}]},
]}]}


def test_identical_reports_have_no_difference() -> None:
    assert json_differences(REPORT, copy.deepcopy(REPORT)) == []
    assert sarif_differences(SARIF, copy.deepcopy(SARIF)) == []


def test_a_status_change_is_named_with_both_statuses() -> None:
    after = copy.deepcopy(REPORT)
    after["checks"][1]["status"] = "fail"
    assert json_differences(REPORT, after) == ["chaos.recent-runs: status pass → fail"]


def test_a_changed_evidence_message_shows_what_went_and_what_came() -> None:
    after = copy.deepcopy(REPORT)
    after["checks"][1]["evidence"][0]["message"] = "last run 6m ago"
    lines = json_differences(REPORT, after)
    assert lines[0] == "chaos.recent-runs: evidence: 1 → 1 items"
    assert "5m ago" in lines[1] and lines[1].startswith("  - ")
    assert "6m ago" in lines[2] and lines[2].startswith("  + ")


def test_evidence_in_another_order_is_a_difference() -> None:
    after = copy.deepcopy(REPORT)
    after["checks"][0]["evidence"].reverse()
    assert json_differences(REPORT, after) == [
        "pss.no-privileged: evidence: same 2 items in another order"]


def test_a_check_missing_on_one_side_is_a_difference() -> None:
    after = copy.deepcopy(REPORT)
    del after["checks"][0]
    assert json_differences(REPORT, after) == ["pss.no-privileged: only before (fail)"]
    assert json_differences(after, REPORT) == ["pss.no-privileged: only after (fail)"]


def test_fields_other_than_id_status_evidence_are_not_verdicts() -> None:
    after = copy.deepcopy(REPORT)
    after["checks"][0]["title"] = "another title"
    after["summary"] = {"pass": 99}
    assert json_differences(REPORT, after) == []


def test_a_sarif_location_change_is_a_difference() -> None:
    after = copy.deepcopy(SARIF)
    after["runs"][0]["results"][0]["locations"][0]["logicalLocations"][0]["name"] = "X/y"
    lines = sarif_differences(SARIF, after)
    assert lines[0] == "pss.no-privileged: SARIF results: 1 → 1 items"
    assert "Deployment/a/x" in lines[1] and "X/y" in lines[2]


def test_many_differences_are_cut_with_a_count() -> None:
    before = {"checks": [{"id": "c", "status": "fail", "evidence": [
        {"object": f"o{i}", "message": "m"} for i in range(20)]}]}
    after = {"checks": [{"id": "c", "status": "fail", "evidence": []}]}
    lines = json_differences(before, after)
    assert len(lines) == 1 + verdicts.SHOWN_PER_CHECK + 1
    assert lines[-1] == f"  … {20 - verdicts.SHOWN_PER_CHECK} more"


def test_a_request_is_its_method_path_and_body_digest() -> None:
    assert request_key("GET", "/api/v1/pods?limit=500", b"") == "GET /api/v1/pods?limit=500"
    posted = request_key("POST", "/apis/x", b"{}")
    assert posted.startswith("POST /apis/x sha256:") and posted != request_key(
        "POST", "/apis/x", b"{ }")
    negotiated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert request_key("GET", "/apis", b"", "application/json") == "GET /apis"
    assert request_key("GET", "/apis", b"", negotiated) == f"GET /apis accept:{negotiated}"


def test_a_recording_answers_in_order_then_repeats_the_last_and_rewinds(
        tmp_path: Path) -> None:
    recording = Recording(meta={"recorded_at": "2026-12-07T00:00:00+00:00"})
    recording.add("GET /a", Answer(500, [], b"first"))
    recording.add("GET /a", Answer(200, [("Content-Type", "application/json")], b"second"))
    recording.save(tmp_path)
    loaded = Recording.load(tmp_path)
    assert loaded.meta == {"recorded_at": "2026-12-07T00:00:00+00:00"}
    assert [loaded.answer("GET /a").body for _ in range(3)] == [b"first", b"second", b"second"]
    assert loaded.answer("GET /b") is None and loaded.missed == ["GET /b"]
    loaded.rewind()
    assert loaded.answer("GET /a").status == 500 and loaded.missed == []


def test_a_recording_naming_a_file_outside_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / verdicts.INDEX).write_text(
        '{"answers": [{"request": "GET /", "status": 200, "headers": [], '
        '"body": "../../etc/passwd"}]}')
    with pytest.raises(verdicts.VerdictsError, match="outside the recording"):
        Recording.load(tmp_path)


def test_temporary_folders_are_written_alike_however_nested() -> None:
    from bench.verdicts import placeholders

    tmp, work, tree = Path("/s/scan-1/tmp"), Path("/s/scan-1"), Path("/t/before")
    before = placeholders('"/s/scan-1/tmp/soma-audit-demo-ab/soma-gitops/x.yaml"', tmp, work,
                          tree)
    after = placeholders('"/s/scan-1/tmp/soma-audit-q1/soma-audit-demo-cd/soma-gitops/x.yaml"',
                         tmp, work, tree)
    assert before == after == '"<tmp>/soma-gitops/x.yaml"'
    assert placeholders("/s/scan-1/tmp/tmpz9/rules.yaml /s/scan-1/a /t/before/b", tmp, work,
                        tree) == "<tmp>/rules.yaml <scan-dir>/a <tree>/b"
