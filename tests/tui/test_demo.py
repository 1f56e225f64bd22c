"""The TUI over the bundled catalog and the demo, the way ``soma-audit --demo`` runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from soma_audit.core.model import PHASES, Status
from soma_audit.engine.session import AuditSession
from soma_audit.reports import render
from soma_audit.results.report import percent
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.tui.screens import AttestScreen, ExportScreen, MainScreen
from soma_audit.tui.view import GAPS
from tests.tui.scenario import (
    TREE,
    available_catalog,
    demo_session,
    detail,
    header,
    make_app,
    make_tree,
    pilot_test,
    scanned,
    selected,
    table_ids,
    tree_labels,
    wait_until,
)

pytestmark = pytest.mark.tui

SIZE = (120, 40)


@pilot_test
async def test_bundled_catalog_over_a_small_tree(workdir: Path) -> None:
    """Every bundled check this build can run is listed, under its phase and area."""
    from soma_audit.config import load_config

    make_tree(workdir / TREE)
    checks = available_catalog()
    session = AuditSession(source=ManifestsSource(Path(TREE)), config=load_config(),
                           checks=checks, attestations_path=Path("attest.yaml"))
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        assert set(main.results) == {c.id for c in checks}
        main.select_check(checks[0].id)
        main.action_clear_filter()
        labels = tree_labels(pilot)
        for phase, name in PHASES.items():
            if any(c.phase == phase for c in checks):
                assert labels[name].split()[-1] == percent(main.report.phase_score(phase))


@pilot_test
async def test_demo_scores_gaps_attest_and_export(workdir: Path) -> None:
    session = demo_session(workdir)
    async with make_app(session).run_test(size=SIZE) as pilot:
        main = await scanned(pilot)
        report = main.report
        assert report is not None
        top = header(pilot)
        assert "demo: soma-gitops (manifests)" in top
        scores = "  ".join(f"P{p} {percent(report.phase_score(p))}" for p in PHASES)
        assert f"ready {percent(report.overall_score)}  {scores}" in top
        assert len(table_ids(pilot)) == len(session.checks)

        # n visits every gap once, in catalog order, then wraps.
        gaps = [r.check.id for r in report.results if r.status in GAPS]
        assert gaps and selected(pilot) == gaps[0]
        for expected in [*gaps[1:], gaps[0]]:
            await pilot.press("n")
            assert selected(pilot) == expected
        shown = detail(pilot)
        first = report.result(gaps[0])
        assert first is not None and first.evidence[0].message in shown.replace("\n", " ")

        # Attest a manual check of the demo: it passes, and its area's count goes up.
        manual = next(r.check for r in report.results if r.status is Status.MANUAL)
        main.select_check(manual.id)
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, AttestScreen))
        form = pilot.app.screen
        form.query_one("#author", Input).value = "a.lee"
        form.query_one("#note", Input).value = "reviewed in the readiness meeting"
        await pilot.click("#ok")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
        await scanned(pilot)
        assert main.results[manual.id].status is Status.PASS

        # The export is byte for byte what the CLI renders for the same report.
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ExportScreen))
        await pilot.click("#ok")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, MainScreen))
        written = (workdir / "soma-audit-report.md").read_text()
        assert written == render(main.report, "markdown")
        assert "attested by a.lee" in written
