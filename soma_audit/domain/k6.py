"""k6 as data: load profiles, what ``k6 inspect`` says, CI invocations, summary exports.

Pure functions over text and parsed JSON/YAML, so the probes stay thin and every rule is
unit-tested.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from soma_audit.core.yamlload import error_line, error_problem, safe_load

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
        line = error_line(exc)
        raise ProfilesError(f"{f'line {line}: ' if line else ''}invalid YAML: "
                            f"{error_problem(exc)}") from None
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


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return " " if char in "nt" else char


def _expressions(rules: Any) -> list[str]:
    """Threshold expressions: plain strings or ``{threshold: …, abortOnFail: …}``."""
    if not isinstance(rules, list):
        return []
    return [str(r.get("threshold")) if isinstance(r, dict) else str(r) for r in rules]


def threshold_problems(options: dict[str, Any], required: list[str],
                       quote: bool = True) -> list[str]:
    """What the options lack: a threshold on every required metric (a p(99) one on
    ``http_req_duration``), and no ``stages`` beside ``scenarios``. ``quote`` False counts
    expressions instead of quoting them (options a script computed may carry what it read)."""
    thresholds = options.get("thresholds")
    by_metric: dict[str, list[str]] = {}
    for key, rules in (thresholds if isinstance(thresholds, dict) else {}).items():
        by_metric.setdefault(key.split("{")[0].strip(), []).extend(_expressions(rules))
    problems = []
    for metric in required:
        if metric not in by_metric:
            problems.append(f"no threshold on {metric}")
        elif metric == "http_req_duration" and not any(_P99.match(e) for e in by_metric[metric]):
            found = (", ".join(by_metric[metric]) if quote
                     else f"{len(by_metric[metric])} expressions") or "none"
            problems.append(f"http_req_duration has no p(99) threshold (found: {found})")
    if options.get("stages") and options.get("scenarios"):
        problems.append(
            "options set both stages and scenarios: stages is shorthand for a ramping-vus "
            "scenario and must not be combined with scenarios"
        )
    return problems


def thresholds_text(options: dict[str, Any], required: list[str] | None = None,
                    quote: bool = True) -> str:
    """``http_req_duration: p(99)<500; …`` for pass evidence; with ``quote`` False only the
    ``required`` metrics are named and the others counted."""
    thresholds = options.get("thresholds")
    if not isinstance(thresholds, dict):
        return ""
    if quote:
        return "; ".join(f"{k}: {', '.join(_expressions(v))}" for k, v in thresholds.items())
    named = [m for m in required or [] if m in thresholds]
    others = len(thresholds) - len(named)
    return f"thresholds on {', '.join(named) or 'no required metric'}" + (
        f" and {others} more" if others else "")


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


class Undecided:
    """A value of the options object that only running the script would give (a variable,
    a call, a spread): the static reading says where it is and never guesses it."""

    def __init__(self, where: str, what: str) -> None:
        self.where = where
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what} at {self.where}>"


def _literal(node: Any, where: str, undecided: list[Undecided]) -> Any:
    """The value of an ESTree expression made of literals only; else an Undecided noted."""
    kind = getattr(node, "type", "")
    if kind == "Literal" and getattr(node, "regex", None) is None:
        return node.value
    if kind == "TemplateLiteral" and not node.expressions:
        return "".join(q.value.cooked for q in node.quasis)
    if kind == "UnaryExpression" and node.operator == "-" and node.argument.type == "Literal" \
            and isinstance(node.argument.value, int | float):
        return -node.argument.value
    if kind == "ArrayExpression":
        return [_literal(e, f"{where}[{i}]", undecided) for i, e in enumerate(node.elements)]
    if kind == "ObjectExpression":
        found: dict[str, Any] = {}
        for prop in node.properties:
            key = None
            if prop.type == "Property" and not prop.computed:
                key = prop.key.name if prop.key.type == "Identifier" else str(prop.key.value)
            if key is None:
                undecided.append(Undecided(where, "a spread or computed key"))
                found.setdefault("...", Undecided(where, "a spread or computed key"))
                continue
            found[key] = _literal(prop.value, f"{where}.{key}", undecided)
        return found
    value = Undecided(where, f"a {kind or 'value'} (known only by running the script)")
    undecided.append(value)
    return value


def _exported_options(module: Any) -> Any:
    """The initializer of ``export const options = …`` (or of a declaration exported as
    ``options``), None when the script exports no options."""
    declared: dict[str, Any] = {}
    exported: dict[str, str] = {}
    for statement in module.body:
        declaration = statement
        if statement.type == "ExportNamedDeclaration":
            if statement.declaration is None:
                for spec in statement.specifiers:
                    exported[spec.exported.name] = spec.local.name
                continue
            declaration = statement.declaration
            if declaration.type == "VariableDeclaration":
                for item in declaration.declarations:
                    if item.id.type == "Identifier":
                        exported[item.id.name] = item.id.name
        if declaration.type == "VariableDeclaration":
            for item in declaration.declarations:
                if item.id.type == "Identifier":
                    declared[item.id.name] = item.init
    local = exported.get("options")
    return declared.get(local) if local else None


def static_options(text: str) -> tuple[dict[str, Any] | None, list[Undecided]]:
    """The script's exported ``options`` read without running it (a real JavaScript
    parser, literals only), and what could not be decided; ``ValueError`` with the line
    when the script is not valid JavaScript."""
    import esprima

    try:
        module = esprima.parseModule(text)
    except esprima.Error as exc:
        line = getattr(exc, "lineNumber", None)
        raise ValueError(f"not valid JavaScript (line {line})" if line else
                         "not valid JavaScript") from None
    except RecursionError:
        raise ValueError("nested too deep to read") from None
    init = _exported_options(module)
    if init is None:
        return None, []
    undecided: list[Undecided] = []
    value = _literal(init, "options", undecided)
    if not isinstance(value, dict):
        return None, undecided or [Undecided("options", "not an object literal")]
    return value, undecided


def thresholds_decided(options: dict[str, Any]) -> bool:
    """Whether the thresholds (and a ``stages``/``scenarios`` clash) are known: no spread
    at the top of the options or in the thresholds, and every expression a literal."""
    if isinstance(options.get("..."), Undecided):
        return False
    thresholds = options.get("thresholds")
    if isinstance(thresholds, Undecided):
        return False
    if isinstance(thresholds, dict):
        return not any(isinstance(v, Undecided) or k == "..." for k, v in thresholds.items()) \
            and all(not isinstance(e, Undecided) for v in thresholds.values()
                    if isinstance(v, list) for e in v)
    return True


#: A k6 error line (with its hint), and where in a script an exception was thrown.
_ERROR_LINE = re.compile(r'level=(?:error|fatal)\s+msg="((?:[^"\\]|\\.)*)"(.*)$', re.MULTILINE)
_THROWN_AT = re.compile(r"(?:\S*/)?([^/\s:]+\.[cm]?js)(?::|: Line )(\d+):(\d+)")
_EXCEPTION_TYPE = re.compile(r"^(?:Uncaught )?((?:[A-Z][A-Za-z]*)?(?:Error|Exception))\b")
#: Longest k6 error quoted in evidence.
MAX_ERROR_CHARS = 200


def first_error(stderr: str) -> str | None:
    """k6's own first error line, safe to quote after running a repository's script.

    Only k6's ``level=error`` lines count (``console.log``/``console.error`` output is the
    script's, never quoted). A script exception is named by its type and location only:
    its text is the script's (or a module's message about what the script passed it) and
    may carry what it read. k6's own message is quoted without its quoted parts, cut at
    :data:`MAX_ERROR_CHARS`.
    """
    match = next((m for m in _ERROR_LINE.finditer(stderr)
                  if "source=console" not in m.group(2)), None)
    if match is None:
        return None
    message = " ".join(_ESCAPE.sub(_unescape, match.group(1)).split())
    kind = _EXCEPTION_TYPE.match(message)
    if kind or "script exception" in match.group(2) or "file://" in message:
        where = _THROWN_AT.search(message)
        at = f" at {where.group(1)}:{where.group(2)}:{where.group(3)}" if where else ""
        return f"the script threw an exception ({kind.group(1) if kind else 'error'}){at}"
    # Values k6 quotes may be the script's; backticks are k6's own option names.
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "…", message)
    return message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS] + "…"
