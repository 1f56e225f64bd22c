"""Fixtures of the TUI tests; the scenarios themselves are in :mod:`tests.tui.scenario`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tui.scenario import (
    GATE,
    FrozenSession,
    fixture_session,
    register_fixture_probes,
    unregister_fixture_probes,
)


@pytest.fixture(autouse=True)
def fixture_probes() -> Iterator[None]:
    """Register the fixture probes for one test, and take them away again after it."""
    register_fixture_probes()
    GATE.clear()
    try:
        yield
    finally:
        GATE.set()
        unregister_fixture_probes()


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Show times in UTC so the frozen scan time reads the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(autouse=True)
def state(tmp_path_factory: pytest.TempPathFactory,
          monkeypatch: pytest.MonkeyPatch) -> Path:
    """Backups of applies go to a scratch state folder, never the user's."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("SOMA_AUDIT_STATE", str(folder))
    return folder


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch working directory (relative paths in the screens, exports land here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def session(workdir: Path) -> FrozenSession:
    return fixture_session(workdir)
