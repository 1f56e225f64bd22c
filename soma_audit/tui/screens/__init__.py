"""The TUI's screens: the audit screen, the diff preview and the dialogs."""

from soma_audit.tui.screens.attest import AttestScreen
from soma_audit.tui.screens.confirm import ConfirmScreen, WorkingScreen
from soma_audit.tui.screens.diff import DiffScreen
from soma_audit.tui.screens.export import ExportScreen
from soma_audit.tui.screens.help import HelpScreen
from soma_audit.tui.screens.main import MainScreen

__all__ = ["AttestScreen", "ConfirmScreen", "DiffScreen", "ExportScreen", "HelpScreen",
           "MainScreen", "WorkingScreen"]
