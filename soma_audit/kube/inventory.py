"""One indexed inventory of Kubernetes objects, whatever the source they came from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rendering:
    """How a rendered object was produced: which tool rendered which chart or overlay of
    the repository, with which inputs. Remediation reads it to know that the object's
    file is generated (a fix belongs in the values or the overlay, never in the output).
    """

    #: ``helm`` or ``kustomize``.
    tool: str
    #: The chart or kustomization directory, relative to the repository root.
    path: str
    #: Helm: the release name; Kustomize: "".
    release: str = ""
    #: The namespace rendered into (helm ``--namespace``, Argo CD's destination).
    namespace: str = ""
    #: Value files in the order applied, relative to the repository root (Helm only).
    values: tuple[str, ...] = ()
    #: What chose these inputs: ``Application/<ns>/<name>``, ``config helm.charts[i]`` or
    #: ``defaults`` (the chart's own values into the configured namespace).
    via: str = "defaults"

    def describe(self) -> str:
        """One line for evidence: ``helm k8s/helm/soma (release r, namespace n, values
        values.yaml, values-dev.yaml; Application/argocd/soma-dev)``."""
        parts = []
        if self.release:
            parts.append(f"release {self.release}")
        if self.namespace:
            parts.append(f"namespace {self.namespace}")
        if self.tool == "helm":
            parts.append("values " + (", ".join(self.values) or "chart defaults"))
        inputs = ", ".join(parts)
        via = "chart/overlay defaults" if self.via == "defaults" else self.via
        return f"{self.tool} {self.path} ({inputs}; {via})" if inputs else \
            f"{self.tool} {self.path} ({via})"


@dataclass(frozen=True, slots=True)
class Resource:
    """A Kubernetes object as plain data, with where it was found (file:line or cluster).

    Its identity (kind, name, namespace) is read once, when it is wrapped: probes ask for
    it millions of times in a large cluster. Bodies are never mutated in place (writers
    deep-copy them first), so the copies cannot go stale. Slots keep tens of thousands of
    these small.
    """

    body: dict[str, Any]
    #: ``file:line`` of a plain manifest; for a rendered object the template file (Helm's
    #: ``# Source:``) or the kustomization file, relative to the repository root.
    origin: str = ""
    #: Set when the object was rendered from a chart or an overlay, None for plain files.
    rendered: Rendering | None = None
    kind: str = field(init=False, repr=False, compare=False)
    name: str = field(init=False, repr=False, compare=False)
    namespace: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        meta = self.body.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        namespace = meta.get("namespace")
        object.__setattr__(self, "kind", str(self.body.get("kind", "")))
        object.__setattr__(self, "name", str(meta.get("name", "")))
        object.__setattr__(self, "namespace", str(namespace) if namespace else None)

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
    #: The source could not be evaluated at all (its renderer is not installed).
    unevaluable: bool = False


@dataclass(frozen=True)
class SourceEntry:
    """One line of the report's "sources" list: a chart, an overlay, an Argo CD
    Application source or the plain files, and what became of it."""

    #: ``helm``, ``kustomize``, ``application`` or ``files``.
    kind: str
    path: str
    #: ``rendered``, ``read``, ``skipped`` or ``failed``.
    status: str
    detail: str = ""
    #: What chose the inputs (see :attr:`Rendering.via`).
    via: str = ""
    objects: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "status": self.status,
                "via": self.via, "objects": self.objects, "detail": self.detail}


@dataclass
class Inventory:
    """Objects indexed by kind, plus what could not be read and why."""

    problems: list[SourceProblem] = field(default_factory=list)
    #: What a repository source rendered, read, skipped or failed (manifests mode only).
    sources: list[SourceEntry] = field(default_factory=list)
    #: kind → reason, for kinds that could not be fetched (forbidden, timed out, ...)
    unavailable: dict[str, str] = field(default_factory=dict)
    #: kind → reason, for kinds whose API is not served (the product is not installed)
    absent: dict[str, str] = field(default_factory=dict)
    _by_kind: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))
    #: (kind, namespace) → objects, and per kind (namespace, name) → first object: built
    #: on first use (by name: only for the kinds looked up), dropped when objects are added.
    #: Probes look up per namespace and by name in loops; a scan of every object per lookup
    #: is quadratic in a large cluster.
    _by_namespace: dict[tuple[str, str | None], list[Resource]] | None = field(
        default=None, repr=False, compare=False)
    _by_name: dict[str, dict[tuple[str | None, str], Resource]] = field(
        default_factory=dict, repr=False, compare=False)
    _derived: dict[Callable[[Inventory], Any], Any] = field(
        default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Inventory:
        inventory = cls()
        inventory.add_all(resources)
        return inventory

    def add_all(self, resources: Iterable[Resource]) -> None:
        for resource in resources:
            self._by_kind[resource.kind].append(resource)
        self._by_namespace = None
        self._by_name.clear()
        self._derived.clear()

    def derived(self, view: Callable[[Inventory], T]) -> T:
        """``view(self)``, computed once per inventory (again after objects are added).

        For read-only views several checks derive from the same objects (parsed network
        policies, pod specs, Chaos Mesh schedules): a view must be immutable — a tuple of
        frozen objects — since every caller shares it. Concurrent first calls may both
        compute it; they compute the same thing.
        """
        if view not in self._derived:
            self._derived[view] = view(self)
        return self._derived[view]

    def _namespace_index(self) -> dict[tuple[str, str | None], list[Resource]]:
        if self._by_namespace is None:
            index: dict[tuple[str, str | None], list[Resource]] = defaultdict(list)
            for kind, resources in self._by_kind.items():
                for resource in resources:
                    index[(kind, resource.namespace)].append(resource)
            self._by_namespace = dict(index)
        return self._by_namespace

    def of_kind(self, *kinds: str, namespace: str | None = None) -> list[Resource]:
        """All objects of the given kinds, optionally in one namespace, in source order."""
        if namespace is None:
            return [r for kind in kinds for r in self._by_kind.get(kind, ())]
        index = self._namespace_index()
        return [r for kind in kinds for r in index.get((kind, namespace), ())]

    def get(self, kind: str, name: str, namespace: str | None = None) -> Resource | None:
        index = self._by_name.get(kind)
        if index is None:
            index = {}
            for resource in self._by_kind.get(kind, ()):
                index.setdefault((resource.namespace, resource.name), resource)
            self._by_name[kind] = index
        return index.get((namespace, name))

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
