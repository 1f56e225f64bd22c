"""A GitOps directory: plain YAML/JSON manifests, Helm charts and Kustomize overlays.

Plain files are parsed (multi-document, recursively); charts and kustomizations are
rendered by the real tools (see :mod:`soma_audit.sources.rendering`), never parsed as
manifests: a chart's templates, values and vendored dependencies, and every file below a
kustomization, reach the inventory only through a rendering. An object that is both in a
plain file and rendered is kept once, from the rendering; two renderings of one object
(same group, kind, namespace and name) keep the first. What was rendered, read, skipped
or failed is the inventory's ``sources`` list.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from soma_audit.config import Config
from soma_audit.core.errors import AuditError
from soma_audit.core.fileio import UnreadableFile, read_bytes
from soma_audit.kube.inventory import Inventory, Resource, SourceEntry, SourceProblem
from soma_audit.sources import SourceInfo
from soma_audit.sources.documents import parse_bytes
from soma_audit.sources.rendering import (
    CHART_FILE,
    KUSTOMIZATION_FILES,
    HelmInputs,
    KustomizeInputs,
    Renderer,
    RenderError,
    application_namespace,
    application_sources,
    helm_inputs_of_application,
    inside,
    kinds_in,
    kustomize_overrides,
    regular_file_size,
    yaml_files,
)

_SUFFIXES = (".yaml", ".yml", ".json")
_SKIP_DIRS = {".git", "node_modules", ".venv", "__pycache__"}
#: Names of ignored (non-manifest) files quoted in the sources list.
_SHOWN_IGNORED = 8


@dataclass
class Survey:
    """One walk of the tree: charts, kustomizations and the plain files."""

    charts: list[Path] = field(default_factory=list)
    kustomizations: list[Path] = field(default_factory=list)
    #: (file, below a kustomization: read only to find Argo CD Applications)
    files: list[tuple[Path, bool]] = field(default_factory=list)


def survey(root: Path) -> Survey:
    """Charts, kustomizations and the plain YAML/JSON files under ``root`` (the
    remediation finds objects to edit in the same files the audit reads)."""
    found = Survey()
    kustomized: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        if CHART_FILE in filenames and regular_file_size(here / CHART_FILE) is not None:
            found.charts.append(here)
            dirnames[:] = []  # templates, values and subcharts reach us only rendered
            continue
        if any(name in filenames for name in KUSTOMIZATION_FILES):
            found.kustomizations.append(here)
            kustomized.append(here)
        below = any(k == here or k in here.parents for k in kustomized)
        for name in sorted(filenames):
            if name.endswith(_SUFFIXES) and name not in KUSTOMIZATION_FILES:
                found.files.append((here / name, below))
    return found


def _identity(resource: Resource) -> tuple[str, str, str | None, str]:
    return (resource.group, resource.kind, resource.namespace, resource.name)


def _is_application(resource: Resource) -> bool:
    return resource.kind == "Application" and resource.group == "argoproj.io"


class ManifestsSource:
    """Reads a directory tree; it is also the repository for file-based checks."""

    def __init__(self, directory: str | os.PathLike[str], label: str = "",
                 config: Config | None = None) -> None:
        root = Path(directory)
        if not root.exists():
            raise AuditError(f"manifests directory not found: {root}")
        if not root.is_dir():
            raise AuditError(f"--manifests expects a directory, got a file: {root}")
        self.root = root
        self.config = config or Config()
        self.info = SourceInfo("manifests", str(root), repo=root, label=label or root.name)

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        if not any(self.root.iterdir()):
            raise AuditError(f"manifests directory is empty: {self.root}")
        inventory = Inventory()
        tree = survey(self.root)
        plain, applications, ignored = self._read_files(tree, inventory)
        renderer = Renderer(self.root, self.config)
        rendered = self._render(renderer, tree, applications, inventory)
        seen = {_identity(r) for r in rendered}
        kept = [r for r in plain if _identity(r) not in seen]
        inventory.add_all(rendered)
        inventory.add_all(kept)
        inventory.sources.insert(0, self._files_entry(tree, plain, kept, ignored))
        return inventory

    def _read_files(self, survey: Survey, inventory: Inventory
                    ) -> tuple[list[Resource], list[Resource], list[str]]:
        """(plain objects, Argo CD Applications anywhere, files without any object)."""
        plain: list[Resource] = []
        applications: list[Resource] = []
        ignored: list[str] = []
        for path, below_kustomization in survey.files:
            where = path.relative_to(self.root).as_posix()
            try:
                data = self._read(path)
            except UnreadableFile as exc:
                inventory.problems.append(SourceProblem(where, str(exc)))
                continue
            parsed = parse_bytes(data, where)
            applications += [r for r in parsed.resources if _is_application(r)]
            if below_kustomization:
                continue  # its objects come from the kustomize build
            plain += parsed.resources
            inventory.problems.extend(parsed.problems)
            if parsed.ignored and not parsed.resources and not parsed.problems:
                ignored.append(where)
        return plain, applications, ignored

    def _read(self, path: Path) -> bytes:
        """A regular file inside the repository, read with the bounded reader (a FIFO, a
        device, an oversized file or a link leading out of the repository is refused)."""
        if inside(self.root.resolve(), path) is None:
            raise UnreadableFile("a symbolic link leading out of the repository, not read")
        return read_bytes(path)

    def _files_entry(self, survey: Survey, plain: list[Resource], kept: list[Resource],
                     ignored: list[str]) -> SourceEntry:
        read = sum(not below for _, below in survey.files) - len(ignored)
        detail = f"{read} files read as manifests"
        if ignored:
            shown = ", ".join(ignored[:_SHOWN_IGNORED])
            more = f" and {len(ignored) - _SHOWN_IGNORED} more" if len(ignored) > _SHOWN_IGNORED \
                else ""
            detail += (f"; {len(ignored)} files without Kubernetes objects ignored "
                       f"(not manifests): {shown}{more}")
        if len(plain) > len(kept):
            detail += (f"; {len(plain) - len(kept)} objects also rendered from a chart or "
                       "overlay, reported once, from the rendering")
        return SourceEntry("files", ".", "read", detail, objects=len(kept))

    def _plan(self, renderer: Renderer, survey: Survey, applications: list[Resource],
              inventory: Inventory) -> list[HelmInputs | KustomizeInputs]:
        """Which renderings to run, in order: charts, then kustomizations."""
        charts = {c.resolve(): c for c in survey.charts}
        kustomizations = {k.resolve(): k for k in survey.kustomizations}
        by_chart: dict[Path, list[HelmInputs]] = {}
        by_overlay: dict[Path, list[KustomizeInputs]] = {}
        for app in applications:
            via = f"Application/{app.namespace}/{app.name}" if app.namespace else \
                f"Application/{app.name}"
            for source in application_sources(app):
                target = self._application_target(source, via, inventory)
                if target is None:
                    continue
                if target in charts:
                    by_chart.setdefault(target, []).append(
                        helm_inputs_of_application(renderer, target, app, source))
                elif target in kustomizations:
                    namespace = application_namespace(app, "")
                    by_overlay.setdefault(target, []).append(KustomizeInputs(
                        renderer.relative(target), namespace, via, kustomize_overrides(source)))
                else:
                    inventory.sources.append(SourceEntry(
                        "application", renderer.relative(target), "read",
                        "plain directory: its files are read as manifests", via))
        for index, entry in enumerate(self.config.helm.charts):
            target = inside(self.root.resolve(), self.root / entry.path)
            if target not in charts:
                inventory.sources.append(SourceEntry(
                    "helm", entry.path, "failed", f"no {CHART_FILE} at this path",
                    f"config helm.charts[{index}]"))
                inventory.problems.append(SourceProblem(
                    f"config helm.charts[{index}]", f"no chart at {entry.path}"))
        plan: list[HelmInputs | KustomizeInputs] = []
        parents: dict[Path, list[str]] = {}
        for resolved in charts:
            for dependency in renderer.local_dependencies(resolved):
                parents.setdefault(dependency, []).append(renderer.relative(resolved))
        for resolved, chart in charts.items():
            chosen = renderer.configured_helm(chart) or by_chart.get(resolved)
            if not chosen and resolved in parents:
                inventory.sources.append(SourceEntry(
                    "helm", renderer.relative(chart), "skipped",
                    f"dependency of {', '.join(parents[resolved])}: rendered through it"))
            elif not chosen and renderer.is_library(chart):
                inventory.sources.append(SourceEntry(
                    "helm", renderer.relative(chart), "skipped",
                    "library chart: renders nothing on its own"))
            else:
                plan += chosen or [renderer.default_helm(chart)]
        bases: dict[Path, list[str]] = {}
        for resolved in kustomizations:
            for base in renderer.kustomize_references(resolved):
                bases.setdefault(base, []).append(renderer.relative(resolved))
        for resolved in kustomizations:
            if resolved in by_overlay:
                plan += by_overlay[resolved]
            elif resolved in bases:
                inventory.sources.append(SourceEntry(
                    "kustomize", renderer.relative(resolved), "skipped",
                    f"base of {', '.join(bases[resolved])}: built only through them"))
            else:
                plan.append(KustomizeInputs(renderer.relative(resolved)))
        return plan

    def _application_target(self, source: dict[str, object], via: str,
                            inventory: Inventory) -> Path | None:
        """The repository directory an Application source points at, or None (listed)."""
        if source.get("chart"):
            inventory.sources.append(SourceEntry(
                "application", str(source.get("repoURL", "")), "skipped",
                f"chart {source['chart']} {source.get('targetRevision', '')} from a Helm "
                "repository: not in this repository".replace("  ", " "), via))
            return None
        path = source.get("path")
        if not isinstance(path, str):
            return None  # a values-only source (`ref:`) of a multi-source Application
        target = inside(self.root.resolve(), self.root / path)
        if target is None or not target.is_dir():
            inventory.sources.append(SourceEntry(
                "application", path, "skipped", "path not found in this repository", via))
            return None
        return target

    def _render(self, renderer: Renderer, survey: Survey, applications: list[Resource],
                inventory: Inventory) -> list[Resource]:
        rendered: list[Resource] = []
        seen: set[tuple[str, str, str | None, str]] = set()
        plan = self._plan(renderer, survey, applications, inventory)
        for inputs, objects in zip(plan, renderer.render_all(plan), strict=True):
            tool = "helm" if isinstance(inputs, HelmInputs) else "kustomize"
            path = inputs.chart if isinstance(inputs, HelmInputs) else inputs.path
            if isinstance(objects, RenderError):
                self._failed(renderer, tool, path, inputs.via, objects, inventory)
                continue
            fresh = [r for r in objects if _identity(r) not in seen]
            seen.update(_identity(r) for r in fresh)
            rendered += fresh
            detail = objects[0].rendered.describe() if objects and objects[0].rendered else \
                "rendered nothing"
            if isinstance(inputs, HelmInputs) and inputs.notes:
                detail += "; " + "; ".join(inputs.notes)
            if isinstance(inputs, KustomizeInputs) and inputs.overrides:
                detail += "; with the Application's kustomize overrides"
            if len(fresh) < len(objects):
                detail += (f"; {len(objects) - len(fresh)} objects also rendered by an "
                           "earlier source, counted once")
            inventory.sources.append(
                SourceEntry(tool, path, "rendered", detail, inputs.via, len(fresh)))
        return rendered

    def _failed(self, renderer: Renderer, tool: str, path: str, via: str, exc: RenderError,
                inventory: Inventory) -> None:
        """A rendering that failed: listed, a source problem, and the kinds it would have
        produced unavailable, so the checks reading them say `error` (never a silent skip)."""
        message = str(exc)
        inventory.sources.append(SourceEntry(tool, path, "failed", message, via))
        inventory.problems.append(
            SourceProblem(path, message, unevaluable=exc.tool_missing))
        directory = self.root / path
        if tool == "helm":
            files: list[Path] = list(yaml_files(directory / "templates"))
        else:
            files = list(self._overlay_files(renderer, directory.resolve(), set()))
        for kind in sorted(kinds_in(files)):
            reason = f"{tool} {path} not rendered: {message}"
            previous = inventory.unavailable.get(kind)
            inventory.unavailable[kind] = f"{previous}; {reason}" if previous else reason

    def _overlay_files(self, renderer: Renderer, directory: Path,
                       visited: set[Path]) -> Iterator[Path]:
        if directory in visited:
            return
        visited.add(directory)
        yield from yaml_files(directory)
        for base in renderer.kustomize_references(directory):
            yield from self._overlay_files(renderer, base, visited)
