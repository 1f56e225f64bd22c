"""Argo CD Applications and Argo Events wiring as data — the logic behind ``argocd.*``.

Field names follow Argo CD 3.x (``syncPolicy.automated.enabled`` exists since 3.1 and
``false`` switches auto-sync off even when prune/selfHeal are set) and Argo Events 1.x
(EventSource event blocks keyed by event name; Sensor ``dependencies`` and ``triggers``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from soma_audit.core.durations import DurationError, parse_go_duration
from soma_audit.kube.inventory import Resource

API_VERSION = "argoproj.io/v1alpha1"
#: EventSource blocks that receive git pushes (``spec.<type>.<event name>``).
GIT_EVENT_TYPES = ("webhook", "github", "gitlab", "bitbucket", "bitbucketserver", "gitea")
#: Argo CD's own git webhook endpoint, and its API for refreshing/syncing applications.
_ARGOCD_API = re.compile(r"/api/(webhook|v1/applications)\b")
_K8S_SOURCES_ELSEWHERE = ("git", "url", "configmap", "file", "s3")
_INT_SECONDS = re.compile(r"[0-9]+")


def _mapping(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def is_argo(resource: Resource) -> bool:
    return resource.api_version == API_VERSION


def sources(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """``spec.source`` and every ``spec.sources[]`` entry (multi-source Applications)."""
    found = [_mapping(spec.get("source"))]
    many = spec.get("sources")
    if isinstance(many, list):
        found += [_mapping(s) for s in many]
    return [s for s in found if s is not None]


def destination_namespace(spec: dict[str, Any]) -> str | None:
    namespace = (_mapping(spec.get("destination")) or {}).get("namespace")
    return str(namespace) if namespace else None


def names_service(app: Resource, service: str) -> bool:
    """The Application's name or one of its source paths/charts names ``service``.

    Names count exactly or with a dash-separated affix (``gateway-api-app``); paths count
    when one of their segments is the service (``k8s/services/gateway-api``).
    """
    name = app.name
    if name == service or name.startswith(f"{service}-") or name.endswith(f"-{service}"):
        return True
    for source in sources(app.spec):
        for key in ("path", "chart"):
            value = source.get(key)
            if isinstance(value, str) and service in value.strip("/").split("/"):
                return True
    return False


def _found(path: str, value: Any) -> str:
    """``path unset`` or ``path=value`` (YAML-style booleans), for evidence."""
    if value is None:
        return f"{path} unset"
    return f"{path}={str(value).lower() if isinstance(value, bool) else repr(value)}"


def _duration_problem(value: Any, where: str) -> str | None:
    """Argo CD reads backoff durations as whole seconds ("5") or a Go duration ("5s")."""
    if value is None:
        return f"{where} unset, expected a duration such as 5s"
    if not isinstance(value, str):
        return f"{where}={value!r} must be a string such as \"5s\""
    if _INT_SECONDS.fullmatch(value):
        return None
    try:
        parse_go_duration(value)
    except DurationError as exc:
        return f"{where}: {exc}"
    return None


def _retry_problems(retry: Any) -> list[str]:
    where = "spec.syncPolicy.retry"
    if _mapping(retry) is None:
        return [f"{where} unset: failed syncs are not retried; expected a limit > 0 and backoff"]
    found = []
    limit = retry.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool):
        found.append(f"{_found(f'{where}.limit', limit)} (no retries), expected an integer > 0")
    elif limit < 0:
        found.append(f"{where}.limit={limit} retries forever, expected a bounded limit > 0")
    elif limit == 0:
        found.append(f"{where}.limit=0 (no retries), expected > 0")
    backoff = _mapping(retry.get("backoff"))
    if backoff is None:
        found.append(f"{where}.backoff unset, expected duration, factor and maxDuration")
        return found
    for key in ("duration", "maxDuration"):
        problem = _duration_problem(backoff.get(key), f"{where}.backoff.{key}")
        if problem:
            found.append(problem)
    factor = backoff.get("factor")
    if factor is not None and (not isinstance(factor, int) or isinstance(factor, bool)
                               or factor < 1):
        found.append(f"{where}.backoff.factor={factor!r}, expected an integer >= 1")
    return found


def sync_policy_problems(spec: dict[str, Any]) -> list[str]:
    """What keeps an Application from syncing itself, healing, pruning and retrying."""
    policy = _mapping(spec.get("syncPolicy"))
    if policy is None:
        return [
            "spec.syncPolicy unset: manual sync only; expected automated sync (prune, "
            "selfHeal), syncOptions CreateNamespace=true and retry"
        ]
    found = []
    automated = _mapping(policy.get("automated"))
    if automated is None:
        found.append("spec.syncPolicy.automated unset: auto-sync is off")
    else:
        if automated.get("enabled") is False:
            found.append(
                "spec.syncPolicy.automated.enabled=false switches auto-sync off "
                "(Argo CD 3.1+), expected true or unset"
            )
        found += [
            f"{_found(f'spec.syncPolicy.automated.{key}', automated.get(key))}, expected true"
            for key in ("prune", "selfHeal")
            if automated.get(key) is not True
        ]
    options = policy.get("syncOptions")
    options = [str(o).strip() for o in options] if isinstance(options, list) else []
    if "CreateNamespace=true" not in options:
        found.append(
            "spec.syncPolicy.syncOptions lacks CreateNamespace=true "
            f"(found: {', '.join(options) or 'none'})"
        )
    return found + _retry_problems(policy.get("retry"))


def describe_sync_policy(spec: dict[str, Any]) -> str:
    """A one-line account of a (correct) sync policy, for passing evidence."""
    policy = _mapping(spec.get("syncPolicy")) or {}
    retry = _mapping(policy.get("retry")) or {}
    backoff = _mapping(retry.get("backoff")) or {}
    factor = backoff.get("factor", 2)
    return (
        "automated (prune, selfHeal), CreateNamespace=true, "
        f"retry limit {retry.get('limit')} with backoff {backoff.get('duration')} "
        f"x{factor} up to {backoff.get('maxDuration')}"
    )


def git_events(event_source: Resource) -> list[tuple[str, str]]:
    """(type, event name) of each git-push event an EventSource declares."""
    found = []
    for kind in GIT_EVENT_TYPES:
        block = _mapping(event_source.spec.get(kind))
        if block:
            found += [(kind, str(name)) for name in block]
    return found


@dataclass(frozen=True)
class TriggerVerdict:
    """Whether a Sensor trigger reaches Argo CD: True, False, or None (cannot tell offline)."""

    name: str
    description: str
    reaches_argocd: bool | None


def trigger_verdict(trigger: Any, index: int) -> TriggerVerdict:
    """Judge one ``spec.triggers[]`` entry of a Sensor."""
    template = (_mapping(trigger.get("template")) if isinstance(trigger, dict) else None) or {}
    name = str(template.get("name") or f"triggers[{index}]")
    k8s = _mapping(template.get("k8s"))
    if k8s is not None:
        operation = str(k8s.get("operation") or "create")
        source = _mapping(k8s.get("source")) or {}
        resource = _mapping(source.get("resource"))
        if resource is not None:
            kind = resource.get("kind")
            api = str(resource.get("apiVersion", ""))
            reaches = (api.startswith("argoproj.io/") and kind in ("Application", "ApplicationSet")
                       and operation in ("create", "update", "patch"))
            return TriggerVerdict(name, f"k8s {operation} of {api} {kind}", reaches)
        elsewhere = [k for k in _K8S_SOURCES_ELSEWHERE if k in source]
        if elsewhere:
            return TriggerVerdict(
                name, f"k8s {operation} of a resource loaded from source.{elsewhere[0]}", None
            )
        return TriggerVerdict(name, f"k8s {operation} without source.resource", False)
    http = _mapping(template.get("http"))
    if http is not None:
        url = str(http.get("url", ""))
        return TriggerVerdict(name, f"http {url}", bool(_ARGOCD_API.search(url)))
    kinds = sorted(k for k in template if k not in ("name", "conditions", "conditionsReset"))
    return TriggerVerdict(name, f"{'/'.join(kinds) or 'empty'} trigger", False)
