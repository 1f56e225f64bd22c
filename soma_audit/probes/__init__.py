"""Probes: small functions that read the inventory (and live services) and return an
:class:`~soma_audit.core.model.Outcome` with evidence.

A probe is registered with :func:`probe` under the id of the check it serves (a catalog
entry may point another id at it with ``probe:``) and declares the kinds it reads, so a
live source fetches exactly those, once.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from soma_audit.config import Config
from soma_audit.core.model import Evidence, Outcome, Status
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.services import ServiceError
from soma_audit.services.tools import ToolRunner
from soma_audit.sources import SourceInfo

Params = dict[str, Any]
ClientT = TypeVar("ClientT")
LiveFn = TypeVar("LiveFn", bound=Callable[..., Any])


class ProbeError(Exception):
    """The check cannot be evaluated (missing file, unreachable service): status ``error``."""


class NoRepository(Exception):
    """The check reads repository files and the audit has none: status ``skip`` — nothing
    was attempted, like a live check without its endpoint."""


NO_REPOSITORY = "no repository to read files from; give --repo DIR (or `repo:` in the config)"


@dataclass
class ProbeContext:
    """Everything a probe may read. Live service clients are absent in offline modes."""

    inventory: Inventory
    config: Config
    source: SourceInfo
    tools: ToolRunner
    services: dict[str, Any] = field(default_factory=dict)

    def repo_file(self, relative: str) -> Path | None:
        """A path inside the repository tree, or None when the audit has no repository."""
        if self.source.repo is None:
            return None
        return self.source.repo / relative

    def require_repo(self) -> Path:
        if self.source.repo is None:
            raise NoRepository(NO_REPOSITORY)
        return self.source.repo


ProbeFn = Callable[[ProbeContext, Params], Outcome]


@dataclass(frozen=True)
class Probe:
    name: str
    fn: ProbeFn
    kinds: frozenset[str]


PROBES: dict[str, Probe] = {}


def probe(name: str, kinds: Iterable[str] = ()) -> Callable[[ProbeFn], ProbeFn]:
    """Register ``fn`` as the probe ``name`` reading objects of ``kinds``."""

    def register(fn: ProbeFn) -> ProbeFn:
        if name in PROBES:
            raise ValueError(f"probe {name} registered twice")
        PROBES[name] = Probe(name, fn, frozenset(kinds))
        return fn

    return register


def load_probes() -> dict[str, Probe]:
    """Import every probe module (they register themselves) and return the registry.

    Modules are ``<area>.py`` for what the declarations decide and ``<area>_live.py`` for
    what needs a live cluster or service.
    """
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return PROBES


def ev(obj: str, message: str) -> Evidence:
    return Evidence(obj, message)


def passed(*evidence: Evidence) -> Outcome:
    return Outcome(Status.PASS, tuple(evidence))


def failed(*evidence: Evidence) -> Outcome:
    return Outcome(Status.FAIL, tuple(evidence))


def verdict(problems: list[Evidence], ok: list[Evidence]) -> Outcome:
    """Fail with ``problems`` when there are any, else pass with ``ok`` as evidence."""
    return failed(*problems) if problems else passed(*ok)


def skipped(reason: str, obj: str = "") -> Outcome:
    return Outcome(Status.SKIP, (Evidence(obj, reason),))


def errored(reason: str, obj: str = "") -> Outcome:
    return Outcome(Status.ERROR, (Evidence(obj, reason),))


#: Appended to the evidence of a check judged from the status in a ``--snapshot`` dump.
AS_OF_SNAPSHOT = " (as of the snapshot)"


def as_of(ctx: ProbeContext) -> str:
    """What the evidence of a status-reading check says about when the status was read."""
    return AS_OF_SNAPSHOT if ctx.source.kind == "snapshot" else ""


def with_status(ctx: ProbeContext, resources: list[Resource], what: str
                ) -> tuple[list[Resource], Outcome | None]:
    """The objects a status-reading check can judge, or the skip when there are none.

    Live, every object counts (an unset status is the object's own state). A snapshot
    dump may have been taken without status: only objects whose ``status`` is in the dump
    are judged, and when none is the check is skipped, never guessed."""
    if ctx.source.kind != "snapshot":
        return resources, None
    judged = [r for r in resources if isinstance(r.body.get("status"), dict) and r.body["status"]]
    if judged:
        return judged, None
    return [], skipped(f"the snapshot has no status for its {len(resources)} {what}: "
                       "dump them with `kubectl get -o yaml` (which keeps .status) to judge "
                       "them", ctx.source.ref)


def live_client(ctx: ProbeContext, name: str, kind: type[ClientT], missing: str) -> ClientT:
    """The audit's live client ``name`` (OpenFGA, Kafka, Prometheus …); without one the
    check cannot be evaluated, so ProbeError(``missing``) makes it ``error``."""
    client = ctx.services.get(name)
    if not isinstance(client, kind):
        raise ProbeError(missing)
    return client


__all__ = [
    "AS_OF_SNAPSHOT",
    "NO_REPOSITORY",
    "PROBES",
    "NoRepository",
    "Params",
    "Probe",
    "ProbeContext",
    "ProbeError",
    "Status",
    "as_of",
    "errored",
    "ev",
    "failed",
    "live_client",
    "load_probes",
    "passed",
    "probe",
    "skipped",
    "verdict",
    "with_status",
]


def live_probe(fn: LiveFn) -> LiveFn:
    """Decorate a live probe: a ServiceError escaping it becomes the check's ``error``
    (ProbeError) with its safe one-line reason, instead of an "internal error"."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ServiceError as exc:
            raise ProbeError(str(exc)) from None

    return wrapper  # type: ignore[return-value]
