"""What an SLO rule really computes, read from its PromQL syntax tree.

An expression is interpreted bottom-up into an :class:`Sli`: a request rate (total, good
or errors), a histogram-bucket rate, a good/total or errors/total ratio, a quantile, a
filter (a comparison), a number — or "other". Along the way it tracks which labels
survive (is the result still per service?) and collects what is wrong, in words, such as
``histogram_quantile`` over buckets not summed by ``le`` and ``service``. Recorded series
are followed through their recording rules, so ``sli:errors:rate5m / sli:requests:rate5m``
is understood as the ratio it is.

Decisions (documented in ``checks/slo.yaml``):

- a request rate is ``rate``/``irate``/``increase`` of the request counter; matchers on
  other labels than the service label that keep 5xx and drop 2xx make it "errors", the
  reverse makes it "good", none make it "total"; any other matcher makes it neither;
- a ratio needs both rates summed (``sum by``/``sum without``) over the same window,
  with the status label aggregated away on both sides;
- a result is per service when it keeps the service label (``by (…service…)``, or
  ``without`` not dropping it); a series aggregated across services is still accepted
  for one service when every selector pins ``service="x"`` and the rule sets
  ``labels.service: x``;
- classic histograms only: p99 is ``histogram_quantile(0.99, sum by (le, service)
  (rate(<latency_metric>_bucket[w])))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from soma_audit.domain.slo import promql
from soma_audit.domain.slo.promql import (
    Aggregate,
    Binary,
    Call,
    Node,
    Number,
    Paren,
    Selector,
    Unary,
)

#: Labels that carry the HTTP status of a request; matchers on them tell good from errors.
STATUS_LABELS = frozenset({"code", "status", "status_code", "http_status", "response_code"})
#: Status codes status matchers are tried against: "errors" keep every 5xx and no 2xx.
_GOOD_CODES = ("200", "201", "204")
_ERROR_CODES = ("500", "502", "503", "504")
_RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})


class Kind(StrEnum):
    REQUESTS = "request rate"
    BUCKETS = "bucket rate"
    RATIO = "ratio"
    QUANTILE = "quantile"
    FILTER = "filter"
    NUMBER = "number"
    OTHER = "other"


@dataclass(frozen=True)
class Labels:
    """The labels a result keeps: exactly ``names`` (closed), or all but ``names`` (open)."""

    names: frozenset[str] = frozenset()
    closed: bool = False

    def has(self, label: str) -> bool:
        return (label in self.names) == self.closed

    def keep(self, labels: Iterable[str]) -> Labels:
        wanted = frozenset(labels)
        if self.closed:
            return Labels(self.names & wanted, True)
        return Labels(wanted - self.names, True)

    def drop(self, labels: Iterable[str]) -> Labels:
        unwanted = frozenset(labels)
        if self.closed:
            return Labels(self.names - unwanted, True)
        return Labels(self.names | unwanted, False)

    def add(self, labels: Iterable[str]) -> Labels:
        added = frozenset(labels)
        if self.closed:
            return Labels(self.names | added, True)
        return Labels(self.names - added, False)


ALL_LABELS = Labels()
NO_LABELS = Labels(frozenset(), True)


@dataclass(frozen=True)
class Sli:
    """The meaning of an expression, as far as SLOs are concerned."""

    kind: Kind
    labels: Labels = ALL_LABELS
    #: REQUESTS and RATIO: "total", "good" or "errors".
    cls: str = ""
    #: Rate window in seconds (the same on every rate inside), None when unknown/mixed.
    window: float | None = None
    #: REQUESTS/BUCKETS: aggregated with ``sum`` (by or without).
    summed: bool = False
    #: RATIO: the factor the ratio was multiplied by (100 for a percentage).
    scale: float = 1.0
    #: Matchers on the service label that every selector inside applies.
    scope: tuple[promql.Matcher, ...] = ()
    #: The one service every selector is pinned to with ``service="x"``.
    pinned: str | None = None
    #: Labels whose matchers told good from errors (must be aggregated away in a ratio).
    status_labels: frozenset[str] = frozenset()
    #: Other matchers of the rates (job, path…): both sides of a ratio must agree.
    filters: frozenset[promql.Matcher] = frozenset()
    quantile: float | None = None
    value: float | None = None
    #: The SLI base metrics read, directly or through recorded series.
    metrics: frozenset[str] = frozenset()
    #: What is wrong with it as an SLI, in words.
    problems: tuple[str, ...] = ()

    def admits(self, service: str) -> bool:
        return all(m.matches(service) for m in self.scope)


@dataclass(frozen=True)
class Record:
    """A recording rule: the series name, its expression and its static labels."""

    name: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SliSpec:
    """The names the SLIs are built from (``config.slo``)."""

    request_metric: str
    latency_metric: str
    service_label: str

    @property
    def bucket_metric(self) -> str:
        return f"{self.latency_metric}_bucket"


def _merge(*items: Sli) -> dict[str, Any]:
    """Fields every combined result inherits from its operands: metrics and problems."""
    problems: list[str] = []
    for item in items:
        problems.extend(p for p in item.problems if p not in problems)
    return {
        "metrics": frozenset().union(*(i.metrics for i in items)),
        "problems": tuple(problems),
    }


@dataclass
class _Frame:
    """One recorded series being interpreted: the series it read, and whether it met a
    cycle (its meaning then depends on where the reference came from)."""

    read: set[str] = field(default_factory=set)
    cyclic: bool = False


@dataclass(frozen=True)
class _Memo:
    """A recorded series' meaning and every series read to compute it."""

    sli: Sli
    read: frozenset[str]


class Interpreter:
    """Interprets expressions against the recording rules in scope (to follow references)."""

    def __init__(self, spec: SliSpec, records: Iterable[Record] = ()) -> None:
        self.spec = spec
        self.records: dict[str, list[Record]] = {}
        for record in records:
            self.records.setdefault(record.name, []).append(record)
        self._resolving: set[str] = set()
        #: Recorded series already interpreted, by (name, index of the definition).
        self._memo: dict[tuple[str, int], _Memo] = {}
        #: The references being interpreted, innermost last.
        self._frames: list[_Frame] = []

    def interpret_text(self, expr: str, labels: Mapping[str, str] | None = None) -> Sli:
        """Interpret ``expr``; :class:`promql.PromQLError` when it does not parse."""
        sli = self.interpret(promql.parse(expr))
        return with_rule_labels(sli, labels or {}, self.spec.service_label)

    def interpret(self, node: Node) -> Sli:
        match node:
            case Number(value=value):
                return Sli(Kind.NUMBER, NO_LABELS, value=value)
            case Paren(expr=inner):
                return self.interpret(inner)
            case Selector():
                return self._selector(node)
            case Call():
                return self._call(node)
            case Aggregate():
                return self._aggregate(node)
            case Binary():
                return self._binary(node)
            case Unary(op=op, expr=inner):
                sli = self.interpret(inner)
                if sli.kind == Kind.NUMBER and sli.value is not None:
                    return replace(sli, value=-sli.value if op == "-" else sli.value)
                return Sli(Kind.OTHER, sli.labels, **_merge(sli))
        return Sli(Kind.OTHER, **_merge(*map(self.interpret, promql.children(node))))

    # -- selectors -------------------------------------------------------------------

    def _service_scope(self, selector: Selector) -> dict[str, Any]:
        scope = tuple(m for m in selector.matchers if m.name == self.spec.service_label)
        pinned = {m.value for m in scope if m.op == "="}
        return {"scope": scope, "pinned": next(iter(pinned)) if len(pinned) == 1 else None}

    def _selector(self, node: Selector) -> Sli:
        where = self._service_scope(node)
        if node.metric in self.records and node.range is None:
            sli = self._reference(node)
            return replace(sli, scope=sli.scope + where["scope"],
                           pinned=where["pinned"] or sli.pinned)
        read = {node.metric} & {self.spec.request_metric, self.spec.bucket_metric}
        return Sli(Kind.OTHER, metrics=frozenset(m for m in read if m), **where)

    def _reference(self, node: Selector) -> Sli:
        """A recorded series: its rule's meaning (the first definition whose labels fit).

        Memoized: alerts and ratios refer to the same few series again and again. A result
        is reused only when it met no cycle and none of the series it read is being
        resolved now, so it is the very result a fresh interpretation would give.
        """
        name = node.metric or ""
        for frame in self._frames:
            frame.read.add(name)
        if name in self._resolving:
            for frame in self._frames:
                frame.cyclic = True
            return Sli(Kind.OTHER, problems=(f"{name} refers to itself",))
        wanted = {m.name: m.value for m in node.matchers if m.op == "="}
        candidates = self.records[name]
        index = next(
            (i for i, r in enumerate(candidates)
             if all(wanted.get(k, v) == v for k, v in r.labels.items())),
            0,
        )
        memo = self._memo.get((name, index))
        if memo is not None and not memo.read & self._resolving:
            for frame in self._frames:
                frame.read |= memo.read
            return memo.sli
        record = candidates[index]
        frame = _Frame()
        self._frames.append(frame)
        self._resolving.add(name)
        try:
            sli = self.interpret_text(record.expr, record.labels)
            sli = replace(sli, problems=tuple(f"via {name}: {p}" for p in sli.problems))
        except promql.PromQLError as exc:
            sli = Sli(Kind.OTHER, problems=(f"{name} does not parse: {exc}",))
        finally:
            self._resolving.discard(name)
            self._frames.pop()
        if not frame.cyclic:
            self._memo[(name, index)] = _Memo(sli, frozenset(frame.read))
        return sli

    def _status_class(self, matchers: Iterable[promql.Matcher]) -> str:
        """"total", "good", "errors" or "" (neither) from the status-label matchers."""
        status = [m for m in matchers if m.name in STATUS_LABELS]
        if not status:
            return "total"

        def accepts(code: str) -> bool:
            return all(m.matches(code) for m in status)

        if all(map(accepts, _ERROR_CODES)) and not any(map(accepts, _GOOD_CODES)):
            return "errors"
        if accepts("200") and not any(map(accepts, _ERROR_CODES)):
            return "good"
        return ""

    # -- calls and aggregations --------------------------------------------------------

    def _call(self, node: Call) -> Sli:
        args = [promql.strip_parens(a) for a in node.args]
        if node.func in _RATE_FUNCTIONS and len(args) == 1 and isinstance(args[0], Selector):
            return self._rate(args[0])
        if node.func == "histogram_quantile" and len(args) == 2:
            return self._histogram_quantile(args[0], args[1])
        return Sli(Kind.OTHER, **_merge(*map(self.interpret, node.args)))

    def _rate(self, selector: Selector) -> Sli:
        where = {"window": selector.range, **self._service_scope(selector)}
        metric = selector.metric
        if selector.range is None or metric not in (
            self.spec.request_metric, self.spec.bucket_metric
        ):
            return Sli(Kind.OTHER, **where)
        filters = frozenset(
            m for m in selector.matchers
            if m.name != self.spec.service_label and m.name not in STATUS_LABELS
        )
        if metric == self.spec.bucket_metric:
            return Sli(Kind.BUCKETS, filters=filters, metrics=frozenset({metric}), **where)
        cls = self._status_class(selector.matchers)
        status = frozenset(m.name for m in selector.matchers if m.name in STATUS_LABELS)
        if not cls:
            matchers = ", ".join(str(m) for m in selector.matchers if m.name in status)
            return Sli(Kind.OTHER, metrics=frozenset({metric}), problems=(
                f"rate({metric}{{{matchers}}}) selects neither all, good (non-5xx) nor "
                "error (5xx) requests",
            ), **where)
        return Sli(Kind.REQUESTS, cls=cls, status_labels=status, filters=filters,
                   metrics=frozenset({metric}), **where)

    def _histogram_quantile(self, phi: Node, buckets: Node) -> Sli:
        inner = self.interpret(buckets)
        if inner.kind != Kind.BUCKETS:
            return Sli(Kind.OTHER, **_merge(inner))
        problems = list(inner.problems)
        name = self.spec.bucket_metric
        service = self.spec.service_label
        if not inner.summed:
            problems.append(
                f"histogram_quantile over rate({name}) not summed by (le, {service}): "
                "the quantile is computed per series (pod, instance…), not per service"
            )
        elif not inner.labels.has("le"):
            problems.append(
                f"the sum over {name} drops the le label: histogram_quantile needs it "
                "and returns nothing"
            )
        return replace(
            inner,
            kind=Kind.QUANTILE,
            labels=inner.labels.drop({"le"}),
            quantile=promql.constant(phi),
            problems=tuple(problems),
        )

    def _aggregate(self, node: Aggregate) -> Sli:
        inner = self.interpret(node.expr)
        if node.grouping is None:
            labels = NO_LABELS
        elif node.without:
            labels = inner.labels.drop(node.grouping)
        else:
            labels = inner.labels.keep(node.grouping)
        if inner.kind in (Kind.REQUESTS, Kind.BUCKETS):
            if node.op == "sum":
                return replace(inner, labels=labels, summed=True)
            return Sli(Kind.OTHER, labels, metrics=inner.metrics, problems=(
                *inner.problems, f"{node.op} of a rate is not a total: use sum",
            ))
        if inner.kind == Kind.FILTER:
            return replace(inner, labels=labels)
        return Sli(Kind.OTHER, labels, scope=inner.scope, pinned=inner.pinned, **_merge(inner))

    # -- operators -------------------------------------------------------------------

    def _binary(self, node: Binary) -> Sli:
        value = promql.constant(node)
        if value is not None:
            return Sli(Kind.NUMBER, NO_LABELS, value=value)
        lhs, rhs = self.interpret(node.lhs), self.interpret(node.rhs)
        common = {
            "labels": _binary_labels(node, lhs, rhs),
            "scope": lhs.scope + rhs.scope,
            "pinned": _pinned(lhs, rhs),
        }
        merged = _merge(lhs, rhs)
        if node.op in promql.COMPARISONS:
            what = f"`{node.op} bool` yields 0 or 1" if node.bool else (
                f"comparison `{node.op}` keeps only the series where it holds"
            )
            return Sli(Kind.FILTER, metrics=merged["metrics"],
                       problems=(*merged["problems"], f"{what}: not a ratio"), **common)
        if Kind.FILTER in (lhs.kind, rhs.kind):
            return replace(lhs if lhs.kind == Kind.FILTER else rhs, **common, **merged)
        if node.op in ("and", "unless"):
            return replace(lhs, **common, **merged)
        combined = self._arithmetic(node.op, lhs, rhs)
        if combined is None:
            return Sli(Kind.OTHER, **common, **merged)
        problems = dict.fromkeys((*merged["problems"], *combined.problems))
        return replace(combined, metrics=merged["metrics"], problems=tuple(problems), **common)

    def _arithmetic(self, op: str, lhs: Sli, rhs: Sli) -> Sli | None:
        """Arithmetic that keeps SLI meaning: good/total, total - errors, 1 - ratio, k * ratio."""
        if op == "/" and lhs.kind == rhs.kind == Kind.REQUESTS:
            if rhs.cls != "total" or lhs.cls == "total":
                return None
            return Sli(Kind.RATIO, cls=lhs.cls, window=_same(lhs.window, rhs.window),
                       problems=tuple(self._ratio_problems(lhs, rhs)))
        if op == "-" and lhs.kind == rhs.kind == Kind.REQUESTS:
            if (lhs.cls, rhs.cls) != ("total", "errors"):
                return None
            return replace(rhs, cls="good", summed=lhs.summed and rhs.summed,
                           window=_same(lhs.window, rhs.window),
                           problems=tuple(self._pair_problems(rhs, lhs)))
        if op == "-" and lhs.kind == Kind.NUMBER and rhs.kind == Kind.RATIO:
            if lhs.value != rhs.scale:
                return None
            return replace(rhs, cls={"good": "errors", "errors": "good"}[rhs.cls], problems=())
        if op in ("*", "/") and {lhs.kind, rhs.kind} == {Kind.RATIO, Kind.NUMBER}:
            ratio, number = (lhs, rhs) if lhs.kind == Kind.RATIO else (rhs, lhs)
            factor = number.value
            if not factor or not math.isfinite(factor) or (op == "/" and ratio is not lhs):
                return None
            return replace(ratio, scale=ratio.scale * (factor if op == "*" else 1 / factor),
                           problems=())
        return None

    def _pair_problems(self, part: Sli, total: Sli) -> list[str]:
        """What makes ``part`` and ``total`` incomparable series by series."""
        service = self.spec.service_label
        problems = []
        if not (part.summed and total.summed):
            problems.append(
                "rates not summed: combined per series (pod, instance, code…), "
                f"not per {service}"
            )
        if part.window != total.window:
            problems.append(
                f"different rate windows ({_window_text(part.window)} vs "
                f"{_window_text(total.window)})"
            )
        if part.filters != total.filters:
            mismatch = sorted(map(str, part.filters ^ total.filters))
            problems.append(f"the two sides select different series ({', '.join(mismatch)})")
        for label in sorted(part.status_labels):
            if part.labels.has(label) or total.labels.has(label):
                problems.append(f"the sums keep the {label} label: computed per {label}")
        if part.labels.has(service) != total.labels.has(service):
            which = "numerator" if part.labels.has(service) else "denominator"
            problems.append(f"only the {which} is by {service}: the two sides do not match")
        return problems

    def _ratio_problems(self, part: Sli, total: Sli) -> list[str]:
        return [f"ratio: {p}" for p in self._pair_problems(part, total)]


def _same(a: float | None, b: float | None) -> float | None:
    return a if a == b else None


def _window_text(window: float | None) -> str:
    return promql.format_duration(window) if window is not None else "none"


def _pinned(lhs: Sli, rhs: Sli) -> str | None:
    if lhs.kind == Kind.NUMBER:
        return rhs.pinned
    if rhs.kind == Kind.NUMBER:
        return lhs.pinned
    return lhs.pinned if lhs.pinned == rhs.pinned else None


def _binary_labels(node: Binary, lhs: Sli, rhs: Sli) -> Labels:
    """Labels of a binary operation's result, as Prometheus computes them."""
    if lhs.kind == Kind.NUMBER:
        return rhs.labels
    if rhs.kind == Kind.NUMBER:
        return lhs.labels
    matching = node.matching
    if matching is None:
        return lhs.labels
    if matching.group == "left":
        return lhs.labels.add(matching.include)
    if matching.group == "right":
        return rhs.labels.add(matching.include)
    if node.op in promql.SET_OPERATORS or (node.op in promql.COMPARISONS and not node.bool):
        return lhs.labels
    if matching.on:
        return lhs.labels.keep(matching.labels)
    return lhs.labels.drop(matching.labels)


def with_rule_labels(sli: Sli, labels: Mapping[str, str], service_label: str) -> Sli:
    """A rule's static labels are added to (and override) the labels of its result."""
    value = labels.get(service_label)
    sli = replace(sli, labels=sli.labels.add(k for k in labels if k != service_label))
    if value is None:
        return sli
    if sli.pinned == value:
        return replace(sli, labels=sli.labels.add({service_label}))
    if sli.pinned is not None:
        problem = f"its selectors are filtered to {service_label}={sli.pinned}"
    elif sli.labels.has(service_label):
        problem = f"it overwrites the {service_label} label of every series"
    else:
        problem = "the series is aggregated across all services"
    return replace(sli, problems=(*sli.problems, f"labels.{service_label}={value} but {problem}"))


def covers(sli: Sli, service: str, service_label: str) -> bool:
    """Whether the result holds a series of its own for ``service``."""
    if not sli.admits(service):
        return False
    if sli.labels.has(service_label):
        return True
    return sli.pinned == service


def per_service_problem(sli: Sli, service_label: str) -> str:
    """Why a result is not per service (empty when it is, or is pinned to one)."""
    if sli.labels.has(service_label) or sli.pinned is not None:
        return ""
    return (
        f"not per {service_label}: the aggregation drops the {service_label} label "
        f"(use sum by ({service_label}) or by (le, {service_label}))"
    )


@dataclass(frozen=True)
class Rule:
    """One rule of a PrometheusRule object, with where it sits (for evidence)."""

    ref: str
    namespace: str | None
    group: str
    body: Mapping[str, Any]

    @property
    def is_alert(self) -> bool:
        return "alert" in self.body

    @property
    def name(self) -> str:
        return str(self.body.get("alert") or self.body.get("record") or "")

    @property
    def expr(self) -> str:
        expr = self.body.get("expr")
        return str(expr) if isinstance(expr, (str, int, float)) else ""

    def mapping(self, key: str) -> dict[str, str]:
        value = self.body.get(key)
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    @property
    def where(self) -> str:
        return f"group {self.group}, {'alert' if self.is_alert else 'record'} {self.name}"


def rules_of(ref: str, namespace: str | None, spec: Mapping[str, Any]) -> list[Rule]:
    """The rules of a PrometheusRule ``spec`` (``groups[].rules[]``), malformed ones skipped
    (``promtool`` reports those)."""
    found = []
    groups = spec.get("groups")
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, dict):
            continue
        rules = group.get("rules")
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, dict) and ("record" in rule or "alert" in rule):
                found.append(Rule(ref, namespace, str(group.get("name", "")), rule))
    return found


def records_of(rules: Iterable[Rule]) -> list[Record]:
    return [Record(r.name, r.expr, r.mapping("labels")) for r in rules if not r.is_alert]


@dataclass(frozen=True)
class BurnCondition:
    """``error ratio over window > factor * error budget``, one operand of an alert."""

    window: float
    factor: float
    sli: Sli

    def __str__(self) -> str:
        return f"{promql.format_duration(self.window)} > {self.factor:g}x budget"


def burn_clauses(node: Node, interpreter: Interpreter, budget: float,
                 labels: Mapping[str, str]) -> list[list[BurnCondition]]:
    """The alert's ``or`` branches, each the burn-rate conditions its ``and`` chain holds.

    Windows are the rate windows inside the compared error ratio (followed through
    recording rules), never series names; the factor is the threshold over the budget.
    """
    node = promql.strip_parens(node)
    if isinstance(node, Binary) and node.op == "or":
        return (burn_clauses(node.lhs, interpreter, budget, labels)
                + burn_clauses(node.rhs, interpreter, budget, labels))
    return [list(_conditions(node, interpreter, budget, labels))]


def _conditions(node: Node, interpreter: Interpreter, budget: float,
                labels: Mapping[str, str]) -> Iterable[BurnCondition]:
    node = promql.strip_parens(node)
    if not isinstance(node, Binary):
        return
    if node.op == "and":
        yield from _conditions(node.lhs, interpreter, budget, labels)
        yield from _conditions(node.rhs, interpreter, budget, labels)
        return
    if node.op not in ("<", "<=", ">", ">=") or node.bool:
        return
    vector, threshold, op = node.lhs, promql.constant(node.rhs), node.op
    if threshold is None:
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
        vector, threshold, op = node.rhs, promql.constant(node.lhs), flipped
    if threshold is None or budget <= 0:
        return
    sli = with_rule_labels(interpreter.interpret(vector), labels,
                           interpreter.spec.service_label)
    if sli.kind != Kind.RATIO or sli.window is None or not sli.scale:
        return
    if sli.cls == "errors" and op in (">", ">="):
        factor = threshold / sli.scale / budget
    elif sli.cls == "good" and op in ("<", "<="):
        factor = (1 - threshold / sli.scale) / budget
    else:
        return
    yield BurnCondition(sli.window, factor, sli)
