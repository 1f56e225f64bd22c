"""Remediations on repositories a team has edited by hand: everything the team wrote stays.

Each case under ``tests/fixtures/handedited/<case>/`` overlays the demo repository with
hand-edited files (other documents in the same file, comments, anchors, flow style, CRLF,
objects the config does not list ...) and says, in ``case.yaml``, which recipe it exercises
and which team content must survive. The recipe is applied through the CLI entry point,
then: the team content is still there, the recipe's checks pass, no object is duplicated,
a second apply changes nothing, and rollback restores the bytes.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.cli import main
from soma_audit.core.model import Status
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.recipes import load_recipes
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import REPO, audit_dir

DEMO = REPO / "demo" / "soma-gitops"
CASES = REPO / "tests" / "fixtures" / "handedited"
RECIPES = load_recipes()
LIVE = {c.id for c in load_catalog() if c.requires}


def _case(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CASES / name / "case.yaml").read_text())
    assert isinstance(data, dict)
    return data


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def build_repo(name: str, root: Path) -> dict[str, Any]:
    """The demo with the case's hand-edited files laid over it."""
    case = _case(name)
    shutil.copytree(DEMO, root)
    overlay = CASES / name
    for path in overlay.rglob("*"):
        rel = path.relative_to(overlay)
        if path.is_file() and rel.as_posix() != "case.yaml":
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / rel)
    for rel in case.get("remove", []):
        (root / rel).unlink()
    for rel in case.get("crlf", []):
        data = (root / rel).read_bytes()
        assert b"\r\n" not in data
        (root / rel).write_bytes(data.replace(b"\n", b"\r\n"))
    return case


def cli(*argv: str) -> int:
    return main(list(argv))


def team_config(case: dict[str, Any], where: Path) -> dict[str, Any]:
    """The config of the case's team: the default flows plus the ones it states
    (``flows:`` in case.yaml: peers of its own, such as a database subnet)."""
    if not case.get("flows"):
        return {}
    default = yaml.safe_load((REPO / "config" / "default.yaml").read_text())
    overrides = {"flows": default["flows"] + case["flows"]}
    where.write_text(yaml.safe_dump(overrides))
    return overrides


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOMA_AUDIT_STATE", str(tmp_path / "state"))
    return tmp_path / "state"


def assert_team_content_kept(root: Path, case: dict[str, Any], before: dict[str, bytes]
                             ) -> None:
    for rel, snippets in case.get("keep", {}).items():
        data = (root / rel).read_bytes()
        if snippets == ["all"]:
            assert data == before[rel], f"{rel} changed"
            continue
        text = data.decode().replace("\r\n", "\n")
        for snippet in snippets:
            assert snippet in text, f"{rel} lost: {snippet!r}"
    for rel, snippets in case.get("gone", {}).items():
        text = (root / rel).read_text().replace("\r\n", "\n")
        for snippet in snippets:
            assert snippet not in text, f"{rel} still has: {snippet!r}"
    for rel in case.get("crlf", []):
        data = (root / rel).read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n"), f"{rel} lost its CRLF endings"


def assert_checks_pass(root: Path, recipe_id: str, config: dict[str, Any]) -> None:
    fixes = RECIPES[recipe_id].fixes
    # the fixtures are ours: k6 may run their scripts (k6.inspect runs init code)
    report = audit_dir(root, list(fixes), {**config, "run_repo_code": True})
    for result in report.results:
        wanted = {Status.PASS, Status.SKIP} if result.check.id in LIVE else {Status.PASS}
        detail = "; ".join(f"{e.object}: {e.message}" for e in result.evidence[:4])
        assert result.status in wanted, f"{result.check.id} {result.status}: {detail}"


def assert_nothing_duplicated(root: Path) -> None:
    inventory = ManifestsSource(root).load(frozenset())
    counts = Counter((r.group, r.kind, r.namespace or "", r.name) for r in inventory)
    assert [k for k, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_hand_edited_repository(name: str, tmp_path: Path, state: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    case = build_repo(name, root)
    recipe = case["recipe"]
    before = tree(root)
    config_file = tmp_path / "team.yaml"
    config = team_config(case, config_file)
    options = ["--config", str(config_file)] if config else []

    assert cli("apply", recipe, "--manifests", str(root), "--yes", *options) == 0
    preview = capsys.readouterr().out
    assert_team_content_kept(root, case, before)
    assert_checks_pass(root, recipe, config)
    assert_nothing_duplicated(root)
    if case.get("gone") and case.get("justified", True):
        assert "justified by" in preview, "a removal without its justification"

    assert cli("diff", recipe, "--manifests", str(root), *options) == 0  # nothing left
    assert "nothing to do" in capsys.readouterr().out

    backups = BackupStore(state / "backups").list()
    if tree(root) != before:
        assert cli("rollback", backups[0].id, "--yes") == 0
    assert tree(root) == before


def test_every_recipe_has_a_hand_edited_case() -> None:
    covered = {_case(p.name)["recipe"] for p in CASES.iterdir() if p.is_dir()}
    assert covered == set(RECIPES)


def test_rollback_after_a_later_edit_needs_force(tmp_path: Path, state: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    build_repo("kafka-users", root)
    before = tree(root)
    assert cli("apply", "kafka-users", "--manifests", str(root), "--yes") == 0
    users = root / "k8s" / "kafka" / "users.yaml"
    users.write_text(users.read_text() + "# edited after the apply\n")
    edited = tree(root)
    (backup,) = BackupStore(state / "backups").list()
    capsys.readouterr()
    assert cli("rollback", backup.id, "--yes") == 2
    captured = capsys.readouterr()
    assert "!! k8s/kafka/users.yaml: changed after the apply" in captured.out
    assert "refused: k8s/kafka/users.yaml changed after the apply" in captured.err
    assert tree(root) == edited
    assert cli("rollback", backup.id, "--yes", "--force") == 0
    assert "--force: overwrites changes made after the apply" in capsys.readouterr().out
    assert tree(root) == before
