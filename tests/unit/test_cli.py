"""The installed ``soma-audit`` command, run as a subprocess: contracts of docs/contracts.md."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "soma-audit"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SOMA_AUDIT_")}


def run(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300,
                          env={**CLEAN_ENV, **(env or {})}, stdin=subprocess.DEVNULL, cwd=cwd)


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    return tmp_path


def test_version() -> None:
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("soma-audit ")


def test_checks_json_lists_the_whole_catalog() -> None:
    proc = run("checks", "--format", "json")
    checks = json.loads(proc.stdout)
    assert len(checks) >= 60
    for check in checks:
        assert {"id", "phase", "area", "title", "criterion", "severity", "live",
                "remediation"} <= set(check)
    assert {c["area"] for c in checks} == {"fga", "argocd", "kafka", "pss", "netpol", "chaos",
                                           "slo", "k6", "e2e", "ops"}
    assert any(c["live"] for c in checks) and any(c["manual"] for c in checks)


def test_exit_0_when_every_selected_check_passes(clean_dir: Path) -> None:
    proc = run("--manifests", str(clean_dir), "--ci", "--only", "ops.manifests-parse")
    assert proc.returncode == 0, proc.stderr
    assert "ops.manifests-parse" in proc.stdout


def test_exit_1_with_per_file_error_for_broken_and_binary_files(clean_dir: Path) -> None:
    (clean_dir / "broken.yaml").write_text("kind: [\n")
    (clean_dir / "blob.yaml").write_bytes(b"\x00\xff\x00")
    proc = run("--manifests", str(clean_dir), "--ci", "--only", "ops.*", "--format", "json")
    _no_traceback(proc)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    (check,) = [c for c in report["checks"] if c["id"] == "ops.manifests-parse"]
    messages = {e["object"].split(":")[0]: e["message"] for e in check["evidence"]}
    assert "invalid YAML" in messages["broken.yaml"]
    assert "binary file" in messages["blob.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--manifests", "/nonexistent/dir"], "manifests directory not found"),
        (["--snapshot", "/nonexistent.yaml"], "snapshot file not found"),
        (["--manifests", "{empty}"], "is empty"),
        (["--manifests", "{clean}", "--config", "{bad_config}"], "unknown key 'servces'"),
        (["--manifests", "{clean}", "--only", "nope.*"], "no check matches"),
        (["--snapshot", "{broken_snapshot}"], "holds no Kubernetes objects"),
    ],
)
def test_exit_2_with_one_clear_line(tmp_path: Path, clean_dir: Path, args: list[str],
                                    message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.yaml").write_text("servces: []\n")
    (tmp_path / "snap.yaml").write_text("items: [\n")
    places = {"empty": str(tmp_path / "empty"), "clean": str(clean_dir),
              "bad_config": str(tmp_path / "bad.yaml"),
              "broken_snapshot": str(tmp_path / "snap.yaml")}
    out = tmp_path / "report.json"
    proc = run(*[a.format(**places) for a in args], "--ci", "--format", "json",
               "--output", str(out))
    assert proc.returncode == 2
    _no_traceback(proc)
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not out.exists(), "nothing half-written"


def test_bad_flag_is_exit_2() -> None:
    proc = run("--ci", "--format", "pdf")
    assert proc.returncode == 2
    _no_traceback(proc)


def test_environment_fills_options_and_flags_win(clean_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    env = {"SOMA_AUDIT_MANIFESTS": str(clean_dir), "SOMA_AUDIT_CI": "true",
           "SOMA_AUDIT_FORMAT": "json", "SOMA_AUDIT_ONLY": "ops.manifests-parse"}
    proc = run("--format", "markdown", "--output", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("# Production readiness")


def test_tui_without_a_terminal_refuses_cleanly(clean_dir: Path) -> None:
    proc = run("--manifests", str(clean_dir))
    assert proc.returncode == 2
    assert "needs a terminal" in proc.stderr


def _on_a_terminal(*args: str, cwd: Path, tmp: Path) -> tuple[int, str, bytes]:
    """Run in ``cwd`` with stdin and stdout on a pseudo-terminal (the TUI's path) and
    stderr on a pipe, temporary files in ``tmp``: the exit code, stderr, and what the
    terminal received."""
    main, side = os.openpty()
    try:
        proc = subprocess.run([str(BIN), *args], stdin=side, stdout=side,
                              stderr=subprocess.PIPE, text=True, timeout=60, cwd=cwd,
                              env={**CLEAN_ENV, "TERM": "xterm-256color", "TMPDIR": str(tmp)})
        os.set_blocking(main, False)
        try:
            shown = os.read(main, 1 << 16)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(main)
        os.close(side)
    return proc.returncode, proc.stderr, shown


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize(("flags", "message"), [
    (("--demo", "--config", "bad.yaml"), "unknown key 'bad'"),
    (("--demo", "--only", "nope.*"), "no check matches --only nope.*"),
    (("--manifests", "missing"), "manifests directory not found: missing"),
])
def test_bad_input_on_a_terminal_is_one_line_and_no_tui(tmp_path: Path, flags: tuple[str, ...],
                                                        message: str) -> None:
    """The TUI's child reads the config and catalog while the parent imports Textual: bad
    input is still one line, exit code 2, no traceback, no screen drawn, no copy left."""
    (tmp_path / "bad.yaml").write_text("bad: 1\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    code, stderr, shown = _on_a_terminal(*flags, cwd=tmp_path, tmp=scratch)
    assert code == 2
    assert stderr.startswith("soma-audit: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr and "Traceback" not in stderr
    assert b"\x1b[?1049h" not in shown  # the TUI never took the screen
    assert not list(scratch.iterdir())  # the demo's copy, if made, is removed


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_sigterm_while_the_tui_starts_stops_the_child_too(tmp_path: Path) -> None:
    """SIGTERM while the first scan's child opens the session and the parent imports
    Textual: exit code 130, one line, no demo copy and no child left."""
    main, side = os.openpty()
    proc = subprocess.Popen([str(BIN), "--demo"], stdin=side, stdout=side,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**CLEAN_ENV, "TERM": "xterm-256color", "TMPDIR": str(tmp_path)})
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        deadline = time.monotonic() + 30
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.005)
        child = int(children.read_text().split()[0])
        time.sleep(0.1)  # the parent is past the fork (importing Textual), the child reading
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        os.close(main)
        os.close(side)
    assert proc.returncode == 130 and stderr == "soma-audit: interrupted\n", stderr
    assert not Path(f"/proc/{child}").exists()  # reaped, not left scanning
    assert not list(tmp_path.iterdir())


_LANDS_IN_A_CALLBACK = """
import os, signal, time, weakref
from soma_audit.cli import _stop_on_signals

_stop_on_signals()
class Held: pass
held = Held()
watcher = weakref.ref(held, lambda _: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.2)))
try:
    del held  # the SIGTERM arrives while the weakref callback runs
    time.sleep(5)
    print("went on")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_an_interrupt_landing_in_a_weakref_callback_still_stops_the_run() -> None:
    """Python only prints an exception raised in a weakref callback (as an import's lock
    cleanup is): a real SIGTERM landing there is sent again and raised after it."""
    proc = subprocess.run([sys.executable, "-c", _LANDS_IN_A_CALLBACK], capture_output=True,
                          text=True, timeout=30, env=CLEAN_ENV, stdin=subprocess.DEVNULL)
    assert proc.stdout == "interrupted\n", proc.stdout + proc.stderr
    assert proc.stderr == ""  # not "Exception ignored in ..."


_LANDS_IN_SET_NAME = """
import os, signal, sys, time
from soma_audit import cli

class Named:
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the interrupt lands here: Python raises RuntimeError from it

def run_command(args):
    class Holder:  # as when a module with dataclasses is imported mid-scan
        field = Named()
    return 0

cli._run_command = run_command
sys.exit(cli.main(["--ci", "--demo"]))
"""


def test_an_interrupt_python_turns_into_another_error_still_stops_the_run(
        tmp_path: Path) -> None:
    """A real SIGTERM landing in a class's ``__set_name__`` reaches ``main`` as a
    RuntimeError caused by the interrupt: exit 130 and one line, no traceback."""
    proc = subprocess.run([sys.executable, "-c", _LANDS_IN_SET_NAME], capture_output=True,
                          text=True, timeout=30, env={**CLEAN_ENV, "TMPDIR": str(tmp_path)},
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "soma-audit: interrupted\n"
    assert not list(tmp_path.iterdir())  # the scratch folder is gone too


def test_demo_is_partly_ready_in_every_format(tmp_path: Path) -> None:
    proc = run("--demo", "--ci", "--format", "json")
    _no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["source"]["kind"] == "manifests"
    summary = report["summary"]
    assert summary["pass"] >= 10 and summary["fail"] >= 10
    errors = {c["id"]: c["evidence"] for c in report["checks"] if c["status"] == "error"}
    if shutil.which("helm"):  # the demo's chart renders: nothing left unevaluated
        assert not errors, errors
    else:  # its HorizontalPodAutoscalers are unknown: said so, with the install hint
        assert set(errors) == {"ops.manifests-parse", "ops.cost-controls"}, errors
        assert "install Helm v4" in errors["ops.manifests-parse"][0]["message"]
    assert summary["skip"] >= 10  # the live-only checks
    for fmt in ("markdown", "junit", "sarif", "table"):
        out = tmp_path / f"report.{fmt}"
        proc = run("--demo", "--ci", "--format", fmt, "--output", str(out))
        assert proc.returncode == 1 and out.stat().st_size > 0, proc.stderr


def test_the_command_leaves_fast_yet_runs_exit_handlers_and_flushes(tmp_path: Path) -> None:
    """The command skips the interpreter's teardown, not what a normal exit does: the
    demo's scratch copy (an exit handler removes it) is gone, the whole report reached a
    pipe, the exit code is main's."""
    proc = subprocess.run([str(BIN), "--demo", "--ci", "--format", "json"], capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**CLEAN_ENV, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["source"]["kind"] == "manifests"
    assert not list(tmp_path.iterdir())
    # the module entry point takes the same way out
    proc = subprocess.run([sys.executable, "-m", "soma_audit", "--demo", "--ci", "--format",
                           "markdown"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env={**CLEAN_ENV, "TMPDIR": str(tmp_path)})
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("# ") and "\n## Success criteria\n" in proc.stdout
    assert not list(tmp_path.iterdir())


def test_snapshot_of_the_demo_gives_the_same_kubernetes_verdicts(tmp_path: Path) -> None:
    from soma_audit.core.paths import data_path

    demo = data_path("demo", "soma-gitops")
    docs = [p.read_text() for p in sorted(demo.rglob("*.yaml")) if "k8s" in p.parts]
    dump = tmp_path / "dump.yaml"
    dump.write_text("\n---\n".join(docs))
    areas = ["--only", "pss.*", "--only", "netpol.*", "--only", "argocd.*", "--only", "chaos.*"]
    snap = run("--snapshot", str(dump), "--ci", "--format", "json", *areas)
    demo_run = run("--demo", "--ci", "--format", "json", *areas)
    assert snap.returncode == demo_run.returncode == 1, snap.stderr
    verdicts = lambda proc: {c["id"]: c["status"] for c in json.loads(proc.stdout)["checks"]}  # noqa: E731
    assert verdicts(snap) == verdicts(demo_run)


@pytest.mark.parametrize("flag", ["--output", "--metrics-file"])
def test_an_unwritable_output_is_one_clear_error(flag: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    target = blocker / "report.out"
    proc = run("--demo", "--ci", flag, str(target))
    assert proc.returncode == 2, proc.stderr
    _no_traceback(proc)
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("soma-audit: error: cannot write the ") and str(target) in line
    assert blocker.read_text() == "not a directory\n"


def test_cluster_timeouts_and_retries_come_from_the_config(
        unanswering_kubeconfig: Path, tmp_path: Path) -> None:
    """A server that never answers: with `retries: 0` the scan gives up after one attempt
    of one-second timeouts, and says so (exit 2, one line)."""
    config = tmp_path / "soma.yaml"
    config.write_text("cluster: {connect_timeout_seconds: 1, read_timeout_seconds: 1, "
                      "retries: 0}\n")
    proc = run("--ci", "--kubeconfig", str(unanswering_kubeconfig), "--config", str(config),
               "--only", "pss.namespace-labels")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("soma-audit: error: cannot reach the API server at "), line
    assert line.endswith("(after 1 attempts)"), line
