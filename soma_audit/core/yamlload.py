"""Loading YAML and JSON that may be hostile: every document is bounded before any Python
object is built (alias expansion, nesting depth, plain tags only, scalars their tag can
hold), and errors name the line without quoting the input.

Everything the tool reads from users' files goes through here: manifests, snapshots,
configs, catalogs, attestations, repository data files, and the editor of remediations.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import yaml

from soma_audit.core.errors import ConfigError
from soma_audit.core.fileio import UnreadableFile, read_text

#: The fastest safe loader available (libyaml when installed).
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DOC_START = re.compile(r"^---(?=\s|$)", re.MULTILINE)

#: Nodes that aliases (``*a``, ``<<: *a``) may add to a document once expanded: far above
#: any real manifest, far below a "billion laughs" document.
MAX_ALIAS_NODES = 1_000_000
#: Collections nested deeper than this are refused (a CRD schema nests about 30 deep).
MAX_DEPTH = 200
#: The only tags a document may carry: plain data. ``!!binary``, ``!!set``, ``!!omap`` and
#: any custom tag are refused (no Kubernetes object uses them, and they build other types).
_CORE = "tag:yaml.org,2002:"
SAFE_TAGS = frozenset(_CORE + t for t in (
    "null", "bool", "int", "float", "str", "timestamp", "seq", "map", "merge", "value"))
#: Keys with a meaning in the mapping (``<<``, ``=``), not values built on their own.
_STRUCTURAL = frozenset({_CORE + "merge", _CORE + "value"})


class UnsafeYAMLError(yaml.MarkedYAMLError):
    """A document that is valid YAML but refused: an alias bomb, a recursive alias, too deep."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly below ``node`` (an alias is the very node it names)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_scalar(loader: Any, node: yaml.ScalarNode) -> None:
    """Build one scalar now, so a value its tag cannot hold (``2024-13-45``, ``!!int abc``,
    an integer of more than 4,300 digits) is a marked error; the result is cached for
    :meth:`construct_document`."""
    try:
        loader.construct_object(node)
    except Exception:  # PyYAML's constructors fail in many ways (ValueError, AttributeError)
        kind = node.tag.removeprefix(_CORE)
        raise UnsafeYAMLError(problem=f"a value that is not a valid {kind}",
                              problem_mark=node.start_mark) from None


def check_graph(root: yaml.Node, loader: Any, budget: int = MAX_ALIAS_NODES) -> None:
    """Raise :class:`UnsafeYAMLError` when aliases expand ``root`` by more than ``budget``
    nodes or refer to themselves, when it nests deeper than :data:`MAX_DEPTH`, carries a
    tag outside :data:`SAFE_TAGS` or a scalar its tag cannot hold (built with ``loader``);
    linear in the distinct nodes (iterative, no recursion)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, done, depth = stack.pop()
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
        if depth > MAX_DEPTH:
            raise UnsafeYAMLError(problem=f"nested more than {MAX_DEPTH} deep",
                                  problem_mark=node.start_mark)
        if node.tag not in SAFE_TAGS:
            raise UnsafeYAMLError(problem="a tag outside the plain YAML types",
                                  problem_mark=node.start_mark)
        if isinstance(node, yaml.ScalarNode) and node.tag not in _STRUCTURAL:
            _check_scalar(loader, node)
        on_path.add(key)
        stack.append((node, True, depth))
        for child in _children(node):
            if id(child) in on_path:
                raise UnsafeYAMLError(problem="recursive alias (a node that contains itself)",
                                      problem_mark=child.start_mark)
            if id(child) not in sizes:
                stack.append((child, False, depth + 1))


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` of one document, bounded: the node graph is checked for alias
    expansion before any Python object is built. Raises ``yaml.YAMLError`` only."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_graph(node, loader)
        return loader.construct_document(node)
    except (ValueError, OverflowError, TypeError):
        raise UnsafeYAMLError(problem="a value its type cannot hold") from None
    except RecursionError:
        raise UnsafeYAMLError(problem="nested too deep") from None
    finally:
        loader.dispose()


def safe_load_all(text: str) -> list[Any]:
    """Every document of a YAML stream, each through :func:`safe_load`'s bounds."""
    return [safe_load(chunk) for _, chunk in chunks(text) if chunk.strip()]


def load_json(text: str | bytes) -> Any:
    """``json.loads`` bounded: any refusal (syntax, a number of more than 4,300 digits,
    nesting deeper than :data:`MAX_DEPTH`) is a ``ValueError``; a syntax error is the
    ``json.JSONDecodeError`` with its line."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} deep") from None
    if not json_depth_ok(doc):
        raise ValueError(f"nested more than {MAX_DEPTH} deep")
    return doc


#: A quoted part of PyYAML's problem text longer than a character or a short token.
_QUOTED = re.compile(r"'[^']{4,}'|\"[^\"]{4,}\"|`[^`]{4,}`")


def error_line(exc: yaml.YAMLError) -> int | None:
    """The 1-based line a YAML error points at, when it does."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark else None


def error_problem(exc: yaml.YAMLError) -> str:
    """What is wrong, built by us: PyYAML's own text quotes the offending input (snippets,
    tags, scalars), which may be a secret of a file read by mistake, so quoted parts
    longer than a short token and every snippet are left out."""
    problem = str(getattr(exc, "problem", None) or "invalid YAML")
    return _QUOTED.sub("…", problem).splitlines()[0] if problem.strip() else "invalid YAML"


def describe_error(exc: yaml.YAMLError) -> str:
    """``line N: problem`` of a YAML error (see :func:`error_problem`)."""
    line = error_line(exc)
    return f"line {line}: {error_problem(exc)}" if line else error_problem(exc)


def json_depth_ok(doc: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether decoded JSON nests at most ``limit`` deep (iterative)."""
    stack = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def chunks(text: str) -> Iterator[tuple[int, str]]:
    """Split a YAML stream at ``---`` markers, yielding (first line number, text)."""
    start = 0
    line = 1
    for match in _DOC_START.finditer(text):
        chunk = text[start : match.start()]
        yield line, chunk
        line += chunk.count("\n")
        start = match.end()
    yield line, text[start:]


def load_file(path: str | os.PathLike[str], what: str) -> Any:
    """The one YAML document of the file at ``path`` (a config, catalog or attestations
    file), read with the bounded reader; a :class:`ConfigError` naming ``what``, the path
    and the line — never quoting the file — when it cannot be read or parsed."""
    try:
        return safe_load(read_text(path))
    except UnreadableFile as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} {describe_error(exc)}") from None
