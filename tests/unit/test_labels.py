"""Label selectors (soma_audit/kube/labels.py): the API's semantics (NetworkPolicy), the
as-written three-valued reading (Chaos Mesh, Alertmanager), and no crash on garbage."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from soma_audit.kube.labels import (
    Requirement,
    has_labels,
    namespace_selector_labels,
    parse_selector,
)

KEYS = ("app", "tier")
VALUES = ("a", "b")
labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)


def _parse(data: Any) -> tuple[Any, list[str]]:
    problems: list[str] = []
    return parse_selector(data, "sel", problems), problems


def test_empty_selector_selects_everything() -> None:
    selector, problems = _parse({})
    assert not problems and selector.empty and selector.describe() == "{}"
    assert selector.matches({}) and selector.matches({"app": "a"})
    assert selector.verdict({"app": "a"}) is True


def test_match_labels_and_expressions_are_anded() -> None:
    selector, problems = _parse({
        "matchLabels": {"app": "a"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "c"]},
                             {"key": "gone", "operator": "DoesNotExist"}],
    })
    assert not problems
    assert selector.matches({"app": "a", "tier": "b"})
    assert not selector.matches({"app": "a", "tier": "x"})
    assert not selector.matches({"app": "a", "tier": "b", "gone": ""})
    assert not selector.matches({"tier": "b"})
    assert selector.describe() == "app=a,tier in (b,c),!gone"


def test_operators() -> None:
    assert Requirement("k", "In", frozenset({"v"})).verdict({"k": "v"}) is True
    assert Requirement("k", "In", frozenset({"v"})).verdict({}) is False
    assert Requirement("k", "NotIn", frozenset({"v"})).verdict({}) is True
    assert Requirement("k", "NotIn", frozenset({"v"})).verdict({"k": "v"}) is False
    assert Requirement("k", "Exists").verdict({"k": ""}) is True
    assert Requirement("k", "DoesNotExist").verdict({"k": ""}) is False
    assert Requirement("k", "").verdict({"k": ""}) is None


def test_invalid_selector_selects_nothing_and_says_why() -> None:
    selector, problems = _parse({
        "matchLabels": {"app": 1},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": []},
                             {"key": "x", "operator": "Exists", "values": ["a"]},
                             {"key": "bad key", "operator": "Exists"},
                             {"key": "y", "operator": "Near"},
                             "junk"],
    })
    assert problems == [
        "sel.matchLabels: invalid label 'app': 1",
        "sel.matchExpressions[0].values: must be non-empty for In",
        "sel.matchExpressions[1].values: must be empty for Exists",
        "sel.matchExpressions[2].key: invalid label key 'bad key'",
        "sel.matchExpressions[3].operator: 'Near' is not one of In, NotIn, Exists, DoesNotExist",
        "sel.matchExpressions[4]: expected a mapping",
    ]
    assert not selector.valid and not selector.empty
    assert not selector.matches({"app": "1", "tier": "a", "x": "a", "bad key": ""})
    assert selector.describe() == "<invalid selector>"


def test_verdict_reads_what_is_written() -> None:
    # Values compared as strings; values of Exists ignored; an empty In matches nothing.
    selector, _ = _parse({"matchLabels": {"app": 1},
                          "matchExpressions": [{"key": "x", "operator": "Exists",
                                                "values": ["a"]}]})
    assert selector.verdict({"app": "1", "x": "z"}) is True
    assert selector.verdict({"app": "1"}) is False
    empty_in, _ = _parse({"matchExpressions": [{"key": "x", "operator": "In"}]})
    assert empty_in.verdict({"x": "a"}) is False


def test_verdict_is_none_only_when_nothing_rules_the_labels_out() -> None:
    selector, _ = _parse({"matchLabels": {"app": "a"},
                          "matchExpressions": [{"key": "k", "operator": "Near"}]})
    assert selector.verdict({"app": "a"}) is None
    assert selector.verdict({"app": "b"}) is False
    for unreadable in ({"matchExpressions": ["junk"]}, {"matchExpressions": "junk"}):
        assert _parse(unreadable)[0].verdict({}) is None
    # A missing or empty matchExpressions constrains nothing.
    assert _parse({"matchExpressions": {}})[0].verdict({}) is True


def test_other_field_names() -> None:
    problems: list[str] = []
    selector = parse_selector(
        {"labelSelectors": {"app": "a"},
         "expressionSelectors": [{"key": "tier", "operator": "NotIn", "values": ["b"]}]},
        "spec.selector", problems, labels_key="labelSelectors",
        expressions_key="expressionSelectors")
    assert not problems
    assert selector.matches({"app": "a"}) and not selector.matches({"app": "a", "tier": "b"})
    parse_selector({"labelSelectors": "x"}, "spec.selector", problems,
                   labels_key="labelSelectors")
    assert problems == ["spec.selector.labelSelectors: expected a mapping"]


def test_not_a_mapping() -> None:
    selector, problems = _parse(["app"])
    assert problems == ["sel: expected a label selector mapping"]
    assert not selector.matches({}) and selector.verdict({}) is True


def test_has_labels() -> None:
    assert has_labels({"app": "a", "tier": "b"}, {"app": "a"}.items())
    assert not has_labels({"app": "a"}, {"app": "a", "tier": "b"}.items())
    assert has_labels({}, ())


def test_namespace_selector_labels_add_the_name_label() -> None:
    assert namespace_selector_labels("x", None) == {"kubernetes.io/metadata.name": "x"}
    assert namespace_selector_labels("x", {"team": "a", "kubernetes.io/metadata.name": "y"}) == {
        "team": "a", "kubernetes.io/metadata.name": "x"}


_FIELDS = st.sampled_from(["matchLabels", "matchExpressions", "key", "operator", "values",
                           *KEYS])
_garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_FIELDS, inner, max_size=3)),
    max_leaves=10,
)


@given(_garbage, labels)
def test_garbage_never_raises(data: Any, pod: dict[str, str]) -> None:
    selector, problems = _parse(data)
    selector.matches(pod)
    selector.verdict(pod)
    selector.describe()
    assert selector.valid == (not problems)


@st.composite
def _valid_selectors(draw: st.DrawFn) -> dict[str, Any]:
    with_values = st.fixed_dictionaries({
        "key": st.sampled_from(KEYS), "operator": st.sampled_from(["In", "NotIn"]),
        "values": st.lists(st.sampled_from(VALUES), min_size=1, max_size=2)})
    without = st.fixed_dictionaries({
        "key": st.sampled_from(KEYS), "operator": st.sampled_from(["Exists", "DoesNotExist"])})
    expression = with_values | without
    return {"matchLabels": draw(labels),
            "matchExpressions": draw(st.lists(expression, max_size=2))}


@given(_valid_selectors(), labels)
def test_verdict_agrees_with_matches_on_valid_selectors(data: dict[str, Any],
                                                        pod: dict[str, str]) -> None:
    selector, problems = _parse(data)
    assert not problems
    assert selector.verdict(pod) is selector.matches(pod)
