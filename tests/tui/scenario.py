"""Scenarios for the TUI tests: a small GitOps tree audited by the real engine.

The fixture catalog below is ours (not the bundled one), so the screens under test do
not change when the bundled checks evolve. Its automated checks run two tiny probes
registered for these tests only: ``tui.expect`` (an object passes when its file exists in
the tree), ``tui.error`` (the check cannot be evaluated) and ``tui.gate`` (holds a scan
half-way until the test releases :data:`GATE`). Everything else — the
engine, skips for live services, waivers, manual checks and attestations, the real
``ops.manifests-parse`` probe — is the product's own code.

Paths are relative to a scratch working directory and the scan time is frozen, so the
snapshots are the same on every machine and every day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import shutil
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from soma_audit.catalog.checks import load_catalog, validate_probes
from soma_audit.config import load_config
from soma_audit.core.model import Check, Evidence, Outcome, Severity, Status
from soma_audit.core.paths import data_path
from soma_audit.engine import attestations
from soma_audit.engine.scan import Progress
from soma_audit.engine.session import AuditSession
from soma_audit.probes import PROBES, ProbeContext, ProbeError, load_probes, probe
from soma_audit.results.report import Report
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.tui.app import SomaAuditApp
from soma_audit.tui.screens import MainScreen
from soma_audit.tui.widgets import AuditHeader, CheckDetail, CheckTable, PhaseTree

#: The scan time every snapshot shows (12:04:31 in the UTC time zone the tests use).
FROZEN = dt.datetime(2026, 11, 28, 12, 4, 31, tzinfo=dt.UTC)
#: "Today" for the attestation form's default expiry (today + 90 days = 2027-02-26).
TODAY = dt.date(2026, 11, 28)
TREE = "soma-gitops"
ATTESTATIONS = attestations.DEFAULT_FILE

#: Released by a test to let a ``tui.gate`` probe finish (a scan held half-way).
GATE = threading.Event()


# -- the probes of the fixture catalog -------------------------------------------------

def _expect(ctx: ProbeContext, params: dict[str, Any]) -> Outcome:
    """Each ``[object, files, message]``: passes when one of ``files`` (``a|b``) exists in
    the tree."""
    repo = ctx.require_repo()
    bad, good = [], []
    for obj, files, message in params["expect"]:
        found = next((f for f in files.split("|") if (repo / f).exists()), None)
        if found:
            good.append(Evidence(obj, f"found in {found}"))
        else:
            bad.append(Evidence(obj, message))
    return Outcome(Status.FAIL, tuple(bad)) if bad else Outcome(Status.PASS, tuple(good))


def _error(ctx: ProbeContext, params: dict[str, Any]) -> Outcome:
    raise ProbeError(params["message"])


def _gate(ctx: ProbeContext, params: dict[str, Any]) -> Outcome:
    if not GATE.wait(timeout=30):
        raise ProbeError("gate never released")
    return Outcome(Status.PASS, (Evidence("", "gate released"),))


FIXTURE_PROBES = {"tui.expect": _expect, "tui.error": _error, "tui.gate": _gate}


def register_fixture_probes() -> None:
    load_probes()
    for name, fn in FIXTURE_PROBES.items():
        if name not in PROBES:
            probe(name)(fn)


def unregister_fixture_probes() -> None:
    for name in FIXTURE_PROBES:
        PROBES.pop(name, None)


# -- the fixture catalog ---------------------------------------------------------------

def _check(id: str, phase: int, title: str, criterion: str, severity: str,
           probe: str = "", params: dict[str, Any] | None = None, **extra: Any) -> Check:
    return Check(id=id, phase=phase, area=id.split(".")[0], title=title, criterion=criterion,
                 severity=Severity(severity), probe=probe, params=params or {}, **extra)


def _expects(*items: tuple[str, str, str]) -> dict[str, Any]:
    return {"expect": [list(item) for item in items]}


def fixture_checks(gate: bool = False) -> list[Check]:
    """Thirteen checks over three phases, one of every status once scanned."""
    checks = [
        _check("fga.model-valid", 1, "OpenFGA model is valid DSL",
               "The authorization model parses and validates.", "critical", "tui.expect",
               _expects(("infra/openfga/model.fga", "infra/openfga/model.fga", "missing")),
               remediation="fga-model"),
        _check("fga.store-in-sync", 1, "Live store runs the repo model",
               "The live store's latest model equals the repository model.", "high",
               "tui.expect", requires=("openfga",)),
        _check("fga.decision-audit-log", 1, "Authorization decisions are logged",
               "Every authorization decision is written to the audit log.", "medium",
               manual=True),
        _check("argocd.apps-per-service", 1, "An Application per service",
               "Argo CD has an Application for every service.", "high", "tui.expect",
               _expects(
                   ("Application/argocd/gateway-api", "argocd/gateway-api.yaml", "missing"),
                   ("Application/argocd/billing-service", "argocd/billing-service.yaml",
                    "no Application deploys billing-service"),
                   ("Application/argocd/llm-hub", "argocd/llm-hub.yaml",
                    "no Application deploys llm-hub"),
               ), remediation="argocd-apps"),
        _check("kafka.topics", 1, "A topic for every event type",
               "Topic definitions (partitions, replication, retention) for all event types.",
               "high", "tui.error",
               {"message": "KafkaTopic/soma-agent-hub/agent-events is defined twice "
                           "with different specs"}, remediation="kafka-topics"),
        _check("pss.no-privileged", 1, "No privileged containers",
               "No container, init container or ephemeral container runs privileged.",
               "critical", "tui.expect",
               _expects(("Deployment/soma-agent-hub/gateway-api", "apps/gateway-api.yaml",
                         "missing")), remediation="pss-hardening"),
        _check("pss.namespace-labels", 1, "PSS labels on all namespaces",
               "Every namespace carries enforce/audit/warn labels.", "high", "tui.expect",
               _expects(("Namespace/soma-agent-hub", "namespaces.yaml", "missing"),
                        # The second file is where the pss-namespaces remediation puts it.
                        ("Namespace/observability",
                         "observability/namespace.yaml|k8s/namespaces.yaml",
                         "no pod-security.kubernetes.io/enforce label (want baseline)")),
               remediation="pss-namespaces"),
        _check("netpol.default-deny", 1, "Default deny per namespace",
               "Each namespace denies ingress and egress by default.", "high", "tui.expect",
               _expects(("NetworkPolicy/soma-agent-hub/default-deny",
                         "netpol/default-deny.yaml", "no default-deny policy")),
               remediation="netpol-baseline"),
        _check("chaos.schedules", 2, "Chaos experiments are scheduled",
               "CPU, memory, network and pod-failure experiments run at least daily.",
               "medium", "tui.expect",
               _expects(("Schedule/soma-agent-hub/pod-failure", "chaos/pod-failure.yaml",
                         "no Schedule runs PodChaos for the critical services")),
               remediation="chaos-schedules"),
        _check("slo.sli-present", 2, "SLI series exist in Prometheus",
               "The recording rules produce series for every critical service.", "high",
               "tui.expect", requires=("prometheus",)),
        _check("k6.thresholds", 2, "Load tests declare thresholds",
               "Every k6 script declares p99 latency and error-rate thresholds.", "medium",
               "tui.expect", _expects(("scripts/k6/gateway-api.js",
                                       "scripts/k6/gateway-api.js", "missing"))),
        _check("ops.manifests-parse", 3, "Every manifest could be read",
               "No manifest failed to parse and none was left unrendered.", "high",
               "ops.manifests-parse"),
        _check("ops.incident-process", 3, "Incident response process in place",
               "An on-call rota and incident process exist and have been exercised.",
               "medium", manual=True),
    ]
    if gate:
        checks.insert(8, _check("e2e.suite-passed", 2, "E2E suite passed",
                                "The last end-to-end run passed.", "high", "tui.gate"))
    return checks


# -- the fixture tree ------------------------------------------------------------------

_FILES = {
    "namespaces.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: soma-agent-hub\n",
    "apps/gateway-api.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: gateway-api\n"
        "  namespace: soma-agent-hub\nspec:\n  template:\n    spec:\n      containers:\n"
        "        - name: gateway-api\n          image: soma/gateway-api:1.0\n"
    ),
    "argocd/gateway-api.yaml": (
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n"
        "  name: gateway-api\n  namespace: argocd\n"
    ),
    "infra/openfga/model.fga": "model\n  schema 1.1\ntype user\n",
    "scripts/k6/gateway-api.js": "export const options = {};\n",
}

#: An attestation that ran out: the engine reports the manual check as failing.
_EXPIRED = attestations.Attestation(
    "ops.incident-process", "a.lee", "rota in PagerDuty, drill 2019-12", dt.date(2020, 1, 1),
    date=dt.date(2019, 10, 3),
)


def make_tree(root: Path) -> Path:
    for name, text in _FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class FrozenSession(AuditSession):
    """The real session, with the scan time pinned for deterministic screens."""

    def scan(self, progress: Progress | None = None, only: set[str] | None = None) -> Report:
        report = super().scan(progress, only)
        report.started = FROZEN
        return report


def fixture_session(workdir: Path, gate: bool = False) -> FrozenSession:
    """A session over a fresh fixture tree in ``workdir``, which must be the cwd."""
    assert Path.cwd() == workdir, "fixture sessions use paths relative to the cwd"
    make_tree(workdir / TREE)
    attestations.save(workdir / ATTESTATIONS, {_EXPIRED.check: _EXPIRED})
    config = load_config(waivers=[{
        "check": "netpol.default-deny", "reason": "Cilium cluster-wide policy covers it",
        "expires": "2099-01-01", "by": "platform-team",
    }])
    return FrozenSession(
        source=ManifestsSource(Path(TREE)),
        config=config,
        checks=fixture_checks(gate),
        attestations_path=Path(ATTESTATIONS),
    )


# -- the bundled catalog and the demo --------------------------------------------------

def available_catalog() -> list[Check]:
    """The bundled checks this build can run: their probe exists, or they need none."""
    registered = set(load_probes())
    return [c for c in load_catalog() if c.manual or c.requires or c.probe in registered]


def demo_session(base: Path) -> FrozenSession:
    """The ``--demo`` session (as the CLI builds it), its copy under ``base``."""
    from soma_audit.engine.demo import DEMO_NAME, prepare_demo

    if not data_path("demo", DEMO_NAME).is_dir():
        pytest.skip(f"the bundled demo ({data_path('demo', DEMO_NAME)}) is not there yet")
    checks = load_catalog()
    missing = [c.id for c in checks
               if not c.manual and not c.requires and c.probe not in load_probes()]
    if missing:
        pytest.skip(f"demo needs probes not written yet: {', '.join(missing[:5])}…")
    validate_probes([c for c in checks if not c.manual and not c.requires], set(PROBES))
    target = base / "demo"
    shutil.rmtree(target, ignore_errors=True)
    directory = prepare_demo(target)
    relative = Path(os.path.relpath(directory, Path.cwd()))
    return FrozenSession(
        source=ManifestsSource(relative, label=f"demo: {DEMO_NAME}"),
        config=load_config(),
        checks=checks,
        attestations_path=relative / attestations.DEFAULT_FILE,
    )


# -- driving the app -------------------------------------------------------------------

def pilot_test(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test in its own event loop (no pytest async plugin needed).

    Pytest still sees the test's own signature, so fixtures work as usual.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def make_app(session: AuditSession, author: str = "") -> SomaAuditApp:
    """The app as ``run_tui`` builds it, with "today" pinned."""
    return SomaAuditApp(session, today=lambda: TODAY, author=author)


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float = 15.0,
                     what: str = "the screen to update") -> None:
    """Let the app run until ``condition`` holds; fail (never hang) after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


def main_screen(pilot: Any) -> MainScreen:
    return pilot.app.main


async def scanned(pilot: Any) -> MainScreen:
    """Wait for the running scan to finish and its results to be on screen."""
    main = main_screen(pilot)
    await wait_until(pilot, lambda: not main.scanning and main.report is not None
                     and "scanned" in header(pilot), what="the scan to finish")
    # The header's scores are laid out on the next refresh; a dialog opened before that
    # would cover a header still as wide as "scanning 12/13" (a flaky snapshot).
    scores = main.query_one("#header-score", Static)
    await wait_until(pilot, lambda: scores.size.width >= len(str(scores.content).rstrip()),
                     what="the header to be laid out")
    await pilot.pause()
    return main


def header(pilot: Any) -> str:
    return pilot.app.main.query_one(AuditHeader).text


def table_rows(pilot: Any) -> list[str]:
    """Each row of the check table as the text a reader sees (icon, id, title, ...)."""
    table = pilot.app.main.query_one(CheckTable)
    return [" ".join(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


def table_ids(pilot: Any) -> list[str]:
    return pilot.app.main.query_one(CheckTable).check_ids


def tree_labels(pilot: Any) -> dict[str, str]:
    """Node title → its label text (``"Argo CD": "Argo CD  ░░░░░  0/1"``)."""
    tree = pilot.app.main.query_one(PhaseTree)
    return {scope.title.split(" · ")[-1]: str(node.label)
            for scope, node in tree.nodes_by_scope.items()}


def detail(pilot: Any) -> str:
    pane = pilot.app.main.query_one(CheckDetail)
    return f"{pane.border_title}\n{pane.border_subtitle}\n{pane.body.content}"


def selected(pilot: Any) -> str | None:
    return pilot.app.main.query_one(CheckTable).selected_id


def notifications(pilot: Any) -> list[str]:
    return [f"{n.title}: {n.message}" for n in pilot.app._notifications]
