"""soma-audit: a production-readiness auditor for Kubernetes platforms.

The engine (sources → inventory → probes → findings → reports/remediation) lives in this
package and never imports the TUI; ``soma_audit.tui`` is one of two thin views over it.
"""

__version__ = "0.1.0"
