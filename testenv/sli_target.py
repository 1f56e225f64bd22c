"""A tiny SLI-shaped metrics target for Prometheus (stdlib only).

Run as `python -m testenv.sli_target --port N`. It exposes, for each SomaAgentHub service,
`http_requests_total{service,code}` and the histogram `http_request_duration_seconds`
with the counts a steady request rate would have produced since start. Counters are a pure
function of elapsed time, so they only ever increase, and every service has a distinct,
known rate, error ratio and latency profile (useful to check recording rules by value).
"""

from __future__ import annotations

import argparse
import math
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testenv.config import SERVICES

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STARTED = time.monotonic()


def profile(index: int) -> tuple[float, float, float]:
    """(requests per second, 5xx ratio, median latency in seconds) of service #index."""
    rate = 10.0 + 2.0 * index
    error_ratio = (0.0, 0.0005, 0.002, 0.01)[index % 4]
    median = 0.02 * (1 + index % 5)
    return rate, error_ratio, median


def latency_cdf(le: float, median: float) -> float:
    """Fraction of requests at or below le seconds: a log-normal around the median."""
    sigma = 0.6
    z = (math.log(le) - math.log(median)) / (sigma * math.sqrt(2))
    return 0.5 * (1 + math.erf(z))


def render(now: float | None = None) -> str:
    """The exposition text at a moment (seconds since start)."""
    elapsed = (time.monotonic() - STARTED) if now is None else now
    lines = [
        "# HELP http_requests_total Requests handled, by service and status code.",
        "# TYPE http_requests_total counter",
    ]
    histogram = [
        "# HELP http_request_duration_seconds Request latency, by service.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    for index, service in enumerate(SERVICES):
        rate, error_ratio, median = profile(index)
        total = math.floor(rate * elapsed)
        errors = math.floor(rate * error_ratio * elapsed)
        lines.append(f'http_requests_total{{service="{service}",code="200"}} {total - errors}')
        lines.append(f'http_requests_total{{service="{service}",code="500"}} {errors}')
        for le in BUCKETS:
            count = math.floor(total * latency_cdf(le, median))
            histogram.append(
                f'http_request_duration_seconds_bucket{{service="{service}",le="{le}"}} {count}'
            )
        histogram.append(
            f'http_request_duration_seconds_bucket{{service="{service}",le="+Inf"}} {total}'
        )
        histogram.append(
            f'http_request_duration_seconds_sum{{service="{service}"}} {total * median * 1.2:.6f}'
        )
        histogram.append(f'http_request_duration_seconds_count{{service="{service}"}} {total}')
    return "\n".join(lines + histogram) + "\n"


class Handler(BaseHTTPRequestHandler):
    """Serves /metrics (and /healthz for readiness checks)."""

    def do_GET(self) -> None:
        if self.path.startswith("/metrics"):
            body = render().encode()
            content_type = "text/plain; version=0.0.4; charset=utf-8"
        elif self.path.startswith("/healthz"):
            body, content_type = b"ok\n", "text/plain"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds would flood the log: stay quiet."""


def main() -> None:
    """Serve on 127.0.0.1:--port until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"sli_target serving http://127.0.0.1:{args.port}/metrics", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
