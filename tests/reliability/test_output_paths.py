"""``-o``/``--metrics-file`` write where the user means and never replace what is not a
file: a regular file or a new path is replaced atomically, a symlink's target is written,
a FIFO or a character device is streamed to (and stays what it was), ``-`` is stdout, a
directory is one clear error.

Special files are made with ``os.mkfifo``/``os.mknod`` inside the test's temp folder only
(the device node is a null device of the test's own: no system path is touched).
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tests.reliability.conftest import Figures, run_measured

pytestmark = pytest.mark.reliability

FLAGS = {"report": ["--format", "json", "-o"], "metrics": ["--metrics-file"]}


def _run(flag: str, target: str, folder: Path) -> tuple[int, str, str]:
    argv = ["--demo", "--ci", "--only", "k6.*", *FLAGS[flag], target]
    run = run_measured(argv, folder, timeout=120)
    assert "Traceback" not in run.stderr, run.stderr
    return run.code, run.stdout, run.stderr


def _looks_right(flag: str, text: str) -> bool:
    return text.lstrip().startswith("{") if flag == "report" else "soma_audit" in text


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_regular_file_is_replaced_atomically(flag: str, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("old\n", encoding="utf-8")
    before = target.stat().st_ino
    code, _, _ = _run(flag, str(target), tmp_path)
    assert code == 1
    assert target.stat().st_ino != before  # a new file renamed over the old one
    assert _looks_right(flag, target.read_text(encoding="utf-8"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_new_path_is_created(flag: str, tmp_path: Path) -> None:
    target = tmp_path / "new" / "out"
    code, _, _ = _run(flag, str(target), tmp_path)
    assert code == 1 and _looks_right(flag, target.read_text(encoding="utf-8"))


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_symlink_target_is_written_and_link_kept(flag: str, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("old\n", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(real)
    code, _, _ = _run(flag, str(link), tmp_path)
    assert code == 1
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert _looks_right(flag, real.read_text(encoding="utf-8"))


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_fifo_is_streamed_to_and_stays_a_fifo(flag: str, tmp_path: Path,
                                              figures: Figures) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []

    def reader() -> None:
        with open(fifo, encoding="utf-8") as stream:
            received.append(stream.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    code, _, _ = _run(flag, str(fifo), tmp_path)
    thread.join(timeout=30)
    assert code == 1
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert received and _looks_right(flag, received[0])
    figures.count("output paths", "special output files")


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_character_device_is_written_not_replaced(flag: str, tmp_path: Path) -> None:
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a null device, ours
    code, _, stderr = _run(flag, str(device), tmp_path)
    assert code == 1, stderr
    mode = device.lstat().st_mode
    assert stat.S_ISCHR(mode) and os.major(device.lstat().st_rdev) == 1


def test_dash_is_stdout(tmp_path: Path) -> None:
    code, stdout, _ = _run("report", "-", tmp_path)
    assert code == 1 and stdout.lstrip().startswith("{")
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_directory_is_one_clear_error(flag: str, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    code, _, stderr = _run(flag, str(folder), tmp_path)
    assert code == 2 and "is a directory" in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert list(folder.iterdir()) == []
