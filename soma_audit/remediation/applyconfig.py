"""Server-side apply configurations holding only what a recipe owns, and the API server's
answers in one line.

Server-side apply makes the sender the owner of every field it sends and removes the
fields it sent before and no longer sends. Sending a whole rendered object would take
every field over (a conflict with each controller that set one) and, on the next change,
remove what it stopped sending. So an apply configuration is the object's identity plus
the recipe's own fields: those it changes, and those the ``soma-audit`` manager already
owns (a fix keeps asserting what it set). Lists keep their merge keys (containers and
volumes by name, volume mounts by mount path) so the server merges item by item.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from soma_audit.kube.workloads import TEMPLATE_PATHS

#: What each recipe transform owns; a recipe without an entry owns the objects it renders.
POD_SECURITY_FIELDS = ("runAsNonRoot", "runAsUser", "seccompProfile")
CONTAINER_SECURITY_FIELDS = ("privileged", "allowPrivilegeEscalation",
                             "readOnlyRootFilesystem", "runAsNonRoot", "runAsUser",
                             "seccompProfile")
RESOURCE_KEYS = ("cpu", "memory")
PSS_LABEL_PREFIX = "pod-security.kubernetes.io/"
#: The mount path the hardening adds an emptyDir for (a read-only root needs one).
WRITABLE_TMP = "/tmp"

Paths = set[tuple[str, ...]]


def _key(**fields: str) -> str:
    """A list item's token in managedFields: ``k:{"name":"web"}``."""
    return "k:" + json.dumps(fields, separators=(",", ":"), sort_keys=True)


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pick(new: dict[str, Any], old: dict[str, Any], keys: tuple[str, ...],
          tokens: tuple[str, ...], ours: Paths) -> dict[str, Any]:
    """The ``keys`` of ``new`` that differ from ``old`` or that we already own."""
    out = {}
    for key in keys:
        if key in new and (new[key] != old.get(key) or (*tokens, f"f:{key}") in ours):
            out[key] = copy.deepcopy(new[key])
    return out


def _capabilities(new: dict[str, Any], old: dict[str, Any], tokens: tuple[str, ...],
                  ours: Paths) -> dict[str, Any]:
    out = _pick(new, old, ("drop", "add"), tokens, ours)
    if "add" in old and "add" not in new and old["add"]:
        out["add"] = []  # another manager's adds cannot be omitted away: set them empty
    return out


def _container(new: dict[str, Any], old: dict[str, Any], tokens: tuple[str, ...],
               ours: Paths) -> tuple[dict[str, Any], set[str]]:
    """The owned part of one container, and the volumes its owned mounts use."""
    out: dict[str, Any] = {}
    security_tokens = (*tokens, "f:securityContext")
    new_security, old_security = _map(new.get("securityContext")), _map(
        old.get("securityContext"))
    security = _pick(new_security, old_security, CONTAINER_SECURITY_FIELDS, security_tokens,
                     ours)
    capabilities = _capabilities(_map(new_security.get("capabilities")),
                                 _map(old_security.get("capabilities")),
                                 (*security_tokens, "f:capabilities"), ours)
    if capabilities:
        security["capabilities"] = capabilities
    if security:
        out["securityContext"] = security
    resources: dict[str, Any] = {}
    for part in ("requests", "limits"):
        picked = _pick(_map(_map(new.get("resources")).get(part)),
                       _map(_map(old.get("resources")).get(part)), RESOURCE_KEYS,
                       (*tokens, "f:resources", f"f:{part}"), ours)
        if picked:
            resources[part] = picked
    if resources:
        out["resources"] = resources
    old_mounts = [m for m in old.get("volumeMounts") or [] if isinstance(m, dict)]
    mounts = [copy.deepcopy(m) for m in new.get("volumeMounts") or []
              if isinstance(m, dict) and m.get("mountPath") == WRITABLE_TMP
              and (m not in old_mounts or (*tokens, "f:volumeMounts",
                                            _key(mountPath=WRITABLE_TMP)) in ours)]
    if mounts:
        out["volumeMounts"] = mounts
    return out, {str(m.get("name")) for m in mounts}


def pod_apply_configuration(new: dict[str, Any], old: dict[str, Any],
                            tokens: tuple[str, ...], ours: Paths) -> dict[str, Any]:
    """The hardening's part of a pod spec (``tokens``: its path in managedFields)."""
    out: dict[str, Any] = {}
    security = _pick(_map(new.get("securityContext")), _map(old.get("securityContext")),
                     POD_SECURITY_FIELDS, (*tokens, "f:securityContext"), ours)
    if security:
        out["securityContext"] = security
    volumes: set[str] = set()
    for field in ("initContainers", "containers"):
        before = {c.get("name"): c for c in old.get(field) or [] if isinstance(c, dict)}
        items = []
        for container in new.get(field) or []:
            if not isinstance(container, dict):
                continue
            name = str(container.get("name"))
            owned, used = _container(container, _map(before.get(name)),
                                     (*tokens, f"f:{field}", _key(name=name)), ours)
            if owned:
                items.append({"name": name, **owned})
                volumes |= used
        if items:
            out[field] = items
    old_volumes = [v for v in old.get("volumes") or [] if isinstance(v, dict)]
    added = [copy.deepcopy(v) for v in new.get("volumes") or []
             if isinstance(v, dict) and str(v.get("name")) in volumes
             and (v not in old_volumes or (*tokens, "f:volumes",
                                           _key(name=str(v.get("name")))) in ours)]
    if added:
        out["volumes"] = added
    return out


def _identity(obj: dict[str, Any]) -> dict[str, Any]:
    meta = _map(obj.get("metadata"))
    identity = {k: meta[k] for k in ("name", "namespace") if meta.get(k)}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
            "metadata": identity}


def _nest(path: tuple[str, ...], value: dict[str, Any]) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return value


def apply_configuration(transform: str | None, rendered: dict[str, Any],
                        live: dict[str, Any] | None, ours: Paths) -> dict[str, Any] | None:
    """What to send for ``rendered`` given the ``live`` object and the paths ``ours``
    already owns: the whole object when the recipe owns it (it creates it, or the recipe
    has no field list), else identity + owned fields; None when nothing is owned."""
    if live is None or transform not in ("pss_harden", "pss_namespaces"):
        return rendered
    body = _identity(rendered)
    if transform == "pss_namespaces":
        new = _map(_map(rendered.get("metadata")).get("labels"))
        old = _map(_map(live.get("metadata")).get("labels"))
        keys = tuple(k for k in new if k.startswith(PSS_LABEL_PREFIX))
        labels = _pick(new, old, keys, ("f:metadata", "f:labels"), ours)
        if not labels:
            return None
        body["metadata"]["labels"] = labels
        return body
    path = TEMPLATE_PATHS.get(str(rendered.get("kind")))
    if path is None:
        return rendered
    new_pod, old_pod = rendered, live
    for key in (*path, "spec"):
        new_pod, old_pod = _map(new_pod.get(key)), _map(old_pod.get(key))
    tokens = tuple(f"f:{key}" for key in (*path, "spec"))
    pod = pod_apply_configuration(new_pod, old_pod, tokens, ours)
    if not pod:
        return None
    body.update(_nest((*path, "spec"), pod))
    return body


# ------------------------------------------------------------- the API server's answers

#: A Go value printed by the API server (``core.PodSpec{Volumes:[]core.Volume{…}}``).
_GO_VALUE = re.compile(r"(?:\[\])?\*?(?:[a-z][\w]*\.)+[A-Z]\w*\{")
_CONFLICT_MANAGER = re.compile(r'conflict with "([^"]+)"')
MESSAGE_LIMIT = 240


def _without_go_values(text: str) -> str:
    """``text`` with every printed Go struct replaced by ``…`` (braces balanced)."""
    out = []
    position = 0
    while True:
        match = _GO_VALUE.search(text, position)
        if match is None:
            out.append(text[position:])
            return "".join(out)
        out.append(text[position:match.start()] + "…")
        depth, index = 0, match.end() - 1
        while index < len(text):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
            if depth == 0:
                break
        position = index


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(_without_go_values(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        found = json.loads(data)
    except (ValueError, TypeError):
        return {"message": data.decode(errors="replace") if isinstance(data, bytes)
                else str(data)}
    return found if isinstance(found, dict) else {}


def rejection(data: Any) -> str:
    """The API server's refusal in one line: ``field: message`` of its first cause (and
    how many more), else its message, without Go struct dumps."""
    status = _status(data)
    causes = [c for c in _map(status.get("details")).get("causes") or []
              if isinstance(c, dict)]
    if causes:
        first = causes[0]
        text = f"{first.get('field')}: {first.get('message')}" if first.get("field") else \
            str(first.get("message"))
        more = f" (and {len(causes) - 1} more)" if len(causes) > 1 else ""
        return one_line(text) + more
    return one_line(str(status.get("message") or status.get("reason") or "no message"))


def conflicts(data: Any) -> list[tuple[str, str]]:
    """(manager, field) of each field-manager conflict in a 409 answer."""
    status = _status(data)
    found = []
    for cause in _map(status.get("details")).get("causes") or []:
        if not isinstance(cause, dict):
            continue
        match = _CONFLICT_MANAGER.search(str(cause.get("message", "")))
        found.append((match.group(1) if match else "?", str(cause.get("field", "?"))))
    return found


_EXISTING_PODS = re.compile(r'existing pods in namespace "[^"]*" violate the new PodSecurity '
                            r'enforce level "([^"]+)"')
_OTHER_PODS = re.compile(r"\(and (\d+) other pods?\)")


def pod_security_violations(warnings: list[str]) -> tuple[str, int, list[str]] | None:
    """From a namespace dry-run's warnings: (level, how many existing pods would violate
    it, the per-pod lines), or None when PodSecurity found none."""
    level = None
    lines = []
    for warning in warnings:
        match = _EXISTING_PODS.search(warning)
        if match:
            level = match.group(1)
        else:
            lines.append(warning)
    if level is None:
        return None
    count = sum(1 + int(m.group(1)) if (m := _OTHER_PODS.search(line)) else 1
                for line in lines) or 1
    return level, count, lines
