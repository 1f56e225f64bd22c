"""k6 as data (soma_audit/domain/k6.py): profiles, k6's messages, thresholds, CI, summaries —
and the demo's k6 outcomes through the real ``k6``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soma_audit.config import load_config
from soma_audit.domain.k6 import (
    MAX_ERROR_CHARS,
    ProfilesError,
    duration_stats,
    first_error,
    k6_invocations,
    profile_problems,
    read_profiles,
    static_options,
    threshold_problems,
    thresholds_decided,
    thresholds_text,
)
from tests.helpers import REPO, audit_dir

REQUIRED = ["http_req_duration", "http_req_failed"]
GOOD = {"http_req_duration": ["p(99)<500"], "http_req_failed": ["rate<0.01"]}


def test_profiles_file_is_a_mapping_or_a_bare_list() -> None:
    assert read_profiles("profiles:\n  - {name: a}\n") == [{"name": "a"}]
    assert read_profiles("- {name: a}\n") == [{"name": "a"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles: [\n", "line 2: invalid YAML"),
        ("profiles: {smoke: {}}\n", "expected `profiles:` with a list"),
        ("", "expected `profiles:` with a list"),
    ],
)
def test_profiles_file_errors(text: str, message: str) -> None:
    with pytest.raises(ProfilesError, match=message):
        read_profiles(text)


def test_a_complete_profile_has_no_problems() -> None:
    entry = {"name": "load", "target": "https://gw/v1", "executor": "ramping-vus",
             "stages": [{"duration": "1m", "target": 5}], "thresholds": GOOD}
    assert profile_problems(entry) == []


def test_profile_problems_name_every_gap() -> None:
    assert profile_problems({"executor": "constant-vus", "vus": 1}) == [
        "name missing",
        "target=None, expected an http(s) URL",
        "executor constant-vus needs vus and duration",
        "thresholds missing",
    ]
    assert profile_problems("smoke") == ["not a mapping"]


def test_first_error_names_an_exception_by_type_and_place_only() -> None:
    stderr = (
        'time="2026-11-28T02:37:33Z" level=info msg="secret line" source=console\n'
        'time="x" level=error msg="secret line" source=console\n'
        'time="2026-11-28T02:37:33Z" level=error msg="GoError: file:///s.js: Line 1:36 '
        'Unexpected identifier (and 3 more errors)\\n" hint="script exception"\n'
    )
    assert first_error(stderr) == "the script threw an exception (GoError) at s.js:1:36"
    thrown = 'level=error msg="Error: secret\\n\\tat default (file:///a/smoke.js:3:5(4))"'
    assert first_error(thrown) == "the script threw an exception (Error) at smoke.js:3:5"


def test_first_error_quotes_k6_without_quoted_parts_and_capped() -> None:
    assert first_error('time="x" level=error msg="threshold \\"rate<<0.01\\" is invalid"') == (
        "threshold … is invalid")
    long = "x" * 500
    assert len(first_error(f'level=error msg="{long}"') or "") == MAX_ERROR_CHARS + 1


def test_first_error_is_none_without_an_error_line() -> None:
    assert first_error("panic:\n  boom\n") is None
    assert first_error('level=info msg="hello" source=console') is None


@given(st.text())
def test_first_error_never_crashes(stderr: str) -> None:
    assert first_error(stderr) is None or isinstance(first_error(stderr), str)


def test_static_options_reads_literals_and_names_what_it_cannot_decide() -> None:
    options, undecided = static_options(
        "import http from 'k6/http';\n"
        "const base = { vus: 2 };\n"
        "export const options = { ...base, thresholds: { http_req_duration: ['p(99)<500'],"
        " http_req_failed: [`rate<0.01`] }, tags: { team: env() } };\n"
        "export default function () { http.get(a?.b); }\n")
    assert options is not None
    assert options["thresholds"] == {"http_req_duration": ["p(99)<500"],
                                     "http_req_failed": ["rate<0.01"]}
    assert [u.where for u in undecided] == ["options", "options.tags.team"]
    assert not thresholds_decided(options)  # a spread at the top may set thresholds


def test_static_options_exported_by_name_and_missing() -> None:
    options, undecided = static_options(
        "const options = { thresholds: { checks: ['rate>0.9'] } };\nexport { options };\n")
    assert options == {"thresholds": {"checks": ["rate>0.9"]}} and not undecided
    assert thresholds_decided(options)
    assert static_options("export default function () {}\n") == (None, [])


def test_static_options_refuses_invalid_javascript_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"not valid JavaScript \(line 2\)"):
        static_options("export const options = {\n  vus: ,\n};\n")


def test_unquoted_threshold_evidence_names_required_metrics_only() -> None:
    options = {"thresholds": {"secret-metric": ["p(99)<1"], "http_req_duration": ["avg<1"]}}
    assert thresholds_text(options, ["http_req_duration"], quote=False) == (
        "thresholds on http_req_duration and 1 more")
    assert threshold_problems(options, ["http_req_duration"], quote=False) == [
        "http_req_duration has no p(99) threshold (found: 1 expressions)"]


def test_thresholds_on_tagged_metrics_and_object_form_count() -> None:
    options = {"thresholds": {
        "http_req_duration{name:login}": [{"threshold": "p(99.9)<800", "abortOnFail": True}],
        "http_req_failed": ["rate<0.01"],
    }}
    assert threshold_problems(options, REQUIRED) == []
    assert thresholds_text(options) == (
        "http_req_duration{name:login}: p(99.9)<800; http_req_failed: rate<0.01"
    )


def test_threshold_problems() -> None:
    options = {"thresholds": {"http_req_duration": ["p(95)<500"], "errors": ["rate<0.1"]},
               "stages": [{"duration": "1m", "target": 1}], "scenarios": {"a": {}}}
    assert threshold_problems(options, REQUIRED) == [
        "http_req_duration has no p(99) threshold (found: p(95)<500)",
        "no threshold on http_req_failed",
        "options set both stages and scenarios: stages is shorthand for a ramping-vus "
        "scenario and must not be combined with scenarios",
    ]
    assert threshold_problems({"thresholds": None}, ["http_req_failed"]) == [
        "no threshold on http_req_failed"
    ]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["thresholds", "stages", "scenarios", "x"]), _JSON))
def test_threshold_problems_never_crash_on_any_options(options: dict[str, Any]) -> None:
    assert all(isinstance(p, str) for p in threshold_problems(options, REQUIRED))


def test_k6_invocations_skip_comments_and_find_every_form() -> None:
    text = "\n".join([
        "# k6 run commented.js",
        "      - run: k6 run scripts/k6/smoke.js",
        "      - uses: grafana/run-k6-action@v1",
        "    - docker run --rm -i grafana/k6 run - < s.js",
        "      - run: k6 inspect s.js",
        "      - uses: grafana/setup-k6-action@v1",
        "      - run: k6 cloud run s.js",
    ])
    assert [n for n, _ in k6_invocations(text)] == [2, 3, 4, 7]


def test_duration_stats_read_both_summary_formats() -> None:
    export = {"metrics": {"http_req_duration": {"avg": 10, "p(95)": 20.5, "thresholds": {}}}}
    handle = {"metrics": {"http_req_duration": {"type": "trend", "values": {"med": 3}}}}
    assert duration_stats(export) == {"avg": 10.0, "p(95)": 20.5}
    assert duration_stats(handle) == {"med": 3.0}
    assert duration_stats({"metrics": {"http_req_duration": {"ok": True}}}) is None
    assert duration_stats([1, 2]) is None


def test_demo_k6_outcomes() -> None:
    """The demo keeps profiles as data and runs k6 in CI, but has no stress.js."""
    ids = ["k6.profiles", "k6.scripts", "k6.inspect", "k6.thresholds", "k6.ci"]
    report = audit_dir(REPO / "demo" / "soma-gitops", ids, {"run_repo_code": True})
    status = {r.check.id: r.status.value for r in report.results}
    assert status == {"k6.profiles": "pass", "k6.scripts": "fail", "k6.inspect": "pass",
                      "k6.thresholds": "pass", "k6.ci": "pass"}
    # Without the opt-in the scripts are parsed, not run: inspect says so, thresholds are
    # read from the literals.
    static = audit_dir(REPO / "demo" / "soma-gitops", ids)
    status = {r.check.id: r.status.value for r in static.results}
    assert status == {"k6.profiles": "pass", "k6.scripts": "fail", "k6.inspect": "skip",
                      "k6.thresholds": "pass", "k6.ci": "pass"}
    (scripts,) = [r for r in report.results if r.check.id == "k6.scripts"]
    assert [(e.object, e.message) for e in scripts.evidence] == [
        ("scripts/k6/stress.js", "missing: no script for profile stress")
    ]


def test_demo_profiles_match_the_default_config() -> None:
    text = (REPO / "demo" / "soma-gitops" / "scripts" / "k6" / "profiles.yaml").read_text()
    demo = [(p["name"], p["target"], p["executor"]) for p in read_profiles(text)]
    assert demo == [(p.name, p.target, p.executor) for p in load_config().k6.profiles]
