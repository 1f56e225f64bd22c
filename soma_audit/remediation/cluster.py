"""The cluster target: server-side apply with field manager ``soma-audit``.

What is sent is an apply configuration: the object's identity and the fields the recipe
owns (:mod:`soma_audit.remediation.applyconfig`), so fields of other managers stay theirs.
The plan keeps to the team's namespaces (:class:`~soma_audit.remediation.ownership.Scope`),
fixes controllers' templates rather than the Pods they make, leaves objects Argo CD or
Helm deploy to their repository, and checks every change with a server-side dry-run, in
parallel (bounded, like the scan's LISTs). The preview is the live object against the
server's own dry-run of the apply (defaulting, admission and merge semantics are the
server's), both without the fields the server sets. A conflict with a controller's field
blocks the apply; fields people or scripts wrote with kubectl are taken over, named in
the preview. Objects are created in dependency order: Namespaces, then CRDs, then
built-in kinds, then custom resources. Secrets are never read, so a recipe holding one
is refused.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from soma_audit.config import Cluster as ClusterReading
from soma_audit.kube.workloads import WORKLOAD_KINDS
from soma_audit.remediation.applyconfig import (
    PSS_LABEL_PREFIX,
    apply_configuration,
    conflicts,
    pod_security_violations,
    rejection,
)
from soma_audit.remediation.ownership import (
    Application,
    Scope,
    application_of,
    controller_of,
    gitops_owner,
    is_human,
    owned_by,
    top_owner,
)
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
    from soma_audit.remediation.output import RenderedFile
    from soma_audit.sources.cluster import ClusterSource

FIELD_MANAGER = "soma-audit"
APPLY_PATCH = "application/apply-patch+yaml"
ARGO_API = "argoproj.io/v1alpha1"
#: The apiVersion of each kind that owns workloads (to read an owner the plan lacks).
OWNER_VERSIONS = {"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
                  "DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1",
                  "ReplicationController": "v1"}
#: Pod fields the API server fills in (scheduling, the token volume): not part of the
#: manifest a bare Pod is recreated with.
_POD_RUNTIME_FIELDS = ("nodeName",)
Progress = Callable[[int, int], None]
#: Owners named one by one in the notes; the rest are counted.
OWNER_NOTES = 20


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


def _manifest(pod: dict[str, Any]) -> dict[str, Any]:
    """The corrected Pod as a manifest to recreate it with."""
    body = strip_server_fields(copy.deepcopy(pod)) or {}
    meta = body.get("metadata") or {}
    body["metadata"] = {k: v for k, v in meta.items() if k in ("name", "namespace",
                                                                "labels", "annotations")}
    spec = body.get("spec") or {}
    for key in _POD_RUNTIME_FIELDS:
        spec.pop(key, None)
    return body


class ClusterTarget:
    kind = "cluster"

    def __init__(self, source: ClusterSource, force_conflicts: bool = False, *,
                 scope: Scope | None = None, transform: str | None = None,
                 patch_managed: bool = False, workers: int = ClusterReading.workers,
                 progress: Progress | None = None) -> None:
        self.source = source
        self.force = force_conflicts
        #: None: every object given (a caller that scoped them already).
        self.scope = scope
        #: The recipe's transform: which fields of existing objects it owns.
        self.transform = transform
        self.patch_managed = patch_managed
        self.workers = workers
        self.progress = progress
        self.ref = f"{source.server} (context {source.info.label})"
        #: "N objects in M namespaces" of the last plan.
        self.scope_line = ""
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}
        #: Changes whose conflicting fields belong to people or scripts (kubectl): taken
        #: over on apply.
        self._take_over: set[str] = set()

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
                raise RemediationError(f"discovery of {api_version}: {rejection(body)}")
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
            raise RemediationError(f"GET {path}: HTTP {status} {rejection(body)}")
        return body

    def _apply(self, path: str, body: dict[str, Any], dry_run: bool, force: bool,
               ) -> tuple[int, Any, list[str]]:
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)]
        if dry_run:
            query.append(("dryRun", "All"))
        if force:
            query.append(("force", "true"))
        return self._call("PATCH", path, query, json.dumps(body), APPLY_PATCH)

    def served_versions(self) -> dict[str, str]:
        """kind → the apiVersion the cluster serves (the first of our preferred ones), for
        rendering (e.g. KafkaTopic → kafka.strimzi.io/v1beta2 on an old Strimzi)."""
        from soma_audit.sources.kinds import KINDS

        try:
            served = self.source.served()
        except ListError as exc:
            if exc.status is None:
                raise RemediationError(f"cannot reach the API server at "
                                       f"{self.source.server}: {exc}") from None
            return {}
        found = {}
        for info in KINDS.values():
            version, _ = served.locate(info)
            if info.group and version:
                found[info.kind] = info.api_version(version)
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
        # strip_server_fields copies what it changes; nothing below changes the rest.
        objects = [strip_server_fields(o) or {} for o in objects]
        objects, left_out = self._scoped(objects)
        notes += left_out
        objects, owner_notes = self._owners(objects)
        notes += owner_notes
        objects = sorted(objects, key=lambda o: (order_key(o), ref(o)))
        namespaces = {self.scope.namespace_of(o) if self.scope else
                      (o.get("metadata") or {}).get("namespace") for o in objects}
        self.scope_line = (f"{len(objects)} objects in {len(namespaces - {None})} "
                           f"namespaces" + (f" (scope: {self.scope.describe()})"
                                            if self.scope else ""))
        for obj in objects:
            self.path(obj)  # discovery once, before the workers share the cache
        applications = self._applications() if not self.patch_managed else []
        first = [o for o in objects if order_key(o) < 2]
        changes = self._run(first, set(), applications, 0, len(objects))
        new_namespaces = {c.where.partition("/")[2] for c in changes
                          if c.where.startswith("Namespace/") and c.kind == "create"}
        changes += self._run(objects[len(first):], new_namespaces, applications, len(first),
                             len(objects))
        return changes, notes

    def _scoped(self, objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """The objects in scope, and a note on those left out (the team's scope)."""
        if self.scope is None:
            return objects, []
        kept = [o for o in objects if self.scope.allows(o)]
        out = [o for o in objects if not self.scope.allows(o)]
        if not out:
            return kept, []
        spaces = {self.scope.namespace_of(o) for o in out}
        system = sorted(n for n in spaces if n in self.scope.exempt)
        note = (f"left out {len(out)} objects in {len(spaces)} namespaces outside the scope "
                "(--namespace NS or --all-namespaces widens it)")
        if system:
            note += f"; never touched: {', '.join(system)} (system or exempt)"
        return kept, [note]

    def _owners(self, objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Objects made by a controller are fixed in their top owner's template, once per
        owner; a bare Pod (immutable spec) becomes a manifest to recreate it with."""
        planned = {ref(o): o for o in objects}
        cache: dict[str, dict[str, Any] | None] = {}

        def lookup(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            key = f"{kind}/{namespace}/{name}"
            if key in planned:
                return planned[key]
            if key not in cache:
                version = OWNER_VERSIONS.get(kind)
                try:
                    cache[key] = self._live(self.path({
                        "apiVersion": version, "kind": kind,
                        "metadata": {"name": name, "namespace": namespace}})) if version else None
                except RemediationError:
                    cache[key] = None  # an owner kind this cluster does not serve
            return cache[key]

        kept, made_by = [], {}
        for obj in objects:
            if obj.get("kind") in WORKLOAD_KINDS and controller_of(obj) is not None:
                owner, _ = top_owner(obj, lookup)
                made_by.setdefault(owner, []).append(obj)
            else:
                kept.append(obj)
        notes: list[str] = []
        for owner, made in sorted(made_by.items()):
            if len(notes) == OWNER_NOTES:
                notes.append(f"… and {len(made_by) - OWNER_NOTES} more owners")
                break
            counts = ", ".join(f"{n} {kind}" for kind, n in sorted(
                Counter(str(o.get("kind")) for o in made).items()))
            if owner in planned:
                notes.append(f"{owner}: fixed in its template, once, for {counts} it made")
            else:
                notes.append(f"{counts} made by {owner} not patched (a controller replaces "
                             "them): its template is not in this plan (already compliant, "
                             "gone, or left out); a rollout restart replaces them")
        return kept, notes

    def _applications(self) -> list[Application]:
        """Argo CD Applications of the cluster (none when Argo CD is not installed)."""
        try:
            status, body, _ = self._call("GET", f"/apis/{ARGO_API}/applications")
        except RemediationError:
            return []
        if status != 200:
            return []
        return [application_of(item) for item in body.get("items") or []
                if isinstance(item, dict)]

    def _run(self, objects: list[dict[str, Any]], new_namespaces: set[str],
             applications: list[Application], done: int, total: int) -> list[Change]:
        """Plan ``objects`` with a bounded pool of workers (like the scan's LISTs); the
        changes come back in the objects' order."""
        if not objects:
            return []
        lock = threading.Lock()
        counter = [done]

        def one(obj: dict[str, Any]) -> Change:
            change = self._plan_one(obj, new_namespaces, applications)
            if self.progress is not None:
                with lock:
                    counter[0] += 1
                    self.progress(counter[0], total)
            return change

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(one, objects))

    def _plan_one(self, body: dict[str, Any], new_namespaces: set[str],
                  applications: list[Application]) -> Change:
        where = ref(body)
        namespace = (body.get("metadata") or {}).get("namespace")
        if namespace in new_namespaces:
            after = to_yaml(body)
            return Change("create", where, None, after, unified(None, after, where),
                          note="its namespace is created by this apply, so the server "
                          "cannot dry-run it; shown as rendered", payload=body, token=None)
        managed = gitops_owner(body, applications) if not self.patch_managed else None
        if managed is not None:
            return Change("managed", where, None, None, "", note=managed.note(), payload=body)
        if body.get("kind") == "Pod":
            # A bare Pod from the inventory: it exists, and its spec cannot change.
            after = to_yaml(_manifest(body))
            return Change("recreate", where, None, after, unified(None, after, where),
                          note="a Pod's spec cannot be changed: recreate it with this "
                          "manifest (or run it from a Deployment)", payload=body)
        path = self.path(body)
        live = self._live(path)
        before = to_yaml(strip_server_fields(live)) if live is not None else None
        token = (live.get("metadata") or {}).get("resourceVersion") if live else None
        ours = owned_by(live, FIELD_MANAGER) if live else set()
        sent = apply_configuration(self.transform, body, live, ours)
        if sent is None:
            return Change("unchanged", where, before, before, "", payload=body, token=token)
        status, result, warnings = self._apply(path, sent, dry_run=True, force=self.force)
        notes = []
        if status == 409:
            found = conflicts(result)
            controllers = sorted({m for m, _ in found if not is_human(m)})
            fields = "; ".join(f"{m} owns {f}" for m, f in found[:3]) + (
                f" (and {len(found) - 3} more)" if len(found) > 3 else "")
            if controllers or not found:
                return Change("conflict", where, before, None, "", token=token, payload=sent,
                              note=f"{fields or rejection(result)} — "
                              f"{', '.join(controllers) or 'another manager'} would set it "
                              "back: fix it where that manager takes it from")
            humans = sorted({m for m, _ in found})
            notes.append(f"takes over from {', '.join(humans)}: "
                         + ", ".join(f for _, f in found))
            status, result, warnings = self._apply(path, sent, dry_run=True, force=True)
            self._take_over.add(where)
        if status >= 300:
            return Change("rejected", where, before, None, "", note=rejection(result),
                          payload=sent, token=token)
        if body.get("kind") == "Namespace" and live is not None:
            sent, result, warnings, note = self._admission(path, sent, live, result, warnings)
            notes.append(note)
        after = to_yaml(strip_server_fields(result))
        notes += warnings
        note = "; ".join(n for n in notes if n)
        if before == after:
            return Change("unchanged", where, before, after, "", note=note, payload=sent,
                          token=token)
        return Change("update" if live is not None else "create", where, before, after,
                      unified(before, after, where), note=note, payload=sent, token=token)

    def _admission(self, path: str, sent: dict[str, Any], live: dict[str, Any],
                   result: Any, warnings: list[str]
                   ) -> tuple[dict[str, Any], Any, list[str], str]:
        """A Namespace whose new enforce level existing pods would violate keeps its
        current enforce (audit/warn only) unless the user opted in for it."""
        found = pod_security_violations(warnings)
        if found is None:
            return sent, result, warnings, ""
        level, count, lines = found
        name = str((live.get("metadata") or {}).get("name"))
        detail = f"{count} existing pods would violate {level}: {'; '.join(lines[:3])}"
        if self.scope is not None and name in self.scope.enforce:
            return sent, result, [], detail + " (enforced anyway: --enforce-namespace)"
        reduced = copy.deepcopy(sent)
        labels = reduced["metadata"].get("labels") or {}
        for key in (f"{PSS_LABEL_PREFIX}enforce", f"{PSS_LABEL_PREFIX}enforce-version"):
            labels.pop(key, None)
        current = ((live.get("metadata") or {}).get("labels") or {}).get(
            f"{PSS_LABEL_PREFIX}enforce", "unset")
        detail += (f"; keeps enforce {current}, audit/warn only (opt in: --enforce-namespace "
                   f"{name})")
        status, answer, again = self._apply(path, reduced, dry_run=True,
                                            force=self.force or ref(sent) in self._take_over)
        if status >= 300:
            return sent, result, [], detail + f"; {rejection(answer)}"
        return reduced, answer, again, detail

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
        status, result, _ = self._apply(path, body, dry_run=False, force=self.force or (
            change.where in self._take_over))
        if status == 409:
            message = rejection(result)
            if "modified" in message:
                raise StaleError(f"{change.where} changed since the diff was made: {message}")
            raise RemediationError(f"field-manager conflict on {change.where}: {message}")
        if status >= 300:
            raise RemediationError(f"the API server rejected {change.where}: HTTP {status} "
                                   f"{rejection(result)}")

    def restore(self, item: BackupItem) -> None:
        path = str(item.state["path"])
        live = self._live(path)
        if not item.existed:
            if live is not None:
                status, result, _ = self._call("DELETE", path)
                if status >= 300 and status != 404:
                    raise RemediationError(f"cannot delete {item.where}: HTTP {status} "
                                           f"{rejection(result)}")
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
                                   f"{rejection(result)}")

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
