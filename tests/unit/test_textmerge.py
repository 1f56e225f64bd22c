"""Merging into the team's FGA test file and k6 profiles: missing entries are appended,
the team's own stay byte-for-byte, and the FGA result still passes the real ``fga``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soma_audit.remediation.plan import RemediationError
from soma_audit.remediation.textmerge import merge_text

FGA = Path(sys.executable).with_name("fga")

MODEL = """\
model
  schema 1.1

type user

type doc
  relations
    define owner: [user]
    define viewer: [user] or owner
"""

TEAM_TESTS = """\
# the team's scenarios: keep this comment
name: team scenarios
model_file: ./model.fga
tuples:
  - {user: user:ann, relation: owner, object: doc:1}
tests:
  - name: owners view            # ours
    check:
      - {user: user:ann, object: doc:1, assertions: {viewer: true}}
"""

BUNDLED_TESTS = """\
name: bundled
model_file: ./model.fga
tuples:
  - {user: user:ann, relation: owner, object: doc:1}
  - {user: user:bob, relation: viewer, object: doc:1}
tests:
  - name: owners view
    check:
      - {user: user:ann, object: doc:1, assertions: {viewer: true}}
  - name: viewers do not own
    check:
      - {user: user:bob, object: doc:1, assertions: {viewer: true, owner: false}}
"""


def test_missing_tests_are_appended_with_the_tuples_they_need(tmp_path: Path) -> None:
    merged = merge_text("fga-tests", "model.fga.yaml", TEAM_TESTS, BUNDLED_TESTS)
    assert merged.text.startswith(TEAM_TESTS)  # every byte the team wrote, in place
    data = yaml.safe_load(merged.text)
    added = data["tests"][1]
    assert added["name"] == "viewers do not own"
    # the team already declares ann's tuple: only bob's travels with the test
    assert added["tuples"] == [{"user": "user:bob", "relation": "viewer", "object": "doc:1"}]
    assert merged.notes == ["model.fga.yaml: adds tests viewers do not own"]
    (tmp_path / "model.fga").write_text(MODEL)
    (tmp_path / "model.fga.yaml").write_text(merged.text)
    run = subprocess.run([str(FGA), "model", "test", "--tests", "model.fga.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_nothing_missing_changes_nothing() -> None:
    once = merge_text("fga-tests", "t.yaml", TEAM_TESTS, BUNDLED_TESTS).text
    again = merge_text("fga-tests", "t.yaml", once, BUNDLED_TESTS)
    assert again.text == once and again.notes == []


def test_k6_profiles_keep_the_teams_and_add_the_missing() -> None:
    team = ("profiles:\n"
            "  - name: smoke   # tuned by the team\n"
            "    target: http://gateway/health\n"
            "    vus: 1\n")
    bundled = yaml.safe_dump({"profiles": [
        {"name": "smoke", "target": "http://x", "vus": 2},
        {"name": "soak", "target": "http://x", "vus": 5, "duration": "2h"}]})
    merged = merge_text("k6-profiles", "profiles.yaml", team, bundled)
    assert merged.text.startswith(team)
    profiles = yaml.safe_load(merged.text)["profiles"]
    assert [p["name"] for p in profiles] == ["smoke", "soak"]
    assert profiles[0]["vus"] == 1


def test_a_file_that_is_not_one_mapping_is_refused() -> None:
    with pytest.raises(RemediationError, match="not one YAML mapping"):
        merge_text("k6-profiles", "profiles.yaml", "- a\n- b\n", "profiles: [{name: x}]\n")


def test_an_unknown_strategy_is_an_error() -> None:
    with pytest.raises(RemediationError, match="unknown merge strategy"):
        merge_text("rewrite", "x", "", "")
