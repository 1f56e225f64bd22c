"""The OpenFGA target on the real server: diff of the model in DSL form, apply with
WriteAuthorizationModel, the live checks pass, rollback writes the saved model back."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.engine.session import AuditSession
from soma_audit.remediation.apply import apply_plan, restore_preview, rollback
from soma_audit.remediation.backup import BackupStore
from soma_audit.remediation.live import OpenFgaTarget
from soma_audit.remediation.workflow import prepare
from soma_audit.services import connect_services
from soma_audit.services.openfga import OpenFgaService, canonical_model
from soma_audit.sources.manifests import ManifestsSource

pytestmark = pytest.mark.integration

OLD_MODEL = """model
  schema 1.1

type user

type organization
  relations
    define member: [user]
"""


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def store(openfga_env: Any, unique_name: Callable[[str], str]) -> str:
    """A fresh store of our own: the shared one is left alone."""
    return str(_post(f"{openfga_env.url}/stores", {"name": unique_name("remediation")})["id"])


def _session(repo: Path, url: str, store: str) -> AuditSession:
    (repo / "k8s").mkdir(parents=True, exist_ok=True)
    (repo / "k8s" / "ns.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: soma-agent-hub}\n")
    config = load_config(openfga={"url": url, "store": store})
    return AuditSession(ManifestsSource(repo), config, load_catalog(),
                        repo / "attestations.yaml", services=connect_services(config))


def _statuses(session: AuditSession, ids: set[str]) -> dict[str, str]:
    report = session.scan(only=ids)
    return {r.check.id: r.status.value for r in report.results if r.check.id in ids}


def test_fga_model_diff_apply_rollback(openfga_env: Any, store: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    session = _session(repo, openfga_env.url, store)
    backups = BackupStore(tmp_path / "state")
    # The repository gets the model first (directory target), so the live check compares.
    apply_plan(prepare(session, "fga-model", "directory"), backups)
    live_ids = {"fga.store-model", "fga.live-scenarios"}
    assert _statuses(session, live_ids)["fga.store-model"] == "fail"  # no model yet

    # A store whose model is outdated: the failing state.
    service = OpenFgaService(session.config.openfga)
    plan = prepare(session, "fga-model", "openfga")
    assert [c.kind for c in plan.changes] == ["create"]
    first = apply_plan(plan, backups)
    assert first.backup is not None
    old = _write_old_model(plan.target, service)

    plan = prepare(session, "fga-model", "openfga")
    (change,) = plan.changes
    assert change.kind == "update"
    assert change.diff.startswith("--- a/model.fga\n+++ b/model.fga\n")
    assert "+type project" in change.diff and " type organization" in change.diff
    assert any("model.fga.yaml is not written to the store" in n for n in plan.notes)
    result = apply_plan(plan, backups)
    assert _statuses(session, live_ids) == dict.fromkeys(live_ids, "pass")

    assert result.backup is not None
    saved = backups.load(result.backup.id)
    assert [c.kind for c in restore_preview(saved, plan.target)] == ["update"]
    assert rollback(saved, plan.target, backups) == []
    latest = service.latest_model()
    assert latest is not None and canonical_model(latest[1]) == canonical_model(old)
    assert _statuses(session, {"fga.store-model"}) == {"fga.store-model": "fail"}

    # The very first apply found an empty store: OpenFGA cannot delete models.
    (problem,) = rollback(backups.load(first.backup.id), plan.target, backups)
    assert "OpenFGA cannot delete models" in problem
    assert backups.load(first.backup.id).status == "complete"  # not marked rolled back


def _write_old_model(target: OpenFgaTarget, service: OpenFgaService) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(target._transform(OLD_MODEL, "fga", "json"))
    target._write(model)
    latest = service.latest_model()
    assert latest is not None
    return latest[1]


def test_stale_model_is_detected(openfga_env: Any, store: str, tmp_path: Path) -> None:
    from soma_audit.remediation.plan import StaleError

    session = _session(tmp_path / "repo", openfga_env.url, store)
    plan = prepare(session, "fga-model", "openfga")
    _write_old_model(plan.target, OpenFgaService(session.config.openfga))
    with pytest.raises(StaleError, match="latest model changed"):
        apply_plan(plan, BackupStore(tmp_path / "state"))


def test_unchanged_when_the_store_has_the_model(openfga_env: Any, store: str,
                                                tmp_path: Path) -> None:
    session = _session(tmp_path / "repo", openfga_env.url, store)
    apply_plan(prepare(session, "fga-model", "openfga"), BackupStore(tmp_path / "state"))
    plan = prepare(session, "fga-model", "openfga")
    assert [c.kind for c in plan.changes] == ["unchanged"]
    assert "nothing to do" in plan.summary()
