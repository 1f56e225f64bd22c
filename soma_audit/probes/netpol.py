"""Probes for the netpol area (see checks/netpol.yaml)."""
