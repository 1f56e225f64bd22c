"""The TUI's first scan in a child process: the same report as in the process, results in
order while it runs, errors carried over, and no child left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from soma_audit import cli
from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core import forking
from soma_audit.core.errors import AuditError
from soma_audit.core.model import Result
from soma_audit.engine.demo import prepare_demo
from soma_audit.engine.forked import ForkedScan, ScanCrashed
from soma_audit.engine.session import AuditSession
from soma_audit.reports import render
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import process_ends

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _session(directory: Path) -> AuditSession:
    return AuditSession(source=ManifestsSource(directory), config=load_config(),
                        checks=load_catalog(), attestations_path=directory / "attest.yaml")


def _forked(session: AuditSession) -> ForkedScan:
    """The scan of ``session`` forked, the parent's session the same one."""
    forked = ForkedScan.start(lambda: (session, None))
    assert forked is not None
    assert forked.opened(lambda handed: session) is session
    return forked


def _reaped(forked: ForkedScan) -> bool:
    with pytest.raises(ChildProcessError):
        os.waitpid(forked._pid, os.WNOHANG)
    return True


def test_the_forked_scan_reports_what_an_in_process_scan_does(tmp_path: Path) -> None:
    session = _session(prepare_demo(tmp_path / "demo"))
    forked = _forked(session)
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
    forked = _forked(_session(tmp_path))
    with pytest.raises(AuditError, match="manifests directory is empty"):
        forked.result()
    assert _reaped(forked)


def test_a_progress_that_gives_up_stops_the_child(tmp_path: Path) -> None:
    forked = _forked(_session(prepare_demo(tmp_path / "demo")))

    def give_up(result: Result, done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        forked.result(give_up)
    assert _reaped(forked)


def test_stopping_the_child_stops_the_tool_it_runs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The child's tools run in sessions of their own, which the parent cannot reach: asked
    to stop, the child stops them before it leaves. The ``promtool`` here only says it
    started and then never ends (a stall the real one cannot be made to produce). The
    grace is long, so that a loaded machine's slow (niced) child still leaves by itself."""
    monkeypatch.setattr(forking, "STOP_GRACE_SECONDS", 60)
    started = tmp_path / "promtool-started"
    promtool = tmp_path / "promtool"
    promtool.write_text(f"#!/bin/sh\necho $$ > {started}.pid\nmv {started}.pid {started}\n"
                        "exec sleep 60\n", encoding="utf-8")
    promtool.chmod(0o755)
    config = tmp_path / "config.yaml"
    config.write_text(f"tools: {{promtool: {promtool}}}\n", encoding="utf-8")
    directory = prepare_demo(tmp_path / "demo")
    session = AuditSession(source=ManifestsSource(directory), config=load_config(str(config)),
                           checks=load_catalog(), attestations_path=directory / "attest.yaml")
    forked = _forked(session)
    reader = threading.Thread(target=_read_until_the_end, args=(forked,), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        began = time.monotonic()
        forked.stop()
        assert time.monotonic() - began < forking.STOP_GRACE_SECONDS  # not killed
        reader.join(10)
        assert _reaped(forked)
        assert process_ends(started), "the tool was left running"
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(started.read_text()), signal.SIGKILL)


def _read_until_the_end(forked: ForkedScan) -> None:
    with contextlib.suppress(AuditError):  # "the scan process ended without a report"
        forked.result()


def test_the_child_opens_the_session_and_hands_it_over(tmp_path: Path) -> None:
    """The parent opens its own session from what the child handed over; the child scans
    its own."""
    directory = prepare_demo(tmp_path / "demo")
    forked = ForkedScan.start(lambda: (_session(directory), str(directory)))
    assert forked is not None
    mine = forked.opened(lambda handed: _session(Path(handed)))
    assert forked.session is mine and mine.source.root == directory
    report = forked.result()
    assert mine.last_report is report
    assert [r.check.id for r in report.results] == [c.id for c in mine.checks]
    assert _reaped(forked)


def test_bad_input_met_by_the_child_is_raised_by_the_parent(tmp_path: Path) -> None:
    def bad_config() -> tuple[AuditSession, None]:
        raise AuditError("config.yaml: unknown key 'x'")

    forked = ForkedScan.start(bad_config)
    assert forked is not None
    with pytest.raises(AuditError, match="unknown key 'x'"):
        forked.opened(lambda handed: pytest.fail("no session to open"))
    assert _reaped(forked)


def test_a_bug_while_the_child_opens_is_a_crash(tmp_path: Path) -> None:
    def broken() -> tuple[AuditSession, None]:
        raise KeyError("catalogs")

    forked = ForkedScan.start(broken)
    assert forked is not None
    with pytest.raises(ScanCrashed, match="KeyError"):
        forked.opened(lambda handed: pytest.fail("no session to open"))
    assert _reaped(forked)


def test_the_tui_opens_a_live_cluster_once(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A live cluster's source is opened before the fork, not in both processes (its
    kubeconfig's credential plugin runs when it is opened): the child scans that one."""
    witness = tmp_path / "opened-by"
    directory = prepare_demo(tmp_path / "demo")

    def cluster_source(*_: object) -> ManifestsSource:
        with witness.open("a", encoding="utf-8") as out:
            out.write(f"{os.getpid()}\n")
        return ManifestsSource(directory)

    monkeypatch.setattr(cli, "_cluster_source", cluster_source)
    monkeypatch.setattr(cli, "_FORKED", [])
    args = cli._arguments([])
    assert cli._fleet_contexts(args) is None
    first_scan, open_session = cli._tui_start(args)
    assert first_scan is not None
    try:
        assert open_session() is first_scan.session
        assert first_scan.result().results
    finally:
        first_scan.close()
    assert witness.read_text(encoding="utf-8").split() == [str(os.getpid())]
