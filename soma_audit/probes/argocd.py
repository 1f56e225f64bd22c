"""Probes for the argocd area (see checks/argocd.yaml)."""
