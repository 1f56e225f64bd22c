"""The engine's own rules: skips, manual checks, attestations, waivers, crashes, locations."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from soma_audit.config import load_config
from soma_audit.core.errors import ConfigError
from soma_audit.core.model import Check, Outcome, Severity, Status
from soma_audit.engine.attestations import Attestation
from soma_audit.engine.scan import AuditRequest, run_audit
from soma_audit.probes import ProbeError, ev, failed, probe
from soma_audit.sources.manifests import ManifestsSource

TODAY = dt.date(2026, 11, 28)


@probe("test.crashes")
def _crashes(ctx, params) -> Outcome:
    raise KeyError("spec")


@probe("test.cannot-evaluate")
def _cannot(ctx, params) -> Outcome:
    raise ProbeError("the model file is missing")


@probe("test.fails-on-namespace", kinds=["Namespace"])
def _fails_on_namespace(ctx, params) -> Outcome:
    return failed(*(ev(r.ref, "bad namespace") for r in ctx.inventory.of_kind("Namespace")))


def _check(check_id: str, probe_name: str = "", **kw) -> Check:
    return Check(id=check_id, phase=1, area=check_id.split(".")[0], title="t", criterion="c",
                 severity=kw.pop("severity", Severity.HIGH), probe=probe_name, **kw)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "ns.yaml").write_text(
        "# header comment\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n"
    )
    return tmp_path


def _run(tree: Path, checks: list[Check], **kw):
    request = AuditRequest(source=ManifestsSource(tree), config=load_config(**kw.pop("config", {})),
                           checks=checks, today=TODAY, **kw)
    return run_audit(request)


def test_a_crashing_probe_is_an_error_not_a_crash(tree: Path) -> None:
    (result,) = _run(tree, [_check("ops.x", "test.crashes")]).results
    assert result.status is Status.ERROR
    assert "internal error in probe test.crashes" in result.evidence[0].message


def test_probe_error_becomes_error_with_reason(tree: Path) -> None:
    (result,) = _run(tree, [_check("ops.x", "test.cannot-evaluate")]).results
    assert (result.status, result.evidence[0].message) == (Status.ERROR,
                                                           "the model file is missing")


def test_live_checks_are_skipped_offline_with_the_reason(tree: Path) -> None:
    checks = [_check("argocd.x", "no-such-probe", requires=("cluster",)),
              _check("slo.y", "no-such-probe", requires=("prometheus",))]
    first, second = _run(tree, checks).results
    assert first.status is second.status is Status.SKIP
    reason = first.evidence[0].message
    assert "needs a live cluster (this audit reads a manifests directory)" in reason
    assert "--prometheus-url" in second.evidence[0].message


def test_unknown_probe_of_a_runnable_check_is_a_config_error(tree: Path) -> None:
    with pytest.raises(ConfigError, match="unknown probe 'no-such-probe'"):
        _run(tree, [_check("ops.x", "no-such-probe")])


def test_evidence_gets_the_defining_file_and_line(tree: Path) -> None:
    (result,) = _run(tree, [_check("ops.x", "test.fails-on-namespace")]).results
    assert result.evidence[0].object == "Namespace/team-a"
    assert result.evidence[0].location == "ns.yaml:2"


def test_manual_check_without_attestation_is_manual(tree: Path) -> None:
    (result,) = _run(tree, [_check("ops.doc", manual=True)]).results
    assert result.status is Status.MANUAL


@pytest.mark.parametrize(("expires", "status"), [(dt.date(2027, 1, 1), Status.PASS),
                                                  (dt.date(2026, 11, 1), Status.FAIL)])
def test_attestation_passes_until_it_expires(tree: Path, expires: dt.date, status: Status) -> None:
    attestation = Attestation("ops.doc", "a.lee", "reviewed", expires, dt.date(2026, 10, 1))
    (result,) = _run(tree, [_check("ops.doc", manual=True)],
                     attestations={"ops.doc": attestation}).results
    assert result.status is status
    assert "attested by a.lee" in result.evidence[0].message


def test_waiver_turns_a_failure_into_waived_until_it_expires(tree: Path) -> None:
    check = _check("ops.x", "test.fails-on-namespace")
    waived = {"waivers": [{"check": "ops.x", "reason": "accepted", "expires": "2027-01-01"}]}
    (result,) = _run(tree, [check], config=waived).results
    assert result.status is Status.WAIVED
    assert "waived until 2027-01-01: accepted" in result.evidence[0].message
    expired = {"waivers": [{"check": "ops.x", "reason": "old", "expires": "2026-01-01"}]}
    (result,) = _run(tree, [check], config=expired).results
    assert result.status is Status.FAIL
    assert "expired on 2026-01-01" in result.evidence[-1].message


def test_fail_on_raises_the_bar(tree: Path) -> None:
    report = _run(tree, [_check("ops.x", "test.fails-on-namespace", severity=Severity.MEDIUM)])
    assert report.exit_code(Severity.LOW) == 1
    assert report.exit_code(Severity.HIGH) == 0


def test_engine_never_imports_textual() -> None:
    code = (
        "import sys, soma_audit.cli, soma_audit.engine.scan, soma_audit.engine.session,"
        " soma_audit.reports;"
        "from soma_audit.probes import load_probes; load_probes();"
        "import soma_audit.reports.markdown, soma_audit.reports.table;"
        "assert 'textual' not in sys.modules, 'engine imported textual'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unreadable_kinds_error_and_absent_products_fail(tree: Path) -> None:
    class Source(ManifestsSource):
        def load(self, kinds, status_of=None):
            inventory = super().load(kinds, status_of)
            inventory.unavailable["ConfigMap"] = "forbidden (needs list on configmaps)"
            inventory.absent["Application"] = "Argo CD not installed (no argoproj.io API)"
            return inventory

    @probe("test.reads-configmaps", kinds=["ConfigMap"])
    def _reads_configmaps(ctx, params) -> Outcome:
        raise AssertionError("must not run")

    @probe("test.reads-applications", kinds=["Application"])
    def _reads_applications(ctx, params) -> Outcome:
        raise AssertionError("must not run")

    request = AuditRequest(source=Source(tree), config=load_config(), today=TODAY,
                           checks=[_check("ops.a", "test.reads-configmaps"),
                                   _check("argocd.b", "test.reads-applications"),
                                   _check("ops.c", "test.fails-on-namespace")])
    forbidden, absent, other = run_audit(request).results
    assert (forbidden.status, forbidden.evidence[0].message) == (
        Status.ERROR, "forbidden (needs list on configmaps)")
    assert (absent.status, absent.evidence[0].message) == (
        Status.FAIL, "Argo CD not installed (no argoproj.io API)")
    assert other.status is Status.FAIL  # the rest of the report stands


def _snapshot_report(tmp_path: Path, repo: Path | None):
    from soma_audit.catalog.checks import load_catalog
    from soma_audit.sources.snapshot import SnapshotSource

    dump = tmp_path / "dump.yaml"
    dump.write_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n"
                    "  metadata: {name: soma-agent-hub}\n")
    request = AuditRequest(source=SnapshotSource(dump, repo=repo), config=load_config(),
                           checks=load_catalog(), today=TODAY)
    return run_audit(request)


def test_repository_checks_are_skipped_without_a_repository(tmp_path: Path) -> None:
    report = _snapshot_report(tmp_path, None)
    skipped = {r.check.id for r in report.results
               if r.status is Status.SKIP and "no repository to read files from" in
               r.evidence[0].message}
    assert len(skipped) == 12, sorted(skipped)
    assert {"fga.model-file", "k6.scripts", "e2e.results-passed", "ops.runbooks"} <= skipped
    assert all("give --repo DIR" in r.evidence[0].message for r in report.results
               if r.check.id in skipped)
    assert not [r.check.id for r in report.results if r.status is Status.ERROR]


def test_a_repository_turns_the_repository_checks_on(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    report = _snapshot_report(tmp_path, repo)
    model = next(r for r in report.results if r.check.id == "fga.model-file")
    assert model.status is Status.FAIL
    assert not [r for r in report.results if "no repository" in r.evidence[0].message]
