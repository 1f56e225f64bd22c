"""JUnit XML test results, read safely: the files come from CI and are not trusted.

A DOCTYPE is refused before anything is expanded (so entity bombs and external entities
never are); a malformed file raises :class:`JUnitError`. Both the ``<testsuites>`` and the
bare ``<testsuite>`` forms are read, nested suites included.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["passed", "failed", "error", "skipped"]

#: Evidence quotes at most this much of a failure message.
MESSAGE_CHARS = 300


class JUnitError(ValueError):
    """The file is not a well-formed, DTD-free JUnit report."""


@dataclass(frozen=True)
class TestCase:
    """One ``<testcase>`` and what became of it."""

    __test__ = False  # not a pytest test class

    name: str
    classname: str
    suite: str
    outcome: Outcome
    message: str
    #: When the enclosing suite ran (its ``timestamp``), else the default given to parse.
    ran: dt.datetime

    @property
    def key(self) -> str:
        """``classname::name``: the same test across several result files."""
        return f"{self.classname}::{self.name}" if self.classname else self.name


class _NoDoctype(ET.TreeBuilder):
    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise JUnitError("DOCTYPE declarations are not allowed (entities are refused)")


def _timestamp(text: str | None, default: dt.datetime) -> dt.datetime:
    if not text:
        return default
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return default
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _message(element: ET.Element) -> str:
    text = element.get("message") or (element.text or "").strip() or element.get("type") or ""
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _outcome(case: ET.Element) -> tuple[Outcome, str]:
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        found = case.find(tag)
        if found is not None:
            return outcome, _message(found)
    return "passed", ""


def _cases(suite: ET.Element, ran: dt.datetime) -> Iterable[TestCase]:
    ran = _timestamp(suite.get("timestamp"), ran)
    for child in suite:
        if child.tag == "testsuite":
            yield from _cases(child, ran)
        elif child.tag == "testcase":
            outcome, message = _outcome(child)
            yield TestCase(
                name=child.get("name", ""),
                classname=child.get("classname", ""),
                suite=suite.get("name", ""),
                outcome=outcome,
                message=message,
                ran=ran,
            )


def parse_junit(data: bytes, default_time: dt.datetime) -> list[TestCase]:
    """Every test case in a JUnit report; ``default_time`` dates suites without a timestamp."""
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        line, column = exc.position
        raise JUnitError(f"malformed XML at line {line}, column {column}") from None
    except LookupError as exc:
        raise JUnitError(f"malformed XML: {exc}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise JUnitError(f"not a JUnit report: root element <{root.tag}>")
    return list(_cases(root, _timestamp(root.get("timestamp"), default_time)))


def latest(results: Iterable[tuple[str, TestCase]]) -> list[tuple[str, TestCase]]:
    """For each test (by :attr:`TestCase.key`), its newest run and the file that has it."""
    newest: dict[str, tuple[str, TestCase]] = {}
    for where, case in results:
        seen = newest.get(case.key)
        if seen is None or case.ran > seen[1].ran:
            newest[case.key] = (where, case)
    return list(newest.values())
