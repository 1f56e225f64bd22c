"""Cost controls of a workload: cpu/memory requests and limits, and an autoscaler on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.kube.workloads import Workload

WANTED = (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory"))

#: Objects that scale a workload: the HPA itself, and KEDA's ScaledObject (which owns one).
AUTOSCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")
HPA_API = "autoscaling/v2"


def resource_value(resources: Any, section: str, resource: str) -> Any:
    """``resources.<section>.<resource>`` of a container (or pod) spec; None when unset."""
    values = resources.get(section) if isinstance(resources, dict) else None
    return values.get(resource) if isinstance(values, dict) else None


def declared(value: Any) -> bool:
    """Set at all: a number or a non-empty string."""
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


def missing_resources(container: dict[str, Any], pod_resources: Any,
                      valid: Callable[[Any], bool] = declared) -> list[tuple[str, str]]:
    """The (section, resource) pairs of :data:`WANTED` that ``container`` does not set to a
    ``valid`` value and the pod-level ``spec.resources`` (``pod_resources``) does not cover
    either."""
    return [
        (section, resource) for section, resource in WANTED
        if not valid(resource_value(pod_resources, section, resource))
        and not valid(resource_value(container.get("resources"), section, resource))
    ]


def resource_gaps(workload: Workload) -> list[str]:
    """Unset requests/limits per container and init container (ephemeral containers cannot
    declare any); a value in the pod-level ``spec.resources`` covers every container."""
    pod_level = workload.pod_spec.get("resources")
    return [
        f"container {container.get('name')}: resources.{section}.{resource} unset"
        for field, container in workload.containers()
        if field != "ephemeralContainers"
        for section, resource in missing_resources(container, pod_level)
    ]


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
