"""Snapshots of the screens (pytest-textual-snapshot): the main screen at 120x40 and 80x24,
the dialogs, the diff preview and the apply confirmations, and the demo.

Deterministic by construction: the scan time is frozen, paths are relative to a scratch
working directory, "today" is pinned for the attestation form, and the demo is copied to
the same relative place every time. Update after an intended change with
``pytest -m tui tests/tui/test_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from soma_audit.config import load_config
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.tui.screens import (
    AttestScreen,
    ConfirmScreen,
    DiffScreen,
    ExportScreen,
    HelpScreen,
)
from tests.tui.scenario import (
    ATTESTATIONS,
    TREE,
    FrozenSession,
    demo_session,
    make_app,
    scanned,
    wait_until,
)

pytestmark = pytest.mark.tui

Compare = Callable[..., bool]
WIDE = (120, 40)
NARROW = (80, 24)


def after(*steps: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """A ``run_before`` that waits for the scan, then takes ``steps``."""

    async def run_before(pilot: Any) -> None:
        await scanned(pilot)
        for step in steps:
            await step(pilot)
        await pilot.pause()

    return run_before


def press(*keys: str) -> Callable[[Any], Awaitable[None]]:
    async def step(pilot: Any) -> None:
        await pilot.press(*keys)

    return step


def select(check_id: str) -> Callable[[Any], Awaitable[None]]:
    async def step(pilot: Any) -> None:
        pilot.app.main.select_check(check_id)
        await pilot.pause()

    return step


def until_screen(kind: type) -> Callable[[Any], Awaitable[None]]:
    async def step(pilot: Any) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind))

    return step


class TestMainScreen:
    def test_wide(self, snap_compare: Compare, session: FrozenSession) -> None:
        """120x40 after the scan: opens on the first gap."""
        assert snap_compare(make_app(session), terminal_size=WIDE, run_before=after())

    def test_narrow(self, snap_compare: Compare, session: FrozenSession) -> None:
        """80x24: slimmer tree without bars, no severity column, compact footer."""
        assert snap_compare(make_app(session), terminal_size=NARROW, run_before=after())

    def test_area_selected(self, snap_compare: Compare, session: FrozenSession) -> None:
        """An area chosen in the tree, a passing check in the detail."""
        assert snap_compare(make_app(session), terminal_size=WIDE,
                            run_before=after(select("pss.no-privileged"), press("tab")))

    def test_filtered(self, snap_compare: Compare, session: FrozenSession) -> None:
        """``/`` with a status and a severity word."""
        assert snap_compare(make_app(session), terminal_size=WIDE,
                            run_before=after(press("slash", *"fail medium", "enter")))


class TestDialogs:
    def test_help(self, snap_compare: Compare, session: FrozenSession) -> None:
        assert snap_compare(make_app(session), terminal_size=WIDE,
                            run_before=after(press("question_mark"), until_screen(HelpScreen)))

    def test_attest(self, snap_compare: Compare, session: FrozenSession) -> None:
        """The form with its default expiry (today + 90 days) and the last author."""
        assert snap_compare(make_app(session, author="a.lee"), terminal_size=WIDE,
                            run_before=after(select("fga.decision-audit-log"), press("m"),
                                             until_screen(AttestScreen)))

    def test_attest_narrow(self, snap_compare: Compare, session: FrozenSession) -> None:
        assert snap_compare(make_app(session), terminal_size=NARROW,
                            run_before=after(select("fga.decision-audit-log"), press("m"),
                                             until_screen(AttestScreen)))

    def test_export(self, snap_compare: Compare, session: FrozenSession) -> None:
        assert snap_compare(make_app(session), terminal_size=WIDE,
                            run_before=after(press("e"), until_screen(ExportScreen)))


def diff_ready() -> Callable[[Any], Awaitable[None]]:
    async def step(pilot: Any) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, DiffScreen)
                         and pilot.app.screen.plan is not None)

    return step


class TestRemediation:
    """``d`` and ``a`` on pss.namespace-labels (the pss-namespaces remediation)."""

    def test_diff(self, snap_compare: Compare, session: FrozenSession) -> None:
        """The changes listed, the unified diff of each file highlighted."""
        assert snap_compare(make_app(session), terminal_size=WIDE,
                            run_before=after(select("pss.namespace-labels"), press("d"),
                                             diff_ready()))

    def test_diff_narrow(self, snap_compare: Compare, session: FrozenSession) -> None:
        assert snap_compare(make_app(session), terminal_size=NARROW,
                            run_before=after(select("pss.namespace-labels"), press("d"),
                                             diff_ready()))

    def test_confirm(self, snap_compare: Compare, session: FrozenSession) -> None:
        """The confirmation names the target; Cancel has the focus, y confirms."""
        assert snap_compare(make_app(session), terminal_size=WIDE,
                            run_before=after(select("pss.namespace-labels"), press("a"),
                                             until_screen(ConfirmScreen)))

    def test_confirm_production(self, snap_compare: Compare,
                                session: FrozenSession) -> None:
        """A target matching production_pattern: its name must be typed."""
        prod = FrozenSession(source=ManifestsSource(Path(TREE), label="prod-eu-1"),
                             config=load_config(), checks=session.checks,
                             attestations_path=Path(ATTESTATIONS))
        assert snap_compare(make_app(prod), terminal_size=WIDE,
                            run_before=after(select("pss.namespace-labels"), press("a"),
                                             until_screen(ConfirmScreen), press(*"prod")))


class TestDemo:
    """The bundled demo, as ``soma-audit --demo`` shows it (skipped until it is bundled)."""

    def test_wide(self, snap_compare: Compare, workdir: Path) -> None:
        session = demo_session(workdir)
        assert snap_compare(make_app(session), terminal_size=WIDE, run_before=after())

    def test_narrow(self, snap_compare: Compare, workdir: Path) -> None:
        session = demo_session(workdir)
        assert snap_compare(make_app(session), terminal_size=NARROW, run_before=after())
