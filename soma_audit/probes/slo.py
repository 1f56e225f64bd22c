"""Probes for the slo area (see checks/slo.yaml)."""
