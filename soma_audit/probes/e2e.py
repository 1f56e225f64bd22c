"""Probes for the e2e area (see checks/e2e.yaml)."""
