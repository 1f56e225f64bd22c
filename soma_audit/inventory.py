"""One indexed inventory of Kubernetes objects, whatever the source they came from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resource:
    """A Kubernetes object as plain data, with where it was found (file:line or cluster)."""

    body: dict[str, Any]
    origin: str = ""

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str | None:
        ns = self.metadata.get("namespace")
        return str(ns) if ns else None

    @property
    def labels(self) -> dict[str, str]:
        labels = self.metadata.get("labels")
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped): the evidence key."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class SourceProblem:
    """A file or resource kind the source could not read; reported, never fatal."""

    where: str
    message: str
    skipped: bool = False


@dataclass
class Inventory:
    """Objects indexed by kind, plus what could not be read and why."""

    problems: list[SourceProblem] = field(default_factory=list)
    #: kind → reason, for kinds that could not be fetched (forbidden, timed out, ...)
    unavailable: dict[str, str] = field(default_factory=dict)
    #: kind → reason, for kinds whose API is not served (the product is not installed)
    absent: dict[str, str] = field(default_factory=dict)
    _by_kind: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Inventory:
        inventory = cls()
        inventory.add_all(resources)
        return inventory

    def add_all(self, resources: Iterable[Resource]) -> None:
        for resource in resources:
            self._by_kind[resource.kind].append(resource)

    def of_kind(self, *kinds: str, namespace: str | None = None) -> list[Resource]:
        """All objects of the given kinds, optionally in one namespace, in source order."""
        found = [r for kind in kinds for r in self._by_kind.get(kind, ())]
        if namespace is not None:
            found = [r for r in found if r.namespace == namespace]
        return found

    def get(self, kind: str, name: str, namespace: str | None = None) -> Resource | None:
        return next(
            (r for r in self._by_kind.get(kind, ()) if r.name == name and r.namespace == namespace),
            None,
        )

    def namespaces(self) -> set[str]:
        """Every namespace named by an object or declared by a Namespace object."""
        names = {r.name for r in self.of_kind("Namespace")}
        names.update(r.namespace for rs in self._by_kind.values() for r in rs if r.namespace)
        return names

    def __iter__(self) -> Iterator[Resource]:
        for resources in self._by_kind.values():
            yield from resources

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_kind.values())

    @property
    def kinds(self) -> set[str]:
        return {k for k, v in self._by_kind.items() if v}
