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

from soma_audit.kube.inventory import Resource, SourceProblem

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOC_START = re.compile(r"^---(?=\s|$)", re.MULTILINE)
#: Top-level ``apiVersion:``/``kind:`` keys in YAML text (column 0), and in JSON text.
_YAML_KEY = {key: re.compile(rf"^[\"']?{key}[\"']?[ \t]*:", re.MULTILINE)
             for key in ("apiVersion", "kind")}
_JSON_KEY = {key: re.compile(rf'"{key}"\s*:') for key in ("apiVersion", "kind")}

#: Files above this size are not parsed (a GitOps manifest is never this large).
MAX_FILE_BYTES = 32 * 1024 * 1024
#: Nodes that aliases (``*a``, ``<<: *a``) may add to a document once expanded: far above
#: any real manifest, far below a "billion laughs" document.
MAX_ALIAS_NODES = 1_000_000


class UnsafeYAMLError(yaml.MarkedYAMLError):
    """A document that is valid YAML but refused: an alias bomb, a recursive alias, too deep."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly below ``node`` (an alias is the very node it names)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_expansion(root: yaml.Node, budget: int = MAX_ALIAS_NODES) -> None:
    """Raise :class:`UnsafeYAMLError` when aliases expand ``root`` by more than ``budget``
    nodes or refer to themselves; linear in the distinct nodes (iterative, no recursion)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = size
            if size - len(sizes) > budget:
                raise UnsafeYAMLError(
                    problem=f"aliases expand the document by more than {budget:,} nodes "
                    "(a YAML alias bomb?)", problem_mark=node.start_mark)
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise UnsafeYAMLError(problem="recursive alias (a node that contains itself)",
                                      problem_mark=child.start_mark)
            if id(child) not in sizes:
                stack.append((child, False))


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` of one document, bounded: the node graph is checked for alias
    expansion before any Python object is built. Raises ``yaml.YAMLError`` only."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node)
        return loader.construct_document(node)
    except RecursionError:
        raise UnsafeYAMLError(problem="nested too deep") from None
    finally:
        loader.dispose()


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


def _chunks(text: str) -> Iterator[tuple[int, str]]:
    """Split a YAML stream at ``---`` markers, yielding (first line number, text)."""
    start = 0
    line = 1
    for match in _DOC_START.finditer(text):
        chunk = text[start : match.start()]
        yield line, chunk
        line += chunk.count("\n")
        start = match.end()
    yield line, text[start:]


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
    mark = getattr(exc, "problem_mark", None)
    line = first_line + (mark.line if mark else 0)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return SourceProblem(f"{where}:{line}", f"invalid YAML: {problem}")


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
        except RecursionError:
            problems.append(SourceProblem(where, "invalid JSON: nested too deep"))
        else:
            found = list(_flatten(doc, f"{where}:1"))
            resources.extend(found)
            ignored += not found
        return Parsed(resources, problems, ignored)
    for first_line, chunk in _chunks(text):
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
