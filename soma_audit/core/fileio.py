"""Reading and writing files of untrusted places without hanging, exhausting memory or
replacing what is not ours.

Every file the tool reads (manifests, snapshots, config, catalogs, attestations, repository
files) goes through :func:`read_bytes`: only a regular file is read (a FIFO would block
forever, ``/dev/zero`` never ends), and never more than the limit. Reports and metrics go
through :func:`write_output`: a regular file is replaced atomically, a FIFO or a device is
streamed to and never replaced.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

#: Files above this size are not read: no manifest, model, script or report is this large.
MAX_FILE_BYTES = 32 * 1024 * 1024
_CHUNK = 1024 * 1024


class UnreadableFile(Exception):
    """A file that is not read, and why (never its content): callers prefix its name."""


class MissingFile(UnreadableFile):
    """There is no file at the path (a dangling symlink included)."""


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks resolved first), at most
    ``limit`` of them; :class:`UnreadableFile` for anything else.

    The resolved path is opened non-blocking and without following a symlink (so a FIFO
    cannot block the open and a link swapped in meanwhile is refused), the opened
    descriptor is checked with ``fstat`` (a regular file, not over ``limit``), and the read
    stops after ``limit`` bytes even if the file grew since.
    """
    try:
        resolved = os.path.realpath(path)
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise MissingFile(f"cannot read: {exc.strerror}") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"{_kind(info.st_mode)}, not read")
        if info.st_size > limit:
            raise UnreadableFile(f"larger than {limit} bytes, not read")
        parts: list[bytes] = []
        left = limit + 1
        while left > 0:
            part = os.read(fd, min(_CHUNK, left))
            if not part:
                break
            parts.append(part)
            left -= len(part)
        if left <= 0:
            raise UnreadableFile(f"larger than {limit} bytes, not read")
        return b"".join(parts)
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a BOM dropped); undecodable is UnreadableFile."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (byte {exc.start})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        # mkstemp creates 0600; keep the mode an ordinary write would give.
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(place: str, text: str) -> None:
    """Write a report or metrics to ``place`` as the user means it.

    ``-`` is stdout. A symlink is followed and its target written. A FIFO or a character
    device (a pipe to another program, ``/dev/stdout``) is streamed to, never replaced. A
    regular file or a new path is replaced atomically. A directory (or anything else) is
    an ``IsADirectoryError``/``OSError`` for the caller to report.
    """
    if place == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(os.path.realpath(place))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        write_atomically(target, text)
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(21, "is a directory")
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        with open(target, "w", encoding="utf-8") as stream:
            stream.write(text)
        return
    if not stat.S_ISREG(mode):
        raise OSError(f"{_kind(mode)}: not written")
    write_atomically(target, text)
