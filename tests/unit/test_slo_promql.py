"""The PromQL parser, the SLI interpreter and Alertmanager routing (pure logic)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from soma_audit.domain.slo import alertmanager, promql
from soma_audit.domain.slo.rules import (
    Interpreter,
    Kind,
    Record,
    SliSpec,
    burn_clauses,
    covers,
    per_service_problem,
)

SPEC = SliSpec("http_requests_total", "http_request_duration_seconds", "service")
GOOD = 'sum by (service) (rate(http_requests_total{code!~"5.."}[5m]))'
TOTAL = "sum by (service) (rate(http_requests_total[5m]))"
ERRORS = 'sum by (service) (rate(http_requests_total{code=~"5.."}[5m]))'


def interpret(expr: str, records: list[Record] | None = None, labels: dict[str, str] | None = None):
    return Interpreter(SPEC, records or []).interpret_text(expr, labels)


# -- parser ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    [
        "up",
        'http_requests_total{code=~"5..", service!="x"}[5m] offset 1h',
        "sum by (le, service) (rate(x_bucket[5m]))",
        "sum(rate(x[5m])) without (pod)",
        "topk(3, sum by (service) (rate(x[1h30m])))",
        "a / on(service) group_left(team) b",
        "1 > bool 2",
        "-x ^ 2",
        "max_over_time(x[1h:5m])",
        "rate(x[5m] @ start())",
        '{__name__="up", job="a"}',
        "x # a comment\n + y",
        "0x1F + 1e3 + .5 + Inf",
        "`raw\\string` == 'single'",
    ],
)
def test_parses_promql(text: str) -> None:
    assert isinstance(promql.parse(text), promql.Node)


@pytest.mark.parametrize(
    "text",
    ["", "sum(", "rate(x[5x])", "x{a=}", "(a", "a +", "sum by (a) (x) by (b)",
     'x{a="\\q"}', "(" * 500 + "x" + ")" * 500, "+".join(["x"] * 300)],
)
def test_rejects_what_is_not_promql(text: str) -> None:
    with pytest.raises(promql.PromQLError):
        promql.parse(text)


def test_aggregation_grouping_either_side() -> None:
    before = promql.parse("sum by (service) (rate(x[5m]))")
    after = promql.parse("sum(rate(x[5m])) by (service)")
    assert before == after
    assert isinstance(before, promql.Aggregate) and before.grouping == ("service",)


def test_constant_folding_and_durations() -> None:
    assert promql.constant(promql.parse("14.4 * (1 - 0.999)")) == pytest.approx(0.0144)
    assert promql.constant(promql.parse("x * 2")) is None
    assert promql.parse_duration("1h30m") == 5400
    assert promql.parse_duration("3d") == 3 * 86400
    assert promql.format_duration(1800) == "30m"


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_parser_raises_only_promql_error(text: str) -> None:
    with contextlib.suppress(promql.PromQLError):
        promql.parse(text)


_PIECES = st.sampled_from(
    ["sum", "by", "(", ")", "rate", "x", "[5m]", "{", "}", 'a="b"', ",", "/", "and", "or",
     "1", "0.5", "<", "bool", "on", "group_left", "histogram_quantile", "offset", "5m", ":",
     "-", "^", "@", "without", "'s'", "le", "service"]
)


@settings(max_examples=300)
@given(st.lists(_PIECES, max_size=25).map(" ".join))
def test_interpreter_never_raises_on_token_soup(text: str) -> None:
    interpreter = Interpreter(SPEC, [Record("x", text), Record("y", "x / x")])
    try:
        node = promql.parse(text)
    except promql.PromQLError:
        return
    assert isinstance(interpreter.interpret(node).kind, Kind)
    burn_clauses(node, interpreter, 0.001, {})


# -- matchers ----------------------------------------------------------------------------

def test_matchers_are_anchored_regexes() -> None:
    assert promql.Matcher("code", "=~", "5..").matches("503")
    assert not promql.Matcher("code", "=~", "5..").matches("5033")
    assert promql.Matcher("code", "!~", "5..").matches("200")
    assert not promql.Matcher("code", "=~", "([").matches("(")


# -- SLI interpretation --------------------------------------------------------------------

def test_good_over_total_is_an_availability_ratio_per_service() -> None:
    sli = interpret(f"{GOOD} / {TOTAL}")
    assert (sli.kind, sli.cls, sli.window, sli.problems) == (Kind.RATIO, "good", 300, ())
    assert covers(sli, "gateway-api", "service")


def test_one_minus_error_ratio_through_records_is_availability() -> None:
    records = [Record("sli:errors", ERRORS), Record("sli:total", TOTAL),
               Record("sli:error_ratio", "sli:errors / sli:total")]
    sli = interpret("1 - sli:error_ratio", records)
    assert (sli.kind, sli.cls, sli.problems) == (Kind.RATIO, "good", ())


def test_total_minus_errors_is_good() -> None:
    sli = interpret(f"({TOTAL} - {ERRORS}) / {TOTAL}")
    assert (sli.kind, sli.cls, sli.problems) == (Kind.RATIO, "good", ())


def test_plan_p99_without_sum_is_flagged() -> None:
    sli = interpret("histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))")
    assert sli.kind == Kind.QUANTILE
    assert any("not summed by (le, service)" in p for p in sli.problems)


def test_p99_summed_by_le_and_service_is_correct() -> None:
    sli = interpret("histogram_quantile(0.99, sum by (le, service) "
                    "(rate(http_request_duration_seconds_bucket[5m])))")
    assert (sli.kind, sli.quantile, sli.problems) == (Kind.QUANTILE, 0.99, ())
    assert covers(sli, "orchestrator", "service")


def test_p99_sum_dropping_le_is_flagged() -> None:
    sli = interpret("histogram_quantile(0.99, sum by (service) "
                    "(rate(http_request_duration_seconds_bucket[5m])))")
    assert any("drops the le label" in p for p in sli.problems)


def test_sum_without_by_is_not_per_service() -> None:
    sli = interpret("sum(rate(http_requests_total[5m]))")
    assert not covers(sli, "gateway-api", "service")
    assert "not per service" in per_service_problem(sli, "service")


def test_without_keeps_service_unless_dropped() -> None:
    kept = interpret("sum without (pod) (rate(http_requests_total[5m]))")
    dropped = interpret("sum without (pod, service) (rate(http_requests_total[5m]))")
    assert covers(kept, "llm-hub", "service") and not covers(dropped, "llm-hub", "service")


def test_comparison_times_hundred_is_not_a_ratio() -> None:
    sli = interpret("(sli:p99 < 0.5) * 100", [Record("sli:p99", "histogram_quantile(0.99, "
                    "sum by (le, service) (rate(http_request_duration_seconds_bucket[5m])))")])
    assert sli.kind == Kind.FILTER
    assert any("not a ratio" in p for p in sli.problems)


def test_percentage_keeps_its_scale() -> None:
    assert interpret(f"{GOOD} / {TOTAL} * 100").scale == 100


def test_service_filter_limits_coverage() -> None:
    sli = interpret(
        'sum by (service) (rate(http_requests_total{service=~"a|b",code!~"5.."}[5m])) / '
        'sum by (service) (rate(http_requests_total{service=~"a|b"}[5m]))'
    )
    assert [covers(sli, s, "service") for s in ("a", "b", "c")] == [True, True, False]


def test_pinned_series_needs_the_rule_label() -> None:
    expr = ('sum(rate(http_requests_total{service="a",code=~"5.."}[5m])) / '
            'sum(rate(http_requests_total{service="a"}[5m]))')
    assert covers(interpret(expr, labels={"service": "a"}), "a", "service")
    assert not covers(interpret(expr, labels={"service": "a"}), "b", "service")
    mislabelled = interpret(expr, labels={"service": "b"})
    assert mislabelled.problems and not covers(mislabelled, "b", "service")


def test_ratio_pair_problems() -> None:
    windows = interpret(f"{ERRORS} / sum by (service) (rate(http_requests_total[1h]))")
    assert any("different rate windows (5m vs 1h)" in p for p in windows.problems)
    per_code = interpret('sum by (service, code) (rate(http_requests_total{code=~"5.."}[5m]))'
                         f" / {TOTAL}")
    assert any("keep the code label" in p for p in per_code.problems)
    other_job = interpret('sum by (service) (rate(http_requests_total{code=~"5..",job="a"}[5m]))'
                          f" / {TOTAL}")
    assert any("select different series" in p for p in other_job.problems)
    unsummed = interpret('rate(http_requests_total{code=~"5.."}[5m]) '
                         "/ rate(http_requests_total[5m])")
    assert any("not summed" in p for p in unsummed.problems)


def test_self_reference_does_not_loop() -> None:
    sli = interpret("a", [Record("a", "a + 1")])
    assert sli.kind == Kind.OTHER


def test_a_recorded_series_is_interpreted_once_per_interpreter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #8: every reference used to re-parse and re-interpret the rule behind it."""
    parsed: list[str] = []
    real_parse = promql.parse

    def counting_parse(text: str) -> promql.Node:
        parsed.append(text)
        return real_parse(text)

    monkeypatch.setattr(promql, "parse", counting_parse)
    records = [Record("sli:errors", ERRORS), Record("sli:total", TOTAL),
               Record("sli:ratio", "sli:errors / sli:total")]
    interpreter = Interpreter(SPEC, records)
    alerts = ["sli:ratio > 0.01", "sli:ratio > 0.05", "1 - sli:ratio < 0.99"]
    slis = [interpreter.interpret_text(alert) for alert in alerts]
    assert all(sli.metrics == {"http_requests_total"} for sli in slis)
    assert sorted(parsed) == sorted([*alerts, ERRORS, TOTAL, "sli:errors / sli:total"])


_NAMES = ("a", "b", "c")
_REFERENCE = st.builds("{}{}".format, st.sampled_from(_NAMES),
                       st.sampled_from(["", '{service="s1"}', '{service="s2"}']))
_OPERAND = st.one_of(_REFERENCE, st.sampled_from([GOOD, TOTAL, ERRORS, "1", "(("]))
_EXPRESSION = st.one_of(
    _OPERAND,
    st.builds("{} {} {}".format, _OPERAND, st.sampled_from(["/", "-", "and", ">", "*"]),
              _OPERAND),
    st.builds("sum by (service) ({})".format, _OPERAND),
)
_RECORDS = st.lists(
    st.builds(Record, st.sampled_from(_NAMES), _EXPRESSION,
              st.sampled_from([{}, {"service": "s1"}, {"service": "s2"}, {"env": "prod"}])),
    max_size=6,
)


@settings(max_examples=300)
@given(_RECORDS, st.lists(_EXPRESSION, min_size=1, max_size=6))
# b reads a's second definition without a cycle; a{service="s1"} reads the first, whose b
# now meets a again: the meaning of b remembered from the first query must not be reused
@example([Record("a", "b", {"service": "s1"}), Record("a", TOTAL),
          Record("b", 'a{service="s2"}')], ["b", 'a{service="s1"}'])
def test_memoized_meanings_equal_fresh_ones(records: list[Record], queries: list[str]) -> None:
    """Reusing one interpreter (its memo) never changes a meaning — through chains,
    cycles and same-name records told apart by their labels."""
    shared = Interpreter(SPEC, records)
    for query in queries:
        try:
            expected = Interpreter(SPEC, records).interpret_text(query)
        except promql.PromQLError:
            continue
        assert shared.interpret_text(query) == expected


# -- burn rates --------------------------------------------------------------------------

def _conditions(expr: str, records: list[Record]) -> list[list[str]]:
    interpreter = Interpreter(SPEC, records)
    return [[str(c) for c in clause]
            for clause in burn_clauses(promql.parse(expr), interpreter, 0.001, {})]


def test_burn_windows_come_from_rate_windows_not_names() -> None:
    records = [Record("sli:error:ratio_rate5m",  # misnamed on purpose: its window is 1h
                      'sum by (service) (rate(http_requests_total{code=~"5.."}[1h])) / '
                      "sum by (service) (rate(http_requests_total[1h]))"),
               Record("sli:error:ratio_rate30m",
                      'sum by (service) (rate(http_requests_total{code=~"5.."}[5m])) / '
                      "sum by (service) (rate(http_requests_total[5m]))")]
    expr = ("sli:error:ratio_rate5m > 14.4 * 0.001 and sli:error:ratio_rate30m > 14.4 * 0.001"
            " or sli:error:ratio_rate5m / 0.001 > 6")
    assert _conditions(expr, records) == [
        ["1h > 14.4x budget", "5m > 14.4x budget"], ["1h > 6x budget"]]


def test_constant_on_the_left_and_availability_form() -> None:
    records = [Record("avail_1h", "sum by (service) (rate(http_requests_total{code!~\"5..\"}"
                                  "[1h])) / sum by (service) (rate(http_requests_total[1h]))")]
    assert _conditions("0.0144 < 1 - avail_1h", records) == [["1h > 14.4x budget"]]
    assert _conditions("avail_1h < 1 - 14.4 * 0.001", records) == [["1h > 14.4x budget"]]
    assert _conditions("avail_1h > 0.5", records) == [[]]


# -- Alertmanager routing ----------------------------------------------------------------

def test_parse_matcher_forms() -> None:
    assert alertmanager.parse_matcher('severity=~"critical|page"') == promql.Matcher(
        "severity", "=~", "critical|page")
    assert alertmanager.parse_matcher("team = sre") == promql.Matcher("team", "=", "sre")
    assert alertmanager.parse_matcher('{service!="x"}') == promql.Matcher("service", "!=", "x")
    assert alertmanager.parse_matcher("nonsense") is None


def test_routing_first_match_and_continue() -> None:
    tree = alertmanager.from_alertmanager_yaml({
        "route": {"receiver": "default", "routes": [
            {"receiver": "audit", "matchers": ["severity=critical"], "continue": True},
            {"receiver": "pager", "match_re": {"severity": "critical|page"}},
            {"receiver": "never", "matchers": ["severity=critical"]},
        ]},
        "receivers": [{"name": "default", "email_configs": [{}]},
                      {"name": "audit", "webhook_configs": [{}]},
                      {"name": "pager"}],
    }, "am.yml")
    assert tree is not None
    deliveries = alertmanager.deliver(tree, {"severity": "critical"}, match_top=False)
    assert [d.receiver for d in deliveries] == ["audit", "pager"]
    assert deliveries[1].problems == ("receiver 'pager' has no integration: alerts are dropped",)
    fallthrough = alertmanager.deliver(tree, {"severity": "info"}, match_top=False)
    assert [d.receiver for d in fallthrough] == ["default"]
    assert not alertmanager.severity_routed(fallthrough[0], "severity", top_counts=False)


def test_alertmanagerconfig_namespace_matcher() -> None:
    spec = {"route": {"receiver": "r"}, "receivers": [{"name": "r", "slackConfigs": [{}]}]}
    tree = alertmanager.from_alertmanager_config(
        spec, "AlertmanagerConfig/mon/x", promql.Matcher("namespace", "=", "mon"))
    assert alertmanager.deliver(tree, {"severity": "critical"}, match_top=True) == []
    routed = alertmanager.deliver(tree, {"namespace": "mon"}, match_top=True)
    assert [d.receiver for d in routed] == ["r"] and not routed[0].problems


def test_label_selector() -> None:
    selector = {"matchLabels": {"a": "1"},
                "matchExpressions": [{"key": "b", "operator": "In", "values": ["x", "y"]},
                                     {"key": "c", "operator": "DoesNotExist"}]}
    assert alertmanager.selects(selector, {"a": "1", "b": "y"})
    assert not alertmanager.selects(selector, {"a": "1", "b": "z"})
    assert not alertmanager.selects(selector, {"a": "1", "b": "x", "c": ""})
    assert alertmanager.selects({}, {})
