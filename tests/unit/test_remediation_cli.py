"""The remediation verbs through the real ``soma-audit`` command (a subprocess): the demo
loop diff → apply → re-audit → rollback, the confirmation rules and the refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from soma_audit.engine.demo import prepare_demo

BIN = Path(sys.executable).parent / "soma-audit"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SOMA_AUDIT_")}
BASELINE = ["netpol.default-deny", "netpol.dns-egress"]
#: The ``cli`` fixture: run ``soma-audit ARGS`` (optionally typing ``stdin``).
Run = Callable[..., subprocess.CompletedProcess[str]]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def cli(state: Path) -> Run:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300,
                              env={**CLEAN_ENV, "SOMA_AUDIT_STATE": str(state)},
                              input=stdin, stdin=None if stdin is not None else
                              subprocess.DEVNULL)
        assert "Traceback" not in proc.stdout + proc.stderr
        return proc
    return run


@pytest.fixture
def failing_demo(tmp_path: Path) -> Path:
    """A demo copy without its default deny and DNS policies: netpol-baseline fails."""
    directory = prepare_demo(tmp_path / "demo")
    (directory / "k8s/network/default-deny.yaml").unlink()
    (directory / "k8s/network/allow-dns-egress.yaml").unlink()
    return directory


def _statuses(cli: Run, directory: Path) -> dict[str, str]:
    only = [arg for check in BASELINE for arg in ("--only", check)]
    proc = cli("--manifests", str(directory), "--ci", "--format", "json", *only)
    return {c["id"]: c["status"] for c in json.loads(proc.stdout)["checks"]}


def test_demo_loop_diff_apply_reaudit_rollback(cli: Run, failing_demo: Path) -> None:
    before = _tree(failing_demo)
    assert _statuses(cli, failing_demo) == dict.fromkeys(BASELINE, "fail")

    diff = cli("--manifests", str(failing_demo), "diff", "netpol-baseline")
    assert diff.returncode == 1, diff.stderr  # like diff(1): changes pending
    assert "# create k8s/network/default-deny.yaml" in diff.stdout
    assert "+++ b/k8s/network/allow-dns-egress.yaml" in diff.stdout
    assert "2 to create" in diff.stdout
    assert _tree(failing_demo) == before  # a diff writes nothing

    refused = cli("--manifests", str(failing_demo), "apply", "netpol-baseline")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "soma-audit: error: apply needs a confirmation: run it in a terminal or pass --yes"]
    assert "+++ b/k8s/network/default-deny.yaml" in refused.stdout  # shown before refusing
    assert _tree(failing_demo) == before

    applied = cli("apply", "netpol-baseline", "--manifests", str(failing_demo), "--yes")
    assert applied.returncode == 0, applied.stderr
    assert "pass   netpol.default-deny" in applied.stdout
    assert "pass   netpol.dns-egress" in applied.stdout
    assert _statuses(cli, failing_demo) == dict.fromkeys(BASELINE, "pass")

    listing = cli("rollback")
    assert listing.returncode == 0
    line = next(x for x in listing.stdout.splitlines() if "netpol-baseline" in x)
    backup_id = line.split()[0]
    assert "complete" in line and str(failing_demo) in line

    again = cli("--manifests", str(failing_demo), "diff", "netpol-baseline")
    assert "nothing to do" in again.stdout
    assert again.returncode == 0

    restored = cli("rollback", backup_id, "--yes")
    assert restored.returncode == 0, restored.stderr
    assert "# restore k8s/network/default-deny.yaml (delete: the apply created it)" in \
        restored.stdout
    assert _tree(failing_demo) == before
    assert _statuses(cli, failing_demo) == dict.fromkeys(BASELINE, "fail")
    assert "rolled-back" in cli("rollback").stdout


def test_demo_flag_uses_one_persistent_copy(cli: Run, state: Path) -> None:
    proc = cli("--demo", "apply", "netpol-services", "--yes")
    assert proc.returncode == 0, proc.stderr
    copy = state / "demo" / "soma-gitops"
    assert f"demo repository: {copy}" in proc.stderr
    backup_id = next(x.split()[0] for x in cli("rollback").stdout.splitlines()
                     if "netpol-services" in x)
    pristine = prepare_demo(state / "pristine")
    assert _tree(copy) != _tree(pristine)
    assert cli("rollback", backup_id, "--yes").returncode == 0
    assert _tree(copy) == _tree(pristine)


def test_apply_asks_and_a_no_writes_nothing(cli: Run, failing_demo: Path) -> None:
    # A pipe is not a terminal: without --yes the answer is never read.
    proc = cli("--manifests", str(failing_demo), "apply", "netpol-baseline", stdin="y\n")
    assert proc.returncode == 2
    assert not (failing_demo / "k8s/network/default-deny.yaml").exists()


def test_snapshot_is_not_a_target(cli: Run, tmp_path: Path) -> None:
    dump = tmp_path / "dump.yaml"
    dump.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: soma-agent-hub}\n")
    for verb in ("diff", "apply"):
        proc = cli("--snapshot", str(dump), verb, "netpol-baseline")
        assert proc.returncode == 2
        assert "a snapshot can only be rendered from" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    rendered = cli("--snapshot", str(dump), "render", "netpol-baseline")
    assert rendered.returncode == 0, rendered.stderr
    assert "# --- k8s/network/default-deny.yaml" in rendered.stdout


def test_render_to_a_directory(cli: Run, failing_demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = cli("--manifests", str(failing_demo), "render", "netpol-baseline", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "k8s/network/default-deny.yaml").is_file()
    assert not (failing_demo / "k8s/network/default-deny.yaml").exists()


@pytest.mark.parametrize("args, message", [
    (["diff", "no-such-recipe"], "unknown remediation 'no-such-recipe'"),
    (["rollback", "../../etc"], "not a backup id"),
    (["rollback", "20261128T000000Z-nope"], "no backup 20261128T000000Z-nope"),
])
def test_bad_input_is_one_line(cli: Run, failing_demo: Path, args: list[str], message: str) -> None:
    proc = cli("--manifests", str(failing_demo), *args)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert message in line


def test_no_backups_yet(cli: Run) -> None:
    proc = cli("rollback")
    assert proc.returncode == 0 and "no backups under" in proc.stdout


def test_interrupted_apply_is_reported_and_blocks(cli: Run, failing_demo: Path,
                                                 state: Path) -> None:
    from soma_audit.remediation.backup import BackupStore
    from soma_audit.remediation.targets import BackupItem, DirectoryTarget

    target = DirectoryTarget(failing_demo)
    store = BackupStore(state / "backups")
    left = store.create("netpol-baseline", target.describe(),
                        [BackupItem("k8s/network/default-deny.yaml", False, {})])
    (failing_demo / "k8s/network/default-deny.yaml").write_text("half\n")
    listing = cli("rollback")
    assert "interrupted" in listing.stdout and left.id in listing.stdout
    proc = cli("--manifests", str(failing_demo), "apply", "netpol-services", "--yes")
    assert proc.returncode == 2
    assert f"soma-audit rollback {left.id}" in proc.stderr
    assert cli("rollback", left.id, "--yes").returncode == 0
    assert not (failing_demo / "k8s/network/default-deny.yaml").exists()


def _with_terminal(args: list[str], answer: str, state: Path) -> subprocess.CompletedProcess[str]:
    """Run with a pseudo-terminal on stdin (so the tool asks) and type ``answer``."""
    master, slave = os.openpty()
    try:
        os.write(master, answer.encode())
        proc = subprocess.run([str(BIN), *args], stdin=slave, capture_output=True, text=True,
                              timeout=300, env={**CLEAN_ENV, "SOMA_AUDIT_STATE": str(state)})
    finally:
        os.close(master)
        os.close(slave)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def test_in_a_terminal_apply_asks(failing_demo: Path, state: Path) -> None:
    args = ["--manifests", str(failing_demo), "apply", "netpol-baseline"]
    declined = _with_terminal(args, "n\n", state)
    assert declined.returncode == 1 and "not applied" in declined.stdout
    assert "Apply 2 change(s) to directory" in declined.stdout
    assert not (failing_demo / "k8s/network/default-deny.yaml").exists()
    accepted = _with_terminal(args, "y\n", state)
    assert accepted.returncode == 0, accepted.stderr
    assert (failing_demo / "k8s/network/default-deny.yaml").is_file()


def test_in_a_terminal_an_interrupted_apply_is_offered_for_rollback(
        failing_demo: Path, state: Path) -> None:
    from soma_audit.remediation.backup import BackupStore
    from soma_audit.remediation.targets import BackupItem, DirectoryTarget

    store = BackupStore(state / "backups")
    left = store.create("netpol-baseline", DirectoryTarget(failing_demo).describe(),
                        [BackupItem("k8s/network/default-deny.yaml", False, {})])
    (failing_demo / "k8s/network/default-deny.yaml").write_text("half\n")
    proc = _with_terminal(["--manifests", str(failing_demo), "apply", "netpol-services"],
                          "y\ny\n", state)
    assert proc.returncode == 0, proc.stderr
    assert f"interrupted apply: {left.id}" in proc.stdout
    assert f"rolled back {left.id}" in proc.stdout
    assert store.load(left.id).status == "rolled-back"
