"""The engine stays free of Textual: only ``soma_audit.tui`` may import it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tui

PACKAGE = Path(__file__).resolve().parents[2] / "soma_audit"


def _imports_textual(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        if any(name == "textual" or name.startswith("textual.") for name in names):
            return True
    return False


def test_no_textual_import_outside_the_tui() -> None:
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if "tui" not in path.relative_to(PACKAGE).parts[:1] and _imports_textual(path)
    ]
    assert offenders == []


def test_headless_paths_never_load_textual() -> None:
    """The CLI, engine, probes and reports run without importing Textual at all."""
    code = (
        "import sys\n"
        "import soma_audit.cli, soma_audit.engine.session, soma_audit.engine.scan,"
        " soma_audit.engine.demo\n"
        "from soma_audit.probes import load_probes\n"
        "from soma_audit.reports import FORMATS, renderer\n"
        "load_probes()\n"
        "[renderer(f) for f in FORMATS]\n"
        "import soma_audit.tui.view\n"
        "assert 'textual' not in sys.modules, sorted(m for m in sys.modules if 'textual' in m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_run_tui_is_the_only_entry_and_lazy() -> None:
    """Importing the package does not import the app (the CLI imports it only for a TUI)."""
    code = (
        "import sys, soma_audit.tui\n"
        "assert callable(soma_audit.tui.run_tui)\n"
        "assert 'textual' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
