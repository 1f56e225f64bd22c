"""Checks shared with a forked process (``soma_audit.engine.parallel``): every check runs
exactly once, in one process or the other, and the results are those of a scan in one
process — for every check fixture case and the whole demo."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from soma_audit.config import Tools, load_config
from soma_audit.core import forking
from soma_audit.engine import parallel, scan
from soma_audit.engine.forked import stop_tools
from soma_audit.services.tools import ToolRunner
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import CHECK_CASES, REPO, CheckCase, comparable_outcomes, process_ends


def test_each_index_runs_once_and_both_processes_take_work() -> None:
    parent = os.getpid()

    def run(index: int) -> tuple[int, int]:
        if os.getpid() == parent:
            time.sleep(0.2)  # the parent is slow: the child has time to draw
        return index, os.getpid()

    done = parallel.run_shared(list(range(20)), run)
    assert sorted(done) == list(range(20))
    assert all(done[i][0] == i for i in done)
    runners = {pid for _, pid in done.values()}
    assert parent in runners and len(runners) == 2, runners


def test_checks_of_a_child_that_dies_are_run_by_the_parent() -> None:
    parent = os.getpid()

    def run(index: int) -> int:
        if os.getpid() != parent:
            os._exit(3)  # the child dies at its first check
        time.sleep(0.01)
        return index * 2

    assert parallel.run_shared(list(range(10)), run) == {i: i * 2 for i in range(10)}


def test_outcomes_that_cannot_be_sent_are_computed_again_by_the_parent() -> None:
    parent = os.getpid()

    def run(index: int) -> object:
        if os.getpid() != parent:
            return lambda: index  # pickle refuses a lambda
        time.sleep(0.01)
        return index

    assert parallel.run_shared(list(range(10)), run) == {i: i for i in range(10)}


def test_bad_indexes_are_refused() -> None:
    with pytest.raises(ValueError):
        parallel.run_shared([1, 1], lambda i: i)
    with pytest.raises(ValueError):
        parallel.run_shared([70_000], lambda i: i)


def test_no_fork_for_small_inventories_or_beside_other_threads() -> None:
    assert not parallel.worth_forking(parallel.FORK_FROM_OBJECTS - 1)
    if forking._cores() < 2:
        pytest.skip("one core: never forks")
    assert parallel.worth_forking(parallel.FORK_FROM_OBJECTS)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not forking.can_fork()
        assert not parallel.worth_forking(parallel.FORK_FROM_OBJECTS)
    finally:
        release.set()
        other.join()


def test_no_fork_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forking, "_cores", lambda: 1)
    assert not forking.can_fork()


def test_a_forked_call_sends_its_result_back() -> None:
    call = forking.ForkedCall.start(lambda: {"pid": os.getpid(), "items": list(range(5))})
    result = call.result()
    assert result is not None and result["items"] == [0, 1, 2, 3, 4]
    assert result["pid"] != os.getpid()


def test_a_forked_call_that_dies_or_cannot_send_gives_none() -> None:
    assert forking.ForkedCall.start(lambda: os._exit(5)).result() is None
    assert forking.ForkedCall.start(lambda: (lambda: 1)).result() is None
    assert forking.ForkedCall.start(lambda: 1 / 0).result() is None


def test_a_forked_child_leaves_when_its_parent_is_gone(tmp_path: Path) -> None:
    """A middle process forks a child that would work for a minute, then dies: the child
    notices within a second and leaves."""
    marker = tmp_path / "child-pid"
    middle = os.fork()
    if middle == 0:
        try:
            forking.ForkedCall.start(
                lambda: (marker.write_text(str(os.getpid())), time.sleep(60)))
            time.sleep(0.3)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)
    for _ in range(100):
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.05)
    child = int(marker.read_text())
    for _ in range(60):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, 9)
    raise AssertionError("the orphaned child was still running after 6 s")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def test_an_interrupted_wait_kills_the_forked_child(tmp_path: Path) -> None:
    """A real signal (SIGALRM standing for Ctrl-C) interrupts the parent while it waits for
    a child that would work for a minute (as on a silent server): the interrupt is raised
    at once and the child is killed and reaped, not waited for."""
    marker = tmp_path / "child-pid"
    call = forking.ForkedCall.start(
        lambda: (marker.write_text(str(os.getpid())), time.sleep(60)))
    while not (marker.exists() and marker.read_text()):
        time.sleep(0.01)
    previous = signal.signal(signal.SIGALRM, _interrupt)
    began = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            call.result()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - began < 5
    with pytest.raises(ProcessLookupError):  # reaped: no such process, not even a zombie
        os.kill(int(marker.read_text()), 0)


@pytest.mark.parametrize("ctrl_c", [False, True], ids=["asked by the parent", "Ctrl-C"])
def test_a_stopped_child_runs_its_on_stop_before_it_leaves(tmp_path: Path,
                                                           ctrl_c: bool) -> None:
    """Asked to stop, or reached by a terminal's Ctrl-C, a child running a tool stops it
    (tools run in sessions of their own: killing the child alone would leave them
    running). The ``promtool`` here never ends (a stall the real one cannot be made to
    produce)."""
    pid_file = tmp_path / "tool-pid"
    script = tmp_path / "promtool"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}.part\nmv {pid_file}.part {pid_file}\n"
                      "exec sleep 60\n", encoding="utf-8")
    script.chmod(0o755)
    runner = ToolRunner(Tools(promtool=str(script)))
    call = forking.ForkedCall.start(lambda: runner.run("promtool"), on_stop=stop_tools)
    try:
        while not pid_file.exists():
            time.sleep(0.01)
        if ctrl_c:
            os.kill(call._pid, signal.SIGINT)
        call.stop()
        assert process_ends(pid_file), "the tool was left running"
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.fixture
def always_fork(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Share the checks of every scan with a fork, whatever its size; counts the forks."""
    forks: list[int] = []
    shared = parallel.run_shared

    def counted(indexes: list[int], run: object) -> object:
        forks.append(len(indexes))
        return shared(indexes, run)  # type: ignore[arg-type]

    monkeypatch.setattr(scan, "worth_forking", lambda objects: True)
    monkeypatch.setattr(scan, "run_shared", counted)
    return forks


@pytest.mark.parametrize("case", CHECK_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_forked_scan_gives_the_results_of_one_process(case: Path, always_fork: list[int],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    audited = CheckCase(case)
    forked = audited.outcomes()
    assert always_fork in ([1], [])  # manual and live-only checks are not shared
    monkeypatch.setattr(scan, "worth_forking", lambda objects: False)
    assert audited.outcomes() == forked


def test_the_whole_demo_forked(always_fork: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    demo = REPO / "demo" / "soma-gitops"
    forked = comparable_outcomes(ManifestsSource(demo, config=load_config()), {}, None)
    assert always_fork and always_fork[0] > 30
    monkeypatch.setattr(scan, "worth_forking", lambda objects: False)
    assert comparable_outcomes(ManifestsSource(demo, config=load_config()), {}, None) == forked
