"""Argo CD status probes (checks/argocd.yaml, ``requires: [status]``): what Argo CD reports
in each Application's status — sync and health, and the outcome of the last sync operation.

A live cluster has these, and so does a snapshot dump taken with its status (evidence
then says "as of the snapshot"); a GitOps directory holds no status. Applications are read
from Argo CD's namespace (config ``argocd.namespace``); the status fields are Argo CD 3.x's
(``status.sync.status``, ``status.health.status``, ``status.operationState.phase``).
"""

from __future__ import annotations

from typing import Any

from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain import argocd as argo
from soma_audit.kube.inventory import Resource
from soma_audit.probes import (
    Params,
    ProbeContext,
    as_of,
    ev,
    failed,
    probe,
    verdict,
    with_status,
)

_KINDS = ["Application"]


def _field(body: Any, *path: str) -> Any:
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def _applications(ctx: ProbeContext) -> list[Resource]:
    namespace = ctx.config.argocd.namespace
    return sorted((r for r in ctx.inventory.of_kind("Application", namespace=namespace)
                   if argo.is_argo(r)), key=lambda r: r.name)


def _none_found(ctx: ProbeContext) -> Outcome:
    namespace = ctx.config.argocd.namespace
    return failed(ev(f"Namespace/{namespace}",
                     f"no Argo CD Application in namespace {namespace}: nothing is synced"))


@probe("argocd.apps-healthy", kinds=_KINDS)
def apps_healthy(ctx: ProbeContext, params: Params) -> Outcome:
    """Every Application is Synced and Healthy, as Argo CD last reported it."""
    apps = _applications(ctx)
    if not apps:
        return _none_found(ctx)
    apps, unknown = with_status(ctx, apps, "Applications")
    if unknown:
        return unknown
    when = as_of(ctx)
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for app in apps:
        sync = _field(app.body, "status", "sync", "status")
        health = _field(app.body, "status", "health", "status")
        found = f"status.sync.status={sync or 'unset'}, status.health.status={health or 'unset'}"
        if sync == "Synced" and health == "Healthy":
            ok.append(ev(app.ref, found + when))
            continue
        message = _field(app.body, "status", "health", "message")
        detail = f" ({message})" if isinstance(message, str) and message else ""
        problems.append(ev(app.ref, f"{found}, expected Synced and Healthy{detail}{when}"))
    return verdict(problems, ok)


@probe("argocd.last-sync", kinds=_KINDS)
def last_sync(ctx: ProbeContext, params: Params) -> Outcome:
    """Each Application's last sync operation finished with phase Succeeded."""
    apps = _applications(ctx)
    if not apps:
        return _none_found(ctx)
    apps, unknown = with_status(ctx, apps, "Applications")
    if unknown:
        return unknown
    as_of_dump = as_of(ctx)
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for app in apps:
        state = _field(app.body, "status", "operationState")
        if not isinstance(state, dict):
            problems.append(ev(app.ref, "status.operationState unset: no sync operation has "
                                        "run, expected a last operation that Succeeded"
                                        + as_of_dump))
            continue
        phase = state.get("phase")
        when = state.get("finishedAt") or state.get("startedAt") or "unknown time"
        revision = _field(state, "syncResult", "revision")
        at = f" at revision {revision}" if isinstance(revision, str) and revision else ""
        if phase == "Succeeded":
            ok.append(ev(app.ref, f"last operation Succeeded (finished {when}){at}{as_of_dump}"))
            continue
        message = state.get("message")
        detail = f": {message}" if isinstance(message, str) and message else ""
        problems.append(ev(app.ref, f"status.operationState.phase={phase or 'unset'} "
                                    f"(started {state.get('startedAt') or 'unknown'}), "
                                    f"expected Succeeded{detail}{as_of_dump}"))
    return verdict(problems, ok)
