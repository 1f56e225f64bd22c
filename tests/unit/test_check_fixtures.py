"""Every check's pass/fail/error cases, discovered from tests/fixtures/checks/<id>/<case>/.

A case folder is a small GitOps tree audited in manifests mode, plus ``expect.yaml``::

    status: fail                       # the status the check must report
    config: {...}                      # optional overrides of the default config
    source: snapshot                   # optional: audit the case's snapshot.yaml as a dump
    evidence:                          # each entry must match one evidence item
      - {object: "Deployment/ns/name", contains: "privileged"}

Case folder names start with the expected status (``pass``, ``fail``, ``error``, ``skip``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from tests.helpers import CHECK_CASES, FIXTURES, run_check


def _case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("case", CHECK_CASES, ids=_case_id)
def test_check_case(case: Path) -> None:
    expect = yaml.safe_load((case / "expect.yaml").read_text())
    snapshot = expect.get("source") == "snapshot"
    result = run_check(case.parent.name, case, expect.get("config"), snapshot)
    got = [(e.object, e.message) for e in result.evidence]
    assert result.status.value == expect["status"], got
    assert case.name.startswith(expect["status"]), "case folder must start with its status"
    for wanted in expect.get("evidence", []):
        assert any(
            (wanted.get("object") is None or obj == wanted["object"])
            and wanted.get("contains", "") in msg
            for obj, msg in got
        ), f"no evidence matching {wanted} in {got}"
    if result.status.value in ("fail", "error"):
        assert result.evidence, "a failing check must say why"


def _automated_offline_checks() -> list[str]:
    """Checks that read only declarations, or status a snapshot dump carries."""
    return [c.id for c in load_catalog() if not c.manual and set(c.requires) <= {"status"}]


@pytest.mark.parametrize("check_id", _automated_offline_checks())
def test_every_offline_check_has_pass_and_fail_cases(check_id: str) -> None:
    cases = {p.name.split("-")[0] for p in (FIXTURES / "checks" / check_id).glob("*")}
    assert {"pass", "fail"} <= cases, f"{check_id} needs pass-* and fail-* fixture cases"
