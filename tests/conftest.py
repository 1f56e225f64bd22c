"""Every tier finds the test environment's renderers the way the product does, on PATH:
the `helm` and `kustomize` that `make testenv` linked into `.testenv/bin` come first
(nothing else of that folder is put on PATH here)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_RENDERERS = ("helm", "kustomize")


def pytest_configure(config: pytest.Config) -> None:
    from testenv import config as testenv_config

    bindir = testenv_config.state_dir() / "bin"
    found = {name: bindir / name for name in _RENDERERS if (bindir / name).exists()}
    if not found:
        return
    linked = Path(tempfile.mkdtemp(prefix="soma-audit-test-renderers-"))
    for name, target in found.items():
        (linked / name).symlink_to(target.resolve())
    os.environ["PATH"] = f"{linked}{os.pathsep}{os.environ.get('PATH', '')}"
