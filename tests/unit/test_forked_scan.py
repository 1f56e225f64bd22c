"""The TUI's first scan in a child process: the same report as in the process, results in
order while it runs, errors carried over, and no child left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.errors import AuditError
from soma_audit.core.model import Result
from soma_audit.engine.demo import prepare_demo
from soma_audit.engine.forked import ForkedScan
from soma_audit.engine.session import AuditSession
from soma_audit.reports import render
from soma_audit.sources.manifests import ManifestsSource

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _session(directory: Path) -> AuditSession:
    return AuditSession(source=ManifestsSource(directory), config=load_config(),
                        checks=load_catalog(), attestations_path=directory / "attest.yaml")


def _reaped(forked: ForkedScan) -> bool:
    with pytest.raises(ChildProcessError):
        os.waitpid(forked._pid, os.WNOHANG)
    return True


def test_the_forked_scan_reports_what_an_in_process_scan_does(tmp_path: Path) -> None:
    session = _session(prepare_demo(tmp_path / "demo"))
    forked = ForkedScan.start(session)
    assert forked is not None
    seen: list[tuple[str, int, int]] = []

    def progress(result: Result, done: int, total: int) -> None:
        seen.append((result.check.id, done, total))

    report = forked.result(progress)
    assert session.last_report is report
    assert _reaped(forked)
    total = len(session.checks)
    assert seen == [(c.id, i, total) for i, c in enumerate(session.checks, 1)]
    in_process = _session(session.source.root).scan()
    assert render(report, "json") == render(in_process, "json")  # no clock in the JSON


def test_the_scan_error_reaches_the_parent(tmp_path: Path) -> None:
    forked = ForkedScan.start(_session(tmp_path))
    assert forked is not None
    with pytest.raises(AuditError, match="manifests directory is empty"):
        forked.result()
    assert _reaped(forked)


def test_a_progress_that_gives_up_stops_the_child(tmp_path: Path) -> None:
    forked = ForkedScan.start(_session(prepare_demo(tmp_path / "demo")))
    assert forked is not None

    def give_up(result: Result, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        forked.result(give_up)
    assert _reaped(forked)
