"""The real thing: ``soma-audit --demo`` in a real terminal (tmux, 120x40), driven by keys.

It proves what the pilot tests cannot: the entry point starts the TUI on a terminal, the
terminal shows the audit, keys work end to end, an export lands on disk, a remediation
previewed and applied into the demo copy turns its checks green, and ``q`` gives the
shell back with exit code 0. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.tui,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

SCAN_TIMEOUT = 60.0
KEY_TIMEOUT = 10.0


class Terminal:
    """One tmux session on a private server, so the user's own tmux is never touched."""

    def __init__(self, socket: str, name: str) -> None:
        self.socket = socket
        self.name = name

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                                text=True, timeout=10, check=False)
        return result.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.name, key)
            time.sleep(0.15)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)
        time.sleep(0.15)

    def wait_for(self, condition: Callable[[str], bool], what: str,
                 timeout: float = KEY_TIMEOUT) -> str:
        """The screen once ``condition`` holds on two captures in a row.

        A capture can catch Textual half-way through writing a frame; the second one
        makes sure the frame was complete.
        """
        deadline = time.monotonic() + timeout
        previous = ""
        while True:
            screen = self.screen()
            if condition(screen) and screen == previous:
                return screen
            previous = screen if condition(screen) else ""
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"the screen was:\n{screen}")
            time.sleep(0.1)

    def wait_text(self, text: str, timeout: float = KEY_TIMEOUT) -> str:
        return self.wait_for(lambda screen: text in screen, repr(text), timeout)


def _command() -> str:
    entry = Path(sys.executable).with_name("soma-audit")
    program = str(entry) if entry.exists() else f"{sys.executable} -m soma_audit"
    # The shell line after the app says how it ended, and keeps the pane open to read it.
    return f"{program} --demo; echo EXITED=$?; sleep 60"


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    socket = f"soma-audit-test-{os.getpid()}"
    term = Terminal(socket, "demo")
    scratch = tmp_path / "tmp"  # where --demo copies the demo, removed with tmp_path
    scratch.mkdir()
    # Backups of the apply go to a scratch state folder, never the user's.
    env = {"TERM": "xterm-256color", "TMPDIR": str(scratch),
           "SOMA_AUDIT_STATE": str(tmp_path / "state")}
    subprocess.run(
        ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "demo",
         "-x", "120", "-y", "40", "-c", str(tmp_path), _command()],
        check=True, timeout=10, env={**os.environ, **env},
    )
    path = term.tmux("display-message", "-p", "#{socket_path}").strip()
    try:
        yield term
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True,
                       timeout=10, check=False)
        if path:
            Path(path).unlink(missing_ok=True)


def test_demo_in_a_real_terminal(terminal: Terminal, tmp_path: Path) -> None:
    first = terminal.wait_for(lambda s: "scanned " in s and _opened_on_a_gap(s),
                              "the scan and the first gap", timeout=SCAN_TIMEOUT)
    lines = first.splitlines()
    assert "soma-audit  demo: soma-gitops (manifests)" in lines[0]
    assert "ready " in lines[0] and " P1 " in lines[0] and " P3 " in lines[0]
    assert "Phases" in lines[1] and "Checks — All checks" in lines[1]
    assert "1 Governance" in first and "2 Chaos & Monitoring" in first
    assert "3 Validation" in first
    assert "Pod Security" in first and "NetworkPolicy" in first
    assert "r Rescan" in lines[-1] and "q Quit" in lines[-1]
    # It opens on the first gap, with its evidence.
    assert "✗ " in first or "! " in first, first

    # Navigate: the next gap is another check, shown in the detail pane.
    opened = _detail_title(first)
    terminal.keys("n")
    terminal.wait_for(lambda s: _detail_title(s) not in ("", opened) and _opened_on_a_gap(s),
                      "the next gap")

    # Filter: only failing checks remain listed.
    terminal.keys("/")
    terminal.type("fail")
    terminal.keys("Enter")
    filtered = terminal.wait_text("filter “fail”")
    table = _table_rows(filtered)
    assert table and all(row.startswith("✗") for row in table), table
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "filter “fail”" not in s, "the filter to clear")

    # Help lists the keys.
    terminal.keys("?")
    terminal.wait_text("soma-audit — keys")
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "soma-audit — keys" not in s, "the help to close")

    # Export the readiness review as markdown into the working directory.
    terminal.keys("e")
    terminal.wait_text("Export report")
    terminal.keys("Enter")
    terminal.wait_text("Report written")
    report = tmp_path / "soma-audit-report.md"
    assert report.read_text().startswith("# Production readiness")

    # A failing check with a remediation: diff, apply, confirm — and it passes.
    terminal.keys("/")
    terminal.type("argocd-apps")
    terminal.keys("Enter")
    failing = terminal.wait_for(lambda s: "filter “argocd-apps”" in s
                                and "Fix: argocd-apps" in s and _opened_on_a_gap(s),
                                "a failing check argocd-apps fixes")
    check = _detail_title(failing)
    assert check.startswith("argocd."), failing
    assert "[d] diff  [a] apply" in failing
    terminal.keys("d")
    diff = terminal.wait_text("change(s) to apply", timeout=SCAN_TIMEOUT)
    assert "Diff   argocd-apps" in diff and "Changes — directory " in diff
    assert "+++ b/k8s/apps/" in diff
    terminal.keys("a")
    confirm = terminal.wait_text("y confirms")
    assert "Apply argocd-apps" in confirm and "Target  directory " in confirm
    terminal.keys("y")
    applied = terminal.wait_for(lambda s: "Re-audit" in s, "the re-audit",
                                timeout=SCAN_TIMEOUT)
    assert "Applied argocd-apps" in applied
    # The notifications cover the detail's border for a few seconds; then it shows.
    passing = terminal.wait_for(lambda s: "─ pass · " in s, "the check passing",
                                timeout=SCAN_TIMEOUT)
    assert _detail_title(passing) == check
    assert any(row.startswith(f"✓  {check} ") for row in _table_rows(passing)), passing
    terminal.keys("Escape")
    terminal.wait_for(lambda s: "filter “" not in s, "the filter to clear")

    # Quit gives the terminal back, with exit code 0.
    terminal.keys("q")
    done = terminal.wait_text("EXITED=", timeout=KEY_TIMEOUT)
    assert "EXITED=0" in done
    assert "Phases" not in done  # the alternate screen is gone


def _opened_on_a_gap(screen: str) -> bool:
    """The detail pane's subtitle starts with a failing status."""
    return "─ fail · " in screen or "─ error · " in screen


def _detail_title(screen: str) -> str:
    """The id in the detail pane's border (the second box on the right)."""
    boxes = [line for line in screen.splitlines() if "╭─ " in line]
    if len(boxes) < 1:
        return ""
    last = boxes[-1].rsplit("╭─ ", 1)[-1]
    return last.split(" ", 1)[0]


def _table_rows(screen: str) -> list[str]:
    """The rows of the check table: the lines under its column header, up to its border."""
    rows: list[str] = []
    inside = False
    for line in screen.splitlines():
        right = line.split("││", 1)[-1] if "││" in line else ""
        if not inside:
            inside = right.split()[:2] == ["check", "title"]
            continue
        if "╰" in line or not right:
            break
        cell = right.strip(" │▁▂▃▄▅▆▇█▎▊")
        if cell:
            rows.append(cell)
    return rows
