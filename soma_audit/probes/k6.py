"""Probes for the k6 area (see checks/k6.yaml)."""
