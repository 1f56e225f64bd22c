"""k6 as data: load profiles, what ``k6 inspect`` says, CI invocations, summary exports.

Pure functions over text and parsed JSON/YAML, so the probes stay thin and every rule is
unit-tested.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from soma_audit.sources.documents import describe_error, safe_load

#: k6 1.x executors (https://grafana.com/docs/k6/latest/using-k6/scenarios/executors/).
EXECUTORS = frozenset(
    {
        "shared-iterations",
        "per-vu-iterations",
        "constant-vus",
        "ramping-vus",
        "constant-arrival-rate",
        "ramping-arrival-rate",
        "externally-controlled",
    }
)
_STAGED = frozenset({"ramping-vus", "ramping-arrival-rate"})

_LOG_MESSAGE = re.compile(r'level=(?:error|fatal)\s+msg="((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_P99 = re.compile(r"^\s*p\(99(?:\.\d+)?\)\s*<")
_K6_RUN = re.compile(r"\bk6\s+(?:cloud\s+)?run\b|\bgrafana/(?:run-)?k6-action\b")


class ProfilesError(ValueError):
    """The profiles file is not YAML, or not a list of profiles."""


def read_profiles(text: str) -> list[Any]:
    """The entries of a profiles file: ``profiles: [...]`` or a bare list."""
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfilesError(f"invalid YAML: {describe_error(exc)}") from None
    entries = data.get("profiles") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ProfilesError("expected `profiles:` with a list of load profiles")
    return entries


def profile_name(entry: Any) -> str | None:
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) and name else None


def profile_problems(entry: Any) -> list[str]:
    """What a profile lacks to drive a script: name, target, executor and its shape,
    thresholds."""
    if not isinstance(entry, dict):
        return ["not a mapping"]
    problems = []
    if profile_name(entry) is None:
        problems.append("name missing")
    target = entry.get("target")
    if not (isinstance(target, str) and target.startswith(("http://", "https://"))):
        problems.append(f"target={target!r}, expected an http(s) URL")
    executor = entry.get("executor")
    if executor not in EXECUTORS:
        problems.append(f"executor={executor!r}, expected one of {', '.join(sorted(EXECUTORS))}")
    elif executor in _STAGED and not (isinstance(entry.get("stages"), list) and entry["stages"]):
        problems.append(f"executor {executor} needs stages")
    elif executor == "constant-vus" and not ("vus" in entry and "duration" in entry):
        problems.append("executor constant-vus needs vus and duration")
    thresholds = entry.get("thresholds")
    if not (isinstance(thresholds, dict) and thresholds):
        problems.append("thresholds missing")
    return problems


def error_messages(stderr: str) -> list[str]:
    """k6's error messages (its log lines carry them as ``msg="…"``), one per entry."""
    found = [" ".join(_ESCAPE.sub(_unescape, m).split()) for m in _LOG_MESSAGE.findall(stderr)]
    if found or not stderr.strip():
        return found
    return [" ".join(stderr.split())]


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return " " if char in "nt" else char


def _expressions(rules: Any) -> list[str]:
    """Threshold expressions: plain strings or ``{threshold: …, abortOnFail: …}``."""
    if not isinstance(rules, list):
        return []
    return [str(r.get("threshold")) if isinstance(r, dict) else str(r) for r in rules]


def threshold_problems(options: dict[str, Any], required: list[str]) -> list[str]:
    """What the options ``k6 inspect`` printed lack: a threshold on every required metric
    (a p(99) one on ``http_req_duration``), and no ``stages`` beside ``scenarios``."""
    thresholds = options.get("thresholds")
    by_metric: dict[str, list[str]] = {}
    for key, rules in (thresholds if isinstance(thresholds, dict) else {}).items():
        by_metric.setdefault(key.split("{")[0].strip(), []).extend(_expressions(rules))
    problems = []
    for metric in required:
        if metric not in by_metric:
            problems.append(f"no threshold on {metric}")
        elif metric == "http_req_duration" and not any(_P99.match(e) for e in by_metric[metric]):
            found = ", ".join(by_metric[metric]) or "none"
            problems.append(f"http_req_duration has no p(99) threshold (found: {found})")
    if options.get("stages") and options.get("scenarios"):
        problems.append(
            "options set both stages and scenarios: stages is shorthand for a ramping-vus "
            "scenario and must not be combined with scenarios"
        )
    return problems


def thresholds_text(options: dict[str, Any]) -> str:
    """``http_req_duration: p(99)<500; …`` for pass evidence."""
    thresholds = options.get("thresholds")
    if not isinstance(thresholds, dict):
        return ""
    return "; ".join(f"{k}: {', '.join(_expressions(v))}" for k, v in thresholds.items())


def k6_invocations(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line, line) where a CI file runs k6; comment lines do not count."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if _K6_RUN.search(stripped):
            yield number, stripped


def duration_stats(summary: Any) -> dict[str, float] | None:
    """``http_req_duration`` statistics of a k6 summary (``--summary-export`` puts them
    on the metric, ``handleSummary`` JSON under ``values``); None when absent."""
    metrics = summary.get("metrics") if isinstance(summary, dict) else None
    metric = metrics.get("http_req_duration") if isinstance(metrics, dict) else None
    if isinstance(metric, dict) and isinstance(metric.get("values"), dict):
        metric = metric["values"]
    if not isinstance(metric, dict):
        return None
    stats = {
        str(k): float(v)
        for k, v in metric.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return stats or None
