"""soma_audit.core.durations: Go's time.ParseDuration grammar
(used by @every and duration fields)."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soma_audit.core.durations import DurationError, format_duration, parse_go_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", dt.timedelta(0)),
        ("-0", dt.timedelta(0)),
        ("5s", dt.timedelta(seconds=5)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("1.5h", dt.timedelta(minutes=90)),
        (".5s", dt.timedelta(milliseconds=500)),
        ("5.s", dt.timedelta(seconds=5)),
        ("100ms", dt.timedelta(milliseconds=100)),
        ("10us", dt.timedelta(microseconds=10)),
        ("10µs", dt.timedelta(microseconds=10)),
        ("10μs", dt.timedelta(microseconds=10)),
        ("1500ns", dt.timedelta(microseconds=1)),
        ("-1m", dt.timedelta(minutes=-1)),
        ("+2h", dt.timedelta(hours=2)),
        ("1h1h", dt.timedelta(hours=2)),
    ],
)
def test_parses_like_go(text: str, expected: dt.timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "-", "5", "1d", "1 h", "h", ".s", "1h 30m", "1.2.3s", "10mss", "\uff13s",
             "3000000h"],
)
def test_rejected_like_go(text: str) -> None:
    with pytest.raises(DurationError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.timedelta(0), "0s"),
        (dt.timedelta(hours=72), "72h"),
        (dt.timedelta(minutes=90), "1h30m"),
        (dt.timedelta(seconds=45), "45s"),
        (dt.timedelta(milliseconds=250), "250ms"),
        (dt.timedelta(seconds=-30), "-30s"),
    ],
)
def test_format(value: dt.timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_duration_error(text: str) -> None:
    with contextlib.suppress(DurationError):
        parse_go_duration(text)


@given(st.integers(0, 10**9))
def test_format_round_trips_whole_seconds(seconds: int) -> None:
    value = dt.timedelta(seconds=seconds)
    assert parse_go_duration(format_duration(value)) == value


@given(st.lists(st.tuples(st.integers(0, 10**4), st.sampled_from(["h", "m", "s", "ms"])),
                min_size=1, max_size=4))
def test_components_add_up(components: list[tuple[int, str]]) -> None:
    units = {"h": dt.timedelta(hours=1), "m": dt.timedelta(minutes=1),
             "s": dt.timedelta(seconds=1), "ms": dt.timedelta(milliseconds=1)}
    text = "".join(f"{n}{unit}" for n, unit in components)
    assert parse_go_duration(text) == sum((n * units[u] for n, u in components), dt.timedelta())
