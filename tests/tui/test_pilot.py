"""Drive every binding of the TUI with Textual's pilot, and read what the screen holds.

The session is the real one (engine, sources, attestations, reports) over a small GitOps
tree; see :mod:`tests.tui.scenario`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from soma_audit.core.errors import AuditError
from soma_audit.core.model import Status
from soma_audit.engine.scan import Progress
from soma_audit.reports.table import ICONS
from soma_audit.results.report import Report
from soma_audit.tui import app_class
from soma_audit.tui.commands import AuditCommands
from soma_audit.tui.screens import AttestScreen, ExportScreen, HelpScreen, MainScreen
from soma_audit.tui.view import Scope
from soma_audit.tui.widgets import CheckDetail, CheckTable, FilterBar, PhaseTree
from tests.tui.scenario import (
    GATE,
    FrozenSession,
    detail,
    fixture_session,
    header,
    make_app,
    make_tree,
    notifications,
    pilot_test,
    scanned,
    selected,
    table_ids,
    table_rows,
    tree_labels,
    wait_until,
)

pytestmark = pytest.mark.tui

SIZE = (120, 40)
GAPS = ["argocd.apps-per-service", "kafka.topics", "pss.namespace-labels", "chaos.schedules",
        "ops.incident-process"]


@pilot_test
async def test_layout_after_scan(session: FrozenSession) -> None:
    """Header, tree with per-area progress, table of checks, detail of the first gap."""
    async with make_app(session).run_test(size=SIZE) as pilot:
        await scanned(pilot)
        top = header(pilot)
        assert "soma-gitops (manifests)" in top
        assert "scanned 12:04:31" in top
        assert "ready 45%  P1 43%  P2 50%  P3 50%" in top

        labels = tree_labels(pilot)
        assert labels["All checks"].split() == ["All", "checks", "45%"]
        assert labels["Governance"].split()[-1] == "43%"
        assert labels["Argo CD"].split()[-2:] == ["░░░░░", "0/1"]
        assert labels["NetworkPolicy"].split()[-2:] == ["█████", "1/1"]  # waived counts done
        assert labels["OpenFGA"].split()[-1] == "1/2"  # the skipped check does not count
        assert labels["SLO / SLI"].split()[-1] == "skip"

        rows = table_rows(pilot)
        assert len(rows) == 13
        assert rows[0].split()[:2] == ["✓", "fga.model-valid"]
        assert "- fga.store-in-sync Live store runs the repo model high" in rows
        assert "! kafka.topics A topic for every event type high" in rows
        assert "~ netpol.default-deny Default deny per namespace high" in rows
        assert "? fga.decision-audit-log Authorization decisions are logged medium" in rows

        # The first scan opens on the first gap, with its evidence and its fix.
        assert selected(pilot) == "argocd.apps-per-service"
        shown = detail(pilot)
        assert shown.startswith("argocd.apps-per-service\nfail · high · Phase 1 · Argo CD")
        assert "Argo CD has an Application for every service." in shown
        assert "✗ Application/argocd/billing-service: no Application deploys billing-service" \
            in shown
        assert "✗ Application/argocd/llm-hub: no Application deploys llm-hub" in shown
        assert "Fix: argocd-apps" in shown

        await pilot.press("enter")  # on a check: into its evidence, to scroll it
        assert pilot.app.focused is pilot.app.main.query_one(CheckDetail)


@pilot_test
async def test_tree_selects_what_the_table_shows(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        tree = main.query_one(PhaseTree)
        tree.focus()
        tree.select_scope(Scope(1, "pss"))
        await wait_until(pilot, lambda: table_ids(pilot) == ["pss.no-privileged",
                                                            "pss.namespace-labels"])
        assert main.query_one(CheckTable).border_title == "Checks — Phase 1 · Pod Security"
        await pilot.press("down")  # the cursor moves on to the next area
        await wait_until(pilot, lambda: table_ids(pilot) == ["netpol.default-deny"])
        await pilot.press("down")  # and then to phase 2, with all its areas
        await wait_until(pilot, lambda: table_ids(pilot)[:1] == ["chaos.schedules"])
        assert len(table_ids(pilot)) == 3
        assert main.query_one(CheckTable).border_subtitle == "3 of 13"


class HeldSession(FrozenSession):
    """A session whose scans wait for :data:`GATE` before they read anything: the test
    decides when results may arrive."""

    def scan(self, progress: Progress | None = None, only: set[str] | None = None) -> Report:
        if not GATE.wait(timeout=30):
            raise AuditError("the test never let the scan start")
        return super().scan(progress, only)


@pilot_test
async def test_first_frame_lists_every_check_pending_then_the_results(workdir: Path) -> None:
    """Before any result, the screen is complete: the source, every phase and area, every
    check marked pending; then the results replace the marks."""
    frozen = fixture_session(workdir)
    session = HeldSession(**{f.name: getattr(frozen, f.name)
                             for f in dataclasses.fields(frozen)})
    ids = [check.id for check in session.checks]
    async with make_app(session).run_test(size=SIZE) as pilot:
        try:
            main = pilot.app.main
            await pilot.pause()
            assert main.scanning and not main.results
            assert "soma-gitops (manifests)" in header(pilot)
            assert "scanning 0/13" in header(pilot)
            rows = table_rows(pilot)
            assert table_ids(pilot) == ids
            assert all(row.startswith("… ") for row in rows), rows
            labels = tree_labels(pilot)
            assert labels["All checks"].split()[-1] == "…"
            assert labels["Argo CD"].split()[-1] == "0/1"
            assert labels["OpenFGA"].split()[-1] == "0/3"
            assert "Waiting for the scan…" in detail(pilot)
        finally:
            GATE.set()
        await scanned(pilot)
        assert table_ids(pilot) == ids
        for check_id, row in zip(ids, table_rows(pilot), strict=True):
            assert row.startswith(f"{ICONS[main.results[check_id].status][0]} {check_id}")
        assert "ready 45%  P1 43%  P2 50%  P3 50%" in header(pilot)
        assert tree_labels(pilot)["All checks"].split()[-1] == "45%"


@pilot_test
async def test_the_start_paints_the_audit_screen_once_then_collects_again(
        session: FrozenSession) -> None:
    """The audit screen is the app's default screen: no frame of it is rendered inside
    Textual's start (where a frame is dropped, to be rendered again). The collector that
    ``app_class`` pauses for the start is back on once the first frame is painted, and
    the filter bar waits for the first ``/``."""
    try:
        app_class()
        assert not gc.isenabled()
        app = make_app(session)
        dropped: list[object] = []
        display = app._display

        def painted(screen: Any, renderable: Any) -> None:
            if renderable is not None and app._batch_count:
                dropped.append(screen)
            display(screen, renderable)

        app._display = painted  # type: ignore[method-assign]
        async with app.run_test(size=SIZE) as pilot:
            main = pilot.app.main
            assert pilot.app.screen_stack == [main]
            await scanned(pilot)
            assert gc.isenabled()
            assert not dropped
            assert not main.query(FilterBar)
            await pilot.press("slash")
            assert main.query_one(FilterBar).has_focus
    finally:
        gc.enable()


@pilot_test
async def test_scan_shows_progress_and_stays_responsive(workdir: Path) -> None:
    """While a probe is still working, results so far are shown and keys still work."""
    session = fixture_session(workdir, gate=True)
    async with make_app(session).run_test(size=SIZE) as pilot:
        try:
            await _while_the_gate_holds(pilot)
        finally:
            GATE.set()
        await scanned(pilot)
        assert table_ids(pilot) == ["kafka.topics"]
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(table_ids(pilot)) == 14)
        assert table_rows(pilot)[8].startswith("✓ e2e.suite-passed")


async def _while_the_gate_holds(pilot: Pilot[int]) -> None:
    main = pilot.app.main
    # The eight checks before the gate are in; the gate holds the ninth.
    await wait_until(pilot, lambda: "scanning 8/14" in header(pilot), what="eight results")
    assert main.scanning
    rows = table_rows(pilot)
    assert rows[3].startswith("✗ argocd.apps-per-service")
    assert rows[8].startswith("… e2e.suite-passed")
    assert rows[9].startswith("… chaos.schedules")
    labels = tree_labels(pilot)
    assert labels["Argo CD"].split()[-1] == "0/1"  # complete: how many are done
    assert labels["E2E validation"].split()[-1] == "0/1"  # still evaluating: 0 of 1 in
    assert labels["Chaos & Monitoring"].split()[-1] == "…"
    # The UI answers while the scan thread is blocked: filter, then help.
    await pilot.press("slash", *"error", "enter")
    await wait_until(pilot, lambda: table_ids(pilot) == ["kafka.topics"])
    await pilot.press("question_mark")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
    await pilot.press("escape")
    await pilot.press("r")  # a second scan is refused while one runs
    await wait_until(pilot, lambda: any("already running" in n for n in notifications(pilot)))


@pilot_test
async def test_rescan_keeps_the_selection_and_shows_new_results(
        session: FrozenSession, workdir: Path) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check("pss.namespace-labels")
        await pilot.pause()
        assert "✗ Namespace/observability: no pod-security" in detail(pilot)
        (workdir / "soma-gitops" / "observability").mkdir()
        (workdir / "soma-gitops" / "observability" / "namespace.yaml").write_text(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: observability\n")
        await pilot.press("r")
        await wait_until(pilot, lambda: "scanning" in header(pilot) or not main.scanning)
        await scanned(pilot)
        assert selected(pilot) == "pss.namespace-labels"
        assert main.results["pss.namespace-labels"].status is Status.PASS
        assert "✓ Namespace/observability: found in observability/namespace.yaml" \
            in detail(pilot)
        assert tree_labels(pilot)["Pod Security"].split()[-1] == "2/2"
        assert "ready 55%" in header(pilot)


@pilot_test
async def test_filter_by_status_severity_and_text(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        await pilot.press("slash")
        bar = main.query_one(FilterBar)
        assert bar.has_focus and bar.display
        await pilot.press(*"fail medium")
        await wait_until(pilot, lambda: table_ids(pilot) == ["chaos.schedules",
                                                            "ops.incident-process"])
        assert "filter “fail medium”" in str(main.query_one(CheckTable).border_title)
        await pilot.press("enter")
        assert main.query_one(CheckTable).has_focus
        assert bar.display  # the kept filter stays in sight
        await pilot.press("slash", *["backspace"] * 11, *"billing", "enter")
        await wait_until(pilot, lambda: table_ids(pilot) == ["argocd.apps-per-service"])
        await pilot.press("slash", *["backspace"] * 7, *"critical fail", "enter")
        await wait_until(pilot, lambda: table_ids(pilot) == [])
        assert "No check matches the filter." in detail(pilot)
        await pilot.press("escape")
        await wait_until(pilot, lambda: len(table_ids(pilot)) == 13)
        assert not bar.display


@pilot_test
async def test_next_and_previous_gap(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        await scanned(pilot)
        assert selected(pilot) == GAPS[0]
        for expected in [*GAPS[1:], GAPS[0]]:  # wraps around at the end
            await pilot.press("n")
            assert selected(pilot) == expected
            assert detail(pilot).startswith(expected)
        for expected in reversed(GAPS):
            await pilot.press("N")
            assert selected(pilot) == expected
        # With a filter, only the gaps it shows are visited.
        await pilot.press("slash", *"medium", "enter", "n")
        assert selected(pilot) == "chaos.schedules"
        await pilot.press("n")
        assert selected(pilot) == "ops.incident-process"


@pilot_test
async def test_next_gap_moves_the_tree_to_the_area(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.query_one(PhaseTree).select_scope(Scope(3, "ops"))
        await wait_until(pilot, lambda: table_ids(pilot) == ["ops.manifests-parse",
                                                            "ops.incident-process"])
        await pilot.press("n")
        assert selected(pilot) == "ops.incident-process"
        await pilot.press("n")  # not in Operations: the table follows to Argo CD
        assert selected(pilot) == "argocd.apps-per-service"
        assert table_ids(pilot) == ["argocd.apps-per-service"]
        assert main.query_one(PhaseTree).scope == Scope(1, "argocd")


@pilot_test
async def test_attest_a_manual_check(session: FrozenSession, workdir: Path) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check("fga.decision-audit-log")
        await pilot.pause()
        assert "? " in detail(pilot) and "not attested" in detail(pilot)
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, AttestScreen))
        form = pilot.app.screen
        assert form.query_one("#expires", Input).value == "2027-02-26"  # today + 90 days
        assert form.query_one("#author", Input).has_focus
        await pilot.press(*"a.lee", "enter", *"reviewed the gateway audit logs", "enter")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
        await scanned(pilot)
        assert main.results["fga.decision-audit-log"].status is Status.PASS
        assert "attested by a.lee until 2027-02-26: reviewed the gateway audit logs" \
            in detail(pilot)
        assert table_rows(pilot)[2].startswith("✓ fga.decision-audit-log")
        assert "by: a.lee" in (workdir / "soma-audit.attestations.yaml").read_text()
        assert any("attested by a.lee" in n for n in notifications(pilot))
        # The form remembers the author for the next attestation.
        main.select_check("ops.incident-process")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, AttestScreen))
        assert pilot.app.screen.query_one("#author", Input).value == "a.lee"
        assert pilot.app.screen.query_one("#note", Input).has_focus


@pilot_test
async def test_attest_form_shows_errors_and_keeps_input(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check("fga.decision-audit-log")
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, AttestScreen))
        form = pilot.app.screen
        error = form.query_one("#error")

        await pilot.click("#ok")
        assert "needs an author and a note" in str(error.content)
        form.query_one("#author", Input).value = "a.lee"
        form.query_one("#note", Input).value = "checked"
        expires = form.query_one("#expires", Input)
        expires.value = "next year"
        expires.focus()
        await pilot.press("enter")
        assert "YYYY-MM-DD" in str(error.content)
        expires.value = "2001-01-01"
        await pilot.press("enter")
        assert "the expiry must be in the future" in str(error.content)
        assert isinstance(pilot.app.screen, AttestScreen)
        assert form.query_one("#note", Input).value == "checked"
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
        assert main.results["fga.decision-audit-log"].status is Status.MANUAL


@pilot_test
async def test_attest_on_an_automated_check_explains(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        await scanned(pilot)
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(pilot.app.screen, MainScreen)
        assert any("argocd.apps-per-service is automated" in n for n in notifications(pilot))


@pilot_test
async def test_expired_attestation_shows_failing(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check("ops.incident-process")
        await pilot.pause()
        assert main.results["ops.incident-process"].status is Status.FAIL
        assert "attestation expired — attested by a.lee until 2020-01-01" in detail(pilot)
        assert "Re-attest" not in detail(pilot)


@pytest.mark.parametrize(("presses", "name", "starts"), [
    ([], "soma-audit-report.md", "# Production readiness"),
    (["right"], "soma-audit-report.json", "{"),
    (["right", "right"], "soma-audit-report.xml", "<?xml"),
    (["right", "right", "right"], "soma-audit-report.sarif", "{"),
])
@pilot_test
async def test_export_each_format(session: FrozenSession, workdir: Path, presses: list[str],
                                  name: str, starts: str) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        await scanned(pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen))
        dialog = pilot.app.screen
        assert dialog.query_one("#path", Input).value == "soma-audit-report.md"
        dialog.query_one("#format").focus()
        for key in presses:
            await pilot.press(key, "enter")
        assert dialog.query_one("#path", Input).value == name
        await pilot.click("#ok")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
        written = workdir / name
        assert written.read_text().startswith(starts)
        assert any(str(written) in n for n in notifications(pilot))
        if name.endswith(".json"):
            report = json.loads(written.read_text())
            assert report["source"]["kind"] == "manifests"
            assert report["summary"]["fail"] == 4


@pilot_test
async def test_export_errors_stay_in_the_dialog(session: FrozenSession, workdir: Path) -> None:
    (workdir / "a-file").write_text("")
    async with make_app(session).run_test(size=SIZE) as pilot:
        await scanned(pilot)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen))
        path = pilot.app.screen.query_one("#path", Input)
        path.value = "a-file/report.md"  # a folder that is a file
        await pilot.press("enter")
        assert isinstance(pilot.app.screen, ExportScreen)
        assert "Cannot write" in str(pilot.app.screen.query_one("#error").content)
        path.value = "reports/"
        (workdir / "reports").mkdir()
        await pilot.press("enter")  # a folder: the default name goes inside it
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
        assert (workdir / "reports" / "soma-audit-report.md").is_file()


@pilot_test
async def test_export_before_any_result_is_refused(workdir: Path) -> None:
    session = fixture_session(workdir, gate=True)
    async with make_app(session).run_test(size=SIZE) as pilot:
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(pilot.app.screen, MainScreen)
        assert any("Nothing to export yet" in n for n in notifications(pilot))
        GATE.set()
        await scanned(pilot)


@pilot_test
async def test_help_lists_every_binding(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        await scanned(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        text = pilot.app.screen.text
        for binding in [*MainScreen.BINDINGS, *pilot.app.BINDINGS]:
            assert f"{binding.key_display or binding.key} {binding.description}" in text
        assert "ctrl+p" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))


@pilot_test
async def test_command_palette_offers_every_action(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        provider = AuditCommands(main)
        titles = [hit.text async for hit in provider.discover()]
        for binding in [*MainScreen.BINDINGS, *pilot.app.BINDINGS]:
            key = binding.key_display or binding.key
            assert f"{binding.description} ({key})" in titles  # even those the footer hides
        found = [hit.text async for hit in provider.search("chaos")]
        assert "Go to chaos.schedules" in found
        # Through the real palette: open it, search, run.
        await pilot.press("ctrl+p")
        await pilot.press(*"export report")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen),
                         what="the palette to open the export dialog")
        await pilot.press("escape")
        await pilot.press("ctrl+p", *"go to k6.thr")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: selected(pilot) == "k6.thresholds")


@pilot_test
async def test_scan_failure_is_a_notification(session: FrozenSession, workdir: Path) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        for path in sorted((workdir / "soma-gitops").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        await pilot.press("r")
        await wait_until(pilot, lambda: "scan failed" in header(pilot))
        assert any("Scan failed: manifests directory is empty" in n
                   for n in notifications(pilot))
        # The last good results stay on screen, and the app keeps working.
        assert len(table_ids(pilot)) == 13 and not main.scanning
        await pilot.press("n")
        assert selected(pilot) == "kafka.topics"


@pilot_test
async def test_first_scan_failing_leaves_a_usable_screen(workdir: Path) -> None:
    session = fixture_session(workdir)
    for path in sorted((workdir / "soma-gitops").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    async with make_app(session).run_test(size=SIZE) as pilot:
        # The notification reaches the app's queue after the header changed.
        await wait_until(pilot, lambda: "scan failed" in header(pilot) and notifications(pilot))
        assert "Scan failed: manifests directory is empty" in notifications(pilot)[0]
        assert all(row.startswith("· ") for row in table_rows(pilot))
        assert "Not scanned yet." in detail(pilot)
        await pilot.press("e")
        assert any("Nothing to export yet" in n for n in notifications(pilot))
        make_tree(workdir / "soma-gitops")  # fixed: a rescan recovers
        await pilot.press("r")
        await scanned(pilot)
        assert selected(pilot) == GAPS[0]


@pilot_test
async def test_unreadable_files_are_reported(session: FrozenSession, workdir: Path) -> None:
    (workdir / "soma-gitops" / "broken.yaml").write_text("kind: [unclosed\n")
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        assert any(n.startswith("Source problems: 1 source(s) could not be read: broken.yaml:2")
                   for n in notifications(pilot))
        assert main.results["ops.manifests-parse"].status is Status.FAIL
        main.select_check("ops.manifests-parse")
        await pilot.pause()
        assert "✗ broken.yaml:2: invalid YAML" in detail(pilot)


@pilot_test
async def test_unexpected_error_never_crashes(session: FrozenSession,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        await scanned(pilot)

        def broken(*args: object, **kwargs: object) -> None:
            raise KeyError("inventory")

        monkeypatch.setattr(session, "scan", broken)
        await pilot.press("r")
        await wait_until(pilot, lambda: "scan failed" in header(pilot))
        assert any("Scan crashed (a bug): KeyError" in n for n in notifications(pilot))
        assert pilot.app.is_running


@pilot_test
async def test_probe_errors_are_statuses(session: FrozenSession) -> None:
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        main.select_check("kafka.topics")
        await pilot.pause()
        assert detail(pilot).splitlines()[1].startswith("error · high")
        assert "! KafkaTopic/soma-agent-hub/agent-events is defined twice" in detail(pilot)


@pilot_test
async def test_quit(session: FrozenSession) -> None:
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        await scanned(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running
    assert app.return_code in (0, None)


@pilot_test
async def test_quit_during_a_scan_stops_it(workdir: Path) -> None:
    session = fixture_session(workdir, gate=True)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "scanning 8/14" in header(pilot))
        worker = next(w for w in app.workers if w.name == "scan")
        await pilot.press("q")
        GATE.set()  # the probe in flight finishes; the scan stops before the next one
    assert worker.is_cancelled
    assert app.return_code in (0, None)


def test_attest_refusal_comes_from_the_session(session: FrozenSession) -> None:
    """The form has no rules of its own: the session refuses an automated check."""
    with pytest.raises(AuditError, match="only manual checks"):
        session.attest("argocd.apps-per-service", "a.lee", "note", session_today_plus(1))


def session_today_plus(days: int) -> object:
    import datetime as dt

    return dt.date.today() + dt.timedelta(days=days)
