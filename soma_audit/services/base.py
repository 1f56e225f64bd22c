"""What every live service client shares: the failure kinds, the one error type whose
message is safe to show (credentials redacted, SDK exceptions never chained), and the
guard that makes a dead endpoint cost one timeout, not one per check."""


from __future__ import annotations

import re
import time
from collections.abc import Iterable
from enum import StrEnum

REDACTED = "***"


class Failure(StrEnum):
    """Why a call failed; probes turn NOT_FOUND into findings and the rest into errors."""

    UNREACHABLE = "unreachable"
    #: Authentication failed (bad password or token): nothing will work.
    UNAUTHORISED = "unauthorised"
    #: Authenticated, but not allowed this one operation: other calls may still work.
    FORBIDDEN = "forbidden"
    TIMEOUT = "timed out"
    NOT_FOUND = "not found"
    REJECTED = "rejected"
    BAD_RESPONSE = "bad response"

    @property
    def sticky(self) -> bool:
        """Failures of the connection itself: every later call would fail the same way."""
        return self in (Failure.UNREACHABLE, Failure.UNAUTHORISED, Failure.TIMEOUT)


class ServiceError(Exception):
    """A live service call failed; ``str()`` is a one-line reason without credentials."""

    def __init__(self, service: str, failure: Failure, detail: str) -> None:
        self.service = service
        self.failure = failure
        self.detail = detail
        super().__init__(f"{service} {failure.value}: {detail}")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced, longest first (one may contain another)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace and cap the length: reasons go into one evidence line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def transport_cause(reason: object) -> str:
    """The socket-level cause of a connection failure, without the HTTP libraries' object
    reprs: "connection refused", "Name or service not known", ..."""
    text = str(reason)
    if "refused" in text.lower():
        return "connection refused"
    found = re.search(r"\[Errno [^\]]*\]\s*([^'\")]+)", text)
    return one_line(found.group(1) if found else text, 160).strip()


class Guard:
    """Remembers a sticky failure for ``ttl`` seconds so later calls fail fast with the
    same reason: one scan pays one timeout per dead endpoint, and a rescan after the
    endpoint recovers (the TUI's ``r``) tries again."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self.failure: ServiceError | None = None
        self._until = 0.0

    def check(self) -> None:
        if self.failure is not None and time.monotonic() < self._until:
            raise ServiceError(self.failure.service, self.failure.failure, self.failure.detail)
        self.failure = None

    def record(self, error: ServiceError) -> ServiceError:
        if error.failure.sticky:
            self.failure = error
            self._until = time.monotonic() + self.ttl
        return error
