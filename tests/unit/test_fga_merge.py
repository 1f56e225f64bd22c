"""The additive FGA model merge: the team's lines stay, what the bundled model adds is
inserted beside its siblings, and the result passes the real ``fga model validate``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from soma_audit.core.paths import data_path
from soma_audit.domain.fga import merge_models
from soma_audit.remediation.textmerge import merge_text

BUNDLED = data_path("manifests", "fga", "model.fga.j2").read_text()
FGA = Path(sys.executable).with_name("fga")

TEAM = """\
# Our model: reviewed by security, do not reorder.
model
  schema 1.1

type user

type team  # a type the bundled model does not know
  relations
    define member: [user]

type project
  relations
    define owner: [organization]
    define developer: [user, team#member]   # teams too
    define can_run_agent: developer or admin
"""


def _validate(model: str, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "model.fga"
    path.write_text(model)
    done = subprocess.run([str(FGA), "model", "validate", "--file", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    return json.loads(done.stdout)


def _in_order(lines: list[str], within: list[str]) -> bool:
    found = iter(within)
    return all(line in found for line in lines)


def test_team_lines_are_kept_in_order_and_missing_parts_added(tmp_path: Path) -> None:
    merged = merge_models(TEAM, BUNDLED)
    assert _in_order(TEAM.splitlines(), merged.text.splitlines())
    assert "type organization" in merged.added and "project#maintainer" in merged.added
    assert "project#developer" in merged.kept  # ours differs: kept, reported
    assert "define member: [user]" in merged.text  # the team's own type survives
    assert _validate(merged.text, tmp_path)["is_valid"] is True


def test_relations_go_inside_their_type() -> None:
    lines = merge_models(TEAM, BUNDLED).text.splitlines()
    project = lines.index("type project")
    following = lines[project + 1:]
    end = next((i for i, line in enumerate(following) if line.startswith("type ")),
               len(following))
    block = following[:end]
    assert "    define can_deploy: admin or maintainer" in block
    assert all(not line.startswith("define") for line in lines)


def test_merge_is_idempotent() -> None:
    once = merge_models(TEAM, BUNDLED).text
    again = merge_models(once, BUNDLED)
    assert again.text == once and again.added == []


def test_bundled_model_into_itself_changes_nothing() -> None:
    merged = merge_models(BUNDLED, BUNDLED)
    assert merged.text == BUNDLED and merged.added == [] and merged.kept == []


def test_crlf_and_a_type_without_relations() -> None:
    team = "model\r\n  schema 1.1\r\n\r\ntype user\r\n\r\ntype service\r\n"
    merged = merge_models(team, BUNDLED).text
    assert "\n" not in merged.replace("\r\n", "")
    lines = merged.split("\r\n")
    service = lines.index("type service")
    assert lines[service + 1] == "  relations"
    assert lines[service + 2] == "    define admin: [user]"


def test_text_merge_reports_kept_definitions_and_create_only_keeps_files() -> None:
    result = merge_text("fga-model", "infra/openfga/model.fga", TEAM, BUNDLED)
    assert any("project#developer" in note for note in result.notes)
    kept = merge_text("create-only", "scripts/k6/smoke.js", "// ours\n", "// bundled\n")
    assert kept.text == "// ours\n" and kept.notes
