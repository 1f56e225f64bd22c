"""JUnit XML results (soma_audit/domain/e2e.py): the forms CI tools write, hostile input, and the
newest-run rule; plus the demo's E2E outcomes."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soma_audit.domain.e2e import (
    MESSAGE_CHARS,
    JUnitError,
    Outcome,
    TestCase,
    latest,
    parse_junit,
)
from tests.helpers import REPO, audit_dir

DEFAULT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_outcomes_messages_and_timestamps() -> None:
    data = b"""<?xml version="1.0" encoding="utf-8"?>
    <testsuites timestamp="2026-11-01T00:00:00Z">
      <testsuite name="auth" timestamp="2026-11-27T22:14:05+01:00">
        <testcase classname="t.auth" name="ok"/>
        <testcase classname="t.auth" name="bad"><failure message="expected 1"/></testcase>
        <testcase classname="t.auth" name="boom"><error type="KeyError">  trace
          line  </error></testcase>
        <testcase classname="t.auth" name="later"><skipped/></testcase>
      </testsuite>
      <testsuite name="outer">
        <testsuite name="inner"><testcase name="nested"/></testsuite>
      </testsuite>
    </testsuites>"""
    cases = parse_junit(data, DEFAULT)
    assert [(c.key, c.outcome, c.message) for c in cases] == [
        ("t.auth::ok", "passed", ""),
        ("t.auth::bad", "failed", "expected 1"),
        ("t.auth::boom", "error", "trace line"),
        ("t.auth::later", "skipped", ""),
        ("nested", "passed", ""),
    ]
    assert cases[0].ran == dt.datetime(2026, 11, 27, 21, 14, 5, tzinfo=dt.UTC)
    # a suite without a timestamp inherits the enclosing one
    assert cases[-1].ran == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    assert cases[-1].suite == "inner"


def test_bare_testsuite_without_timestamp_uses_the_default() -> None:
    (case,) = parse_junit(b'<testsuite timestamp="not a date"><testcase name="a"/></testsuite>',
                          DEFAULT)
    assert case.ran == DEFAULT


def test_long_messages_are_cut() -> None:
    data = f'<testsuite><testcase name="a"><failure message="{"x" * 1000}"/></testcase>'
    (case,) = parse_junit((data + "</testsuite>").encode(), DEFAULT)
    assert len(case.message) == MESSAGE_CHARS and case.message.endswith("…")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite>&a;</testsuite>', "DOCTYPE"),
        (b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><testsuite/>', "DOCTYPE"),
        ('<!DOCTYPE x [<!ENTITY a "a">]><testsuite/>'.encode("utf-16"), "DOCTYPE"),
        (b"<testsuite><testcase></testsuite>", "malformed XML at line 1"),
        (b"", "malformed XML"),
        (b'<?xml version="1.0" encoding="no-such"?><testsuite/>', "malformed XML"),
        (b"<coverage/>", "not a JUnit report: root element <coverage>"),
    ],
)
def test_hostile_and_malformed_input_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(JUnitError, match=message):
        parse_junit(data, DEFAULT)


@given(st.binary(max_size=300))
def test_any_bytes_give_cases_or_a_junit_error(data: bytes) -> None:
    try:
        cases = parse_junit(data, DEFAULT)
    except JUnitError:
        return
    assert all(isinstance(c, TestCase) for c in cases)


_NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
_OUTCOME = st.sampled_from(["passed", "failed", "error", "skipped"])


@given(st.lists(st.tuples(_NAME, _NAME, _OUTCOME, _NAME), max_size=6))
def test_a_written_report_reads_back(cases: list[tuple[str, str, str, str]]) -> None:
    suite = ET.Element("testsuite", name="s")
    for classname, name, outcome, message in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name)
        tag = {"failed": "failure", "error": "error", "skipped": "skipped"}.get(outcome)
        if tag:
            ET.SubElement(case, tag, message=message)
    parsed = parse_junit(ET.tostring(suite, encoding="utf-8"), DEFAULT)
    assert [(c.classname, c.name, c.outcome) for c in parsed] == [
        (classname, name, outcome) for classname, name, outcome, _ in cases
    ]


def _case(outcome: Outcome, day: int) -> TestCase:
    return TestCase("t", "c", "s", outcome, "", dt.datetime(2026, 11, day, tzinfo=dt.UTC))


def test_latest_keeps_the_newest_run_of_each_test() -> None:
    newest = latest([("old.xml", _case("failed", 1)), ("new.xml", _case("passed", 2)),
                     ("older.xml", _case("error", 1))])
    assert [(where, case.outcome) for where, case in newest] == [("new.xml", "passed")]


def test_demo_e2e_outcomes() -> None:
    report = audit_dir(REPO / "demo" / "soma-gitops", ["e2e.suite", "e2e.results-passed"])
    status = {r.check.id: r for r in report.results}
    assert status["e2e.suite"].status.value == "pass"
    failing = status["e2e.results-passed"]
    assert failing.status.value == "fail"
    assert [e.object for e in failing.evidence] == ["tests/e2e/results/e2e-staging.xml"]
    assert "test_model_invocation_reaches_billing failed" in failing.evidence[0].message
