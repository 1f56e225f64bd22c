"""Probes for the pss area (see checks/pss.yaml)."""
