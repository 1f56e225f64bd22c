"""Fixes for objects rendered from a chart or an overlay: never written into the output.

A recipe's target object that came from a rendering (``Resource.rendered`` is set) has no
file of its own: its manifest is generated. Writing the fix into a template or into
rendered output would be lost (or break the chart) on the next render, so this module
turns "the object should look like ``desired``" into something the team can adopt:

- **Kustomize**: a strategic-merge patch file in the overlay (only the fields that change;
  list items keyed by ``name`` as Kubernetes merges containers) and the overlay's
  kustomization listing it under ``patches:``. With a renderer, the edited overlay is built
  with the real ``kustomize`` in a scratch copy first: a patch that does not produce the
  wanted fields is refused, never offered.
- **Helm**: refused with the reason — which chart, template and value files produced the
  object — because whether a chart exposes a field as a value is the chart's to say, and
  Helm 4 runs post-renderers only as plugins.

Narrow interface for the remediation engine: :func:`propose(resource, desired, root,
renderer=None)` → :class:`RenderedFix` (file edits with unified diffs, or a refusal).
"""

from __future__ import annotations

import difflib
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from soma_audit.kube.inventory import Resource
from soma_audit.sources.rendering import (
    KustomizeInputs,
    Renderer,
    RenderError,
    kustomization_file,
)

_PATCHES_KEY = re.compile(r"^patches:[ \t]*(#.*)?$", re.MULTILINE)


@dataclass(frozen=True)
class FileEdit:
    """One repository file as it is (None: new) and as the fix leaves it."""

    path: str
    before: str | None
    after: str

    @property
    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            (self.before or "").splitlines(keepends=True), self.after.splitlines(keepends=True),
            fromfile=f"a/{self.path}" if self.before is not None else "/dev/null",
            tofile=f"b/{self.path}"))


@dataclass(frozen=True)
class RenderedFix:
    """What to offer for a rendered object: edits (with their diffs), or why not."""

    resource: str
    edits: list[FileEdit] = field(default_factory=list)
    refusal: str = ""
    note: str = ""

    @property
    def diff(self) -> str:
        return "".join(edit.diff for edit in self.edits)


def merge_patch(current: Any, desired: Any) -> Any:
    """The strategic-merge patch turning ``current`` into ``desired``: changed keys only;
    lists whose items all have a ``name`` are merged per name (as containers, ports and
    volumes are); other lists are replaced; a key ``desired`` drops becomes null."""
    if isinstance(current, dict) and isinstance(desired, dict):
        patch = {}
        for key, value in desired.items():
            if key not in current:
                patch[key] = value
            elif current[key] != value:
                patch[key] = merge_patch(current[key], value)
        patch.update({key: None for key in current if key not in desired})
        return patch
    if _named_list(current) and _named_list(desired):
        by_name = {item["name"]: item for item in current}
        items = []
        for item in desired:
            before = by_name.get(item["name"])
            if before is None:
                items.append(item)
            elif before != item:
                items.append({"name": item["name"], **merge_patch(before, item)})
        return items
    return desired


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in value)


def _patch_name(resource: Resource) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", f"{resource.kind}-{resource.name}".lower()).strip("-")
    return f"soma-audit-{slug}.yaml"


def _with_patch_listed(text: str, patch_file: str) -> str | None:
    """The kustomization's text with ``- path: patch_file`` added at the end of its block
    ``patches:`` list (everything else byte for byte), or a ``patches:`` key appended when
    there is none; None when ``patches:`` is written in flow style (``patches: [...]``)."""
    entry = f"- path: {patch_file}\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _PATCHES_KEY.match(line)), None)
    if start is None:
        if any(line.startswith("patches:") for line in lines):
            return None
        tail = "" if text.endswith("\n") or not text else "\n"
        return f"{text}{tail}patches:\n  {entry}"
    last, indent = start, "  "
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith((" ", "\t", "-")):
            break
        if line.lstrip().startswith("- "):
            indent = line[: len(line) - len(line.lstrip())]
        last = index
    if not lines[last].endswith("\n"):
        lines[last] += "\n"
    lines.insert(last + 1, f"{indent}{entry}")
    return "".join(lines)


def propose(resource: Resource, desired: dict[str, Any], root: Path,
            renderer: Renderer | None = None) -> RenderedFix:
    """The fix to offer for ``resource`` (rendered) so that it becomes ``desired``."""
    rendering = resource.rendered
    if rendering is None:
        raise ValueError(f"{resource.ref} is not rendered: remediate its file directly")
    if rendering.tool == "helm":
        values = ", ".join(rendering.values) or "the chart's defaults"
        return RenderedFix(resource.ref, refusal=(
            f"{resource.ref} is rendered by Helm chart {rendering.path} from "
            f"{resource.origin} ({rendering.via}; values {values}): soma-audit does not "
            "write into templates or rendered output. Set the value the chart exposes for "
            "this field in one of those value files (or change the template), then audit "
            "again."))
    return _kustomize_patch(resource, desired, root, renderer)


def _kustomize_patch(resource: Resource, desired: dict[str, Any], root: Path,
                     renderer: Renderer | None) -> RenderedFix:
    rendering = resource.rendered
    assert rendering is not None
    overlay = root / rendering.path
    kustomization = kustomization_file(overlay)
    if kustomization is None:
        return RenderedFix(resource.ref, refusal=f"{rendering.path} has no kustomization file")
    body = merge_patch(resource.body, desired)
    if not body:
        return RenderedFix(resource.ref, note=f"{resource.ref} already looks as wanted")
    changed_meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    metadata = {k: v for k, v in changed_meta.items() if k not in ("name", "namespace")}
    patch = {"apiVersion": resource.api_version, "kind": resource.kind,
             "metadata": {"name": resource.name, **metadata},
             **{k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}}
    name = _patch_name(resource)
    header = (f"# soma-audit: strategic-merge patch for {resource.ref}, listed in "
              f"{kustomization.name} `patches:`.\n")
    patch_path = overlay / name
    before_patch = patch_path.read_text() if patch_path.is_file() else None
    edits = [FileEdit(f"{rendering.path}/{name}", before_patch,
                      header + yaml.safe_dump(patch, sort_keys=False))]
    text = kustomization.read_text()
    if f"path: {name}" not in text:
        listed = _with_patch_listed(text, name)
        if listed is None:
            return RenderedFix(resource.ref, refusal=(
                f"{rendering.path}/{kustomization.name} writes `patches:` in flow style: add "
                f"`- path: {name}` to it by hand"))
        edits.append(FileEdit(f"{rendering.path}/{kustomization.name}", text, listed))
    if renderer is not None:
        problem = _verify(resource, desired, root, edits, renderer)
        if problem:
            return RenderedFix(resource.ref, refusal=problem)
    return RenderedFix(resource.ref, edits, note=(
        f"{resource.ref} is built by kustomize from {rendering.path}: the fix is a patch "
        "in the overlay, not an edit of the base or of the build output"))


def _verify(resource: Resource, desired: dict[str, Any], root: Path, edits: list[FileEdit],
            renderer: Renderer) -> str:
    """Build the overlay with the edits in a scratch copy; "" when the object then carries
    every field of ``desired``, else why the patch is refused."""
    rendering = resource.rendered
    assert rendering is not None
    with tempfile.TemporaryDirectory(prefix="soma-audit-patch-") as scratch:
        copy = Path(scratch) / "repo"
        shutil.copytree(root, copy, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "node_modules"))
        for edit in edits:
            (copy / edit.path).write_text(edit.after)
        trial = Renderer(copy, renderer.config)
        try:
            built = trial.render_kustomize(KustomizeInputs(rendering.path, rendering.namespace,
                                                           rendering.via))
        except RenderError as exc:
            return f"the patch for {resource.ref} does not build: {exc}"
    match = next((r for r in built if r.kind == resource.kind and r.name == resource.name
                  and r.namespace == resource.namespace), None)
    if match is None:
        return f"the patched overlay {rendering.path} no longer renders {resource.ref}"
    if _subset(desired, match.body):
        return ""
    return (f"the patch for {resource.ref} does not give the wanted fields after "
            f"`kustomize build {rendering.path}`")


def _subset(wanted: Any, got: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(got, dict) and all(
            (value is None and key not in got) or (key in got and _subset(value, got[key]))
            for key, value in wanted.items())
    if _named_list(wanted) and _named_list(got):
        found = {item["name"]: item for item in got}
        return all(item["name"] in found and _subset(item, found[item["name"]])
                   for item in wanted)
    return bool(wanted == got)

