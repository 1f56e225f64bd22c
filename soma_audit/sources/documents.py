"""Parsing YAML/JSON text into Kubernetes objects, one document at a time.

A broken document is reported with its file and line and does not hide its neighbours.
A document without ``apiVersion`` and ``kind`` (package.json, tsconfig, docker-compose, CI
workflows, Helm values, OpenAPI specs) is not a Kubernetes manifest: it is counted as
ignored, and when it does not even parse (JSON with comments) it is ignored too, unless
its text shows manifest keys (:func:`looks_like_manifest`) — a manifest that is broken.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from soma_audit.core.fileio import MAX_FILE_BYTES
from soma_audit.core.yamlload import (
    MAX_DEPTH,
    UnsafeYAMLError,
    chunks,
    error_line,
    error_problem,
    json_depth_ok,
    safe_load,
)
from soma_audit.kube.inventory import Resource, SourceProblem

#: Top-level ``apiVersion:``/``kind:`` keys in YAML text (column 0), and in JSON text.
_YAML_KEY = {key: re.compile(rf"^[\"']?{key}[\"']?[ \t]*:", re.MULTILINE)
             for key in ("apiVersion", "kind")}
_JSON_KEY = {key: re.compile(rf'"{key}"\s*:') for key in ("apiVersion", "kind")}

@dataclass(frozen=True)
class Parsed:
    resources: list[Resource]
    problems: list[SourceProblem]
    #: Documents that are not Kubernetes objects (no apiVersion and kind), not errors.
    ignored: int = 0


def looks_like_manifest(text: str, json_text: bool = False) -> bool:
    """Whether unparseable text still looks like a manifest: a top-level ``apiVersion`` or
    ``kind`` key in YAML (no compose file, workflow or values file has one), both keys in
    JSON (where nesting cannot be told without parsing)."""
    if json_text:
        return all(pattern.search(text) for pattern in _JSON_KEY.values())
    return any(pattern.search(text) for pattern in _YAML_KEY.values())


def _leading_blank_lines(chunk: str) -> int:
    """Lines before a document's content (blank or comments), so origins point at it."""
    for index, text in enumerate(chunk.split("\n")):
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            return index
    return 0


def _is_object(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("kind"), str) and "apiVersion" in doc


def _flatten(doc: Any, origin: str) -> Iterator[Resource]:
    """Yield the Kubernetes objects in ``doc``; ``kind: *List`` is unwrapped."""
    if not _is_object(doc):
        return
    items = doc.get("items")
    if doc["kind"].endswith("List") and isinstance(items, list):
        for item in items:
            yield from _flatten(item, origin)
    else:
        yield Resource(doc, origin)


def _refused(exc: yaml.YAMLError) -> bool:
    """Input refused as hostile (alias bomb, nesting too deep): a problem whatever it is."""
    return isinstance(exc, UnsafeYAMLError) or "nesting depth" in str(getattr(exc, "problem", ""))


def _yaml_error(exc: yaml.YAMLError, where: str, first_line: int) -> SourceProblem:
    line = first_line + (error_line(exc) or 1) - 1
    return SourceProblem(f"{where}:{line}", f"invalid YAML: {error_problem(exc)}")


def parse_text(text: str, where: str, strict: bool = False) -> Parsed:
    """Parse a YAML (or JSON) stream; ``where`` names the file for origins and problems.

    ``strict``: every document is meant to be a manifest (a cluster dump, a renderer's
    output), so one that does not parse is a problem even without apiVersion and kind.
    """
    resources: list[Resource] = []
    problems: list[SourceProblem] = []
    ignored = 0
    if where.endswith(".json"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            if not strict and not looks_like_manifest(text, json_text=True):
                return Parsed([], [], 1)
            problems.append(SourceProblem(f"{where}:{exc.lineno}", f"invalid JSON: {exc.msg}"))
        except (RecursionError, ValueError):
            problems.append(SourceProblem(where, "invalid JSON: nested too deep or a number "
                                          "too large"))
        else:
            if not json_depth_ok(doc):
                problems.append(SourceProblem(where, f"invalid JSON: nested more than "
                                              f"{MAX_DEPTH} deep"))
                return Parsed(resources, problems, ignored)
            found = list(_flatten(doc, f"{where}:1"))
            resources.extend(found)
            ignored += not found
        return Parsed(resources, problems, ignored)
    for first_line, chunk in chunks(text):
        if not chunk.strip():
            continue
        try:
            doc = safe_load(chunk)
        except yaml.YAMLError as exc:
            if strict or looks_like_manifest(chunk) or _refused(exc):
                problems.append(_yaml_error(exc, where, first_line))
            else:
                ignored += 1
            continue
        if doc is None:
            continue
        line = first_line + _leading_blank_lines(chunk)
        found = list(_flatten(doc, f"{where}:{line}"))
        resources.extend(found)
        ignored += not found
    return Parsed(resources, problems, ignored)


def parse_bytes(data: bytes, where: str, strict: bool = False) -> Parsed:
    """Decode and parse a file's bytes; binary or oversized content is a problem, not a crash."""
    if len(data) > MAX_FILE_BYTES:
        return Parsed([], [SourceProblem(where, f"larger than {MAX_FILE_BYTES} bytes, not read")])
    if b"\x00" in data:
        return Parsed([], [SourceProblem(where, "binary file, not YAML or JSON")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Parsed([], [SourceProblem(where, f"not UTF-8 text (byte {exc.start})")])
    return parse_text(text, where, strict)
