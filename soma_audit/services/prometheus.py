"""Prometheus: a thin client over prometheus-api-client for PromQL queries, plus the two
HTTP API reads that client lacks (``/api/v1/rules``, ``/api/v1/alertmanagers``), made on
the same requests session with the same headers, timeout and bounded retries.

Also the PromQL the live checks run, built here as pure functions so they can be read and
unit-tested: availability over a window is ``good / total`` of ``increase()`` summed by
the service label, with ``or 0 * total`` so a service with no good request reads 0, not
"no data".
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from soma_audit.services.base import (
    Failure,
    Guard,
    ServiceError,
    one_line,
    redact,
    transport_cause,
)

if TYPE_CHECKING:
    from soma_audit.config import Prometheus

T = TypeVar("T")
NAME = "Prometheus"

_LABEL_VALUE = re.compile(r'["\\\n]')


# -- PromQL -----------------------------------------------------------------------------

def quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + _LABEL_VALUE.sub(lambda m: {"\n": "\\n"}.get(m.group(), "\\" + m.group()),
                                   value) + '"'


def seconds_text(seconds: float) -> str:
    """A PromQL range duration in whole seconds (at least 1s)."""
    return f"{max(1, round(seconds))}s"


def availability_query(metric: str, service_label: str, window: str,
                       status_label: str = "code", error_pattern: str = "5..",
                       services: list[str] | None = None) -> str:
    """Good/total requests over ``window``, per service (``window`` a PromQL duration)."""
    scope = ""
    if services:
        scope = f"{service_label}=~{quote('|'.join(re.escape(s) for s in services))}"
    good_matchers = ", ".join(m for m in (scope, f"{status_label}!~{quote(error_pattern)}") if m)
    total = f"sum by ({service_label}) (increase({metric}{{{scope}}}[{window}]))"
    good = f"sum by ({service_label}) (increase({metric}{{{good_matchers}}}[{window}]))"
    return f"({good} or 0 * {total}) / {total}"


def latency_query(metric: str, service_label: str, window: str, quantile: float,
                  services: list[str] | None = None) -> str:
    """The ``quantile`` latency over ``window``, per service, from a classic histogram."""
    scope = ""
    if services:
        scope = f"{service_label}=~{quote('|'.join(re.escape(s) for s in services))}"
    return (f"histogram_quantile({quantile:g}, sum by (le, {service_label}) "
            f"(increase({metric}_bucket{{{scope}}}[{window}])))")


# -- the client -------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class LoadedRule:
    """A rule as Prometheus has loaded it (``/api/v1/rules``)."""

    group: str
    file: str
    kind: str
    name: str
    query: str
    health: str
    last_error: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


class PrometheusService:
    """Read-only PromQL and API access to one Prometheus (the config's ``prometheus``)."""

    name = NAME

    def __init__(self, settings: Prometheus) -> None:
        self.url = (settings.url or "").rstrip("/")
        self._token = settings.bearer_token
        self._timeout = settings.timeout_seconds
        self._client: Any = None
        self._session: Any = None
        self._guard = Guard(ttl=max(5.0, 2 * self._timeout))

    def __repr__(self) -> str:
        return f"PrometheusService(url={self.url!r})"

    def _headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self._token}"} if self._token else None

    def _connect(self) -> Any:
        if self._client is None:
            import requests
            from prometheus_api_client import PrometheusConnect
            from urllib3.util.retry import Retry

            self._session = requests.Session()
            retry = Retry(total=2, connect=1, read=0, backoff_factor=0.2,
                          status_forcelist=[502, 503, 504], allowed_methods=["GET"],
                          raise_on_status=False)
            self._client = PrometheusConnect(url=self.url, headers=self._headers(), retry=retry,
                                             session=self._session, timeout=self._timeout)
        return self._client

    def _text(self, message: str) -> str:
        return one_line(redact(message, [self._token]))

    def _call(self, what: str, call: Callable[[Any], T]) -> T:
        self._guard.check()
        try:
            return call(self._connect())
        except ServiceError as exc:
            raise self._guard.record(exc) from None
        except Exception as exc:
            raise self._guard.record(self._translate(what, exc)) from None

    def _translate(self, what: str, exc: Exception) -> ServiceError:
        import requests
        from prometheus_api_client import PrometheusApiClientException

        if isinstance(exc, requests.Timeout) or _read_timed_out(exc):
            return ServiceError(NAME, Failure.TIMEOUT,
                                self._text(f"{what}: no answer from {self.url} within "
                                           f"{self._timeout:g}s"))
        if isinstance(exc, requests.ConnectionError):
            return ServiceError(NAME, Failure.UNREACHABLE, self._text(
                f"{what}: cannot connect to {self.url}: {transport_cause(exc)}"))
        if isinstance(exc, PrometheusApiClientException):
            status, body = _client_exception(str(exc))
            return self._http_error(what, status, body)
        return ServiceError(NAME, Failure.BAD_RESPONSE,
                            self._text(f"{what}: {type(exc).__name__}: {exc}"))

    def _http_error(self, what: str, status: int, body: str) -> ServiceError:
        if status == 401:
            return ServiceError(NAME, Failure.UNAUTHORISED, self._text(
                f"{what}: HTTP 401 from {self.url} (check the bearer token)"))
        if status == 403:
            return ServiceError(NAME, Failure.FORBIDDEN, self._text(
                f"{what}: HTTP 403 from {self.url} (the token may not read this API)"))
        try:
            message = str(json.loads(body).get("error") or body)
        except (ValueError, AttributeError):
            message = body if status != 404 else f"no Prometheus API at {self.url}"
        failure = (Failure.UNREACHABLE if status in (502, 504) else
                   Failure.BAD_RESPONSE if status >= 500 else
                   Failure.NOT_FOUND if status == 404 else Failure.REJECTED)
        return ServiceError(NAME, failure, self._text(f"{what}: HTTP {status} {message}"))

    def _get(self, path: str) -> Any:
        """GET an API path on the client's session; the ``data`` of a success response."""
        def read(_: Any) -> Any:
            response = self._session.get(f"{self.url}{path}", headers=self._headers(),
                                         timeout=self._timeout)
            if response.status_code != 200:
                raise self._http_error(f"GET {path}", response.status_code, response.text)
            try:
                return response.json()["data"]
            except (ValueError, KeyError, TypeError):
                raise ServiceError(NAME, Failure.BAD_RESPONSE, self._text(
                    f"GET {path}: not a Prometheus API response")) from None

        return self._call(f"GET {path}", read)

    def query(self, promql: str, at: dt.datetime | None = None) -> list[Sample]:
        """An instant vector query (at ``at``, default now)."""
        params = {"time": f"{at.timestamp():.3f}"} if at else None

        def read(client: Any) -> list[Sample]:
            data = client.custom_query(promql, params=params)
            return [Sample({str(k): str(v) for k, v in item.get("metric", {}).items()},
                           float(item["value"][1])) for item in data]

        return self._call(f"query {promql}", read)

    def query_range(self, promql: str, start: dt.datetime, end: dt.datetime,
                    step: str) -> list[Series]:
        def read(client: Any) -> list[Series]:
            data = client.custom_query_range(promql, start_time=start, end_time=end, step=step)
            return [Series({str(k): str(v) for k, v in item.get("metric", {}).items()},
                           [(float(t), float(v)) for t, v in item.get("values", [])])
                    for item in data]

        return self._call(f"query_range {promql}", read)

    def rules(self) -> list[LoadedRule]:
        """Every recording and alerting rule Prometheus has loaded."""
        data = self._get("/api/v1/rules")
        found = []
        for group in data.get("groups") or []:
            for rule in group.get("rules") or []:
                found.append(LoadedRule(
                    group=str(group.get("name", "")),
                    file=str(group.get("file", "")),
                    kind=str(rule.get("type", "")),
                    name=str(rule.get("name", "")),
                    query=str(rule.get("query", "")),
                    health=str(rule.get("health", "")),
                    last_error=str(rule.get("lastError") or ""),
                    labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
                    annotations={str(k): str(v)
                                 for k, v in (rule.get("annotations") or {}).items()},
                ))
        return found

    def alertmanagers(self) -> tuple[list[str], list[str]]:
        """(active, dropped) Alertmanager URLs Prometheus sends alerts to."""
        data = self._get("/api/v1/alertmanagers")

        def urls(key: str) -> list[str]:
            return [str(a.get("url", "")) for a in data.get(key) or [] if isinstance(a, dict)]

        return urls("activeAlertmanagers"), urls("droppedAlertmanagers")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _read_timed_out(exc: Exception) -> bool:
    """A read timeout under the session's Retry: requests reports it as a ConnectionError
    (max retries exceeded), although the server took the connection and went silent."""
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError

    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ReadTimeoutError)


def _client_exception(text: str) -> tuple[int, str]:
    """(status, body) from prometheus-api-client's ``HTTP Status Code N (b'...')``."""
    found = re.fullmatch(r"HTTP Status Code (\d+) \((b'.*'|b\".*\")\)", text, re.DOTALL)
    if found is None:
        return 0, text
    try:
        body = ast.literal_eval(found.group(2)).decode("utf-8", "replace")
    except (ValueError, SyntaxError):
        body = found.group(2)
    return int(found.group(1)), body


def describe(sample_labels: dict[str, str]) -> str:
    """Labels as PromQL writes them, for evidence."""
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(sample_labels.items())) + "}"
