"""The layer contract of ``pyproject.toml`` holds, and it would catch a violation.

``make lint`` runs ``lint-imports``; these tests prove that the contract is not vacuous:
a copy of the package with one upward import (core importing the TUI) must fail it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with our pyproject contract, over the package found in ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), str(REPO / "pyproject.toml"),
                           "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          check=False)


def _copy_package(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "soma_audit", tmp_path / "soma_audit",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    return tmp_path


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint(_copy_package(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    errors = root / "soma_audit" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport soma_audit.tui  # noqa: E402,F401\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "soma_audit.core is not allowed to import soma_audit.tui" in result.stdout
