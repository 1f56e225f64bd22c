"""Reading the repository's non-Kubernetes files (models, scripts, results) for probes.

Evidence names files relative to the repository; a file that exists but cannot be read
is an error of the check (it could not be evaluated), never a silent pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from soma_audit.core import fileio
from soma_audit.probes import ProbeContext, ProbeError

_SKIP_DIRS = {".git", "node_modules", ".venv", "__pycache__"}


def relative(repo: Path, path: Path) -> str:
    """``path`` as the evidence names it: relative to the repository, with ``/``."""
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        return path.as_posix()


def locate(ctx: ProbeContext, relative_path: str) -> tuple[Path, Path, str]:
    """(repository, path, name in evidence) of ``relative_path`` (typically a
    ``config.layout`` entry); ProbeError when the audit has no repository."""
    repo = ctx.require_repo()
    path = repo / relative_path
    return repo, path, relative(repo, path)


def read_bytes(repo: Path, path: Path) -> bytes:
    """The file's bytes; unreadable or oversized files raise ProbeError naming the file."""
    try:
        return fileio.read_bytes(path)
    except fileio.UnreadableFile as exc:
        raise ProbeError(f"{relative(repo, path)}: {exc}") from None


def read_text(repo: Path, path: Path) -> str:
    """The file as UTF-8 text (a BOM is dropped); see :func:`read_bytes`."""
    data = read_bytes(repo, path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProbeError(f"{relative(repo, path)}: not UTF-8 text (byte {exc.start})") from None


def walk(root: Path, suffixes: tuple[str, ...] = ()) -> Iterator[Path]:
    """Files below ``root`` (or ``root`` itself when it is a file) in a stable order,
    optionally only those ending in one of ``suffixes``; symlinked folders are not followed
    and broken links are left out."""
    if root.is_file():
        if not suffixes or root.name.endswith(suffixes):
            yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if (not suffixes or name.endswith(suffixes)) and path.is_file():
                yield path
