"""The TUI's screens: the audit screen and its dialogs."""

from soma_audit.tui.screens.attest import AttestScreen
from soma_audit.tui.screens.export import ExportScreen
from soma_audit.tui.screens.help import HelpScreen
from soma_audit.tui.screens.main import MainScreen

__all__ = ["AttestScreen", "ExportScreen", "HelpScreen", "MainScreen"]
