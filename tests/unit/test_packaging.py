"""The data folders ship inside the wheel, and the generated catalog docs are current."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from soma_audit.catalog.checks import load_catalog
from soma_audit.reports.catalog import render_catalog
from tests.helpers import REPO


def test_wheel_carries_checks_remediations_manifests_config_and_demo(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
         str(REPO)],
        check=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("soma_audit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for wanted in ("soma_audit/data/checks/pss.yaml",
                   "soma_audit/data/checks/plan/checklist.yaml",
                   "soma_audit/data/config/default.yaml",
                   "soma_audit/data/manifests/rbac/clusterrole.yaml",
                   "soma_audit/data/manifests/rbac/Kustomization",
                   "soma_audit/data/manifests/deploy/kustomization.yaml",
                   "soma_audit/data/remediations/netpol-baseline.yaml",
                   "soma_audit/data/demo/soma-gitops/k8s/namespaces.yaml",
                   "soma_audit/cli/__init__.py"):
        assert wanted in names, wanted
    assert not any(n.startswith(("tests/", "testenv/")) for n in names)


def test_docs_checks_md_is_generated_from_the_catalog() -> None:
    generated = render_catalog(load_catalog())
    assert (REPO / "docs" / "checks.md").read_text() == generated, "run `make docs`"
