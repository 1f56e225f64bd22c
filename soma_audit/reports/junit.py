"""JUnit XML: one test case per check, one suite per area, so CI dashboards show gaps."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from soma_audit.model import AREAS, Result, Status
from soma_audit.report import Report


def _evidence_text(result: Result) -> str:
    return "\n".join(
        f"{e.object}: {e.message}" if e.object else e.message for e in result.evidence
    )


def _case(suite: ET.Element, result: Result) -> None:
    case = ET.SubElement(suite, "testcase", classname=f"soma-audit.{result.check.area}",
                         name=f"{result.check.id}: {result.check.title}", time="0")
    text = _evidence_text(result)
    first = result.evidence[0].message if result.evidence else result.status.value
    if result.status is Status.FAIL:
        ET.SubElement(case, "failure", message=first, type=result.check.severity.value).text = text
    elif result.status is Status.ERROR:
        ET.SubElement(case, "error", message=first, type="not-evaluable").text = text
    elif result.status in (Status.SKIP, Status.MANUAL, Status.WAIVED):
        ET.SubElement(case, "skipped", message=f"{result.status.value}: {first}")
    elif text:
        ET.SubElement(case, "system-out").text = text


def render(report: Report) -> str:
    root = ET.Element("testsuites", name="soma-audit")
    for area, title in AREAS.items():
        results = report.by_area(area)
        if not results:
            continue
        count = {s: sum(r.status is s for r in results) for s in Status}
        suite = ET.SubElement(
            root, "testsuite", name=f"{area}: {title}", tests=str(len(results)),
            failures=str(count[Status.FAIL]), errors=str(count[Status.ERROR]),
            skipped=str(count[Status.SKIP] + count[Status.MANUAL] + count[Status.WAIVED]),
            timestamp=report.started.isoformat(timespec="seconds"),
        )
        for result in results:
            _case(suite, result)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
