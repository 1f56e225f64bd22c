"""Shared test helpers: run checks through the real engine on a directory or snapshot;
poll a condition; GET a URL of a server under test; name things on a shared server."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.model import Result
from soma_audit.engine.scan import AuditRequest, run_audit
from soma_audit.results.report import Report
from soma_audit.sources import Source
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.sources.snapshot import SnapshotSource

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
#: Every check fixture case: a folder with the case's files and its ``expect.yaml``.
CHECK_CASES = sorted(p for p in (FIXTURES / "checks").glob("*/*")
                     if (p / "expect.yaml").is_file())
#: "last run 8160h10m15.2559s ago": how long ago depends on when the check ran.
_AGO = re.compile(r"[\d.hms]+ ago")


def case_source(case: Path, snapshot: bool, config: dict[str, Any]) -> Source:
    """The source a fixture case is audited from: its snapshot or its files."""
    if snapshot:
        return SnapshotSource(case / "snapshot.yaml")
    return ManifestsSource(case, config=load_config(**config))


def comparable_outcomes(source: Source, config: dict[str, Any],
                        check_ids: set[str] | None) -> list[Any]:
    """Each check's id, status and evidence from auditing ``source``, with the times that
    depend on when the check ran left out: two audits of the same input compare equal."""
    checks = [c for c in load_catalog() if check_ids is None or c.id in check_ids]
    report = run_audit(AuditRequest(source=source, config=load_config(**config), checks=checks))
    return [(r.check.id, r.status, [(e.object, _AGO.sub("ago", e.message), e.location)
                                    for e in r.evidence])
            for r in report.results]


class CheckCase:
    """A check fixture case as its ``expect.yaml`` describes it (a snapshot or files, with
    a config): fresh sources of it, and audits of its own check."""

    def __init__(self, case: Path) -> None:
        self.case = case
        expect = yaml.safe_load((case / "expect.yaml").read_text())
        self.snapshot = expect.get("source") == "snapshot"
        self.config: dict[str, Any] = expect.get("config") or {}

    def source(self) -> Source:
        return case_source(self.case, self.snapshot, self.config)

    def outcomes(self, source: Source | None = None) -> list[Any]:
        """:func:`comparable_outcomes` of the case's check, from ``source`` (a test's view
        of :meth:`source`; by default a fresh source)."""
        return comparable_outcomes(source or self.source(), self.config, {self.case.parent.name})


def audit_dir(directory: Path, check_ids: list[str] | None = None,
              config: dict[str, Any] | None = None, snapshot: bool = False) -> Report:
    """Audit ``directory`` (manifests mode; with ``snapshot``, its ``snapshot.yaml`` as a
    cluster dump) with the given checks and config overrides."""
    checks = load_catalog()
    if check_ids is not None:
        checks = [c for c in checks if c.id in check_ids]
        assert {c.id for c in checks} == set(check_ids), "unknown check id"
    loaded = load_config(**(config or {}))
    request = AuditRequest(
        source=SnapshotSource(directory / "snapshot.yaml") if snapshot
        else ManifestsSource(directory, config=loaded),
        config=loaded,
        checks=checks,
    )
    return run_audit(request)


def run_check(check_id: str, directory: Path, config: dict[str, Any] | None = None,
              snapshot: bool = False) -> Result:
    report = audit_dir(directory, [check_id], config, snapshot)
    (result,) = report.results
    return result


class HttpAnswer(NamedTuple):
    status: int  # 0 when nothing listens (yet)
    body: str
    content_type: str


def fresh_suffix() -> str:
    """A random name suffix for objects on a test server. Ten hex digits: a kept test server
    holds the namespaces of every earlier run (they are never deleted), and at six digits a
    few thousand of them made a clash on create a real chance."""
    return uuid.uuid4().hex[:10]


def http_get(url: str, timeout: float = 5.0) -> HttpAnswer:
    """GET ``url``; error statuses are answers too, a refused connection is status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return HttpAnswer(resp.status, resp.read().decode(), resp.headers["Content-Type"])
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read().decode(), exc.headers["Content-Type"] or "")
    except OSError:
        return HttpAnswer(0, "", "")


def wait_until(what: str, condition: Callable[[], Any], timeout: float = 60.0,
               step: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); fail the test
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(step)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def sigint_as_a_terminal_sends_it() -> None:
    """``preexec_fn`` for a child a test interrupts: SIGINT back to its default, so Python
    turns it into KeyboardInterrupt. A test run started in the background by a
    non-interactive shell (as CI may start it) inherits SIGINT ignored, and Python then
    keeps ignoring it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def process_ends(pid_file: Path, timeout: float = 5.0) -> bool:
    """Whether the process whose pid ``pid_file`` holds (a stand-in tool wrote it) is gone,
    or a zombie, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    while time.monotonic() < deadline:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:  # gone
            return True
        time.sleep(0.01)
    return False
