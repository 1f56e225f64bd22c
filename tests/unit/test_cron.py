"""soma_audit.cron: Chaos Mesh's (robfig/cron v3) schedule grammar and the max gap."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soma_audit.cron import CronError, max_gap, parse_cron

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("0 2 * * *", DAY),
        ("*/5 * * * *", dt.timedelta(minutes=5)),
        ("0 */6 * * *", 6 * HOUR),
        ("0 2,14 * * *", 12 * HOUR),
        ("30 23 * * *", DAY),
        ("0 2 * * 1-5", 3 * DAY),  # Friday 02:00 → Monday 02:00
        ("0 2 * * MON-FRI", 3 * DAY),
        ("0 2 * * 0,6", 6 * DAY),
        ("0 2 1-28 * *", 4 * DAY),  # 28 Jan → 1 Feb
        ("0 0 1 * *", 31 * DAY),
        ("0 0 * 2 *", 338 * DAY),  # 29 Feb (leap year) → 1 Feb next year
        ("0 0 29 2 *", 2921 * DAY),  # 2096 → 2104: 2100 is not a leap year
        ("0 2 1 * 1", 7 * DAY),  # both restricted: 1st of month OR Monday
        ("0 2 */2 * 1", 2 * DAY),  # a step clears the star bit: still OR
        ("0 2 * * 1", 7 * DAY),  # day-of-month is *: AND (i.e. Mondays only)
        ("0 9-17 * * *", 16 * HOUR),
        ("@hourly", HOUR),
        ("@daily", DAY),
        ("@midnight", DAY),
        ("@weekly", 7 * DAY),
        ("@every 12h", 12 * HOUR),
        ("@every 1h30m", dt.timedelta(minutes=90)),
        ("@every 500ms", dt.timedelta(seconds=1)),  # robfig: at least one second
        ("@every 1.5s", dt.timedelta(seconds=1)),  # truncated to whole seconds
        ("CRON_TZ=Europe/Berlin 0 3 * * *", DAY),
        ("TZ=UTC @daily", DAY),
    ],
)
def test_max_gap(expression: str, gap: dt.timedelta) -> None:
    assert max_gap(parse_cron(expression)) == gap


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 , * *"])
def test_never_fires(expression: str) -> None:
    assert max_gap(parse_cron(expression)) is None


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "empty"),
        ("0 2 * *", "expected exactly 5 fields, found 4"),
        ("0 0 2 * * *", "expected exactly 5 fields, found 6"),
        ("0 2 * * 7", "day of week: 7 is above the maximum 6"),  # robfig rejects 7
        ("60 * * * *", "minute: 60 is above the maximum 59"),
        ("0 24 * * *", "hour: 24 is above the maximum 23"),
        ("0 0 0 * *", "day of month: 0 is below the minimum 1"),
        ("0 0 * 13 *", "month: 13 is above the maximum 12"),
        ("5-1 * * * *", "range start 5 is after its end 1"),
        ("*/0 * * * *", "step must be a positive number"),
        ("1-2-3 * * * *", "too many hyphens"),
        ("*/2/3 * * * *", "too many slashes"),
        ("x * * * *", "cannot read 'x' as a number"),
        ("0 2 * * Mondays", "cannot read 'Mondays'"),
        ("\u0663 * * * *", "cannot read"),  # ARABIC-INDIC DIGIT THREE is not a digit here
        ("@fortnightly", "unrecognized descriptor"),
        ("@every", "unrecognized descriptor"),
        ("@every 1 day", "@every: invalid duration"),
        ("CRON_TZ=Mars/Olympus 0 2 * * *", "unknown time zone"),
        ("TZ=UTC", "nothing after the time zone"),
    ],
)
def test_rejected(expression: str, reason: str) -> None:
    with pytest.raises(CronError, match=reason):
        parse_cron(expression)


def test_descriptors_are_their_five_field_forms() -> None:
    assert parse_cron("@daily").spec == parse_cron("0 0 * * *").spec
    assert parse_cron("@yearly").spec == parse_cron("0 0 1 1 *").spec
    assert parse_cron("@annually").spec == parse_cron("0 0 1 JAN *").spec


def test_names_are_case_insensitive_and_question_mark_is_a_star() -> None:
    assert parse_cron("0 0 ? jan-Mar sun").spec == parse_cron("0 0 * 1-3 0").spec


def test_timezone_is_recorded() -> None:
    assert parse_cron("CRON_TZ=Asia/Tokyo 0 3 * * *").timezone == "Asia/Tokyo"


# --- properties --------------------------------------------------------------------------


@given(st.text(alphabet=" 0123456789*/,-?@abcdefghijklmnopqrstuvwxyzTZ=", max_size=30))
def test_any_text_parses_or_raises_cron_error(text: str) -> None:
    try:
        cron = parse_cron(text)
    except CronError:
        return
    assert (cron.spec is None) != (cron.every is None)


def _values(low: int, high: int) -> st.SearchStrategy[frozenset[int]]:
    return st.frozensets(st.integers(low, high), min_size=1, max_size=4)


@given(_values(0, 59), _values(0, 23), _values(1, 31), _values(1, 12), _values(0, 6))
def test_listed_values_round_trip(minutes, hours, days, months, weekdays) -> None:
    fields = (minutes, hours, days, months, weekdays)
    spec = parse_cron(" ".join(",".join(map(str, sorted(f))) for f in fields)).spec
    assert spec is not None
    assert (spec.minutes, spec.hours, spec.days, spec.months, spec.weekdays) == fields
    assert not spec.days_star and not spec.weekdays_star


def _brute_force_weekly_gap(minutes: frozenset[int], hours: frozenset[int],
                            weekdays: frozenset[int]) -> dt.timedelta:
    """Independent oracle: walk three weeks minute by minute from a Sunday (the pattern
    repeats weekly, so every gap shows up between two firings inside the walk)."""
    firings = [
        day * 1440 + hour * 60 + minute
        for day in range(21)
        if day % 7 in weekdays
        for hour in range(24)
        if hour in hours
        for minute in range(60)
        if minute in minutes
    ]
    return dt.timedelta(minutes=max(b - a for a, b in itertools.pairwise(firings)))


@settings(max_examples=40, deadline=None)
@given(_values(0, 59), _values(0, 23), _values(0, 6))
def test_weekly_gap_matches_a_minute_by_minute_walk(minutes, hours, weekdays) -> None:
    text = " ".join([",".join(map(str, sorted(minutes))), ",".join(map(str, sorted(hours))),
                     "*", "*", ",".join(map(str, sorted(weekdays)))])
    assert max_gap(parse_cron(text)) == _brute_force_weekly_gap(minutes, hours, weekdays)


@settings(max_examples=30, deadline=None)
@given(_values(0, 59), _values(0, 23), _values(1, 31), _values(1, 12), _values(0, 6),
       st.integers(0, 4), st.integers(0, 59))
def test_adding_a_value_never_widens_the_gap(minutes, hours, days, months, weekdays,
                                             which, extra) -> None:
    fields = [set(f) for f in (minutes, hours, days, months, weekdays)]
    bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
    low, high = bounds[which]
    wider = [set(f) for f in fields]
    wider[which].add(low + extra % (high - low + 1))

    def text(parts: list[set[int]]) -> str:
        return " ".join(",".join(map(str, sorted(p))) for p in parts)

    narrow_gap, wide_gap = max_gap(parse_cron(text(fields))), max_gap(parse_cron(text(wider)))
    if narrow_gap is not None:
        assert wide_gap is not None and wide_gap <= narrow_gap


@given(st.integers(1, 10**6))
def test_every_gap_is_its_delay(seconds: int) -> None:
    assert max_gap(parse_cron(f"@every {seconds}s")) == dt.timedelta(seconds=seconds)
