"""JUnit XML: one test case per check, one suite per area, so CI dashboards show gaps."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from soma_audit.core.escape import xml
from soma_audit.core.model import AREAS, Result, Severity, Status
from soma_audit.results.fleet import FleetReport
from soma_audit.results.report import Report


def _evidence_text(result: Result) -> str:
    return "\n".join(
        xml(f"{e.object}: {e.message}" if e.object else e.message) for e in result.evidence
    )


def _case(suite: ET.Element, result: Result, scope: str) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"{scope}.{result.check.area}",
                         name=f"{result.check.id}: {result.check.title}", time="0")
    text = _evidence_text(result)
    first = xml(result.evidence[0].message if result.evidence else result.status.value)
    if result.status is Status.FAIL:
        ET.SubElement(case, "failure", message=first, type=result.check.severity.value).text = text
    elif result.status is Status.ERROR:
        ET.SubElement(case, "error", message=first, type="not-evaluable").text = text
    elif result.status in (Status.SKIP, Status.MANUAL, Status.WAIVED):
        ET.SubElement(case, "skipped", message=f"{result.status.value}: {first}")
    elif text:
        ET.SubElement(case, "system-out").text = text


def _add_suites(root: ET.Element, report: Report, scope: str = "soma-audit",
                prefix: str = "") -> None:
    """One suite per area; a fleet passes the cluster as ``scope`` and ``prefix``."""
    for area, title in AREAS.items():
        results = report.by_area(area)
        if not results:
            continue
        count = {s: sum(r.status is s for r in results) for s in Status}
        suite = ET.SubElement(
            root, "testsuite", name=f"{prefix}{area}: {title}", tests=str(len(results)),
            failures=str(count[Status.FAIL]), errors=str(count[Status.ERROR]),
            skipped=str(count[Status.SKIP] + count[Status.MANUAL] + count[Status.WAIVED]),
            timestamp=report.started.isoformat(timespec="seconds"),
        )
        for result in results:
            _case(suite, result, scope)


def _document(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def render(report: Report) -> str:
    root = ET.Element("testsuites", name="soma-audit")
    _add_suites(root, report)
    return _document(root)


def render_fleet(fleet: FleetReport, fail_on: Severity = Severity.LOW) -> str:
    """The suites of every cluster, named after it; a cluster that could not be audited
    is one suite whose single case is an error saying why. (``fail_on`` does not apply:
    JUnit has no exit code, its failures and errors speak for themselves.)"""
    root = ET.Element("testsuites", name="soma-audit")
    for scan in fleet.clusters:
        scope = f"soma-audit.{xml(scan.cluster)}"
        if scan.report is not None:
            _add_suites(root, scan.report, scope, prefix=f"{xml(scan.cluster)} / ")
            continue
        cluster = xml(scan.cluster)
        suite = ET.SubElement(root, "testsuite", name=f"{cluster} / not audited",
                              tests="1", failures="0", errors="1", skipped="0")
        if scan.started:
            suite.set("timestamp", scan.started.isoformat(timespec="seconds"))
        case = ET.SubElement(suite, "testcase", classname=scope,
                             name=f"{cluster}: audit", time=f"{scan.duration_seconds:.3f}")
        error = xml(scan.error or "not audited")
        ET.SubElement(case, "error", message=error, type="not-audited").text = error
    return _document(root)
