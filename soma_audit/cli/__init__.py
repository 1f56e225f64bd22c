"""The command line: a thin view over the engine (docs/contracts.md is the contract).

Imports are lazy so that ``--version`` and ``--ci`` start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from soma_audit import __version__
from soma_audit.cli.options import ENV_PREFIX, config_overrides
from soma_audit.core.escape import visible

if TYPE_CHECKING:
    from soma_audit.config import Config
    from soma_audit.core.model import Check
    from soma_audit.engine.forked import ForkedScan
    from soma_audit.engine.session import AuditSession
    from soma_audit.results.fleet import FleetReport
    from soma_audit.sources.cluster import ClusterSource

FORMATS = ("table", "json", "markdown", "junit", "sarif")
SEVERITIES = ("low", "medium", "high", "critical")
_TRUE = {"1", "true", "yes", "on"}
#: The command's scratch folder (every temporary folder of the run is made inside it):
#: removed at the end, and at once when the user interrupts.
_SCRATCH: list[Path] = []
#: The TUI's first scan: its child is stopped before the scratch folder is removed.
_FORKED: list[ForkedScan] = []
#: The signals that stopped this run, as they arrived (:func:`_on_stop_signal`).
_STOPPED: list[int] = []
#: The unraisable-exception hook in place before :func:`_stop_on_signals` set its own.
_UNRAISABLE_HOOK: list[Callable[[Any], object]] = []

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soma-audit",
        description="Audit a Kubernetes platform against its production-readiness plan.",
        epilog=f"Every option can also be set as {ENV_PREFIX}<OPTION> in the environment "
        f"(e.g. {ENV_PREFIX}PROMETHEUS_URL); flags win over the environment, the environment "
        "over the config file.",
    )
    parser.add_argument("--version", action="version", version=f"soma-audit {__version__}")
    source = parser.add_argument_group("what to audit (default: the current kube context)")
    exclusive = source.add_mutually_exclusive_group()
    exclusive.add_argument("--manifests", metavar="DIR", help="audit a GitOps directory")
    exclusive.add_argument("--snapshot", metavar="FILE", help="audit a cluster dump (kind: List)")
    exclusive.add_argument("--demo", action="store_true", default=None,
                           help="audit a copy of the bundled demo repository")
    clusters = source.add_mutually_exclusive_group()
    clusters.add_argument("--context", metavar="NAME", action="append",
                          help="kube context (as kubectl); repeat it to audit several clusters "
                          "concurrently into one report (docs/fleet.md)")
    clusters.add_argument("--all-contexts", action="store_true", default=None,
                          help="audit every context of the kubeconfig (docs/fleet.md)")
    source.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (as kubectl)")
    source.add_argument("--repo", metavar="DIR",
                        help="repository with the FGA model, k6 scripts, e2e results ...")
    source.add_argument("--config", metavar="FILE", help="targets and expectations (YAML)")
    live = parser.add_argument_group("live service probes")
    live.add_argument("--openfga-url", metavar="URL")
    live.add_argument("--openfga-store", metavar="ID")
    live.add_argument("--prometheus-url", metavar="URL")
    live.add_argument("--kafka-bootstrap", metavar="HOSTS")
    live.add_argument("--probe-writes", action="store_true", default=None,
                      help="allow the probes that write: the Kafka canary produce/consume and "
                      "PodSecurity's server-side dry-run of namespace labels")
    parser.add_argument("--run-repo-code", action="store_true", default=None,
                        help="allow running code of the audited repository: `k6 inspect` "
                        "runs each k6 script's init code (off: scripts are only parsed; "
                        "docs/security.md)")
    out = parser.add_argument_group("headless mode")
    out.add_argument("--ci", action="store_true", default=None,
                     help="no TUI: print a report and set the exit code")
    out.add_argument("--format", choices=FORMATS, help="report format (default: table)")
    out.add_argument("--output", "-o", metavar="FILE",
                     help="write the report here: a file is replaced atomically (a symlink's "
                     "target), a FIFO or a device is streamed to, `-` is stdout")
    out.add_argument("--fail-on", choices=SEVERITIES,
                     help="only failures at or above this severity make exit code 1")
    out.add_argument("--only", metavar="PATTERN", action="append",
                     help="run only checks whose id matches (glob, repeatable)")
    out.add_argument("--metrics-file", metavar="FILE",
                     help="with --ci, also write Prometheus metrics here, replaced atomically "
                     "(node-exporter textfile collector, docs/exporter.md)")
    out.add_argument("--cluster-name", metavar="NAME",
                     help="the `cluster` label of the metrics of one cluster (default: the "
                     "kube context name)")
    parser.add_argument("--debug", action="store_true", default=None, help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    checks = commands.add_parser("checks", help="list the check catalog")
    checks.add_argument("--format", choices=("table", "json", "markdown"),
                        dest="checks_format", default="table")
    from soma_audit.cli.remediation import add_parsers

    add_parsers(commands, _source_options)
    from soma_audit.exporter.server import add_parser

    add_parser(commands, _source_options)
    return parser


def _source_options(parser: argparse.ArgumentParser) -> None:
    """The audit's source flags again, after a remediation subcommand; absent ones leave
    the values given before it untouched."""
    keep = argparse.SUPPRESS
    source = parser.add_argument_group("source (as for the audit)")
    exclusive = source.add_mutually_exclusive_group()
    exclusive.add_argument("--manifests", metavar="DIR", default=keep)
    exclusive.add_argument("--snapshot", metavar="FILE", default=keep)
    exclusive.add_argument("--demo", action="store_true", default=keep)
    source.add_argument("--context", metavar="NAME", action="append", default=keep)
    for flag, meta in (("--kubeconfig", "PATH"), ("--repo", "DIR"),
                       ("--config", "FILE"), ("--openfga-url", "URL"),
                       ("--openfga-store", "ID"), ("--kafka-bootstrap", "HOSTS")):
        source.add_argument(flag, metavar=meta, default=keep)


def _apply_environment(args: argparse.Namespace) -> None:
    """Fill options not given as flags from SOMA_AUDIT_<OPTION>."""
    for name, value in vars(args).items():
        if value is not None or name in ("command", "checks_format"):
            continue
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is None or (name == "all_contexts" and args.context):
            continue  # named contexts win over SOMA_AUDIT_ALL_CONTEXTS
        if name in ("demo", "ci", "probe_writes", "run_repo_code", "debug", "all_contexts"):
            setattr(args, name, raw.strip().lower() in _TRUE)
        elif name in ("only", "context"):
            setattr(args, name, [p for p in raw.replace(",", " ").split() if p])
        else:
            setattr(args, name, raw)


def _build_session(args: argparse.Namespace) -> AuditSession:
    return _session_opener(args)(_single_context(args))


def _single_context(args: argparse.Namespace) -> str | None:
    """The one kube context of a single-cluster audit: ``--context`` parses to a list (it
    may be repeated), :func:`_fleet_contexts` leaves the single name."""
    from soma_audit.core.errors import AuditError

    if args.context is None or isinstance(args.context, str):
        return args.context
    named = list(dict.fromkeys(args.context))
    if len(named) > 1:
        raise AuditError(f"one cluster expected, got contexts {', '.join(named)}")
    return named[0] if named else None


def _session_opener(args: argparse.Namespace) -> Callable[[str | None], AuditSession]:
    """Load config and catalog once (bad input fails here, before any cluster is asked);
    the function returned opens a session on a kube context — with its own ClusterSource,
    hence its own connection pool, each time (a fleet audit opens one per context)."""
    return _opener(args, *_read(args, _scratch() if args.demo else None))


def _read(args: argparse.Namespace, scratch: Path | None
          ) -> tuple[Config, list[Check], Path | None]:
    """The config and the catalog (narrowed by --only) — where bad input fails — and the
    demo's copy, made in ``scratch`` (with --demo)."""
    from soma_audit.catalog.checks import load_catalog
    from soma_audit.config import load_config
    from soma_audit.core.errors import AuditError

    config = load_config(args.config, **config_overrides(args))
    checks = load_catalog(list(config.catalogs))
    if args.only:
        from fnmatch import fnmatchcase

        checks = [c for c in checks if any(fnmatchcase(c.id, p) for p in args.only)]
        if not checks:
            raise AuditError(f"no check matches --only {' '.join(args.only)}")
    if scratch is None:
        return config, checks, None
    from soma_audit.engine.demo import prepare_demo

    return config, checks, prepare_demo(scratch)


def _scratch() -> Path:
    """A folder for the demo's copy, inside the command's scratch folder (removed with it;
    the remediation commands keep their own persistent demo copy)."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="soma-audit-demo-"))


def _make_temporary_folders_inside_scratch() -> None:
    """Make every temporary folder of the command (the demo's copy, rendering, rule files,
    TLS files, those of the TUI's scan process) inside one scratch folder, so that an
    interrupt, which leaves at once, still removes them all (:func:`_clean_up`)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="soma-audit-"))
    _SCRATCH.append(folder)
    tempfile.tempdir = str(folder)


def _clean_up(*, leaving: bool = False) -> None:
    """Stop what the command started and may still be running — the TUI's scan process
    (it may still be copying the demo into the scratch folder), external tools (the TUI
    quit mid-scan, or the user interrupted; ``leaving``: the process ends next, and a
    thread left behind starts no other) — then remove the scratch folder; temporary
    folders are made where they were before."""
    tools = sys.modules.get("soma_audit.services.tools")
    if tools is not None:  # not imported: no tool ran
        tools.stop_running_tools(leaving=leaving)
    for forked in _FORKED:
        forked.close()
    _FORKED.clear()
    if not _SCRATCH:  # the options were refused, or only --version or --help asked
        return
    import shutil
    import tempfile

    for folder in _SCRATCH:
        shutil.rmtree(folder, ignore_errors=True)
    _SCRATCH.clear()
    tempfile.tempdir = None


def _opener(args: argparse.Namespace, config: Config, checks: list[Check],
            demo: Path | None) -> Callable[[str | None], AuditSession]:
    """The function that opens a session over ``config`` and ``checks`` on a kube context;
    ``demo`` is the demo's copy (with --demo)."""
    from soma_audit.engine import attestations
    from soma_audit.engine.session import AuditSession
    from soma_audit.services import connect_services

    repo = Path(config.repo) if config.repo else None
    attestations_path = Path(config.attestations) if config.attestations else None
    if demo:
        from soma_audit.engine.demo import DEMO_NAME
        from soma_audit.sources.manifests import ManifestsSource

        source: Any = ManifestsSource(demo, label=f"demo: {DEMO_NAME}", config=config)
        attestations_path = attestations_path or demo / attestations.DEFAULT_FILE
    elif args.manifests:
        from soma_audit.sources.manifests import ManifestsSource

        source = ManifestsSource(args.manifests, config=config)
    elif args.snapshot:
        from soma_audit.sources.snapshot import SnapshotSource

        source = SnapshotSource(args.snapshot, repo=repo)
    else:
        source = None

    def open_session(context: str | None) -> AuditSession:
        return AuditSession(
            source=source or _cluster_source(args, context, config, repo),
            config=config,
            checks=checks,
            attestations_path=attestations_path or attestations.default_path(args.config),
            services=connect_services(config),
        )

    return open_session


def _cluster_source(args: argparse.Namespace, context: str | None, config: Config,
                    repo: Path | None) -> ClusterSource:
    """A live cluster's source (its module is imported only when a cluster is audited)."""
    from soma_audit.sources.cluster import ClusterSource, Timeouts

    reading = config.cluster
    return ClusterSource(args.kubeconfig, context, repo=repo, timeouts=Timeouts.of(reading),
                         workers=reading.workers)


def _list_checks(args: argparse.Namespace) -> int:
    import json

    from soma_audit.catalog.checks import load_catalog
    from soma_audit.config import load_config

    config = load_config(args.config)
    checks = load_catalog(list(config.catalogs))
    if args.checks_format == "json":
        print(json.dumps([c.to_dict() for c in checks], indent=2))
        return 0
    if args.checks_format == "markdown":
        from soma_audit.reports.catalog import render_catalog

        sys.stdout.write(render_catalog(checks))
        return 0
    for check in checks:
        needs = f" [needs {', '.join(check.requires)}]" if check.requires else ""
        kind = " [manual]" if check.manual else ""
        print(f"P{check.phase} {check.id:<28} {check.severity.value:<8} {check.title}"
              f"{needs}{kind}")
    return 0


def _emit(args: argparse.Namespace, render: Callable[[str, bool], str]) -> None:
    """Write ``render(format, color)`` to --output atomically, else to stdout (a table in
    colour when stdout is a terminal)."""
    fmt = args.format or "table"
    text = render(fmt, fmt == "table" and not args.output and sys.stdout.isatty())
    if args.output:
        _write_file(args.output, text, "report")
    else:
        sys.stdout.write(text)


def _write_file(path: str, text: str, what: str) -> None:
    """Write to ``path`` as :func:`~soma_audit.core.fileio.write_output` does (a file replaced
    atomically, a FIFO or device streamed to, ``-`` stdout); an unwritable place is one
    clear error (exit 2)."""
    from soma_audit.core.errors import AuditError
    from soma_audit.core.fileio import write_output

    try:
        write_output(path, text)
    except OSError as exc:
        raise AuditError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from None


def _run_ci(args: argparse.Namespace, session: AuditSession) -> int:
    from soma_audit.core.errors import AuditError
    from soma_audit.core.model import Severity
    from soma_audit.reports import render
    from soma_audit.results.fleet import ClusterScan, FleetReport

    info = session.source.info
    cluster = args.cluster_name or info.label or info.ref
    try:
        report = session.scan()
    except AuditError as exc:
        _write_metrics(args, FleetReport([ClusterScan(cluster, error=str(exc))]))
        raise
    _write_metrics(args, FleetReport([ClusterScan(cluster, report)]))

    def text(fmt: str, color: bool) -> str:
        if fmt != "table":
            return render(report, fmt)
        from soma_audit.reports import table  # rich: imported only for a table

        return table.render(report, color=color)

    _emit(args, text)
    return int(report.exit_code(Severity(args.fail_on or "low")))


def _fleet_contexts(args: argparse.Namespace) -> list[str] | None:
    """The contexts of a fleet audit (several --context, or --all-contexts), else None —
    and then ``args.context`` is the one context (or None) of a single-cluster audit."""
    named = list(dict.fromkeys(args.context or []))
    if not args.all_contexts and len(named) <= 1:
        args.context = _single_context(args)
        return None
    from soma_audit.core.errors import AuditError
    from soma_audit.engine.fleet import fleet_contexts  # a fleet audit's only

    if args.manifests or args.snapshot or args.demo:
        raise AuditError("several contexts and --all-contexts audit live clusters; "
                         "drop --manifests, --snapshot or --demo")
    return fleet_contexts(args.kubeconfig, named, bool(args.all_contexts))


def _run_fleet(args: argparse.Namespace, contexts: list[str]) -> int:
    """Audit the contexts concurrently; one stderr line per cluster that could not be
    audited; the exit code is the worst of the clusters'."""
    from soma_audit.core.model import Severity
    from soma_audit.engine.fleet import audit_fleet
    from soma_audit.reports import render_fleet, table

    fleet = audit_fleet(contexts, _session_opener(args))
    _write_metrics(args, fleet)
    for scan in fleet.failed:
        print(f"soma-audit: error: context {visible(scan.cluster)!r} not audited: "
              f"{visible(scan.error)}", file=sys.stderr)
    fail_on = Severity(args.fail_on or "low")
    _emit(args, lambda fmt, color: table.render_fleet(fleet, fail_on, color) if fmt == "table"
          else render_fleet(fleet, fmt, fail_on))
    return int(fleet.exit_code(fail_on))


def _write_metrics(args: argparse.Namespace, fleet: FleetReport) -> None:
    """--metrics-file: the fleet's metrics, replacing the file in one step (a textfile
    collector must never read half of one)."""
    if args.metrics_file:
        from soma_audit.reports.metrics import render

        _write_file(args.metrics_file, render(fleet), "metrics")


def _run_tui(args: argparse.Namespace) -> int:
    from soma_audit.core.errors import AuditError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        _build_session(args)  # bad input is said first, as on a terminal
        raise AuditError("the TUI needs a terminal; use --ci for headless runs")
    first_scan, open_session = _tui_start(args)
    from soma_audit.tui import run_tui

    return run_tui(open_session, first_scan)


def _tui_start(args: argparse.Namespace
               ) -> tuple[ForkedScan | None, Callable[[], AuditSession]]:
    """Fork the first scan (before Textual is imported and starts threads), and the
    function that opens the TUI's session: call it once Textual is imported. A
    repository, a snapshot or the demo is forked before anything is read: the child opens
    the session — config, catalog, the demo's copy, source — and hands the first three
    over, and the function opens the TUI's own session from them (it waits for the child
    and raises its error for bad input). A live cluster's session is opened here, once
    (its kubeconfig's credential plugin runs once), and the child scans it. Where
    processes cannot fork, the session is opened in the process (and the TUI scans in
    it)."""
    from soma_audit.engine.forked import ForkedScan

    if args.demo or args.manifests or args.snapshot:
        scratch = _scratch() if args.demo else None

        def open_own(handed: Any) -> AuditSession:
            return _opener(args, *handed)(_single_context(args))

        def open_session() -> tuple[AuditSession, Any]:
            handed = _read(args, scratch)
            return open_own(handed), handed
    else:
        session = _build_session(args)

        def open_own(handed: Any) -> AuditSession:
            return session

        def open_session() -> tuple[AuditSession, Any]:
            return session, None

    first_scan = ForkedScan.start(open_session)
    if first_scan is None:
        return None, lambda: open_session()[0]
    _FORKED.append(first_scan)
    return first_scan, partial(first_scan.opened, open_own)


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (a CronJob's pod being deleted) stop a run, in the main thread
    only (the only one that may install signal handlers); a SIGINT this process was told
    to ignore stays ignored. Python merely prints an interrupt that lands while a weakref
    callback or a finaliser runs (an import's lock cleanup, for one): the run would go on,
    so such an interrupt is sent again a moment later, from another thread, to land where
    it can be raised."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_stop_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_stop_signal)
    if sys.unraisablehook is not _send_lost_interrupt_again:
        _UNRAISABLE_HOOK[:] = [sys.unraisablehook]
        sys.unraisablehook = _send_lost_interrupt_again


def _on_stop_signal(signum: int, frame: object) -> NoReturn:
    """Note that the user stopped the run, and raise the interrupt. Python can turn an
    interrupt into another error (one landing in a class's ``__set_name__`` becomes a
    RuntimeError, one landing while an exception is made, a TypeError); whatever error
    surfaces after this is then reported as the interrupt it is."""
    _STOPPED.append(signum)
    raise KeyboardInterrupt


def _send_lost_interrupt_again(unraisable: Any) -> None:
    """The unraisable-exception hook: an interrupt is sent again to the main thread (after
    50 ms, once the callback it landed in has returned); anything else goes to the hook
    that was there before."""
    import signal
    import threading

    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        _UNRAISABLE_HOOK[0](unraisable)
        return
    again = threading.Timer(0.05, signal.pthread_kill,
                            (threading.main_thread().ident, signal.SIGTERM))
    again.daemon = True
    again.start()


def _interrupted() -> int:
    """Ctrl-C or SIGTERM: stop the external tools still running, remove the scratch folder,
    say so, and leave at once — worker threads blocked on a silent server are not waited
    for; no report was written (reports are written whole, at the end)."""
    _clean_up(leaving=True)
    print("soma-audit: interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The options of this run: flags, then the environment; logging set up from them."""
    args = _parser().parse_args(argv)
    _apply_environment(args)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return args


def program() -> NoReturn:
    """The ``soma-audit`` command: :func:`main`, then leave without tearing the interpreter
    down object by object (after a scan of 30,000 objects that took 50 to 130 ms, once the
    report was written). The exit handlers run and the standard streams are flushed
    first, as a normal exit does; only :func:`main` is for calling in-process."""
    import atexit

    code = main()
    atexit._run_exitfuncs()  # the handlers a normal exit runs (logging's, for one)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    from soma_audit.core.errors import AuditError

    _stop_on_signals()
    try:
        args = _arguments(argv)
        _make_temporary_folders_inside_scratch()
        return _run_command(args)
    except AuditError as exc:
        print(f"soma-audit: error: {visible(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        # The reader went away (`soma-audit checks | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception:
        if _STOPPED:
            return _interrupted()
        raise
    finally:
        _clean_up()


def _run_command(args: argparse.Namespace) -> int:
    """The command the options name; AuditError for bad input."""
    from soma_audit.core.errors import AuditError

    if args.command == "checks":
        return _list_checks(args)
    contexts = _fleet_contexts(args)
    if args.command in ("render", "diff", "apply", "rollback"):
        if contexts is not None:
            raise AuditError(f"{args.command} works on one cluster: give one --context")
        from soma_audit.cli.remediation import run

        return run(args, _build_session)
    if args.metrics_file and not args.ci:
        raise AuditError("--metrics-file goes with --ci (`soma-audit serve` serves the "
                         "metrics instead)")
    if contexts is not None and args.cluster_name:
        raise AuditError("--cluster-name labels one cluster; with several contexts each "
                         "is labelled with its context name")
    if args.command == "serve":
        from soma_audit.exporter.server import run as serve

        return serve(args, contexts, _session_opener)
    if contexts is not None:
        if not args.ci:
            raise AuditError("the TUI audits one cluster; use --ci for several contexts")
        return _run_fleet(args, contexts)
    return _run_ci(args, _build_session(args)) if args.ci else _run_tui(args)
