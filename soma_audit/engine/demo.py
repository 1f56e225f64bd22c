"""The bundled demo: a partly-ready SomaAgentHub GitOps repository, copied to scratch.

Remediations write into the copy, so the whole loop can be tried without a cluster and
without touching the installed package.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from soma_audit.core.paths import data_path

DEMO_NAME = "soma-gitops"


def prepare_demo(target: Path | None = None) -> Path:
    """Copy the demo repository to ``target`` (a fresh temporary folder by default)."""
    base = Path(target) if target else Path(tempfile.mkdtemp(prefix="soma-audit-demo-"))
    destination = base / DEMO_NAME
    shutil.copytree(data_path("demo", DEMO_NAME), destination, dirs_exist_ok=False)
    return destination
