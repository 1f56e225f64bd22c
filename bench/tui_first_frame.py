"""Cold start of the TUI on the demo: print ``READY <epoch>`` once the first scan's frame is up.

Run as a fresh process by bench/run.py (so imports count); it builds the session exactly as
``soma-audit --demo`` does and drives the real app headless with ``App.run_test()``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TIMEOUT = 60.0


async def _first_frame() -> float:
    from soma_audit.cli import _apply_environment, _build_session, _parser
    from soma_audit.tui.app import SomaAuditApp

    args = _parser().parse_args(["--demo"])
    _apply_environment(args)
    app = SomaAuditApp(_build_session(args))
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + TIMEOUT
        main = pilot.app.main
        while main.scanning or main.report is None:
            if time.monotonic() > deadline:
                raise SystemExit("the first scan did not finish in time")
            await pilot.pause(0.005)
        await pilot.pause()  # the frame with the results is rendered
        return time.time()


if __name__ == "__main__":
    print(f"READY {asyncio.run(_first_frame()):.6f}", flush=True)
