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
