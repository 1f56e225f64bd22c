"""The vocabulary shared by every layer: statuses, severities, checks, evidence, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of one check. Only ``PASS`` means the item is really done."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    MANUAL = "manual"
    WAIVED = "waived"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class ExitCode(IntEnum):
    """Exit codes of ``--ci`` (docs/contracts.md, a contract)."""

    READY = 0
    NOT_READY = 1
    CANNOT_RUN = 2


AREAS: dict[str, str] = {
    "fga": "OpenFGA",
    "argocd": "Argo CD",
    "kafka": "Kafka",
    "pss": "Pod Security",
    "netpol": "NetworkPolicy",
    "chaos": "Chaos Mesh",
    "slo": "SLO / SLI",
    "k6": "k6 load tests",
    "e2e": "E2E validation",
    "ops": "Operations",
}

PHASES: dict[int, str] = {1: "Governance", 2: "Chaos & Monitoring", 3: "Validation"}

#: What a check may need beyond declarations; without it the check is skipped with a
#: reason. ``status`` is the objects' reported status: a live cluster has it, and so does a
#: ``--snapshot`` dump (``kubectl get -o yaml`` keeps ``.status``); a GitOps tree does not.
LIVE_SERVICES = ("cluster", "status", "openfga", "kafka", "prometheus")


@dataclass(frozen=True)
class Evidence:
    """One observation behind a verdict: which object or file, and what was found."""

    object: str
    message: str
    #: Where the object is defined (``file:line``), filled in by the engine when known;
    #: used by SARIF and markdown, not part of the JSON contract.
    location: str = ""
    #: For an object rendered from a chart or overlay: the rendering and its inputs
    #: (:meth:`~soma_audit.kube.inventory.Rendering.describe`), filled in by the engine.
    rendered: str = ""

    def to_dict(self) -> dict[str, str]:
        """The JSON contract's ``{object, message}``; evidence about a rendered object adds
        ``origin`` (the template or kustomization file) and ``rendered`` (how)."""
        if self.rendered:
            return {"object": self.object, "message": self.message, "origin": self.location,
                    "rendered": self.rendered}
        return {"object": self.object, "message": self.message}


@dataclass(frozen=True)
class Check:
    """A catalog entry (``checks/*.yaml``): what to verify and how."""

    id: str
    phase: int
    area: str
    title: str
    criterion: str
    severity: Severity
    probe: str
    params: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    manual: bool = False
    remediation: str | None = None
    source_file: str = ""

    @property
    def live(self) -> bool:
        """Needs a live cluster or service (status alone can come from a snapshot dump)."""
        return any(r != "status" for r in self.requires)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase,
            "area": self.area,
            "title": self.title,
            "criterion": self.criterion,
            "severity": self.severity.value,
            "live": self.live,
            "requires": list(self.requires),
            "manual": self.manual,
            "remediation": self.remediation,
        }


@dataclass(frozen=True)
class Outcome:
    """What a probe returns: a status and the evidence for it."""

    status: Status
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Result:
    """A check together with its outcome, as reported."""

    check: Check
    status: Status
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        check = self.check
        return {
            "id": check.id,
            "phase": check.phase,
            "area": check.area,
            "title": check.title,
            "criterion": check.criterion,
            "severity": check.severity.value,
            "status": self.status.value,
            "evidence": [e.to_dict() for e in self.evidence],
            "remediation": check.remediation,
        }
