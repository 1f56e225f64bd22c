"""Apply and rollback on a directory: all-or-nothing, byte-exact restores, stale previews
and interrupted applies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from soma_audit.remediation.apply import (
    ApplyFailed,
    InterruptedApply,
    apply_plan,
    restore_preview,
    rollback,
)
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.output import RenderedFile
from soma_audit.remediation.plan import Change, Plan, RemediationError, StaleError
from soma_audit.remediation.targets import DirectoryTarget, sha256

ODD_BYTES = b"# kept exactly\r\nkey: \xe9t\xe9\r\n\tno final newline"


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` with its bytes and permission bits, and every folder."""
    found: dict[str, tuple[bytes, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            found[rel + "/"] = (b"", 0)
        else:
            found[rel] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return found


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "k8s" / "network").mkdir(parents=True)
    (root / "k8s" / "network" / "default-deny.yaml").write_bytes(ODD_BYTES)
    (root / "k8s" / "network" / "default-deny.yaml").chmod(0o640)
    (root / "README.md").write_text("hello\n")
    return root


def _overwrite(target: DirectoryTarget, files: dict[str, str]) -> list[Change]:
    """Changes that replace whole files. Planning never does that to a team's file any
    more; these tests are about apply and rollback, which must not depend on planning."""
    changes = []
    for where, text in files.items():
        path = target.resolve(where)
        current = path.read_bytes() if path.is_file() else None
        if current == text.encode():
            changes.append(Change("unchanged", where, text, text, "", token=sha256(current)))
            continue
        changes.append(Change("create" if current is None else "update", where, None, text,
                              "", payload=text, token=sha256(current)))
    return changes


def _plan(root: Path, files: dict[str, str], recipe: str = "netpol-baseline") -> Plan:
    target = DirectoryTarget(root)
    return Plan(recipe, target, _overwrite(target, files))


FILES = {"k8s/network/default-deny.yaml": "kind: NetworkPolicy\n",
         "k8s/network/dns/allow-dns-egress.yaml": "kind: NetworkPolicy\n"}


def test_apply_then_rollback_is_byte_exact(repo: Path, tmp_path: Path) -> None:
    before = _tree(repo)
    store = BackupStore(tmp_path / "state")
    result = apply_plan(_plan(repo, FILES), store)
    assert [c.where for c in result.written] == list(FILES)
    assert (repo / "k8s/network/default-deny.yaml").read_text() == "kind: NetworkPolicy\n"
    assert (repo / "k8s/network/default-deny.yaml").stat().st_mode & 0o777 == 0o640
    assert (repo / "k8s/network/dns/allow-dns-egress.yaml").is_file()
    backup = result.backup
    assert backup is not None and store.load(backup.id).status == "complete"
    preview = restore_preview(store.load(backup.id), DirectoryTarget(repo))
    assert {c.where for c in preview if c.pending} == set(FILES)
    assert rollback(store.load(backup.id), DirectoryTarget(repo), store) == []
    assert _tree(repo) == before  # bytes, modes, and the created folder is gone
    assert store.load(backup.id).status == "rolled-back"
    with pytest.raises(RemediationError, match="already rolled back"):
        rollback(store.load(backup.id), DirectoryTarget(repo), store)


def test_nothing_to_do_writes_no_backup(repo: Path, tmp_path: Path) -> None:
    store = BackupStore(tmp_path / "state")
    result = apply_plan(_plan(repo, {"README.md": "hello\n"}), store)
    assert result.backup is None and result.written == []
    assert store.list() == []


class _FailingSecond(DirectoryTarget):
    """The second write fails as a full disk would, after the first one succeeded."""

    def __init__(self, root: Path, exc: BaseException) -> None:
        super().__init__(root)
        self.writes = 0
        self.exc = exc

    def write(self, change: Change) -> None:
        if self.writes == 1:
            raise self.exc
        self.writes += 1
        super().write(change)


def test_failure_mid_way_leaves_nothing_half_applied(repo: Path, tmp_path: Path) -> None:
    before = _tree(repo)
    store = BackupStore(tmp_path / "state")
    target = _FailingSecond(repo, RemediationError("cannot write: No space left on device"))
    changes = _overwrite(target, FILES)
    with pytest.raises(ApplyFailed, match=r"failed at k8s/network/dns/allow-dns-egress.yaml: "
                       r"cannot write: No space.*rolled back") as info:
        apply_plan(Plan("r", target, changes), store)
    assert info.value.restored
    assert _tree(repo) == before
    assert store.load(info.value.backup.id).status == "failed"
    with pytest.raises(RemediationError, match="rolled back automatically"):
        rollback(store.load(info.value.backup.id), DirectoryTarget(repo), store)


def test_a_file_in_the_way_is_found_by_the_preview(repo: Path) -> None:
    (repo / "blocked").write_text("a file, not a folder\n")
    with pytest.raises(RemediationError, match="Not a directory"):
        DirectoryTarget(repo).plan([RenderedFile("blocked/x.yaml", "x: 1\n")])


def test_interrupt_mid_way_rolls_back_and_propagates(repo: Path, tmp_path: Path) -> None:
    before = _tree(repo)
    target = _FailingSecond(repo, KeyboardInterrupt())
    changes = _overwrite(target, FILES)
    with pytest.raises(KeyboardInterrupt):
        apply_plan(Plan("r", target, changes), BackupStore(tmp_path / "state"))
    assert _tree(repo) == before


def test_stale_preview_writes_nothing(repo: Path, tmp_path: Path) -> None:
    plan = _plan(repo, FILES)
    (repo / "k8s/network/default-deny.yaml").write_text("someone else\n")
    store = BackupStore(tmp_path / "state")
    with pytest.raises(StaleError, match="changed since the diff"):
        apply_plan(plan, store)
    assert (repo / "k8s/network/default-deny.yaml").read_text() == "someone else\n"
    assert not (repo / "k8s/network/dns").exists()
    assert store.list() == []


def test_file_created_after_the_preview_is_stale(repo: Path, tmp_path: Path) -> None:
    plan = _plan(repo, FILES)
    (repo / "k8s/network/dns").mkdir()
    (repo / "k8s/network/dns/allow-dns-egress.yaml").write_text("mine\n")
    with pytest.raises(StaleError):
        apply_plan(plan, BackupStore(tmp_path / "state"))


def test_interrupted_apply_blocks_the_next_and_rolls_back(repo: Path, tmp_path: Path) -> None:
    """A process killed mid-apply leaves an in-progress backup: the next apply refuses
    and names it; rolling it back restores every item, written or not."""
    before = _tree(repo)
    store = BackupStore(tmp_path / "state")
    plan = _plan(repo, FILES)
    items = [plan.target.capture(c) for c in plan.pending]
    backup = store.create(plan.recipe, plan.target.describe(), items)
    plan.target.write(plan.pending[0])  # ... and then the process died
    with pytest.raises(InterruptedApply, match=backup.id):
        apply_plan(_plan(repo, {"README.md": "changed\n"}), store)
    assert rollback(store.load(backup.id), DirectoryTarget(repo), store) == []
    assert _tree(repo) == before
    assert store.interrupted() == []


def test_conflicts_stop_the_apply(repo: Path, tmp_path: Path) -> None:
    target = DirectoryTarget(repo)
    plan = Plan("r", target, [Change("conflict", "Namespace/x", None, None, "",
                                     note="conflict with kubectl")])
    with pytest.raises(RemediationError, match="conflicts on Namespace/x"):
        apply_plan(plan, BackupStore(tmp_path / "state"))


def test_restore_of_a_file_deleted_after_apply_needs_force(repo: Path, tmp_path: Path) -> None:
    store = BackupStore(tmp_path / "state")
    before = _tree(repo)
    result = apply_plan(_plan(repo, FILES), store)
    os.unlink(repo / "k8s/network/default-deny.yaml")
    assert result.backup is not None
    with pytest.raises(RemediationError, match=r"default-deny\.yaml changed after the apply"):
        rollback(store.load(result.backup.id), DirectoryTarget(repo), store)
    rollback(store.load(result.backup.id), DirectoryTarget(repo, force=True), store)
    assert _tree(repo) == before


def test_rollback_refused_after_a_later_edit_and_forced(repo: Path, tmp_path: Path) -> None:
    """The file was edited after the apply: rollback names it and restores nothing;
    --force restores the backup over the edit, and the preview says so."""
    store = BackupStore(tmp_path / "state")
    before = _tree(repo)
    result = apply_plan(_plan(repo, FILES), store)
    assert result.backup is not None
    (repo / "k8s/network/default-deny.yaml").write_text("kind: NetworkPolicy\n# mine\n")
    after_edit = _tree(repo)
    preview = restore_preview(store.load(result.backup.id), DirectoryTarget(repo))
    assert [c.kind for c in preview if c.where.endswith("default-deny.yaml")] == ["conflict"]
    with pytest.raises(RemediationError, match=r"refused: k8s/network/default-deny\.yaml"):
        rollback(store.load(result.backup.id), DirectoryTarget(repo), store)
    assert _tree(repo) == after_edit
    forced = restore_preview(store.load(result.backup.id), DirectoryTarget(repo, force=True))
    assert any("--force" in c.note for c in forced)
    assert rollback(store.load(result.backup.id), DirectoryTarget(repo, force=True),
                    store) == []
    assert _tree(repo) == before


KILLED_APPLY = """
import sys, time
from pathlib import Path
from soma_audit.remediation.apply import apply_plan
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.plan import Change, Plan
from soma_audit.remediation.targets import DirectoryTarget, sha256

class Slow(DirectoryTarget):
    def write(self, change):
        super().write(change)
        Path(sys.argv[3]).write_text(change.where)   # tell the test, then hang
        time.sleep(60)

root, state = Path(sys.argv[1]), Path(sys.argv[2])
target = Slow(root)
changes = []
for where in ("k8s/network/default-deny.yaml", "k8s/network/dns/allow-dns-egress.yaml"):
    path = target.resolve(where)
    current = path.read_bytes() if path.is_file() else None
    changes.append(Change("update" if current else "create", where, None,
                          "kind: NetworkPolicy\\n", "", payload="kind: NetworkPolicy\\n",
                          token=sha256(current)))
apply_plan(Plan("netpol-baseline", target, changes), BackupStore(state / "backups"))
"""


def test_process_killed_mid_apply_is_found_and_rolled_back(repo: Path, tmp_path: Path) -> None:
    """SIGKILL after the first of two writes: the backup stays in-progress, the next
    apply refuses and names it, and its rollback restores the tree exactly."""
    import signal
    import subprocess
    import sys
    import time

    before = _tree(repo)
    state, signal_file = tmp_path / "state", tmp_path / "written"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_APPLY, str(repo), str(state),
                             str(signal_file)])
    try:
        deadline = time.monotonic() + 60
        while not signal_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert signal_file.exists(), "the apply never wrote its first file"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert _tree(repo) != before  # half-applied on disk
    store = BackupStore(state / "backups")
    (left,) = store.interrupted()
    with pytest.raises(InterruptedApply, match=left.id):
        apply_plan(_plan(repo, {"README.md": "changed\n"}), store)
    assert rollback(store.load(left.id), DirectoryTarget(repo), store) == []
    assert _tree(repo) == before
