"""From a recipe and an audit session to a plan the user previews: render the recipe for
the audited source, choose its target (the repository, the cluster, an OpenFGA store, a
Kafka broker) and plan the changes there; and find the target of a backup again.

The CLI's ``diff``/``apply``/``rollback`` verbs and the TUI both call these; neither this
module nor anything below it parses command lines. A snapshot is never a target: it can
be rendered from, not applied to.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma_audit.remediation.plan import RemediationError

if TYPE_CHECKING:
    from soma_audit.engine.session import AuditSession
    from soma_audit.kube.inventory import Resource
    from soma_audit.remediation.backup import Backup, BackupStore
    from soma_audit.remediation.output import RenderedFile
    from soma_audit.remediation.ownership import LiveOptions
    from soma_audit.remediation.plan import Plan
    from soma_audit.remediation.recipes import Recipe
    from soma_audit.remediation.targets import Target

STRIMZI_GROUP = "kafka.strimzi.io"


def _inventory(session: AuditSession) -> Any:
    from soma_audit.sources.kinds import KINDS

    return session.source.load(frozenset(KINDS))


def rendered(session: AuditSession, recipe: Recipe,
             api_versions: dict[str, str] | None = None) -> list[RenderedFile]:
    from soma_audit.remediation.render import render

    return render(recipe, session.config, _inventory(session), api_versions)


def choose_target(session: AuditSession, recipe: Recipe, files: list[RenderedFile],
                  wanted: str = "auto", force_conflicts: bool = False,
                  cluster: Target | None = None) -> Target:
    """The target of this recipe for the audited source (or the one ``wanted``)."""
    from soma_audit.remediation.targets import DirectoryTarget

    kind = session.source.info.kind
    config = session.config
    if wanted == "auto":
        if kind == "snapshot":
            raise RemediationError("a snapshot is not a target")
        if kind == "manifests":
            wanted = "directory"
        elif recipe.target == "openfga":
            wanted = "openfga"
        elif not any(f.objects for f in files):
            wanted = "directory"
        elif _strimzi_only(files) and (recipe.target == "kafka" or not _serves_strimzi(
                cluster)):
            wanted = "kafka"
        else:
            wanted = "cluster"
    if wanted == "directory":
        root = getattr(session.source, "root", None) or (
            Path(config.repo) if config.repo else None)
        if root is None:
            raise RemediationError(f"{recipe.id} writes repository files: give the "
                                   "repository with --repo DIR (or --manifests DIR), or "
                                   "use render -o DIR")
        return DirectoryTarget(root)
    if wanted == "openfga":
        from soma_audit.remediation.live import OpenFgaTarget

        if not (config.openfga.url and config.openfga.store):
            raise RemediationError(f"{recipe.id} writes an OpenFGA model: give "
                                   "--openfga-url and --openfga-store")
        return OpenFgaTarget(config.openfga, config.tools)
    if wanted == "kafka":
        from soma_audit.remediation.live import KafkaTarget

        if not config.kafka.bootstrap:
            raise RemediationError(f"{recipe.id}: Strimzi is not installed; give "
                                   "--kafka-bootstrap to apply topics and ACLs with the "
                                   "Kafka AdminClient")
        return KafkaTarget(config.kafka)
    if cluster is None:
        if kind != "cluster":
            raise RemediationError("--target cluster needs a kube context (not --manifests)")
        from soma_audit.remediation.cluster import ClusterTarget

        cluster = ClusterTarget(session.source, force_conflicts)  # type: ignore[arg-type]
    return cluster


def _strimzi_only(files: list[RenderedFile]) -> bool:
    objects = [o for f in files for o in f.objects]
    return bool(objects) and all(str(o.get("apiVersion", "")).startswith(STRIMZI_GROUP + "/")
                                 for o in objects)


def _serves_strimzi(cluster: Any) -> bool:
    if cluster is None:
        return False
    return any(v.startswith(STRIMZI_GROUP + "/") for v in cluster.served_versions().values())


def prepare(session: AuditSession, recipe_id: str, wanted: str = "auto",
            force_conflicts: bool = False, live: LiveOptions | None = None,
            allow_removals: bool = False) -> Plan:
    """Render ``recipe_id`` for the session's source and plan it against its target
    (a cluster within the team's scope, widened by ``live``; a directory allows removals
    no check flagged only with ``allow_removals``)."""
    from soma_audit.remediation.plan import Plan
    from soma_audit.remediation.recipes import get_recipe
    from soma_audit.remediation.targets import DirectoryTarget

    recipe = get_recipe(recipe_id)
    cluster = None
    api_versions = None
    if session.source.info.kind == "cluster" and wanted in ("auto", "cluster", "kafka"):
        from soma_audit.remediation.cluster import ClusterTarget
        from soma_audit.remediation.ownership import LiveOptions

        live = live or LiveOptions()
        config = session.config
        cluster = ClusterTarget(
            session.source, force_conflicts,  # type: ignore[arg-type]
            scope=live.scope(config.namespace, config.namespaces,
                             config.pss_exempt_namespaces),
            transform=recipe.transform, patch_managed=live.patch_managed,
            workers=config.cluster.workers, progress=live.progress)
        api_versions = cluster.served_versions()
    files = rendered(session, recipe, api_versions)
    target = choose_target(session, recipe, files, wanted, force_conflicts, cluster)
    if isinstance(target, DirectoryTarget):
        target.allow_removals = allow_removals
        target.rendered_elsewhere = _rendered_elsewhere(session)
        if target.rendered_elsewhere:
            from soma_audit.sources.rendering import Renderer

            target.renderer = Renderer(target.root, session.config)
        target.flagged = flagged_objects(session, recipe)
    changes, notes = target.plan(files)
    return Plan(recipe.id, target, changes, notes, list(recipe.fixes),
                scope=getattr(target, "scope_line", ""))


def flagged_objects(session: AuditSession, recipe: Recipe) -> dict[str, set[str]]:
    """Re-run the checks whose evidence the recipe's removal rules need; what they flag."""
    from soma_audit.remediation.repository import flagged_by

    checks = {rule.check for rule in recipe.removes}
    if not checks or not any(c.id in checks for c in session.checks):
        return {}
    return flagged_by(session.scan(only=checks).results, checks)


def _rendered_elsewhere(session: AuditSession) -> dict[Any, Resource]:
    """Objects the audit rendered from a Helm chart or a Kustomize overlay, by identity.
    They are never edited or re-created as plain files: an overlay gets a patch, a chart
    a note naming the values to change."""
    from soma_audit.remediation.repository import identity

    if session.source.info.kind != "manifests":
        return {}
    return {identity(resource.body): resource
            for resource in _inventory(session) if resource.rendered is not None}


def confirmation_name(session: AuditSession) -> str:
    """The name a person must type before an apply or rollback on this session's target:
    the kube context (for ``--manifests``, the directory's label) when it matches
    ``config.production_pattern``; "" when yes/no is enough. An empty pattern matches
    nothing (the config refuses a pattern that is not a regular expression)."""
    import re

    pattern = session.config.production_pattern
    name = session.source.info.label or session.source.info.ref
    if not pattern:
        return ""
    return name if re.search(pattern, name) else ""


def _reaches(session: AuditSession, described: dict[str, Any]) -> bool:
    """Whether a backup's target is one this session applies to."""
    kind = described.get("kind")
    config = session.config
    if kind == "directory":
        roots = (getattr(session.source, "root", None), config.repo)
        return any(root and Path(root).resolve() == Path(str(described.get("root")))
                   for root in roots)
    if kind == "cluster":
        return (session.source.info.kind == "cluster"
                and getattr(session.source, "server", None) == described.get("server"))
    if kind == "openfga":
        return bool(config.openfga.url) and (config.openfga.url, config.openfga.store) == (
            described.get("url"), described.get("store"))
    if kind == "kafka":
        return bool(config.kafka.bootstrap) and config.kafka.bootstrap == described.get(
            "bootstrap")
    return False


def last_backup(session: AuditSession, store: BackupStore, prefer: str = "") -> Backup | None:
    """The backup to offer for rollback: ``prefer`` (this session's last apply) while it
    can still be rolled back, else the newest complete (or interrupted) backup of a
    target this session applies to. Loaded with its saved bytes."""
    from soma_audit.remediation.backup import COMPLETE, IN_PROGRESS

    if prefer:
        backup = store.load(prefer)
        if backup.status in (COMPLETE, IN_PROGRESS):
            return backup
    for backup in store.list():
        if backup.status in (COMPLETE, IN_PROGRESS) and _reaches(session, backup.target):
            return store.load(backup.id)
    return None


def backup_target(session: AuditSession, backup: Backup) -> Target:
    """The target ``backup`` was taken from, reached through this session's source and
    config; RemediationError when the session does not apply to it."""
    from soma_audit.remediation.targets import DirectoryTarget

    if not _reaches(session, backup.target):
        raise RemediationError(f"backup {backup.id} was taken on {backup.describe_target()}, "
                               "which this audit does not apply to")
    kind = backup.target["kind"]
    if kind == "directory":
        return DirectoryTarget(str(backup.target["root"]))
    if kind == "cluster":
        from soma_audit.remediation.cluster import ClusterTarget

        return ClusterTarget(session.source)  # type: ignore[arg-type]
    if kind == "openfga":
        from soma_audit.remediation.live import OpenFgaTarget

        return OpenFgaTarget(session.config.openfga, session.config.tools)
    from soma_audit.remediation.live import KafkaTarget

    return KafkaTarget(session.config.kafka)


# -- the verbs --------------------------------------------------------------------------
