"""Reading what the OpenFGA CLI says, so evidence quotes the real parser and engine.

``fga model validate`` prints ``{"is_valid": …, "error": …}`` for semantic errors (without a
line: :func:`locate` finds the offending line in the model) and, for syntax errors, only
``syntax error at line=N, column=M: …`` on stderr with ``N`` counted from 0.
``fga model test --verbose`` prints one JSON object per test with the result of every
assertion.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_SYNTAX = re.compile(r"syntax error at line=(\d+), column=(\d+): (.+)")
_REFERENCE = re.compile(r"'([\w-]+)#([\w-]+)'")
_TYPE = re.compile(r"^\s*type\s+([\w-]+)\s*$")
_DEFINE = re.compile(r"^\s*define\s+([\w-]+)\s*:(.*)$")

#: The kinds of assertion ``fga model test`` runs, as named in its verbose output.
ASSERTION_KINDS = {
    "check_results": "check",
    "list_objects_results": "list_objects",
    "list_users_results": "list_users",
}


@dataclass(frozen=True)
class ModelProblem:
    """One validation error; ``line`` is 1-based, None when it cannot be placed."""

    message: str
    line: int | None = None


@dataclass(frozen=True)
class ScenarioRun:
    """What ``fga model test --verbose`` reported."""

    tests: int
    assertions: int
    failures: list[str]


def cli_error(output: str) -> str:
    """The CLI's error text on one line, without its ``Error:`` prefix."""
    text = " ".join(output.split())
    return text.removeprefix("Error: ").strip()


def _type_lines(model: str, type_name: str) -> Iterator[tuple[int, str]]:
    """(1-based number, line) of the lines belonging to ``type type_name``."""
    inside = False
    for number, line in enumerate(model.splitlines(), start=1):
        found = _TYPE.match(line)
        if found:
            inside = found.group(1) == type_name
        elif inside:
            yield number, line


def locate(model: str, error: str) -> int | None:
    """The line a semantic error is about: where an undefined relation is referenced,
    where a tupleset uses a non-direct relation, else the relation's ``define``."""
    reference = _REFERENCE.search(error)
    if reference is None:
        return None
    type_name, relation = reference.groups()
    word = re.compile(rf"(?<![\w-]){re.escape(relation)}(?![\w-])")
    tupleset = re.compile(rf"\bfrom\s+{re.escape(relation)}(?![\w-])")
    for number, line in _type_lines(model, type_name):
        define = _DEFINE.match(line)
        if define is None:
            continue
        name, rewrite = define.groups()
        if "undefined" in error:
            hit = bool(word.search(rewrite))
        elif "tupleset" in error:
            hit = bool(tupleset.search(rewrite))
        else:
            hit = name == relation
        if hit:
            return number
    return None


def _placed(model: str, message: str, line: int | None) -> ModelProblem:
    """A problem, with a hint when its line is a ``define`` outside any type's block."""
    lines = model.splitlines()
    if line is not None and 0 < line <= len(lines):
        text = lines[line - 1]
        if _DEFINE.match(text) and not text[:1].isspace():
            message += (
                " — this `define` is not inside a `type … relations` block (it attaches "
                "to the type above it); move it into the type it belongs to"
            )
    return ModelProblem(message, line)


def validation_problems(stdout: str, stderr: str, model: str) -> list[ModelProblem] | None:
    """The problems ``fga model validate`` reported: ``[]`` when the model is valid, None
    when its output is not understood (the caller reports that as an error)."""
    try:
        report = json.loads(stdout)
    except json.JSONDecodeError:
        report = None
    if isinstance(report, dict) and isinstance(report.get("is_valid"), bool):
        if report["is_valid"]:
            return []
        error = str(report.get("error") or "invalid model")
        return [_placed(model, error, locate(model, error))]
    problems = []
    for found in _SYNTAX.finditer(stderr):
        line = int(found.group(1)) + 1
        problems.append(
            _placed(model, f"syntax error, column {found.group(2)}: {found.group(3)}", line)
        )
    return problems or None


def _describe(kind: str, request: dict[str, Any]) -> str:
    user, relation = request.get("user"), request.get("relation")
    if kind == "check":
        return f"{user} {relation} {request.get('object')}"
    if kind == "list_objects":
        return f"{user} {relation} objects of type {request.get('type')}"
    return f"users of {request.get('object')} {relation}"


def scenario_results(stdout: str) -> ScenarioRun | None:
    """Tests, assertions and failed assertions from ``fga model test --verbose`` output;
    None when it printed no test results (the CLI failed before running them)."""
    try:
        tests = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    if tests is None:  # a test file without tests
        tests = []
    if not isinstance(tests, list) or not all(isinstance(t, dict) for t in tests):
        return None
    assertions = 0
    failures = []
    for test in tests:
        for key, kind in ASSERTION_KINDS.items():
            for result in test.get(key) or []:
                assertions += 1
                if result.get("test_result") is True:
                    continue
                request = result.get("request") or {}
                failure = (
                    f'test "{test.get("name")}": {kind} {_describe(kind, request)}: '
                    f"expected {json.dumps(result.get('expected'))}, "
                    f"got {json.dumps(result.get('got'))}"
                )
                if result.get("error"):
                    failure += f" (error: {result['error']})"
                failures.append(failure)
    return ScenarioRun(len(tests), assertions, failures)


# ----------------------------------------------------------------- additive model merge

_BLOCK_START = re.compile(r"^(type|condition|model|module|extend)\b")


@dataclass
class _TypeBlock:
    """One ``type`` block of a model: its line span and its relations' ``define`` lines."""

    name: str
    start: int
    end: int
    relations_line: int | None = None
    defines: dict[str, int] | None = None

    def last_define(self) -> int | None:
        return max(self.defines.values()) if self.defines else None


def _blocks(lines: list[str]) -> dict[str, _TypeBlock]:
    """The ``type`` blocks of a model by name; a block runs until the next top-level
    statement (another type, a condition, module or model header)."""
    blocks: dict[str, _TypeBlock] = {}
    current: _TypeBlock | None = None
    for number, line in enumerate(lines):
        if _BLOCK_START.match(line):
            if current is not None:
                current.end = number
            found = _TYPE.match(line)
            current = _TypeBlock(found.group(1), number, len(lines), defines={}) if found \
                else None
            if current is not None and current.name not in blocks:
                blocks[current.name] = current
            continue
        if current is None:
            continue
        if line.strip() == "relations":
            current.relations_line = number
        define = _DEFINE.match(line)
        if define and current.defines is not None:
            current.defines.setdefault(define.group(1), number)
    if current is not None:
        current.end = len(lines)
    return blocks


def _with_comments(lines: list[str], number: int) -> list[str]:
    """Line ``number`` preceded by the comment lines directly above it."""
    start = number
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return lines[start:number + 1]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _reindent(lines: list[str], old: str, new: str) -> list[str]:
    return [new + line[len(old):] if line.startswith(old) else line for line in lines]


@dataclass(frozen=True)
class ModelMerge:
    """An additive merge of a bundled model into the team's: the merged text, what was
    added, and the team's relations that differ from the bundled ones (kept as written)."""

    text: str
    added: list[str]
    kept: list[str]


def merge_models(current: str, bundled: str) -> ModelMerge:
    """``current`` with every type and relation of ``bundled`` that it lacks, inserted
    beside its siblings; every line the team wrote stays as it is (a relation defined
    differently is kept and reported, never rewritten)."""
    newline = "\r\n" if "\r\n" in current else "\n"
    ours = current.splitlines()
    theirs = bundled.splitlines()
    have, want = _blocks(ours), _blocks(theirs)
    added: list[str] = []
    kept: list[str] = []
    inserts: dict[int, list[str]] = {}
    appended: list[str] = []
    for name, block in want.items():
        existing = have.get(name)
        if existing is None:
            start = block.start
            while start > 0 and theirs[start - 1].lstrip().startswith("#"):
                start -= 1
            body = theirs[start:block.end]
            while body and not body[-1].strip():
                body.pop()
            appended += ["", *body]
            added.append(f"type {name}")
            continue
        missing = []
        for relation, number in (block.defines or {}).items():
            if relation in (existing.defines or {}):
                if _DEFINE.match(ours[existing.defines[relation]]).group(2).split() != \
                        _DEFINE.match(theirs[number]).group(2).split():
                    kept.append(f"{name}#{relation}")
                continue
            missing.append(number)
            added.append(f"{name}#{relation}")
        if not missing:
            continue
        their_indent = _indent(theirs[next(iter(missing))])
        lines: list[str] = []
        anchor = existing.last_define()
        if anchor is None:
            anchor = existing.relations_line
            our_indent = (_indent(ours[anchor]) + "  ") if anchor is not None else "    "
            if anchor is None:
                anchor = existing.start
                lines.append(_indent(ours[existing.start]) + "  relations")
        else:
            our_indent = _indent(ours[anchor])
        for number in missing:
            lines += _reindent(_with_comments(theirs, number), their_indent, our_indent)
        inserts.setdefault(anchor, []).extend(lines)
    if not added:
        return ModelMerge(current, [], kept)
    merged: list[str] = []
    for number, line in enumerate(ours):
        merged.append(line)
        merged.extend(inserts.get(number, []))
    while appended and merged and not merged[-1].strip() and not appended[0].strip():
        appended.pop(0)
    merged += appended
    return ModelMerge(newline.join(merged) + newline, added, kept)
