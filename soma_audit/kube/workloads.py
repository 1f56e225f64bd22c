"""Pod specs wherever they hide: Pods and the templates of every workload controller.

One place knows the path to the pod spec of each kind, so the PSS, NetworkPolicy and
cost checks all see the same set of workloads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from soma_audit.kube.inventory import Inventory, Resource

#: kind → path from the object to its pod template (``metadata`` + ``spec``).
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

WORKLOAD_KINDS = frozenset(TEMPLATE_PATHS)

CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True, slots=True)
class Workload:
    """A pod spec and the object that carries it."""

    resource: Resource
    template: dict[str, Any]
    #: Dotted path of the pod spec inside the object, for evidence ("spec.template.spec").
    spec_path: str

    @property
    def pod_spec(self) -> dict[str, Any]:
        spec = self.template.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def pod_labels(self) -> dict[str, str]:
        meta = self.template.get("metadata")
        labels = meta.get("labels") if isinstance(meta, dict) else None
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    @property
    def namespace(self) -> str | None:
        return self.resource.namespace

    def containers(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(field, container) for init, regular and ephemeral containers."""
        for field in CONTAINER_FIELDS:
            items = self.pod_spec.get(field)
            if isinstance(items, list):
                for container in items:
                    if isinstance(container, dict):
                        yield field, container


def _dig(body: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = body
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def workload_of(resource: Resource) -> Workload | None:
    path = TEMPLATE_PATHS.get(resource.kind)
    if path is None:
        return None
    template = _dig(resource.body, path)
    if template is None:
        return None
    return Workload(resource, template, ".".join((*path, "spec")))


def _found(resources: Iterable[Resource]) -> Iterator[Workload]:
    for resource in resources:
        workload = workload_of(resource)
        if workload is not None:
            yield workload


def _every_workload(inventory: Inventory) -> tuple[Workload, ...]:
    return tuple(_found(inventory.of_kind(*TEMPLATE_PATHS)))


def workloads(inventory: Inventory, namespace: str | None = None) -> Iterator[Workload]:
    """Every pod spec in the inventory. Pods owned by a controller are included too:
    offline sources rarely hold them, and live ones show what really runs. The whole
    list is built once per inventory: most PSS, NetworkPolicy and cost checks walk it."""
    if namespace is None:
        return iter(inventory.derived(_every_workload))
    return _found(inventory.of_kind(*TEMPLATE_PATHS, namespace=namespace))
