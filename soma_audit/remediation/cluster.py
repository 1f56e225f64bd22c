"""The cluster target: server-side apply with field manager ``soma-audit``.

The preview is the live object against the server's own dry-run of the apply (so
defaulting, admission and merge semantics are the server's, not ours), both without the
fields the server sets. A field-manager conflict (409) is shown and stops the apply;
ownership is taken over only when the user says ``--force-conflicts``. Objects are
created in dependency order: Namespaces, then CRDs, then built-in kinds, then custom
resources. Secrets are never read, so a recipe holding one is refused.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from soma_audit.remediation.plan import (
    Change,
    RemediationError,
    StaleError,
    strip_server_fields,
    to_yaml,
    unified,
)
from soma_audit.remediation.targets import BackupItem
from soma_audit.sources.cluster import ListError

if TYPE_CHECKING:
    from soma_audit.remediation.render import RenderedFile
    from soma_audit.sources.cluster import ClusterSource

FIELD_MANAGER = "soma-audit"
APPLY_PATCH = "application/apply-patch+yaml"


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _builtin(group: str) -> bool:
    """Groups the API server serves itself (no CRD needed)."""
    return group == "" or "." not in group or group.endswith(".k8s.io")


def order_key(obj: dict[str, Any]) -> int:
    """Creation order: Namespaces, CRDs, built-in kinds, custom resources."""
    kind = obj.get("kind")
    if kind == "Namespace":
        return 0
    if kind == "CustomResourceDefinition":
        return 1
    return 2 if _builtin(_group(str(obj.get("apiVersion", "")))) else 3


def ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    if meta.get("namespace"):
        return f"{obj.get('kind')}/{meta['namespace']}/{meta.get('name')}"
    return f"{obj.get('kind')}/{meta.get('name')}"


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", "")) or data.decode(errors="replace")[:300]
    except (ValueError, AttributeError):
        return data.decode(errors="replace")[:300]


class ClusterTarget:
    kind = "cluster"

    def __init__(self, source: ClusterSource, force_conflicts: bool = False) -> None:
        self.source = source
        self.force = force_conflicts
        self.ref = f"{source.server} (context {source.info.label})"
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "server": self.source.server,
                "context": self.source.info.label}

    # -- HTTP ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, query: list[tuple[str, Any]] | None = None,
              body: Any = None, content_type: str = "application/json",
              ) -> tuple[int, Any, list[str]]:
        try:
            response = self.source.request(method, path, query, body, content_type)
        except ListError as exc:
            raise RemediationError(f"cannot reach the API server at {self.source.server}: "
                                   f"{exc}") from None
        status, data, warnings = response.status, response.data, response.warnings
        if 200 <= status < 300:
            try:
                return status, json.loads(data) if data else {}, warnings
            except ValueError:
                raise RemediationError(f"invalid JSON from the API server for {path}") from None
        return status, data, warnings

    def _resource(self, obj: dict[str, Any]) -> tuple[str, bool]:
        """(plural, namespaced) of the object's kind, from discovery."""
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        if api_version not in self._resources:
            base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            status, body, _ = self._call("GET", base)
            if status == 404:
                raise RemediationError(f"{kind} ({api_version}) is not served by the cluster "
                                       "(is the product installed?)")
            if status != 200:
                raise RemediationError(f"discovery of {api_version}: {_message(body)}")
            self._resources[api_version] = {
                r["kind"]: (r["name"], bool(r.get("namespaced")))
                for r in body.get("resources", []) if "/" not in r.get("name", "")
            }
        found = self._resources[api_version].get(kind)
        if found is None:
            raise RemediationError(f"{kind} is not served in {api_version} by the cluster")
        return found

    def path(self, obj: dict[str, Any]) -> str:
        api_version = str(obj.get("apiVersion", ""))
        plural, namespaced = self._resource(obj)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise RemediationError(f"a {obj.get('kind')} without metadata.name")
        if namespaced:
            namespace = meta.get("namespace")
            if not namespace:
                raise RemediationError(f"{obj.get('kind')}/{name} has no metadata.namespace")
            return f"{base}/namespaces/{namespace}/{plural}/{name}"
        return f"{base}/{plural}/{name}"

    def _live(self, path: str) -> dict[str, Any] | None:
        status, body, _ = self._call("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise RemediationError(f"GET {path}: HTTP {status} {_message(body)}")
        return body

    def _apply(self, path: str, body: dict[str, Any], dry_run: bool,
               ) -> tuple[int, Any, list[str]]:
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)]
        if dry_run:
            query.append(("dryRun", "All"))
        if self.force:
            query.append(("force", "true"))
        return self._call("PATCH", path, query, json.dumps(body), APPLY_PATCH)

    def served_versions(self) -> dict[str, str]:
        """kind → the apiVersion the cluster serves (the first of our preferred ones), for
        rendering (e.g. KafkaTopic → kafka.strimzi.io/v1beta2 on an old Strimzi)."""
        from soma_audit.sources.kinds import KINDS

        status, body, _ = self._call("GET", "/apis")
        if status != 200:
            return {}
        served = {g.get("name"): {v.get("version") for v in g.get("versions", [])}
                  for g in body.get("groups", [])}
        found = {}
        for info in KINDS.values():
            version = next((v for v in info.versions if v in served.get(info.group, ())), None)
            if info.group and version:
                found[info.kind] = f"{info.group}/{version}"
        return found

    # -- the Target protocol -----------------------------------------------------------
    def plan(self, files: Sequence[RenderedFile]) -> tuple[list[Change], list[str]]:
        notes = [f"{f.path} holds no Kubernetes object: not applied to the cluster "
                 "(write it to the repository with --repo DIR, or render -o DIR)"
                 for f in files if not f.objects]
        objects = [o for f in files for o in f.objects]
        for obj in objects:
            if obj.get("kind") == "Secret":
                raise RemediationError(f"{ref(obj)}: soma-audit never reads Secrets, so it "
                                       "cannot back one up; apply it another way")
        objects = sorted(objects, key=order_key)
        new_namespaces: set[str] = set()
        changes = []
        for obj in objects:
            body = strip_server_fields(copy.deepcopy(obj)) or {}
            path = self.path(body)
            live = self._live(path)
            where = ref(body)
            before = to_yaml(strip_server_fields(live)) if live is not None else None
            token = (live.get("metadata") or {}).get("resourceVersion") if live else None
            if body.get("kind") == "Namespace" and live is None:
                new_namespaces.add(str(body["metadata"]["name"]))
            namespace = (body.get("metadata") or {}).get("namespace")
            if live is None and namespace in new_namespaces:
                after = to_yaml(body)
                changes.append(Change("create", where, None, after, unified(None, after, where),
                                      note="its namespace is created by this apply, so the "
                                      "server cannot dry-run it; shown as rendered",
                                      payload=body, token=None))
                continue
            status, result, warnings = self._apply(path, body, dry_run=True)
            if status == 409:
                changes.append(Change("conflict", where, before, None, "",
                                      note=_message(result), payload=body, token=token))
                continue
            if status >= 300:
                changes.append(Change("rejected", where, before, None, "",
                                      note=f"HTTP {status} {_message(result)}", payload=body,
                                      token=token))
                continue
            after = to_yaml(strip_server_fields(result))
            note = "; ".join(warnings)
            if before == after:
                changes.append(Change("unchanged", where, before, after, "", note=note,
                                      payload=body, token=token))
                continue
            changes.append(Change("update" if live is not None else "create", where, before,
                                  after, unified(before, after, where), note=note,
                                  payload=body, token=token))
        return changes, notes

    def capture(self, change: Change) -> BackupItem:
        body = change.payload
        path = self.path(body)
        live = self._live(path)
        version = (live.get("metadata") or {}).get("resourceVersion") if live else None
        if version != change.token:
            raise StaleError(f"{change.where} changed since the diff was made "
                             f"(resourceVersion {change.token} → {version})")
        state = {"path": path, "apiVersion": body.get("apiVersion"), "kind": body.get("kind")}
        if live is None:
            return BackupItem(change.where, False, state)
        return BackupItem(change.where, True, {**state, "object": live})

    def write(self, change: Change) -> None:
        body = copy.deepcopy(change.payload)
        if change.token:
            # The optimistic lock: the server refuses the apply if the object moved.
            body.setdefault("metadata", {})["resourceVersion"] = change.token
        path = self.path(body)
        status, result, _ = self._apply(path, body, dry_run=False)
        if status == 409:
            message = _message(result)
            if "modified" in message:
                raise StaleError(f"{change.where} changed since the diff was made: {message}")
            raise RemediationError(f"field-manager conflict on {change.where}: {message}")
        if status >= 300:
            raise RemediationError(f"the API server rejected {change.where}: HTTP {status} "
                                   f"{_message(result)}")

    def restore(self, item: BackupItem) -> None:
        path = str(item.state["path"])
        live = self._live(path)
        if not item.existed:
            if live is not None:
                status, result, _ = self._call("DELETE", path)
                if status >= 300 and status != 404:
                    raise RemediationError(f"cannot delete {item.where}: HTTP {status} "
                                           f"{_message(result)}")
            return
        saved = copy.deepcopy(item.state["object"])
        saved.pop("status", None)
        meta = saved.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "generation", "selfLink"):
            meta.pop(key, None)
        if live is None:
            meta.pop("resourceVersion", None)
            meta.pop("managedFields", None)
            collection = path.rsplit("/", 1)[0]
            status, result, _ = self._call("POST", collection, [("fieldManager",
                                                                  FIELD_MANAGER)], saved)
        else:
            meta["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
            status, result, _ = self._call("PUT", path, [("fieldManager", FIELD_MANAGER)], saved)
            if status < 300 and meta.get("managedFields") and (
                    (result.get("metadata") or {}).get("managedFields") != meta["managedFields"]):
                # The PUT attributed the reverted fields to us; give ownership back exactly.
                meta["resourceVersion"] = result["metadata"]["resourceVersion"]
                status, result, _ = self._call("PUT", path, [("fieldManager", FIELD_MANAGER)],
                                               saved)
        if status >= 300:
            raise RemediationError(f"cannot restore {item.where}: HTTP {status} "
                                   f"{_message(result)}")

    def preview_restore(self, item: BackupItem) -> Change:
        live = self._live(str(item.state["path"]))
        before = to_yaml(strip_server_fields(live)) if live is not None else None
        saved = item.state.get("object") if item.existed else None
        after = to_yaml(strip_server_fields(saved)) if saved is not None else None
        if before == after:
            return Change("unchanged", item.where, before, after, "")
        note = "" if item.existed else "delete: the apply created it"
        return Change("update" if live is not None else "create", item.where, before, after,
                      unified(before, after, item.where), note=note)
