"""Cold start of the TUI on the demo: when ``soma-audit --demo`` paints its first frames.

Run as a fresh process by bench/run.py (so imports count). It takes the steps of
``soma-audit --demo`` in the CLI's order, with the CLI's own functions — the entry module,
the options, the first scan forked (its child opens the session), the TUI package and its
app, the TUI's session opened from what the child read — and drives the real app headless
with ``App.run_test()`` where the CLI calls ``App.run()`` (which needs a terminal). It
prints two stamps, in epoch seconds:

``FIRST <epoch>``
    the first painted frame of the audit screen that lists every check of the catalog, each
    with its mark (pending until its result arrives), under the header and beside the
    phase tree;
``READY <epoch>``
    the first painted frame that shows the first scan's report.

A frame is painted when the screen's compositor hands it to ``App._display`` outside a
batch update (``App._display`` drops a frame handed over inside one, as during the app's
start): the headless driver writes nothing, but the frame is composed the same. The probe
wraps that method and reads what the frame shows from the screen's state at that moment
(private Textual names: this is a measurement, not product code).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TIMEOUT = 60.0
SIZE = (120, 40)

#: What the cold-start figures mean (for docs/performance.md).
PROSE = """\
The TUI's cold start on the bundled demo, from just before the process is spawned: the
first frame (header, phase tree and every check marked pending) and the first complete
frame (the first scan's results), beside `--version` and `--demo --ci --format json`.
Measured twice: headless through the CLI's own steps (frames stamped as the compositor
paints them), and as the real `soma-audit --demo` on a pseudo-terminal (stamped when its
output shows them). `soma-audit --demo` paints its first frame from the session alone
(config, catalog and source; the engine's probes are not loaded yet) and forks its first
scan before it reads anything: the child reads the config and catalog, copies the demo,
hands the config and catalog over and scans on the second core, while the TUI imports
Textual. Warm starts (the page cache and the bytecode cache filled by an untimed run);
medians, with the 1-minute load average before and after: the machine is shared.
"""

#: The cold-start result's subjects, in the order of the table.
SUBJECTS = (
    ("version", "`soma-audit --version`"),
    ("demo_ci", "`soma-audit --demo --ci --format json`"),
    ("tui_first_frame", "TUI: first frame (every check pending)"),
    ("tui_first_complete_frame", "TUI: first complete frame (the first scan's results)"),
    ("tui_terminal_first_frame", "TUI on a terminal: first frame"),
    ("tui_terminal_first_complete_frame", "TUI on a terminal: first complete frame"),
)


class Frames:
    """The epoch times of the first frame and of the first complete frame."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.ready: float | None = None
        self.done = asyncio.Event()

    def painted(self, app: Any) -> None:
        """Called with every frame the app paints."""
        from soma_audit.tui.screens.main import MainScreen
        from soma_audit.tui.widgets import CheckTable

        screen = app.screen
        if not isinstance(screen, MainScreen) or not screen.is_mounted:
            return
        now = time.time()
        if self.first is None:
            ids = {check.id for check in screen.session.checks}
            marked = ids <= set(screen.pending) | set(screen.results)
            if marked and screen.query_one(CheckTable).row_count == len(ids):
                self.first = now
        if self.first is not None and self.ready is None and screen.report is not None:
            self.ready = now
            self.done.set()


#: What the terminal shows once the first frame is up (the header of the pending frame),
#: and once the first scan's report is (the header's scan time).
TERMINAL_FIRST = b"scanning 0/"
TERMINAL_READY = re.compile(rb"scanned \d\d:\d\d:\d\d")


def terminal_frames(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd`` (the real ``soma-audit --demo``) on a pseudo-terminal of :data:`SIZE`:
    the epoch times at which its output first holds the pending frame and the report,
    then press ``q``. What a user sees, with the real driver — and no hook at all."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    pid, terminal = pty.fork()
    if pid == 0:  # the child, on the terminal: never returns
        os.execve(cmd[0], cmd, {**env, "TERM": "xterm-256color"})
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    output = b""
    first = ready = None
    deadline = time.monotonic() + TIMEOUT
    try:
        while ready is None and time.monotonic() < deadline:
            if not select.select([terminal], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(terminal, 1 << 16)
            except OSError:  # EIO: the program closed the terminal
                break
            if not chunk:
                break
            now = time.time()
            output += chunk
            if first is None and TERMINAL_FIRST in output:
                first = now
            if first is not None and TERMINAL_READY.search(output):
                ready = now
        os.write(terminal, b"q")
        while time.monotonic() < deadline and select.select([terminal], [], [], 0.5)[0]:
            try:
                if not os.read(terminal, 1 << 16):
                    break
            except OSError:
                break
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    if first is None or ready is None or os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} showed no complete frame or failed "
                           f"(status {status}): {output[-300:]!r}")
    return first, ready


def markdown(cold: dict[str, Any]) -> str:
    """The table of one cold-start result (``bench/results/<date>-coldstart.json``)."""
    lines = ["| subject | median | min..max | runs |", "| --- | ---: | ---: | ---: |"]
    for key, name in SUBJECTS:
        summary = cold.get(key) or {"n": 0}
        if not summary["n"]:
            lines.append(f"| {name} | - | - | 0 |")
            continue
        lines.append(f"| {name} | {summary['wall_s'] * 1000:.0f} ms | "
                     f"{summary['wall_s_min'] * 1000:.0f}..{summary['wall_s_max'] * 1000:.0f} ms"
                     f" | {summary['n']} |")
    lines.append("")
    lines.append(f"Load average (1 min): {cold.get('load_average_before', 0):.2f} before, "
                 f"{cold.get('load_average_after', 0):.2f} after.")
    return "\n".join(lines) + "\n"


async def _run() -> Frames:
    # The steps of soma_audit.cli.main for `soma-audit --demo`, in its order.
    from soma_audit.cli import _arguments, _fleet_contexts, _tui_start

    args = _arguments(["--demo"])
    if _fleet_contexts(args) is not None:
        raise SystemExit("--demo is one target")
    first_scan, open_session = _tui_start(args)  # as soma_audit.cli._run_tui does
    from soma_audit.tui import app_class  # as soma_audit.tui.run_tui does

    app = app_class()(open_session(), first_scan=first_scan)
    frames = Frames()
    display = app._display

    def painted(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        if renderable is not None and not app._batch_count:
            frames.painted(app)

    app._display = painted  # type: ignore[method-assign]
    async with app.run_test(size=SIZE):
        try:
            await asyncio.wait_for(frames.done.wait(), TIMEOUT)
        except TimeoutError:
            raise SystemExit("the first scan's frame did not come in time") from None
    return frames


if __name__ == "__main__":
    result = asyncio.run(_run())
    print(f"FIRST {result.first:.6f}\nREADY {result.ready:.6f}", flush=True)
