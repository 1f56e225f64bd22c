"""Who owns a live object, before a remediation patches it.

A live fix must go where it lasts: a Pod made by a controller is fixed in its owner's
template (its own spec is immutable, and the controller would replace it anyway); an
object Argo CD or Helm deploys is fixed in the repository they deploy from (a live patch
is reverted by the next sync, at once with ``selfHeal``); an object people or scripts
wrote with kubectl is fixed live, taking over exactly the fields the recipe sets. And a
team's fix stays in the team's namespaces unless it asks for more. Pure functions: the
cluster target feeds them what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from soma_audit.domain import argocd as argo

#: Namespaces no remediation ever touches (the cluster's own).
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
#: Field managers of people and scripts (kubectl's verbs, the client libraries' defaults):
#: their fields may be taken over by the fix. Every other manager is a controller.
HUMAN_MANAGERS = ("kubectl", "before-first-apply", "k9s", "OpenAPI-Generator",
                  "Go-http-client", "python-requests", "curl")
ARGO_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE_LABEL = "app.kubernetes.io/instance"
HELM_MANAGED_BY = "app.kubernetes.io/managed-by"
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
HELM_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
#: Namespaces the scope line names one by one; the rest are counted.
SCOPE_NAMES = 5


def ref_of(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def object_ref(obj: dict[str, Any]) -> str:
    meta = _meta(obj)
    return ref_of(str(obj.get("kind")), meta.get("namespace"), str(meta.get("name")))


# ------------------------------------------------------------------------------ owners


def controller_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controller ownerReference, None for a bare object."""
    for owner in _meta(obj).get("ownerReferences") or []:
        if isinstance(owner, dict) and owner.get("controller") is True:
            return str(owner.get("kind")), str(owner.get("name"))
    return None


Lookup = Callable[[str, str, str], "dict[str, Any] | None"]


def top_owner(obj: dict[str, Any], lookup: Lookup, depth: int = 5) -> tuple[str, list[str]]:
    """The reference of the object whose template makes ``obj`` (Pod → ReplicaSet →
    Deployment, Pod → Job → CronJob ...) and the chain in between. ``lookup(kind,
    namespace, name)`` reads an owner (None when it is gone: the chain stops there)."""
    namespace = _meta(obj).get("namespace")
    chain: list[str] = []
    current = obj
    for _ in range(depth):
        owner = controller_of(current)
        if owner is None:
            break
        kind, name = owner
        chain.append(ref_of(kind, namespace, name))
        found = lookup(kind, str(namespace), name)
        if found is None:
            break
        current = found
    return (chain[-1] if chain else object_ref(obj)), chain[:-1]


# ------------------------------------------------------------------------------ GitOps


@dataclass(frozen=True)
class Application:
    """What the preview says about an Argo CD Application that deploys an object."""

    namespace: str
    name: str
    self_heal: bool
    auto_sync: bool
    sources: list[tuple[str, str]]
    #: (group, kind, namespace, name) of what its status lists.
    resources: frozenset[tuple[str, str, str, str]]


def application_of(body: dict[str, Any]) -> Application:
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    policy = spec.get("syncPolicy") if isinstance(spec.get("syncPolicy"), dict) else {}
    automated = policy.get("automated") if isinstance(policy.get("automated"), dict) else None
    auto = automated is not None and automated.get("enabled") is not False
    status = body.get("status") if isinstance(body.get("status"), dict) else {}
    listed = frozenset(
        (str(r.get("group") or ""), str(r.get("kind")), str(r.get("namespace") or ""),
         str(r.get("name")))
        for r in status.get("resources") or [] if isinstance(r, dict))
    meta = _meta(body)
    return Application(
        str(meta.get("namespace")), str(meta.get("name")),
        bool(auto and automated and automated.get("selfHeal") is True), auto,
        [(str(s.get("repoURL", "")), str(s.get("path") or s.get("chart") or ""))
         for s in argo.sources(spec)], listed)


@dataclass(frozen=True)
class GitOpsOwner:
    """Argo CD or Helm deploys the object: fix it where they deploy it from."""

    tool: str
    name: str
    detail: str = ""
    hint: str = ""

    def note(self) -> str:
        text = f"managed by {self.tool} {self.name}"
        if self.detail:
            text += f", {self.detail}"
        return text + (f"; {self.hint}" if self.hint else "")


def _argo_owner(app: Application | None, name: str) -> GitOpsOwner:
    if app is None:
        return GitOpsOwner("Application", name, "a live change would be reverted by its "
                           "next sync", "fix its repository with --manifests DIR")
    if app.self_heal:
        detail = "auto-sync with selfHeal — a live change would be reverted"
    elif app.auto_sync:
        detail = "auto-sync — a live change is reverted by the next sync"
    else:
        detail = "manual sync — a live change shows as OutOfSync and is reverted by a sync"
    where = ", ".join(f"{repo} path {path}" if path else repo for repo, path in app.sources
                      if repo)
    hint = ("fix the repository instead: soma-audit apply … --manifests on a checkout of "
            f"{where}" if where else "fix its repository with --manifests DIR")
    return GitOpsOwner("Application", f"{app.namespace}/{app.name}", detail, hint)


def gitops_owner(obj: dict[str, Any], applications: Iterable[Application]
                 ) -> GitOpsOwner | None:
    """Argo CD (tracking annotation, instance label naming a known Application, or an
    Application listing it) or Helm (release labels/annotations); None otherwise."""
    apps = list(applications)
    meta = _meta(obj)
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    api_version = str(obj.get("apiVersion", ""))
    key = (api_version.rpartition("/")[0], str(obj.get("kind")),
           str(meta.get("namespace") or ""), str(meta.get("name")))
    listing = next((a for a in apps if key in a.resources), None)
    if listing is not None:
        return _argo_owner(listing, listing.name)
    tracking = annotations.get(ARGO_TRACKING_ANNOTATION)
    if isinstance(tracking, str) and tracking:
        app_name = tracking.split(":", 1)[0]
        namespace, _, name = app_name.rpartition("_")
        return _argo_owner(next((a for a in apps if a.name == name and (
            not namespace or a.namespace == namespace)), None), app_name)
    instance = labels.get(ARGO_INSTANCE_LABEL)
    by_label = next((a for a in apps if a.name == instance), None)
    if by_label is not None:
        return _argo_owner(by_label, instance)
    release = annotations.get(HELM_RELEASE_ANNOTATION)
    if labels.get(HELM_MANAGED_BY) == "Helm" or release:
        release_ns = annotations.get(HELM_NAMESPACE_ANNOTATION) or meta.get("namespace")
        name = f"{release_ns}/{release}" if release else str(instance or "?")
        return GitOpsOwner("Helm release", name, "the next helm upgrade reverts a live "
                           "change", "fix the chart's values in the repository "
                           "(--manifests DIR)")
    return None


# ---------------------------------------------------------------------- field managers


def is_human(manager: str) -> bool:
    """kubectl (any verb), a script's client library: not a controller that re-applies."""
    return any(manager == name or manager.startswith(f"{name}-") or
               manager.startswith(f"{name}/") for name in HUMAN_MANAGERS)


def field_paths(fields: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every path (and prefix) in a managedFields ``fieldsV1`` tree, as its tokens
    (``f:spec``, ``k:{"name":"web"}`` ...)."""
    found: set[tuple[str, ...]] = set()
    if not isinstance(fields, dict):
        return found
    for token, child in fields.items():
        if token == ".":
            continue
        path = (*prefix, token)
        found.add(path)
        found |= field_paths(child, path)
    return found


def owned_by(obj: dict[str, Any], manager: str) -> set[tuple[str, ...]]:
    """The paths ``manager`` owns through server-side apply (its Apply entries)."""
    found: set[tuple[str, ...]] = set()
    for entry in _meta(obj).get("managedFields") or []:
        if (isinstance(entry, dict) and entry.get("manager") == manager
                and entry.get("operation") == "Apply"):
            found |= field_paths(entry.get("fieldsV1"))
    return found


def managers(obj: dict[str, Any]) -> list[str]:
    """The object's field managers, most recent write first."""
    entries = [e for e in _meta(obj).get("managedFields") or [] if isinstance(e, dict)]
    entries.sort(key=lambda e: str(e.get("time") or ""), reverse=True)
    seen: list[str] = []
    for entry in entries:
        name = str(entry.get("manager"))
        if name not in seen:
            seen.append(name)
    return seen


# ---------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """The namespaces a live fix may touch: ``namespaces`` (None: every one) minus the
    system and exempt ones; ``enforce``: namespaces whose enforce label may change even
    though existing pods would violate it."""

    namespaces: frozenset[str] | None
    exempt: frozenset[str] = SYSTEM_NAMESPACES
    enforce: frozenset[str] = field(default_factory=frozenset)

    def namespace_of(self, obj: dict[str, Any]) -> str | None:
        meta = _meta(obj)
        if obj.get("kind") == "Namespace":
            return str(meta.get("name"))
        return meta.get("namespace")

    def allows(self, obj: dict[str, Any]) -> bool:
        namespace = self.namespace_of(obj)
        if namespace is None:
            return self.namespaces is None
        if namespace in self.exempt:
            return False
        return self.namespaces is None or namespace in self.namespaces

    def describe(self) -> str:
        if self.namespaces is None:
            return "every namespace but the system and exempt ones"
        names = sorted(self.namespaces - self.exempt)
        shown = ", ".join(names[:SCOPE_NAMES]) or "no namespace"
        return shown + (f" and {len(names) - SCOPE_NAMES} more" if len(names) > SCOPE_NAMES
                        else "")


def team_scope(app_namespace: str, configured: Iterable[str], exempt: Iterable[str],
               wanted: Iterable[str] = (), everything: bool = False,
               enforce: Iterable[str] = ()) -> Scope:
    """The default scope (the app namespace and the configured ones), widened by
    ``--namespace`` (``wanted``) or ``--all-namespaces``; system and exempt never."""
    never = SYSTEM_NAMESPACES | frozenset(exempt)
    names = None if everything else frozenset({app_namespace, *configured, *wanted})
    return Scope(names, never, frozenset(enforce))


@dataclass(frozen=True)
class LiveOptions:
    """How far a live fix may reach (the CLI's flags, the TUI's defaults)."""

    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    enforce_namespaces: tuple[str, ...] = ()
    patch_managed: bool = False
    progress: Callable[[int, int], None] | None = None

    def scope(self, app_namespace: str, configured: Iterable[str],
              exempt: Iterable[str]) -> Scope:
        return team_scope(app_namespace, configured, exempt, self.namespaces,
                          self.all_namespaces, self.enforce_namespaces)
