"""Which workloads run a configured service: those whose pod template carries its labels.

Objects owned by another (the Pods and ReplicaSets of a live Deployment) are left out, so
evidence names the object a user edits: the Deployment, StatefulSet, …
"""

from __future__ import annotations

from soma_audit.config import Service
from soma_audit.kube.inventory import Inventory
from soma_audit.kube.labels import has_labels
from soma_audit.kube.workloads import Workload, workloads


def selector_text(service: Service) -> str:
    """``app=gateway-api`` — the service's selector as evidence shows it."""
    return ",".join(f"{k}={v}" for k, v in sorted(service.selector.items()))


def service_workloads(inventory: Inventory, service: Service, namespace: str) -> list[Workload]:
    """Top-level workloads in ``namespace`` whose pods carry all of the service's labels."""
    found = []
    for workload in workloads(inventory, namespace):
        if workload.resource.metadata.get("ownerReferences"):
            continue
        if has_labels(workload.pod_labels, service.selector.items()):
            found.append(workload)
    return found
