"""Probes for the chaos area (see checks/chaos.yaml)."""
