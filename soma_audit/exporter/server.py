"""``soma-audit serve``: re-audit on an interval and serve the results to Prometheus.

A background thread scans every target (one cluster, or each ``--context``) on the
interval, never two rounds at once, and replaces what the HTTP handlers serve in one
step: ``/metrics`` (Prometheus text format, :mod:`soma_audit.reports.metrics`), ``/healthz`` and
``/report.json``. A scan that cannot run leaves the previous results in place, with
``soma_audit_up`` 0 and the error counter raised; nothing a scan does can stop the
server. Scans are read-only, like every audit. docs/exporter.md is the user's guide.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from soma_audit.core.errors import AuditError

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from soma_audit.engine.session import AuditSession
    from soma_audit.results.fleet import ClusterScan, FleetReport

# The CLI builds its parser on every start: this module imports only what add_parser needs
# at the top, the HTTP server and the engine when serving.

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464
DEFAULT_BIND = "0.0.0.0"
DEFAULT_INTERVAL = 300.0
#: /healthz fails when no scan attempt finished for this many intervals.
STALE_INTERVALS = 3
IN_CLUSTER = "in-cluster"


def add_parser(commands: Any, source_options: Callable[[argparse.ArgumentParser], None],
               ) -> None:
    """The ``serve`` subcommand; ``source_options`` repeats the audit's source flags."""
    serve = commands.add_parser(
        "serve", help="re-audit on an interval and serve Prometheus metrics",
        description="Re-audit on an interval and serve /metrics, /healthz and /report.json "
        "(docs/exporter.md). In a pod without a kubeconfig it uses the pod's service "
        "account.")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"TCP port to listen on (default {DEFAULT_PORT}; 0 picks one)")
    serve.add_argument("--bind", default=DEFAULT_BIND, metavar="ADDRESS",
                       help=f"address to listen on (default {DEFAULT_BIND})")
    serve.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, metavar="SECONDS",
                       help=f"seconds between the starts of two scans (default "
                       f"{DEFAULT_INTERVAL:.0f})")
    serve.add_argument("--cluster-name", metavar="NAME", default=argparse.SUPPRESS,
                       help="the `cluster` label of one target (default: the kube context "
                       f"name, or {IN_CLUSTER!r} in a pod)")
    serve.add_argument("--only", metavar="PATTERN", action="append", default=argparse.SUPPRESS,
                       help="run only checks whose id matches (glob, repeatable)")
    source_options(serve)


@dataclass(frozen=True)
class _Served:
    """What the HTTP handlers answer with; replaced whole after each scan round."""

    metrics: str
    report_json: str | None
    why_no_report: str


class Exporter:
    """The scan loop and the state it publishes (thread-safe by replacement)."""

    def __init__(self, scan_round: Callable[[], FleetReport], interval: float,
                 single: bool) -> None:
        """``single``: /report.json is the one cluster's report (the JSON contract), not
        the fleet JSON of several."""
        self._scan_round = scan_round
        self.interval = interval
        self._single = single
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scans: dict[str, ClusterScan] = {}
        self._errors: Counter[str] = Counter()
        self._served = _Served("", None, "no scan has finished yet")
        self._loop_started = 0.0
        self._last_finished: float | None = None

    # -- the loop -----------------------------------------------------------------------
    def start(self) -> None:
        self._loop_started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="soma-audit-scan", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the round in progress (a scan is bounded by the source's timeouts)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.scan_once()
            self._stop.wait(max(0.0, began + self.interval - time.monotonic()))

    def scan_once(self) -> None:
        """One round: scan, merge into what is served, publish. Never raises."""
        from soma_audit.results.fleet import ClusterScan, FleetReport

        try:
            fleet = self._scan_round()
        except Exception as exc:  # a bug must cost one round, never the server
            log.exception("scan round failed")
            fleet = FleetReport([ClusterScan(name, error=f"internal error: {exc!r}")
                                 for name in self._scans])
        for scan in fleet.clusters:
            self._log(scan)
            if scan.report is None:
                self._errors[scan.cluster] += 1
                previous = self._scans.get(scan.cluster)
                scan = replace(scan, report=previous.report if previous else None)
            self._scans[scan.cluster] = scan
        self._publish()
        self._last_finished = time.monotonic()

    def _log(self, scan: ClusterScan) -> None:
        took = f"{scan.duration_seconds:.1f}s"
        if scan.report is None:
            log.warning("scan of %s failed after %s: %s (serving the previous results)",
                        scan.cluster, took, scan.error)
            return
        counts = ", ".join(f"{n} {status}" for status, n in scan.report.summary().items() if n)
        log.info("scan of %s ran in %s: %s", scan.cluster, took, counts or "no checks")

    def _publish(self) -> None:
        from soma_audit.reports import jsonfmt, metrics
        from soma_audit.results.fleet import FleetReport

        fleet = FleetReport(list(self._scans.values()))
        text = metrics.render(fleet, dict(self._errors), self.interval)
        if not fleet.audited:
            errors = "; ".join(f"{s.cluster}: {s.error}" for s in fleet.clusters if s.error)
            self._served = _Served(text, None, f"no scan has run yet ({errors})")
        elif self._single:
            self._served = _Served(text, jsonfmt.render(fleet.audited[0].report), "")
        else:
            self._served = _Served(text, jsonfmt.render_fleet(fleet), "")

    # -- what the handlers read -----------------------------------------------------------
    @property
    def served(self) -> _Served:
        return self._served

    def health(self) -> tuple[bool, str]:
        """Whether the loop runs and an attempt finished within STALE_INTERVALS intervals."""
        if self._thread is None or not self._thread.is_alive():
            return False, "the scan loop is not running"
        since = self._last_finished if self._last_finished is not None else self._loop_started
        age = time.monotonic() - since
        limit = STALE_INTERVALS * self.interval
        if age > limit:
            what = ("no scan attempt finished" if self._last_finished is not None
                    else "the first scan has been running")
            return False, (f"{what} for {age:.0f}s (limit {limit:.0f}s = {STALE_INTERVALS} "
                           "intervals)")
        return True, "ok"


def _handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    from http import HTTPStatus
    from http.server import BaseHTTPRequestHandler

    from soma_audit.reports.metrics import CONTENT_TYPE

    class Handler(BaseHTTPRequestHandler):
        server_version = "soma-audit"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            served = exporter.served
            if path == "/metrics":
                self._answer(HTTPStatus.OK, served.metrics, CONTENT_TYPE)
            elif path == "/healthz":
                ok, reason = exporter.health()
                self._answer(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                             reason + "\n")
            elif path == "/report.json":
                if served.report_json is None:
                    self._answer(HTTPStatus.SERVICE_UNAVAILABLE, served.why_no_report + "\n")
                else:
                    self._answer(HTTPStatus.OK, served.report_json, "application/json")
            else:
                self._answer(HTTPStatus.NOT_FOUND,
                             "not found: try /metrics, /healthz or /report.json\n")

        def _answer(self, status: HTTPStatus, body: str,
                    content_type: str = "text/plain; charset=utf-8") -> None:
            data = body.encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except ConnectionError as exc:  # the client gave up (a scrape timeout)
                log.debug("%s went away: %s", self.address_string(), exc)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def _targets(args: argparse.Namespace, contexts: list[str] | None,
             open_session: Callable[[str | None], AuditSession]) -> dict[str, str | None]:
    """Cluster label → kube context of every target (``contexts`` for a fleet, else the
    one ``args.context``). Each session is opened once here so that bad input (context,
    kubeconfig, service-account files) fails before anything is served."""
    if contexts is not None:
        for context in contexts:
            open_session(context)
        return {context: context for context in contexts}
    info = open_session(args.context).source.info
    return {args.cluster_name or info.label or info.ref or IN_CLUSTER: args.context}


def run(args: argparse.Namespace, contexts: list[str] | None,
        session_opener: Callable[[argparse.Namespace],
                                 Callable[[str | None], AuditSession]]) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a graceful stop, AuditError on bad input.

    ``contexts`` are the contexts of a fleet, None for one target (``args.context``);
    ``session_opener(args)`` loads config and catalog and returns the function that
    opens a fresh session on a context — a fresh one each round, so that a live
    service's remembered failure or an expired credential never outlives its scan."""
    if not 0 < args.interval <= threading.TIMEOUT_MAX:
        raise AuditError(f"--interval must be a positive number of seconds, not "
                         f"{args.interval:g}")
    if not 0 <= args.port <= 65535:
        raise AuditError(f"--port must be 0 to 65535, not {args.port}")
    from http.server import ThreadingHTTPServer

    from soma_audit.engine.fleet import audit_fleet

    open_session = session_opener(args)
    targets = _targets(args, contexts, open_session)
    exporter = Exporter(
        lambda: audit_fleet(list(targets), lambda label: open_session(targets[label])),
        args.interval, single=contexts is None)
    try:
        server = ThreadingHTTPServer((args.bind, args.port), _handler(exporter))
    except OSError as exc:
        raise AuditError(f"cannot listen on {args.bind}:{args.port}: "
                         f"{exc.strerror or exc}") from None
    server.daemon_threads = True
    log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    http = threading.Thread(target=server.serve_forever, name="soma-audit-http", daemon=True)
    try:
        exporter.start()
        http.start()
        host, port = server.server_address[:2]
        log.info("serving http://%s:%s/metrics for %s, a scan every %gs", host, port,
                 ", ".join(targets), args.interval)
        while not stopping.wait(1.0):
            pass
    finally:
        if http.is_alive():
            server.shutdown()
        server.server_close()
        exporter.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return 0
