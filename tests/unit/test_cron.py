"""soma_audit.domain.chaos.cron: Chaos Mesh's (robfig/cron v3) schedule grammar and the max gap."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from dataclasses import dataclass

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from soma_audit.domain.chaos.cron import CronError, max_gap, parse_cron

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


# --- the whole calendar, against an independent walk ------------------------------------


@dataclass(frozen=True)
class _Part:
    """One comma-separated part of a field, with the meaning robfig/cron v3 gives it
    (worked out here from the grammar, not by the parser under test)."""

    text: str
    values: frozenset[int]
    #: robfig's star bit: the part is ``*``/``?`` without a step above 1.
    star: bool = False


_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                "dec")
_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@st.composite
def _part(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = (),
          edges: tuple[int, ...] = ()) -> _Part:
    def value() -> tuple[str, int]:
        number = draw(st.one_of(st.integers(low, high), st.sampled_from((low, high, *edges))))
        if names and draw(st.booleans()):
            name = names[number - low]
            return draw(st.sampled_from((name, name.upper(), name.title()))), number
        return str(number), number

    kind = draw(st.sampled_from(("star", "star/step", "value", "value/step", "range",
                                 "range/step")))
    step = draw(st.integers(1, high - low + 3))  # robfig allows steps past the range
    if kind.startswith("star"):
        symbol = draw(st.sampled_from("*?"))
        if kind == "star":
            return _Part(symbol, frozenset(range(low, high + 1)), star=True)
        return _Part(f"{symbol}/{step}", frozenset(range(low, high + 1, step)), star=step == 1)
    first_text, first = value()
    if kind == "value":
        return _Part(first_text, frozenset({first}))
    if kind == "value/step":  # "N/step" means "N-max/step"
        return _Part(f"{first_text}/{step}", frozenset(range(first, high + 1, step)))
    (first_text, first), (last_text, last) = sorted((value(), (first_text, first)),
                                                    key=lambda item: item[1])
    if kind == "range":
        return _Part(f"{first_text}-{last_text}", frozenset(range(first, last + 1)))
    return _Part(f"{first_text}-{last_text}/{step}", frozenset(range(first, last + 1, step)))


def _field(part: st.SearchStrategy[_Part]) -> st.SearchStrategy[tuple[_Part, ...]]:
    return st.lists(part, min_size=1, max_size=3).map(tuple)


_SCHEDULES = st.tuples(
    _field(_part(0, 59)),
    _field(_part(0, 23)),
    _field(_part(1, 31, edges=(28, 29, 30, 31))),
    _field(_part(1, 12, _MONTH_NAMES, edges=(2,))),
    _field(_part(0, 6, _WEEKDAY_NAMES)),
)
_Schedule = tuple[tuple[_Part, ...], ...]
def _star(low: int, high: int) -> tuple[_Part, ...]:
    return (_Part("*", frozenset(range(low, high + 1)), star=True),)


_ANY_DAY, _ANY_MONTH, _ANY_WEEKDAY = _star(1, 31), _star(1, 12), _star(0, 6)


def _one(value: int) -> tuple[_Part, ...]:
    return (_Part(str(value), frozenset({value})),)


#: The walk: 1999-01-01 .. 2410-12-31, a whole 400-year Gregorian cycle (2000-2399, after
#: which the calendar repeats) plus margins longer than any gap (29 Feb only: 8 years).
_WALK_START, _WALK_END = dt.date(1999, 1, 1), dt.date(2410, 12, 31)


@functools.cache
def _calendar() -> tuple[tuple[int, int], ...]:
    """Each day of the walk as (ordinal, month * 1000 + day * 10 + weekday), Sunday 0."""
    days = map(dt.date.fromordinal, range(_WALK_START.toordinal(), _WALK_END.toordinal() + 1))
    return tuple((d.toordinal(), d.month * 1000 + d.day * 10 + d.isoweekday() % 7)
                 for d in days)


def _walked_gap(schedule: _Schedule) -> dt.timedelta | None:
    """Oracle: list every firing day of the walk, then take the longest interval between
    consecutive firings (within a day, or last of one firing day to first of the next)."""
    minutes, hours, days, months, weekdays = (
        frozenset().union(*(part.values for part in field)) for field in schedule)
    either_star = any(part.star for part in (*schedule[2], *schedule[4]))

    def fires_on(month: int, day: int, weekday: int) -> bool:
        if month not in months:
            return False
        if either_star:  # robfig: a * in either day field makes both fields must-match
            return day in days and weekday in weekdays
        return day in days or weekday in weekdays

    firing_keys = {month * 1000 + day * 10 + weekday
                   for month in range(1, 13) for day in range(1, 32) for weekday in range(7)
                   if fires_on(month, day, weekday)}
    firing_days = [ordinal for ordinal, key in _calendar() if key in firing_keys]
    if not firing_days:
        return None
    times = sorted(hour * 60 + minute for hour in hours for minute in minutes)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    gaps += [(later - earlier) * 1440 + times[0] - times[-1]
             for earlier, later in itertools.pairwise(firing_days)]
    return dt.timedelta(minutes=max(gaps))


def _text(schedule: _Schedule) -> str:
    return " ".join(",".join(part.text for part in field) for field in schedule)


@settings(max_examples=150, deadline=None)
@given(_SCHEDULES)
@example((_one(0), _one(0), _one(31), _one(2), _ANY_WEEKDAY))  # 31 Feb: never
@example((_one(0), _one(0), _one(30), (_Part("feb", frozenset({2})),), _ANY_WEEKDAY))  # never
@example((_one(0), _one(0), _one(29), _one(2), _ANY_WEEKDAY))  # 29 Feb: 2096 → 2104
@example((_one(59), _one(23), _one(29), _one(2), _ANY_WEEKDAY))  # same, just before midnight
@example((_one(0), _one(0), _one(31), _ANY_MONTH, _ANY_WEEKDAY))  # the 31st: skips short months
@example((_one(0), _one(0), _one(29), _ANY_MONTH, _ANY_WEEKDAY))  # 29 Jan → 29 Mar, common years
@example((_one(0), _one(0), _one(29), _one(2), _one(1)))  # 29 Feb OR a Monday in Feb
@example((_one(30), _one(12), _ANY_DAY, _one(2), _one(0)))  # * day: Sundays in February
@example((_one(0), _one(0), (_Part("*/2", frozenset(range(1, 32, 2))),), _ANY_MONTH,
          _one(6)))  # a step above 1 clears the star bit: odd days OR Saturdays
@example((_one(0), _one(0), (_Part("?/1", frozenset(range(1, 32)), star=True),),
          _ANY_MONTH, _one(6)))  # */1 keeps the star bit: Saturdays only
@example((_one(0), _one(0), _one(1), _one(1), _ANY_WEEKDAY))  # @yearly
def test_max_gap_matches_a_walk_over_the_whole_calendar(schedule: _Schedule) -> None:
    assert max_gap(parse_cron(_text(schedule))) == _walked_gap(schedule)
