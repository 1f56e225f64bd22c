"""Backups: where they live, what the manifest holds, listing order, corruption and the
one-apply-at-a-time lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from soma_audit.remediation import backup as backups
from soma_audit.remediation.backup import BackupStore, state_dir
from soma_audit.remediation.plan import RemediationError
from soma_audit.remediation.targets import BackupItem


def test_state_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("SOMA_AUDIT_STATE", str(tmp_path))
    assert state_dir() == tmp_path
    assert BackupStore().root == tmp_path / "backups"
    monkeypatch.delenv("SOMA_AUDIT_STATE")
    assert state_dir() == Path("~/.local/state/soma-audit").expanduser()


def test_create_writes_manifest_and_exact_blobs(tmp_path: Path) -> None:
    store = BackupStore(tmp_path)
    data = b"\xff\x00binary\r\nno newline"
    items = [BackupItem("a.yaml", True, {"mode": 0o640}, data),
             BackupItem("new.yaml", False, {"created_dirs": ["x"]})]
    backup = store.create("netpol-baseline", {"kind": "directory", "root": "/r"}, items)
    assert backup.id.endswith("-netpol-baseline")
    manifest = json.loads((backup.path / "manifest.json").read_text())
    assert manifest["status"] == "in-progress"
    assert manifest["target"] == {"kind": "directory", "root": "/r"}
    assert [i["where"] for i in manifest["items"]] == ["a.yaml", "new.yaml"]
    assert manifest["items"][1]["blob"] is None
    loaded = store.load(backup.id)
    assert loaded.items[0].blob == data
    assert loaded.items[0].state == {"mode": 0o640}
    assert not loaded.items[1].existed
    backup.set_status("complete")
    assert store.load(backup.id).status == "complete"
    assert [h["status"] for h in store.load(backup.id).history] == ["in-progress", "complete"]


def test_list_is_newest_first_and_ids_are_unique(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    store = BackupStore(tmp_path)
    times = iter([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * 3
                 + [dt.datetime(2026, 1, 2, tzinfo=dt.UTC)] * 3
                 + [dt.datetime(2026, 1, 2, tzinfo=dt.UTC)] * 3)
    monkeypatch.setattr(backups, "_now", lambda: next(times))
    first = store.create("r", {"kind": "directory", "root": "/"}, [])
    second = store.create("r", {"kind": "directory", "root": "/"}, [])
    third = store.create("r", {"kind": "directory", "root": "/"}, [])
    assert len({first.id, second.id, third.id}) == 3
    assert third.id == second.id + "-2"
    assert [b.id for b in store.list()][-1] == first.id


def test_no_backups_yet(tmp_path: Path) -> None:
    assert BackupStore(tmp_path / "none").list() == []


@pytest.mark.parametrize("bad", ["../etc", "/tmp/x", "x", "20261128T000000Z-../../a"])
def test_load_refuses_what_is_not_an_id(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RemediationError, match="not a backup id"):
        BackupStore(tmp_path).load(bad)


def test_unknown_id(tmp_path: Path) -> None:
    with pytest.raises(RemediationError, match="no backup"):
        BackupStore(tmp_path).load("20261128T000000Z-nope")


def test_corrupt_blob_is_detected(tmp_path: Path) -> None:
    store = BackupStore(tmp_path)
    backup = store.create("r", {"kind": "directory"}, [BackupItem("a", True, {}, b"one")])
    (backup.path / "files" / "0").write_bytes(b"two")
    with pytest.raises(RemediationError, match="corrupt"):
        store.load(backup.id)


def test_malformed_manifest_is_skipped_in_list_and_an_error_on_load(tmp_path: Path) -> None:
    store = BackupStore(tmp_path)
    backup = store.create("r", {"kind": "directory"}, [])
    (backup.path / "manifest.json").write_text("{not json")
    assert store.list() == []
    with pytest.raises(RemediationError, match="unreadable"):
        store.load(backup.id)


def test_interrupted_are_the_in_progress_ones(tmp_path: Path) -> None:
    store = BackupStore(tmp_path)
    done = store.create("a", {"kind": "directory"}, [])
    done.set_status("complete")
    left = store.create("b", {"kind": "directory"}, [])
    assert [b.id for b in store.interrupted()] == [left.id]


def test_one_apply_at_a_time(tmp_path: Path) -> None:
    store = BackupStore(tmp_path)
    with store.lock(), pytest.raises(RemediationError, match="another soma-audit"), \
            BackupStore(tmp_path).lock():
        pass
    with store.lock():  # released again
        pass


def test_no_credentials_in_the_manifest(tmp_path: Path) -> None:
    store = BackupStore(tmp_path)
    backup = store.create("fga-model", {"kind": "openfga", "url": "http://x", "store": "s"}, [])
    text = (backup.path / "manifest.json").read_text()
    assert "token" not in text and "password" not in text


def test_backups_are_private(tmp_path: Path) -> None:
    store = BackupStore(tmp_path / "backups")
    backup = store.create("r", {"kind": "directory"}, [BackupItem("a", True, {}, b"x")])
    assert (store.root.stat().st_mode & 0o777) == 0o700
    assert (backup.path.stat().st_mode & 0o077) == 0
    assert ((backup.path / "files" / "0").stat().st_mode & 0o077) == 0
