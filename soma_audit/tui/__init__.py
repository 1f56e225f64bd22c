"""The Textual TUI — the only package of soma-audit that imports ``textual``.

The CLI calls :func:`run_tui` with the function that opens the
:class:`~soma_audit.engine.session.AuditSession` and the session's first scan, already
started in a child process that reads the config and catalog while Textual is imported.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soma_audit.engine.forked import ForkedScan
    from soma_audit.engine.session import AuditSession
    from soma_audit.tui.app import SomaAuditApp


def app_class() -> type[SomaAuditApp]:
    """The app's class, imported with Python's cyclic garbage collector paused until the
    audit screen's first frame is painted (the screen turns it back on): importing Textual
    and starting the app make objects that live on, and collections over them only delay
    that frame (~30 ms)."""
    gc.disable()
    from soma_audit.tui.app import SomaAuditApp

    return SomaAuditApp


def run_tui(open_session: Callable[[], AuditSession],
            first_scan: ForkedScan | None = None) -> int:
    """Import the app, then open the session (``open_session`` raises for bad input: no
    app is shown), and run the app until the user quits; 0 unless the app itself failed.
    ``first_scan`` is the session's first scan already under way in a child process, if
    any."""
    app = app_class()(open_session(), first_scan=first_scan)
    app.run()
    return app.return_code or 0
