"""The read-only promise, proven by the API server's audit log.

Every scan mode runs with the read-only ServiceAccount kubeconfig (ClusterRole
``soma-audit-readonly``, the product's own): the audit log must show no request that
persists anything. Server-side dry-runs (``?dryRun=All``, nothing saved) appear only in
``diff``; a scan sends no mutating request at all (``pss.admission-verdict``'s dry-run
PATCH needs ``--probe-writes`` and the opt-in ``soma-audit-dryrun`` role).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import (
    AuditLog,
    Figures,
    demo_tree,
    mutating,
    persisting,
    run_cli,
    scan_dry_runs,
    service_env,
    write_snapshot,
)

pytestmark = pytest.mark.reliability

FORMATS = ("table", "json", "markdown", "junit", "sarif")


@pytest.fixture(scope="module")
def env(kube_env: Any, openfga_env: Any, kafka_env: Any, prometheus_env: Any) -> dict[str, str]:
    """The read-only kubeconfig and the live services, as the CLI reads them."""
    return service_env(kube_env, openfga_env, kafka_env, prometheus_env)




def _record(figures: Figures, mode: str, events: list[dict[str, Any]], code: int) -> None:
    """Add one run's audited requests to the figures."""
    figures.count("readonly", "requests_audited", len(events))
    figures.count("readonly", "runs", 1)
    figures.count("readonly", "dry_runs", len(scan_dry_runs(events)))
    figures.add("readonly_modes", mode, {"requests": len(events),
                                         "persisting": len(persisting(events)),
                                         "dry_run": len(scan_dry_runs(events)),
                                         "exit": code})


def _assert_scan_writes_nothing(events: list[dict[str, Any]]) -> None:
    """Not even a server-side dry-run: a scan only reads."""
    assert not mutating(events), mutating(events)


def _scan(argv: list[str], env: dict[str, str], cwd: Path, audit_log: AuditLog,
          figures: Figures, mode: str) -> tuple[Any, list[dict[str, Any]]]:
    """Run the CLI and return it with the audit events of its time window."""
    start = audit_log.now()
    run = run_cli(argv, env, cwd)
    events = audit_log.events(start, audit_log.now())
    _record(figures, mode, events, run.code)
    assert "Traceback" not in run.stderr, run.stderr
    _assert_scan_writes_nothing(events)
    return run, events


@pytest.mark.parametrize("fmt", FORMATS)
def test_cluster_ci_is_read_only(fmt: str, env: dict[str, str], tmp_path: Path,
                                 audit_log: AuditLog, figures: Figures) -> None:
    """``--ci`` against the cluster in every format: lists only, and the scan succeeds."""
    run, events = _scan(["--ci", "--format", fmt], env, tmp_path, audit_log, figures,
                        f"cluster --ci --format {fmt}")
    assert run.code in (0, 1), run.stderr
    assert events, "the scan made no request to the API server"
    assert {e["verb"] for e in events} <= {"list", "get", "watch"}
    denied = [e["requestURI"] for e in events if e["responseStatus"]["code"] == 403]
    assert not denied, f"the bundled read-only ClusterRole lacks: {denied}"
    if fmt == "json":
        checks = {c["id"]: c for c in json.loads(run.stdout)["checks"]}
        forbidden = [i for i, c in checks.items() if "forbidden" in json.dumps(c).lower()]
        assert not forbidden, forbidden
        assert checks["pss.admission-verdict"]["status"] == "skip"


@pytest.mark.parametrize("mode", ["manifests", "snapshot", "demo"])
def test_offline_modes_are_read_only(mode: str, env: dict[str, str], tmp_path: Path,
                                     audit_log: AuditLog, figures: Figures) -> None:
    """``--manifests``, ``--snapshot`` and ``--demo`` with the read-only kubeconfig set."""
    tree = demo_tree(tmp_path / "repo")
    argv = {"manifests": ["--manifests", str(tree)],
            "snapshot": ["--snapshot", str(write_snapshot(tree, tmp_path / "dump.yaml")),
                         "--repo", str(tree)],
            "demo": ["--demo"]}[mode]
    run, events = _scan(["--ci", "--format", "json", *argv], env, tmp_path, audit_log,
                        figures, f"--{mode} --ci")
    assert not mutating(events), mutating(events)
    assert run.code in (0, 1), run.stderr
    assert json.loads(run.stdout)["checks"]


def test_tui_scan_is_read_only(env: dict[str, str], audit_log: AuditLog, figures: Figures,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The TUI, driven through one full cluster scan with ``App.run_test()``."""
    from soma_audit import cli
    from soma_audit.tui.app import SomaAuditApp

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = cli._parser().parse_args([])
    cli._apply_environment(args)
    session = cli._build_session(args)

    async def drive() -> None:
        app = SomaAuditApp(session)
        async with app.run_test(size=(140, 45)) as pilot:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                main = pilot.app.main
                if main.report is not None and not main.scanning:
                    break
                await pilot.pause(0.1)
            assert pilot.app.main.report is not None, "the TUI scan never finished"

    start = audit_log.now()
    asyncio.run(drive())
    events = audit_log.events(start, audit_log.now())
    _record(figures, "TUI (App.run_test), cluster", events, 0)
    assert events, "the TUI scan made no request to the API server"
    _assert_scan_writes_nothing(events)
    assert session.last_report is not None


def test_dry_runs_only_in_diff(env: dict[str, str], tmp_path: Path, audit_log: AuditLog,
                               figures: Figures) -> None:
    """``diff`` may send server-side dry-runs (``dryRun=All``), nothing else that writes;
    ``render`` and the rollback listing send no write at all."""
    state = {"SOMA_AUDIT_STATE": str(tmp_path / "state")}
    for argv in (["render", "pss-namespaces"], ["rollback"]):
        start = audit_log.now()
        run = run_cli(argv, env | state, tmp_path)
        events = audit_log.events(start, audit_log.now())
        _record(figures, " ".join(argv), events, run.code)
        assert "Traceback" not in run.stderr, run.stderr
        assert not mutating(events), mutating(events)
    start = audit_log.now()
    run = run_cli(["diff", "pss-namespaces"], env | state, tmp_path)
    events = audit_log.events(start, audit_log.now())
    writes = mutating(events)
    _record(figures, "diff pss-namespaces", events, run.code)
    assert "Traceback" not in run.stderr, run.stderr
    assert all("dryRun=All" in w for w in writes), writes
    # The read-only role has no `get`/dry-run `patch`: diff stops with a clear message.
    assert run.code in (0, 1, 2)
    if run.code == 2:
        assert run.stderr.startswith("soma-audit: error:"), run.stderr
