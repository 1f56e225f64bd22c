"""The TUI's widgets, one per module (Textual's habit), exposed here."""

from soma_audit.tui.widgets.audit_header import AuditHeader
from soma_audit.tui.widgets.check_detail import CheckDetail
from soma_audit.tui.widgets.check_table import CheckTable
from soma_audit.tui.widgets.filter_bar import FilterBar
from soma_audit.tui.widgets.phase_tree import PhaseTree

__all__ = ["AuditHeader", "CheckDetail", "CheckTable", "FilterBar", "PhaseTree"]
