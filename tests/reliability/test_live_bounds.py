"""A hostile API server cannot keep a scan going, grow it without bound or crash it; and
Ctrl-C or SIGTERM stop a scan within 2 s, scratch folders removed, no report written.

The server is the loopback fake of ``faulty_server.py`` (faults the real API server cannot
produce); the tool is the real ``soma-audit`` in a subprocess, its wall time and peak RSS
measured (``wait4``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

import pytest

from soma_audit.core.errors import AuditError
from soma_audit.sources.cluster import MAX_RESPONSE_BYTES, ClusterSource, Timeouts
from tests.helpers import process_ends
from tests.reliability.conftest import Figures, Measured, run_measured
from tests.reliability.faulty_server import NAMESPACES, faulty_server

pytestmark = pytest.mark.reliability

#: Short timeouts so each fault ends fast; the deadline is what a trickle must hit.
DEADLINE = 4.0
CONFIG = (f"cluster: {{connect_timeout_seconds: 1, read_timeout_seconds: 1, retries: 0, "
          f"scan_deadline_seconds: {DEADLINE:g}}}\n")
#: One check that reads one core kind (Namespace): one LIST per scan.
ONE_KIND = ["--only", "pss.admission-verdict"]


def _audit(kubeconfig: Path, folder: Path, **kwargs: object) -> Measured:
    config = folder / "config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return run_measured(["--kubeconfig", str(kubeconfig), "--config", str(config), "--ci",
                         "--format", "json", *ONE_KIND], folder, **kwargs)  # type: ignore[arg-type]


def _reason(run: Measured) -> str:
    """Why the scan could not read the kind: the check's evidence, or the stderr line."""
    if run.code == 2:
        return run.stderr
    report = json.loads(run.stdout)
    return " ".join(e["message"] for c in report["checks"] for e in c["evidence"])


def _clean_exit(run: Measured) -> None:
    assert run.code in (1, 2), (run.code, run.stderr)
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) <= 1, run.stderr


def test_trickling_server_is_cut_by_the_scan_deadline(tmp_path: Path, figures: Figures) -> None:
    with faulty_server("trickle", tmp_path) as (_, kubeconfig):
        run = _audit(kubeconfig, tmp_path)
    _clean_exit(run)
    assert run.seconds < DEADLINE + 5, run.seconds
    assert "scan deadline" in _reason(run), _reason(run)
    figures.add("live bounds", "trickle", {"seconds": round(run.seconds, 1),
                                           "deadline": DEADLINE, "exit": run.code})


def test_repeated_continue_token_stops_the_list(tmp_path: Path, figures: Figures) -> None:
    with faulty_server("same-token", tmp_path) as (server, kubeconfig):
        run = _audit(kubeconfig, tmp_path)
    _clean_exit(run)
    assert server.lists <= 2, server.lists
    assert "repeated a continue token" in _reason(run), _reason(run)
    figures.add("live bounds", "same continue token", {"LIST requests": server.lists,
                                                       "exit": run.code})


def test_endless_fresh_tokens_stop_at_the_page_bound(tmp_path: Path, figures: Figures,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, with the page bound lowered to 20 (2,000 pages of this loopback fake
    take minutes): the LIST stops at the bound with its reason."""
    from soma_audit.sources import cluster

    monkeypatch.setattr(cluster, "MAX_PAGES", 20)
    with faulty_server("fresh-tokens", tmp_path, max_requests=200) as (server, kubeconfig):
        source = cluster.ClusterSource(str(kubeconfig), timeouts=cluster.Timeouts(
            connect=1, read=1, retries=0, deadline=120))
        with pytest.raises(AuditError, match="more than 20 pages listing namespaces"):
            source.load(frozenset({"Namespace"}))
    assert server.lists == 20
    figures.add("live bounds", "fresh continue tokens (bound 20)",
                {"LIST requests": server.lists})


def test_a_compressed_answer_nobody_asked_for_is_still_read(tmp_path: Path) -> None:
    """soma-audit never asks for compression; a server that compresses all the same is
    read through urllib3's decoder, not taken for broken JSON."""
    with faulty_server("gzip-unasked", tmp_path) as (_, kubeconfig):
        source = ClusterSource(str(kubeconfig), timeouts=Timeouts(
            connect=1, read=1, retries=0, deadline=30))
        inventory = source.load(frozenset({"Namespace"}))
    assert sorted(r.name for r in inventory.of_kind("Namespace")) == sorted(NAMESPACES)


def test_a_body_broken_off_mid_chunk_is_a_clear_error(tmp_path: Path) -> None:
    with faulty_server("broken-chunks", tmp_path) as (server, kubeconfig):
        source = ClusterSource(str(kubeconfig), timeouts=Timeouts(
            connect=1, read=1, retries=1, backoff=0.1, deadline=30))
        with pytest.raises(AuditError, match=r"nothing could be listed \(.*connection "
                                             r"broken.* \(after 2 attempts\)\)"):
            source.load(frozenset({"Namespace"}))
    assert server.lists == 2  # retried once, as any broken connection is


@pytest.mark.parametrize("mode", ["huge-declared", "huge-chunked"])
def test_oversized_body_is_refused_with_bounded_memory(mode: str, tmp_path: Path,
                                                       figures: Figures) -> None:
    with faulty_server(mode, tmp_path) as (_, kubeconfig):
        config = tmp_path / "config.yaml"
        config.write_text(CONFIG.replace(f"scan_deadline_seconds: {DEADLINE:g}",
                                         "scan_deadline_seconds: 60"), encoding="utf-8")
        run = run_measured(["--kubeconfig", str(kubeconfig), "--config", str(config), "--ci",
                            "--format", "json", *ONE_KIND], tmp_path)
    _clean_exit(run)
    assert "refused" in _reason(run), _reason(run)
    # The body limit plus the interpreter and its libraries, far below the 1 GiB sent.
    assert run.peak_mb < MAX_RESPONSE_BYTES / 2**20 + 250, run.peak_mb
    figures.add("live bounds", mode, {"peak RSS MB": round(run.peak_mb),
                                      "seconds": round(run.seconds, 1)})


@pytest.mark.parametrize("mode", ["wrong-discovery", "wrong-items"])
def test_wrong_json_shapes_are_a_clear_error(mode: str, tmp_path: Path) -> None:
    with faulty_server(mode, tmp_path) as (_, kubeconfig):
        run = _audit(kubeconfig, tmp_path)
    _clean_exit(run)
    assert "unexpected" in _reason(run) or "cannot reach" in _reason(run), _reason(run)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_a_scan_within_two_seconds(signum: int, tmp_path: Path,
                                                   figures: Figures) -> None:
    """A scan waiting on a silent server (long timeouts), then Ctrl-C or SIGTERM."""
    report = tmp_path / "report.json"
    config = tmp_path / "config.yaml"
    config.write_text("cluster: {connect_timeout_seconds: 30, read_timeout_seconds: 60}\n",
                      encoding="utf-8")
    with faulty_server("silent", tmp_path, max_seconds=60) as (_, kubeconfig):
        run = run_measured(["--kubeconfig", str(kubeconfig), "--config", str(config), "--ci",
                            "--format", "json", "-o", str(report), *ONE_KIND], tmp_path,
                           signal_after=2.0, signum=signum, timeout=30)
    assert run.seconds < 2.0, run.seconds
    assert run.code == 130 and "interrupted" in run.stderr and "Traceback" not in run.stderr
    assert not report.exists()
    figures.add("live bounds", f"stop on {signal.Signals(signum).name}",
                {"seconds": round(run.seconds, 2), "exit": run.code})


def test_sigterm_removes_the_demo_scratch_folder(tmp_path: Path) -> None:
    """``--demo`` with a live Prometheus that never answers: SIGTERM mid-scan leaves no
    scratch copy behind (TMPDIR points at a folder of the test)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text("prometheus: {timeout_seconds: 60}\n", encoding="utf-8")
    with faulty_server("silent", tmp_path, max_seconds=60) as (server, _):
        host, port = server.server_address[:2]
        run = run_measured(["--demo", "--ci", "--config", str(config), "--prometheus-url",
                            f"http://{host}:{port}", "--format", "json"], tmp_path,
                           signal_after=4.0, signum=signal.SIGTERM, timeout=30,
                           env={"TMPDIR": str(scratch)})
    assert run.code == 130 and run.seconds < 2.0, (run.code, run.seconds, run.stderr)
    assert not run.stdout, "a partial report was written"
    assert list(scratch.iterdir()) == [], list(scratch.iterdir())


@pytest.mark.parametrize("to_a_worker", [False, True],
                         ids=["to the process", "caught by a worker thread"])
def test_sigterm_while_a_tool_runs_stops_it_and_removes_its_scratch_folder(
        tmp_path: Path, to_a_worker: bool) -> None:
    """``--demo``, SIGTERM while promtool checks the rule files the SLO probe wrote to a
    temporary folder: the tool is killed and nothing is left in TMPDIR, also when the
    signal lands in a worker thread while the main thread waits on a probe. The
    ``promtool`` on PATH here only says it started and then never ends (a stall the real
    one cannot be made to produce)."""
    scratch, tools = tmp_path / "tmp", tmp_path / "bin"
    scratch.mkdir()
    tools.mkdir()
    started = tmp_path / "promtool-started"
    promtool = tools / "promtool"
    promtool.write_text(f"#!/bin/sh\necho $$ > {started}.pid\nmv {started}.pid {started}\n"
                        "exec sleep 60\n", encoding="utf-8")
    promtool.chmod(0o755)
    path = f"{tools}:{os.environ['PATH']}"
    try:
        run = run_measured(["--demo", "--ci", "--format", "json"], tmp_path,
                           signal_after=started, signum=signal.SIGTERM, timeout=30,
                           env={"TMPDIR": str(scratch), "PATH": path},
                           to_a_worker=to_a_worker)
        assert process_ends(started, timeout=2.0), "the tool was left running"
    finally:
        if started.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(started.read_text()), signal.SIGKILL)
    assert run.code == 130 and run.seconds < 2.0, (run.code, run.seconds, run.stderr)
    assert list(scratch.iterdir()) == [], list(scratch.iterdir())


def test_an_exec_credential_plugin_is_announced_once(tmp_path: Path) -> None:
    """The kubeconfig's exec plugin runs, as kubectl runs it, and stderr says so."""
    witness = tmp_path / "plugin-ran"
    credential = json.dumps({"apiVersion": "client.authentication.k8s.io/v1",
                             "kind": "ExecCredential", "status": {"token": "t"}})
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(f"#!/bin/sh\ntouch {witness}\necho '{credential}'\n", encoding="utf-8")
    plugin.chmod(0o755)
    with faulty_server("wrong-discovery", tmp_path) as (server, _):
        host, port = server.server_address[:2]
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"http://{host}:{port}"}}],
            "users": [{"name": "sso", "user": {"exec": {
                "apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
                "interactiveMode": "Never"}}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "sso"}}],
        }), encoding="utf-8")
        run = run_measured(["--kubeconfig", str(kubeconfig), "--ci", *ONE_KIND], tmp_path,
                           timeout=60)
    assert witness.exists()
    notes = [line for line in run.stderr.splitlines() if "exec plugin" in line]
    assert len(notes) == 1 and str(plugin) in notes[0] and "'sso'" in notes[0], run.stderr
