"""Render a recipe's Jinja2 templates (and its transform) into repository files.

Templates are data shipped with the tool, but the config feeding them is user input, so
rendering runs in a :class:`~jinja2.sandbox.SandboxedEnvironment` with
:class:`~jinja2.StrictUndefined` (a typo in a template fails loudly instead of writing an
empty field), and every output path is normalised and confined to the repository.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections.abc import Mapping
from typing import Any

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from soma_audit.config import Config
from soma_audit.core.paths import data_path
from soma_audit.kube.inventory import Inventory
from soma_audit.remediation import context as ctx
from soma_audit.remediation import transforms
from soma_audit.remediation.output import RenderedFile, RenderError, safe_path
from soma_audit.remediation.recipes import Recipe

#: The apiVersion each kind is rendered with when the target does not say otherwise:
#: the current upstream version.
DEFAULT_API_VERSIONS: dict[str, str] = {
    "Application": "argoproj.io/v1alpha1",
    "EventBus": "argoproj.io/v1alpha1",
    "EventSource": "argoproj.io/v1alpha1",
    "Sensor": "argoproj.io/v1alpha1",
    "KafkaTopic": "kafka.strimzi.io/v1",
    "KafkaUser": "kafka.strimzi.io/v1",
    "Schedule": "chaos-mesh.org/v1alpha1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}


def _to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML for nesting a structure in a template (first line not indented)."""
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=100).rstrip()
    pad = " " * indent
    return "\n".join((pad + line) if i else line for i, line in enumerate(text.splitlines()))


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False)


def _quote(value: Any) -> str:
    """A double-quoted scalar, valid in YAML, JSON and JavaScript."""
    return json.dumps(str(value), ensure_ascii=False)


def _number(value: float) -> str:
    """A float without binary noise: ``1 - 0.999`` prints as ``0.001``."""
    return f"{value:.10g}"


def _relpath(path: str, start: str) -> str:
    """``path`` relative to the folder of file ``start`` (both repository-relative)."""
    rel = posixpath.relpath(path, posixpath.dirname(start) or ".")
    return rel if rel.startswith(".") else f"./{rel}"


def environment() -> SandboxedEnvironment:
    """The sandboxed template environment over ``manifests/``."""
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(data_path("manifests"))),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(to_yaml=_to_yaml, to_json=_to_json, quote=_quote, number=_number,
                       relpath=_relpath)
    return env


def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    """``services`` or ``config.kafka.topics``: a key of the context, then attributes."""
    head, *rest = dotted.split(".")
    if head not in context:
        raise RenderError(f"for_each: unknown list {dotted!r}")
    value = context[head]
    if isinstance(value, ctx.Unavailable):
        raise RenderError(str(value.error))
    for name in rest:
        if name.startswith("_") or not hasattr(value, name):
            raise RenderError(f"for_each: unknown list {dotted!r}")
        value = getattr(value, name)
    if not isinstance(value, list | tuple):
        raise RenderError(f"for_each: {dotted!r} is not a list")
    return value


def parse_output(path: str, text: str) -> list[dict[str, Any]]:
    """Validate a rendered file's syntax and return its Kubernetes objects."""
    if path.endswith(".json"):
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"{path}: rendered invalid JSON: {exc}") from None
        return []
    if not path.endswith((".yaml", ".yml")):
        return []
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise RenderError(f"{path}: rendered invalid YAML: {exc}") from None
    return [d for d in docs if isinstance(d, dict) and "apiVersion" in d and "kind" in d]


def render(recipe: Recipe, config: Config, inventory: Inventory,
           api_versions: Mapping[str, str] | None = None) -> list[RenderedFile]:
    """Every file of ``recipe``: its templates in order, then its transform's patches."""

    versions = {**DEFAULT_API_VERSIONS, **(api_versions or {})}
    context = ctx.build(config, inventory, versions)
    env = environment()
    files: list[RenderedFile] = []
    for spec in recipe.templates:
        items: list[Any] = list(_lookup(context, spec.for_each)) if spec.for_each else [None]
        try:
            template = env.get_template(spec.template)
            path_template = env.from_string(spec.path)
            for item in items:
                scope = {**context, "item": item}
                path = safe_path(path_template.render(scope))
                text = template.render(scope)
                files.append(RenderedFile(path, text, parse_output(path, text),
                                          merge=spec.merge))
        except (TemplateError, ctx.ContextError) as exc:
            raise RenderError(f"remediation {recipe.id}: template {spec.template}: "
                              f"{exc}") from None
    if recipe.transform is not None:
        function = transforms.TRANSFORMS.get(recipe.transform)
        if function is None:
            raise RenderError(f"remediation {recipe.id}: unknown transform "
                              f"{recipe.transform!r}")
        files += function(config, inventory)
    files = [dataclasses.replace(f, recipe=recipe) for f in files]
    seen: set[tuple[str, bool]] = set()
    for rendered in files:
        key = (rendered.path, rendered.patch)
        if key in seen:
            raise RenderError(f"remediation {recipe.id}: two outputs write {rendered.path}")
        seen.add(key)
    return files
