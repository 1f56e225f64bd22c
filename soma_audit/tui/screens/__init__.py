"""The TUI's screens: the audit screen, the diff preview and the dialogs.

Each is imported when first named here (PEP 562), so that starting the TUI loads the audit
screen only: the dialogs and the diff preview (with its syntax highlighter) wait until used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soma_audit.tui.screens.attest import AttestScreen
    from soma_audit.tui.screens.confirm import ConfirmScreen, WorkingScreen
    from soma_audit.tui.screens.diff import DiffScreen
    from soma_audit.tui.screens.export import ExportScreen
    from soma_audit.tui.screens.help import HelpScreen
    from soma_audit.tui.screens.main import MainScreen

#: Each screen's module, by the screen's name.
_MODULES = {
    "AttestScreen": "attest", "ConfirmScreen": "confirm", "WorkingScreen": "confirm",
    "DiffScreen": "diff", "ExportScreen": "export", "HelpScreen": "help",
    "MainScreen": "main",
}

__all__ = ["AttestScreen", "ConfirmScreen", "DiffScreen", "ExportScreen", "HelpScreen",
           "MainScreen", "WorkingScreen"]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
