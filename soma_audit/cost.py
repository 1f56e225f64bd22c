"""Cost controls of a workload: cpu/memory requests and limits, and an autoscaler on it."""

from __future__ import annotations

from typing import Any

from soma_audit.inventory import Inventory, Resource
from soma_audit.workloads import Workload

WANTED = (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory"))

#: Objects that scale a workload: the HPA itself, and KEDA's ScaledObject (which owns one).
AUTOSCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")
HPA_API = "autoscaling/v2"


def _declared(resources: Any, section: str, resource: str) -> bool:
    values = resources.get(section) if isinstance(resources, dict) else None
    value = values.get(resource) if isinstance(values, dict) else None
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


def resource_gaps(workload: Workload) -> list[str]:
    """Unset requests/limits per container and init container (ephemeral containers cannot
    declare any); a value in the pod-level ``spec.resources`` covers every container."""
    pod_level = workload.pod_spec.get("resources")
    covered = {want for want in WANTED if _declared(pod_level, *want)}
    gaps = []
    for field, container in workload.containers():
        if field == "ephemeralContainers":
            continue
        for section, resource in WANTED:
            if (section, resource) not in covered and not _declared(
                container.get("resources"), section, resource
            ):
                gaps.append(
                    f"container {container.get('name')}: resources.{section}.{resource} unset"
                )
    return gaps


def _targets(scaler: Resource, target: Resource) -> bool:
    ref = scaler.spec.get("scaleTargetRef")
    if not isinstance(ref, dict) or ref.get("name") != target.name:
        return False
    default_kind = "Deployment" if scaler.kind == "ScaledObject" else None
    return ref.get("kind", default_kind) == target.kind


def autoscaling(inventory: Inventory, target: Resource) -> tuple[str | None, list[str]]:
    """(what scales ``target``, problems): an ``autoscaling/v2`` HPA (or a ScaledObject)
    whose ``maxReplicas`` exceeds ``minReplicas``."""
    scalers = [
        s for s in inventory.of_kind(*AUTOSCALER_KINDS, namespace=target.namespace)
        if _targets(s, target)
    ]
    if not scalers:
        return None, [f"no HorizontalPodAutoscaler targets {target.kind} {target.name}"]
    problems = []
    for scaler in scalers:
        if scaler.kind == "HorizontalPodAutoscaler" and scaler.api_version != HPA_API:
            problems.append(f"{scaler.ref} is {scaler.api_version}, expected {HPA_API}")
            continue
        # defaults: HPA minReplicas 1 (maxReplicas is required); KEDA min 0, max 100
        if scaler.kind == "HorizontalPodAutoscaler":
            low_key, high_key, low_default, high_default = "minReplicas", "maxReplicas", 1, None
        else:
            low_key, high_key, low_default, high_default = (
                "minReplicaCount", "maxReplicaCount", 0, 100
            )
        low = scaler.spec.get(low_key, low_default)
        high = scaler.spec.get(high_key, high_default)
        if not isinstance(high, int) or not isinstance(low, int) or high <= low:
            problems.append(f"{scaler.ref}: {high_key}={high}, {low_key}={low}: it cannot scale")
            continue
        return f"{scaler.ref} scales from {low} to {high} replicas", []
    return None, problems
