"""Probes for the fga area (see checks/fga.yaml)."""
