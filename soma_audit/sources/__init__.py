"""Where objects come from: a live cluster, a GitOps directory or a cluster snapshot.

Every source produces one :class:`~soma_audit.kube.inventory.Inventory`; probes never know
which source they are reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from soma_audit.kube.inventory import Inventory

SourceKind = Literal["cluster", "manifests", "snapshot"]


@dataclass(frozen=True)
class SourceInfo:
    """What the report says about the source (``source`` in the JSON report)."""

    kind: SourceKind
    ref: str
    #: The repository tree holding non-Kubernetes files (FGA model, k6 scripts, ...).
    repo: Path | None = None
    #: A label for humans: "demo: soma-gitops", a kube context name, ...
    label: str = ""


class Source(Protocol):
    info: SourceInfo

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        """Read the objects of ``kinds`` (a live source fetches only those). ``status_of``:
        the kinds whose ``status`` a check reads; a live source leaves the others' status
        out (None keeps every status)."""
        ...
