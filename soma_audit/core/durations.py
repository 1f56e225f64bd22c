"""Go duration strings ("1h30m", "500ms"), exactly as Go's ``time.ParseDuration`` reads them.

Chaos Mesh (``duration``, ``@every``), Argo CD (``retry.backoff``) and other Go operators
parse these; mirroring Go's grammar means a value the operator rejects is reported as
invalid instead of being guessed at.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

#: Nanoseconds per unit, as in Go's ``time`` package (both micro signs are accepted).
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
#: One component: a number with at least one digit, then a unit (longest units first).
_COMPONENT = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_NS = 2**63 - 1


class DurationError(ValueError):
    """The text is not a Go duration."""


def parse_go_duration(text: str) -> dt.timedelta:
    """Parse ``text`` like Go's ``time.ParseDuration`` (sub-microsecond parts are dropped)."""
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return dt.timedelta(0)
    if not rest:
        raise DurationError(f"invalid duration {text!r}")
    total = Decimal(0)
    pos = 0
    while pos < len(rest):
        match = _COMPONENT.match(rest, pos)
        if match is None:
            raise DurationError(f"invalid duration {text!r} (expected e.g. 90s, 10m, 1h30m)")
        total += Decimal(match[1]) * _UNIT_NS[match[2]]
        pos = match.end()
    nanoseconds = int(total)
    if nanoseconds > _MAX_NS:
        raise DurationError(f"invalid duration {text!r} (out of range)")
    microseconds = nanoseconds // 1_000
    return dt.timedelta(microseconds=-microseconds if negative else microseconds)


def format_duration(value: dt.timedelta) -> str:
    """A compact human form: ``72h``, ``1h30m``, ``45s``, ``250ms``."""
    micros = abs(value) // dt.timedelta(microseconds=1)
    sign = "-" if value < dt.timedelta(0) else ""
    if micros == 0:
        return "0s"
    if micros < 1_000_000:
        return f"{sign}{micros / 1_000:g}ms"
    seconds, fraction = divmod(micros, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or fraction:
        parts.append(f"{seconds + fraction / 1_000_000:g}s")
    return sign + "".join(parts)
