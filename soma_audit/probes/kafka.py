"""Probes for the kafka area (see checks/kafka.yaml)."""
