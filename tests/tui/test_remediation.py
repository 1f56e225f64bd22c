"""Diff, apply and rollback (``d``, ``a``, ``u``) driven with the pilot, over the real
remediation engine writing into the fixture tree.

The fixture check ``pss.namespace-labels`` passes once ``k8s/namespaces.yaml`` exists —
where the bundled ``pss-namespaces`` remediation writes the observability namespace — so
applying it turns the check green, and rolling it back turns it red again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, OptionList, Static

from soma_audit.config import load_config
from soma_audit.core.errors import ConfigError
from soma_audit.core.model import Status
from soma_audit.engine.session import AuditSession
from soma_audit.remediation.apply import apply_plan
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.workflow import prepare
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.sources.snapshot import SnapshotSource
from soma_audit.tui.screens import ConfirmScreen, DiffScreen, HelpScreen, MainScreen
from tests.tui.scenario import (
    ATTESTATIONS,
    TREE,
    FrozenSession,
    detail,
    fixture_checks,
    fixture_session,
    make_app,
    notifications,
    pilot_test,
    scanned,
    table_rows,
    wait_until,
)

pytestmark = pytest.mark.tui

SIZE = (120, 40)
CHECK = "pss.namespace-labels"
RECIPE = "pss-namespaces"
#: What pss-namespaces adds to the tree's existing namespace (a few of its lines).
ADDED = ["+  labels:", "+    pod-security.kubernetes.io/enforce: restricted",
         "+    pod-security.kubernetes.io/warn: restricted"]


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file of the tree, by relative path (to prove a byte-exact rollback)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def row(pilot: Any, check_id: str) -> str:
    return next(r for r in table_rows(pilot) if f" {check_id} " in f" {r} ")


async def on_screen(pilot: Any, kind: type) -> Any:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind),
                     what=f"the {kind.__name__}")
    return pilot.app.screen


async def diff_ready(pilot: Any) -> DiffScreen:
    screen = await on_screen(pilot, DiffScreen)
    assert isinstance(screen, DiffScreen)
    await wait_until(pilot, lambda: screen.plan is not None or bool(screen.error),
                     what="the plan")
    await pilot.pause()
    return screen


async def remedied(pilot: Any, main: MainScreen, status: Status) -> None:
    """Wait for the re-audit after an apply or rollback to show ``status``."""
    await wait_until(pilot, lambda: not main.remedies.busy, what="the flow to end")
    await wait_until(pilot, lambda: not main.scanning and main.results[CHECK].status is status,
                     what=f"{CHECK} to be {status.value}")
    await pilot.pause()


@pilot_test
async def test_detail_footer_help_and_palette_name_the_remediation(
        session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.pause()
        shown = detail(pilot)
        title = main.recipes[RECIPE].title
        assert f"Fix: {RECIPE} — {title}\n[d] diff  [a] apply  [u] undo the last apply" in shown
        assert main.recipes[RECIPE].description in shown
        main.select_check("fga.store-in-sync")  # no remediation: no keys offered
        await pilot.pause()
        assert "No bundled remediation for this check." in detail(pilot)
        assert "[d] diff" not in detail(pilot)
        await pilot.press("d")
        assert "fga.store-in-sync has no bundled remediation." in notifications(pilot)[-1]

        await pilot.press("question_mark")
        help_screen = await on_screen(pilot, HelpScreen)
        assert isinstance(help_screen, HelpScreen)
        for line in ("d Diff Preview", "a Apply Apply", "u Undo Roll back the last apply"):
            assert line in help_screen.text


@pilot_test
async def test_diff_lists_the_changes_and_shows_the_unified_diff(
        session: FrozenSession, workdir: Path) -> None:
    before = tree_bytes(workdir / TREE)
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.press("d")
        screen = await diff_ready(pilot)
        assert screen.plan is not None and screen.plan.recipe == RECIPE
        changes = screen.query_one("#diff-changes", OptionList)
        listed = [str(changes.get_option_at_index(i).prompt)
                  for i in range(changes.option_count)]
        assert listed == ["+ create    k8s/namespaces.yaml", "~ update    namespaces.yaml"]
        assert changes.border_title == "Changes — directory soma-gitops"
        assert changes.border_subtitle == "1 create, 1 update"
        text = screen.text
        assert "+ create k8s/namespaces.yaml" in text
        assert "--- /dev/null\n+++ b/k8s/namespaces.yaml" in text
        assert "+  name: observability" in text
        assert "--- a/namespaces.yaml\n+++ b/namespaces.yaml" in text
        for line in ADDED:
            assert line in text.splitlines()
        status = str(screen.query_one("#diff-status", Static).content)
        assert "2 change(s) to apply" in status

        await pilot.press("down", "enter")  # jump to the second file's diff
        assert screen.query_one("#diff-text").scroll_y > 0
        await pilot.press("question_mark")  # the help starts with the diff's own keys
        help_screen = await on_screen(pilot, HelpScreen)
        assert help_screen.text.startswith("escape Back Back to the audit\na Apply Apply")
        await pilot.press("escape")
        await on_screen(pilot, DiffScreen)
        await pilot.press("escape")
        await on_screen(pilot, MainScreen)
    assert tree_bytes(workdir / TREE) == before  # a preview writes nothing


@pilot_test
async def test_apply_from_the_diff_then_roll_back(session: FrozenSession,
                                                  workdir: Path, state: Path) -> None:
    tree = workdir / TREE
    before = tree_bytes(tree)
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.pause()
        assert row(pilot, CHECK).startswith("✗")
        await pilot.press("d")
        await diff_ready(pilot)
        await pilot.press("a")
        confirm = await on_screen(pilot, ConfirmScreen)
        assert isinstance(confirm, ConfirmScreen)
        assert not confirm.guard
        assert "Apply pss-namespaces" in confirm.text
        assert "Target  directory soma-gitops" in confirm.text
        assert "+ create   k8s/namespaces.yaml" in confirm.text
        assert "~ update   namespaces.yaml" in confirm.text
        await pilot.press("y")
        await remedied(pilot, main, Status.PASS)

        # Written into the audited tree; the check passes on screen; a backup exists.
        assert (tree / "k8s" / "namespaces.yaml").is_file()
        assert "pod-security.kubernetes.io/enforce: restricted" in (
            tree / "namespaces.yaml").read_text()
        assert row(pilot, CHECK).startswith("✓")
        assert detail(pilot).startswith(f"{CHECK}\npass · high")
        assert "✓ Namespace/observability: found in k8s/namespaces.yaml" in detail(pilot)
        said = notifications(pilot)
        assert any(n.startswith("Applied pss-namespaces: 2 change(s) written to directory "
                                "soma-gitops; backup ") for n in said), said
        assert f"Re-audit: ✓ {CHECK} pass" in said
        assert [p.name for p in (state / "backups").iterdir() if p.name != ".lock"] == [
            main.remedies.last_backup]

        await pilot.press("a")  # nothing left to do
        await wait_until(pilot, lambda: "Nothing to apply" in notifications(pilot)[-1])

        # u: the rollback names the backup and what it restores.
        await pilot.press("u")
        confirm = await on_screen(pilot, ConfirmScreen)
        assert isinstance(confirm, ConfirmScreen)
        assert "Roll back pss-namespaces" in confirm.text
        assert main.remedies.last_backup in confirm.text
        assert "- delete   k8s/namespaces.yaml" in confirm.text
        assert "~ restore  namespaces.yaml" in confirm.text
        await pilot.press("y")
        await remedied(pilot, main, Status.FAIL)
        assert tree_bytes(tree) == before  # byte for byte, the created file gone
        assert not (tree / "k8s").exists()
        assert row(pilot, CHECK).startswith("✗")
        assert "✗ Namespace/observability: no pod-security" in detail(pilot)
        assert any(n.startswith("Rolled back pss-namespaces: 2 item(s) restored")
                   for n in notifications(pilot))

        await pilot.press("u")  # that apply is undone: nothing more to offer
        await wait_until(pilot, lambda: "Nothing to roll back" in notifications(pilot)[-1])


@pilot_test
async def test_apply_from_the_main_screen_and_cancel(session: FrozenSession,
                                                     workdir: Path) -> None:
    tree = workdir / TREE
    before = tree_bytes(tree)
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.press("a")
        await on_screen(pilot, ConfirmScreen)
        await pilot.press("enter")  # the focus is on Cancel: enter alone never applies
        await on_screen(pilot, MainScreen)
        await wait_until(pilot, lambda: not main.remedies.busy)
        assert "pss-namespaces was not applied." in notifications(pilot)[-1]
        assert tree_bytes(tree) == before

        await pilot.press("a")
        await on_screen(pilot, ConfirmScreen)
        await pilot.click("#ok")
        await remedied(pilot, main, Status.PASS)
        assert (tree / "k8s" / "namespaces.yaml").is_file()


@pilot_test
async def test_a_production_target_needs_its_name_typed(workdir: Path) -> None:
    """A target whose name matches ``production_pattern`` asks for the name itself."""
    base = fixture_session(workdir)
    session = FrozenSession(source=ManifestsSource(Path(TREE), label="prod-eu-1"),
                            config=load_config(production_pattern="(?i)prod"),
                            checks=base.checks, attestations_path=Path(ATTESTATIONS))
    tree = workdir / TREE
    before = tree_bytes(tree)
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.press("a")
        confirm = await on_screen(pilot, ConfirmScreen)
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.guard == "prod-eu-1"
        assert "Type prod-eu-1 to confirm" in confirm.text
        name = confirm.query_one("#name", Input)
        assert name.has_focus
        await pilot.press("y")  # typed into the name, not a confirmation
        assert isinstance(pilot.app.screen, ConfirmScreen) and name.value == "y"
        name.value = ""
        await pilot.press(*"prod-eu", "enter")  # a wrong name is refused
        assert isinstance(pilot.app.screen, ConfirmScreen)
        assert "That is not prod-eu-1" in str(confirm.query_one("#error", Static).content)
        assert tree_bytes(tree) == before
        await pilot.press(*"-1", "enter")
        await remedied(pilot, main, Status.PASS)
        assert (tree / "k8s" / "namespaces.yaml").is_file()

        await pilot.press("u")  # the rollback asks for the name too
        confirm = await on_screen(pilot, ConfirmScreen)
        assert isinstance(confirm, ConfirmScreen) and confirm.guard == "prod-eu-1"
        await pilot.press("escape")
        await on_screen(pilot, MainScreen)
        assert (tree / "k8s" / "namespaces.yaml").is_file()


@pilot_test
async def test_an_apply_error_is_a_notification(session: FrozenSession,
                                                workdir: Path) -> None:
    """The file changes between the diff and the apply: the engine writes nothing."""
    tree = workdir / TREE
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.press("d")
        await diff_ready(pilot)
        (tree / "namespaces.yaml").write_text("# edited meanwhile\n")
        edited = tree_bytes(tree)
        await pilot.press("a")
        await on_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await on_screen(pilot, MainScreen)
        await wait_until(pilot, lambda: not main.remedies.busy)
        assert notifications(pilot)[-1] == (
            "Remediation failed: namespaces.yaml changed since the diff was made")
        assert tree_bytes(tree) == edited
        assert main.results[CHECK].status is Status.FAIL


@pilot_test
async def test_errors_of_the_engine_show_on_the_diff_and_as_notifications(
        workdir: Path) -> None:
    """A snapshot is not a target: the diff says so, and so does an apply."""
    snapshot = workdir / "dump.yaml"
    snapshot.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: soma-agent-hub\n")
    session = AuditSession(source=SnapshotSource(snapshot), config=load_config(),
                           checks=fixture_checks(), attestations_path=Path(ATTESTATIONS))
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.press("d")
        screen = await diff_ready(pilot)
        assert screen.error == "a snapshot is not a target"
        assert "a snapshot is not a target" in str(
            screen.query_one("#diff-status", Static).content)
        assert notifications(pilot)[-1] == "Diff failed: a snapshot is not a target"
        await pilot.press("a")  # nothing to apply from a failed diff
        assert isinstance(pilot.app.screen, DiffScreen)
        await pilot.press("escape")
        await on_screen(pilot, MainScreen)
        await pilot.press("a")
        await wait_until(pilot, lambda: not main.remedies.busy
                         and isinstance(pilot.app.screen, MainScreen))
        await wait_until(pilot, lambda: notifications(pilot)[-1]
                         == "Remediation failed: a snapshot is not a target")
        await pilot.press("u")
        await wait_until(pilot, lambda: "Nothing to roll back" in notifications(pilot)[-1])


@pilot_test
async def test_u_offers_the_newest_backup_of_this_target(session: FrozenSession,
                                                         workdir: Path) -> None:
    """An apply made outside this TUI (the CLI, say) is offered for rollback too."""
    tree = workdir / TREE
    before = tree_bytes(tree)
    plan = prepare(session, RECIPE)
    applied = apply_plan(plan, BackupStore())
    assert applied.backup is not None
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        assert main.results[CHECK].status is Status.PASS
        await pilot.press("u")
        confirm = await on_screen(pilot, ConfirmScreen)
        assert isinstance(confirm, ConfirmScreen)
        assert applied.backup.id in confirm.text
        await pilot.press("y")
        await remedied(pilot, main, Status.FAIL)
    assert tree_bytes(tree) == before


@pilot_test
async def test_the_demo_copy_is_the_target(workdir: Path) -> None:
    """``--demo`` audits a scratch copy; its remediations are written into that copy."""
    from tests.tui.scenario import demo_session

    session = demo_session(workdir)
    root = session.source.root  # type: ignore[attr-defined]
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        check = "argocd.apps-per-service"
        assert main.results[check].status is Status.FAIL
        main.select_check(check)
        await pilot.press("a")
        confirm = await on_screen(pilot, ConfirmScreen)
        assert isinstance(confirm, ConfirmScreen)
        assert f"Target  directory {root}" in confirm.text
        await pilot.press("y")
        await wait_until(pilot, lambda: not main.remedies.busy and not main.scanning
                         and main.results[check].status is Status.PASS,
                         what=f"{check} to pass")
        assert list((root / "k8s" / "apps").glob("*-app.yaml"))


def test_the_name_to_type(workdir: Path) -> None:
    """The engine decides when a name must be typed: the pattern, empty, or invalid."""
    from soma_audit.remediation.workflow import confirmation_name

    def session(label: str, pattern: str) -> AuditSession:
        return AuditSession(source=ManifestsSource(Path(TREE), label=label),
                            config=load_config(production_pattern=pattern),
                            checks=[], attestations_path=Path(ATTESTATIONS))

    fixture_session(workdir)
    assert confirmation_name(session("prod-eu-1", "(?i)prod")) == "prod-eu-1"
    assert confirmation_name(session("staging-eu-1", "(?i)prod")) == ""
    assert confirmation_name(session("PROD", "^prod$")) == ""
    assert confirmation_name(session("prod-eu-1", "")) == ""
    with pytest.raises(ConfigError, match="production_pattern"):
        load_config(production_pattern="([")  # refused when the config is read


def test_backups_of_another_target_are_not_offered(workdir: Path) -> None:
    from soma_audit.core.errors import AuditError
    from soma_audit.remediation.workflow import backup_target, last_backup

    session = fixture_session(workdir)
    other_root = workdir / "other"
    other_root.mkdir()
    (other_root / "namespaces.yaml").write_text("kind: Namespace\n")
    other = AuditSession(source=ManifestsSource(other_root), config=load_config(),
                         checks=[], attestations_path=Path(ATTESTATIONS))
    store = BackupStore()
    applied = apply_plan(prepare(other, RECIPE), store).backup
    assert applied is not None
    assert last_backup(session, store) is None
    with pytest.raises(AuditError, match="which this audit does not apply to"):
        backup_target(session, applied)
    found = last_backup(other, store)
    assert found is not None and found.id == applied.id


@pilot_test
async def test_an_interrupted_apply_is_refused_then_rolled_back_with_u(
        session: FrozenSession, workdir: Path) -> None:
    """A process killed mid-apply left a backup in progress: ``a`` refuses, ``u`` fixes."""
    tree = workdir / TREE
    before = tree_bytes(tree)
    plan = prepare(session, RECIPE)
    items = [plan.target.capture(change) for change in plan.pending]
    interrupted = BackupStore().create(plan.recipe, plan.target.describe(), items)
    plan.target.write(plan.pending[0])  # half-applied, then the process died
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check(CHECK)
        await pilot.press("a")
        await on_screen(pilot, ConfirmScreen)
        await pilot.press("y")
        await wait_until(pilot, lambda: not main.remedies.busy)
        said = notifications(pilot)[-1]
        assert said.startswith("Remediation failed: an earlier apply was interrupted")
        assert said.endswith("(u offers that rollback here)")
        await pilot.press("u")
        confirm = await on_screen(pilot, ConfirmScreen)
        assert f"{interrupted.id} (in-progress)" in confirm.text
        await pilot.press("y")
        await wait_until(pilot, lambda: not main.remedies.busy and not main.scanning)
    assert tree_bytes(tree) == before


@pilot_test
async def test_removals_no_check_flagged_need_a_typed_confirmation(
        session: FrozenSession, workdir: Path) -> None:
    """pss-hardening drops a capability the level forbids; the catalog has no check that
    flags it, so the plan is refused until `remove` is typed, then planned again."""
    deployment = workdir / TREE / "apps" / "gateway-api.yaml"
    deployment.write_text(deployment.read_text() + "          securityContext:\n"
                          "            capabilities: {add: [SYS_ADMIN]}\n")
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check("pss.no-privileged")
        await pilot.press("d")
        screen = await diff_ready(pilot)
        assert screen.plan is not None
        assert [c.kind for c in screen.plan.blocked] == ["refused"]
        assert "typed confirmation" in str(screen.query_one("#diff-status", Static).content)
        assert "(no flagged evidence)" in screen.text
        await pilot.press("a")
        confirm = await on_screen(pilot, ConfirmScreen)
        assert isinstance(confirm, ConfirmScreen) and confirm.guard == "remove"
        assert "Allow removals by pss-hardening" in confirm.text
        assert "securityContext.capabilities.add (no flagged evidence)" in confirm.text
        await pilot.press(*"remove", "enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen)
                         and pilot.app.screen is not confirm, what="the apply confirmation")
        assert "Apply pss-hardening" in pilot.app.screen.text
        await pilot.press("y")
        await wait_until(pilot, lambda: not main.remedies.busy, what="the apply")
        assert "SYS_ADMIN" not in deployment.read_text()
        assert "image: soma/gateway-api:1.0" in deployment.read_text()
