"""Probes for operations and readiness (see checks/ops.yaml)."""

from __future__ import annotations

from soma_audit.model import Outcome, Status
from soma_audit.probes import Params, ProbeContext, ev, failed, passed, probe


@probe("ops.manifests-parse")
def manifests_parse(ctx: ProbeContext, params: Params) -> Outcome:
    """Every file the source offered was read; a file it could not parse hides objects."""
    problems = ctx.inventory.problems
    broken = [ev(p.where, p.message) for p in problems if not p.skipped]
    if broken:
        return failed(*broken)
    unrendered = [ev(p.where, p.message) for p in problems if p.skipped]
    if unrendered:
        return Outcome(Status.SKIP, tuple(unrendered))
    return passed(ev(ctx.source.ref, f"{len(ctx.inventory)} objects read, no problems"))
