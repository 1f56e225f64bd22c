"""The Textual TUI — the only package of soma-audit that imports ``textual``.

The CLI calls :func:`run_tui` with a ready :class:`~soma_audit.engine.session.AuditSession`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soma_audit.engine.session import AuditSession


def run_tui(session: AuditSession) -> int:
    """Run the app until the user quits; 0 unless the app itself failed."""
    from soma_audit.tui.app import SomaAuditApp

    app = SomaAuditApp(session)
    app.run()
    return app.return_code or 0
