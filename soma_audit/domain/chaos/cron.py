"""Cron schedules as Chaos Mesh reads them, and the longest gap between two firings.

Chaos Mesh parses ``Schedule.spec.schedule`` with robfig/cron v3's standard parser: five
fields (minute hour day-of-month month day-of-week), month and weekday names, ``*``/``?``,
ranges, lists and steps; the descriptors ``@yearly``/``@annually``, ``@monthly``,
``@weekly``, ``@daily``/``@midnight``, ``@hourly`` and ``@every <Go duration>``; and an
optional ``CRON_TZ=<zone>`` or ``TZ=<zone>`` prefix. This module mirrors that grammar
(including its quirks: weekday 7 is rejected, and day-of-month and day-of-week are ORed
only when neither field starts with ``*``/``?``) so that an expression the operator
rejects is reported as invalid.

"Does it fire at least daily?" is answered by :func:`max_gap`: the longest interval
between consecutive firings over a whole 400-year Gregorian cycle (after which weekdays
and leap years repeat), so month-end or weekend gaps are never missed. Gaps are measured
in the schedule's wall-clock time; a daylight-saving change shifts one gap by an hour.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import itertools
import re
import zoneinfo
from dataclasses import dataclass

from soma_audit.core.durations import DurationError, parse_go_duration

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_INT = re.compile(r"[+-]?[0-9]+")
#: Days in one Gregorian cycle; a multiple of 7, so weekdays repeat with it.
_CYCLE_DAYS = 146_097
_CYCLE_START_YEAR = 2000


class CronError(ValueError):
    """The expression is not a schedule Chaos Mesh accepts."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 6, _WEEKDAYS),
)

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class CronSpec:
    """The five fields as sets of values; ``*_star`` mirror robfig's star bit."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool = False
    weekdays_star: bool = False

    def _day_matches(self, day: int, weekday: int) -> bool:
        """robfig's rule: both fields must match if either starts with ``*``, else either."""
        dom = day in self.days
        dow = weekday in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def fires_every_day(self) -> bool:
        """True when the day fields and months admit every calendar day (the common case)."""
        if len(self.months) < 12:
            return False
        all_days = len(self.days) == 31
        all_weekdays = len(self.weekdays) == 7
        if self.days_star or self.weekdays_star:
            return all_days and all_weekdays
        return all_days or all_weekdays

    def _month_shape(self, first_weekday: int, length: int) -> tuple[int, int, int] | None:
        """For a month starting on ``first_weekday`` (Sunday 0) with ``length`` days: the
        offsets of its first and last firing day and the longest gap inside it, in days."""
        offsets = [day - 1 for day in range(1, length + 1)
                   if self._day_matches(day, (first_weekday + day - 1) % 7)]
        if not offsets:
            return None
        inner = max((b - a for a, b in itertools.pairwise(offsets)), default=0)
        return offsets[0], offsets[-1], inner

    def longest_day_gap(self) -> int | None:
        """Over one 400-year cycle (wrapping around): the longest gap between consecutive
        firing days, in days; None if it never fires.

        A month's firing days depend only on its first weekday and its length, so each of
        the 28 shapes is evaluated once and the walk is per month, not per day.
        """
        if self.fires_every_day():
            return 1
        months = sorted(self.months)
        first = last = None
        longest = 0
        shapes: dict[tuple[int, int], tuple[int, int, int] | None] = {}
        for year in range(_CYCLE_START_YEAR, _CYCLE_START_YEAR + 400):
            for month in months:
                first_weekday, length = calendar.monthrange(year, month)
                key = ((first_weekday + 1) % 7, length)
                if key not in shapes:
                    shapes[key] = self._month_shape(*key)
                shape = shapes[key]
                if shape is None:
                    continue
                low, high, inner = shape
                start = dt.date(year, month, 1).toordinal()
                if last is None:
                    first = start + low
                else:
                    longest = max(longest, start + low - last)
                longest = max(longest, inner)
                last = start + high
        if first is None or last is None:
            return None
        # the cycle repeats: the first firing day recurs _CYCLE_DAYS later
        return max(longest, first + _CYCLE_DAYS - last)

    @property
    def times(self) -> tuple[int, ...]:
        """Minutes after midnight at which it fires, on a day it fires."""
        return tuple(sorted(h * 60 + m for h in self.hours for m in self.minutes))


@dataclass(frozen=True)
class Cron:
    """A parsed schedule: a five-field spec, or a constant ``@every`` interval."""

    expression: str
    spec: CronSpec | None = None
    every: dt.timedelta | None = None
    timezone: str | None = None


def _int(text: str, field: _Field, expr: str) -> int:
    if not _INT.fullmatch(text):
        raise CronError(f"{field.name}: cannot read {text!r} as a number in {expr!r}")
    value = int(text)
    if value < 0:
        raise CronError(f"{field.name}: negative number ({value}) not allowed in {expr!r}")
    return value


def _value(text: str, field: _Field, expr: str) -> int:
    if field.names and text.lower() in field.names:
        return field.names[text.lower()]
    return _int(text, field, expr)


def _range(part: str, field: _Field) -> tuple[set[int], bool]:
    """One comma-separated part of a field: its values and whether it sets the star bit."""
    range_and_step = part.split("/")
    low_high = range_and_step[0].split("-")
    star = False
    if low_high[0] in ("*", "?"):
        start, end, star = field.low, field.high, True
    else:
        start = _value(low_high[0], field, part)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _value(low_high[1], field, part)
        else:
            raise CronError(f"{field.name}: too many hyphens in {part!r}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1], field, part)
        if len(low_high) == 1:
            end = field.high
        if step > 1:
            star = False
    else:
        raise CronError(f"{field.name}: too many slashes in {part!r}")
    if start < field.low:
        raise CronError(f"{field.name}: {start} is below the minimum {field.low} in {part!r}")
    if end > field.high:
        raise CronError(f"{field.name}: {end} is above the maximum {field.high} in {part!r}")
    if start > end:
        raise CronError(f"{field.name}: range start {start} is after its end {end} in {part!r}")
    if step == 0:
        raise CronError(f"{field.name}: step must be a positive number in {part!r}")
    return set(range(start, end + 1, step)), star


def _field(text: str, field: _Field) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in (p for p in text.split(",") if p):
        found, part_star = _range(part, field)
        values |= found
        star = star or part_star
    return frozenset(values), star


def _spec(text: str) -> CronSpec:
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {text!r}")
    (minutes, _), (hours, _), (days, days_star), (months, _), (weekdays, weekdays_star) = (
        _field(part, field) for part, field in zip(parts, _FIELDS, strict=True)
    )
    return CronSpec(minutes, hours, days, months, weekdays, days_star, weekdays_star)


def _check_zone(name: str) -> None:
    if name in ("", "UTC", "Local"):
        return
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r}") from None


@functools.lru_cache(maxsize=1024)
def parse_cron(expression: str) -> Cron:
    """Parse a Chaos Mesh schedule; raises :class:`CronError` with the reason.

    Cached: a cluster holds thousands of Schedules with a few distinct expressions, and a
    Cron is immutable (errors are not cached, they are re-raised by a fresh parse)."""
    text = expression.strip()
    if not text:
        raise CronError("empty schedule")
    timezone = None
    if text.startswith(("TZ=", "CRON_TZ=")):
        zone, _, rest = text.partition(" ")
        timezone = zone.partition("=")[2]
        _check_zone(timezone)
        text = rest.strip()
        if not text:
            raise CronError(f"nothing after the time zone in {expression!r}")
    if text.startswith("@"):
        if text in _DESCRIPTORS:
            return Cron(expression, spec=_spec(_DESCRIPTORS[text]), timezone=timezone)
        if text.startswith("@every "):
            try:
                delay = parse_go_duration(text.removeprefix("@every "))
            except DurationError as exc:
                raise CronError(f"@every: {exc}") from None
            # robfig: at least one second, truncated to whole seconds
            delay = max(delay, dt.timedelta(seconds=1))
            delay -= dt.timedelta(microseconds=delay.microseconds)
            return Cron(expression, every=delay, timezone=timezone)
        raise CronError(f"unrecognized descriptor {text!r}")
    return Cron(expression, spec=_spec(text), timezone=timezone)


@functools.lru_cache(maxsize=256)
def _spec_max_gap(spec: CronSpec) -> dt.timedelta | None:
    times = spec.times
    if not times:
        return None
    across_days = spec.longest_day_gap()
    if across_days is None:
        return None
    within_day = max((b - a for a, b in itertools.pairwise(times)), default=0)
    longest = max(within_day, across_days * 1440 + times[0] - times[-1])
    return dt.timedelta(minutes=longest)


def max_gap(cron: Cron) -> dt.timedelta | None:
    """The longest wall-clock interval between consecutive firings; None if it never fires."""
    if cron.spec is None:
        return cron.every
    return _spec_max_gap(cron.spec)
