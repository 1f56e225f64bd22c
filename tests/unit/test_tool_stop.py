"""Stopping the running tools misses none: not one another thread is starting, not one the
stopping thread itself is starting, and none starts once the process is leaving.

The ``promtool`` here only writes its pid and never ends, and ``subprocess.Popen`` is
wrapped to widen the moment between a tool's start and its registration to a few tenths
of a second: a stall neither the real tool nor the real start can be made to produce."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from soma_audit.config import Tools
from soma_audit.services import tools
from soma_audit.services.tools import ToolError, ToolRunner
from tests.helpers import process_ends


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[tuple[ToolRunner, Path]]:
    """A runner whose ``promtool`` writes its pid to the returned file and sleeps; every
    one left is killed at the end."""
    pid_file = tmp_path / "pid"
    script = tmp_path / "promtool"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n", encoding="utf-8")
    script.chmod(0o755)
    yield ToolRunner(Tools(promtool=str(script))), pid_file
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def slow_registration(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """``Popen`` returns 0.3 s after the tool started; the event is set when it started."""
    started = threading.Event()
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        started.set()
        time.sleep(0.3)
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen)
    return started


def test_a_stop_waits_for_a_tool_another_thread_is_starting(
        stalled: tuple[ToolRunner, Path], slow_registration: threading.Event) -> None:
    runner, pid_file = stalled
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(runner.run("promtool")))
    worker.start()
    assert slow_registration.wait(10)
    tools.stop_running_tools()
    assert process_ends(pid_file), "the tool being started was missed"
    worker.join(10)
    assert outcome and outcome[0].returncode == -signal.SIGKILL


def test_a_stop_signal_while_the_main_thread_starts_a_tool_stops_it(
        stalled: tuple[ToolRunner, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The signal arrives in the middle of the start; its handler runs once the tool is
    registered, and stops it."""

    class Stopped(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        tools.stop_running_tools()
        raise Stopped

    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        return proc

    runner, pid_file = stalled
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        monkeypatch.setattr(subprocess, "Popen", popen)
        with pytest.raises(Stopped):
            runner.run("promtool")
        assert signal.getsignal(signal.SIGTERM) is handler  # put back after the start
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert process_ends(pid_file), "the tool being started was missed"
    assert not tools._RUNNING


def test_no_tool_starts_once_the_process_is_leaving(
        stalled: tuple[ToolRunner, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runner, pid_file = stalled
    monkeypatch.setattr(tools, "_LEAVING", [])
    tools.stop_running_tools(leaving=True)
    with pytest.raises(ToolError, match="promtool not started: soma-audit is stopping"):
        runner.run("promtool")
    assert not pid_file.exists()
