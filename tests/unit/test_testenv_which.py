"""The test environment finds its tools past its own bin folder: with ``env.sh`` sourced,
that folder comes first on PATH, and a tool found there would be linked to itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from testenv import build


def test_a_tool_is_found_past_the_environments_own_links(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, system = tmp_path / "testenv", tmp_path / "usr-bin"
    (home / "bin").mkdir(parents=True)
    system.mkdir()
    tool = system / "promtool"
    tool.write_text("#!/bin/sh\n", encoding="utf-8")
    tool.chmod(0o755)
    (home / "bin" / "promtool").symlink_to(tool)
    monkeypatch.setenv("SOMA_TESTENV_DIR", str(home))
    monkeypatch.setenv("PATH", f"{home / 'bin'}:{system}")
    assert build.which("promtool") == str(tool)
    monkeypatch.setenv("PATH", str(home / "bin"))
    assert build.which("promtool") is None
