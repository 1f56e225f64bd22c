"""Probes for the e2e area (see checks/e2e.yaml), over the JUnit XML results the suite's
CI run leaves in the repository (``layout.e2e_results``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.e2e import JUnitError, TestCase, latest, parse_junit
from soma_audit.probes import Params, ProbeContext, ProbeError, ev, failed, passed, probe, repofiles


@dataclass(frozen=True)
class _Results:
    where: str
    files: int
    cases: list[tuple[str, TestCase]]


def _results(ctx: ProbeContext) -> _Results:
    """Every test case of every ``*.xml`` below the results folder; a malformed file is an
    error naming it (its results cannot be known)."""
    repo, root, root_where = repofiles.locate(ctx, ctx.config.layout.e2e_results)
    files = list(repofiles.walk(root, (".xml",))) if root.exists() else []
    cases: list[tuple[str, TestCase]] = []
    for path in files:
        where = repofiles.relative(repo, path)
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        try:
            parsed = parse_junit(repofiles.read_bytes(repo, path), modified)
        except JUnitError as exc:
            raise ProbeError(f"{where}: {exc}") from None
        cases += [(where, case) for case in parsed]
    return _Results(root_where, len(files), cases)


def _missing(results: _Results) -> Outcome | None:
    if not results.files:
        return failed(ev(results.where, "no JUnit results (*.xml): the E2E suite has not run"))
    if not results.cases:
        return failed(ev(results.where, f"{results.files} result files hold no test cases"))
    return None


@probe("e2e.suite")
def suite(ctx: ProbeContext, params: Params) -> Outcome:
    """The suite covers each topic when some test's name, class or suite mentions one of
    the topic's keywords (``params.topics``: topic → keywords)."""
    topics = params.get("topics")
    if not isinstance(topics, dict) or not topics:
        raise ProbeError("check parameter `topics` must map each topic to its keywords")
    results = _results(ctx)
    missing = _missing(results)
    if missing:
        return missing
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for topic, keywords in topics.items():
        words = [str(k).lower() for k in keywords or [topic]]
        covering = [
            case
            for _, case in results.cases
            if any(w in f"{case.classname} {case.name} {case.suite}".lower() for w in words)
        ]
        # name a test whose module/class is about the topic, not one that merely mentions it
        covering.sort(key=lambda case: not any(w in case.classname.lower() for w in words))
        if covering:
            ok.append(ev(results.where, f"{topic}: {len(covering)} tests, e.g. {covering[0].key}"))
        else:
            problems.append(
                ev(results.where, f"no {topic} tests: no test name mentions {', '.join(words)}")
            )
    return failed(*problems) if problems else passed(*ok)


@probe("e2e.results-passed")
def results_passed(ctx: ProbeContext, params: Params) -> Outcome:
    """Each test's newest run (by its suite's timestamp, else the file's time) must pass."""
    results = _results(ctx)
    missing = _missing(results)
    if missing:
        return missing
    newest = latest(results.cases)
    broken = [
        ev(where, f"{case.key} {case.outcome}: {case.message or 'no message'}")
        for where, case in newest
        if case.outcome in ("failed", "error")
    ]
    if broken:
        return failed(*broken)
    counts = Counter(case.outcome for _, case in newest)
    if not counts["passed"]:
        return failed(ev(results.where, f"no test passed ({counts['skipped']} skipped)"))
    when = max(case.ran for _, case in newest).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return passed(
        ev(
            results.where,
            f"{counts['passed']} passed, {counts['skipped']} skipped in {results.files} "
            f"files (newest run {when})",
        )
    )
