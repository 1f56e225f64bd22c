"""The API server's own Pod Security verdict (checks/pss.yaml ``pss.admission-verdict``,
``requires: [cluster]``).

For each namespace in scope, a server-side dry-run PATCH (``?dryRun=All``: admission runs,
nothing is saved) labels it with its target enforce level; PodSecurity admission then
evaluates the pods already running there and answers with ``Warning`` headers, which are
the evidence. Nothing is saved, but it is still a write-shaped request (one per namespace
in scope) that needs ``patch`` on namespaces, so it runs only when the user opts in with
``--probe-writes`` and binds the ClusterRole ``manifests/rbac/clusterrole-dryrun.yaml``;
otherwise the check is skipped and a scan sends reads only.

PodSecurity skips the evaluation when the enforce policy does not change, so when a
namespace already enforces its target at ``latest``, the dry-run pins
``enforce-version`` to the server's own minor version — the same rules, a different label.

Target level: config ``namespaces.<name>.enforce``, else the namespace's enforce label.
Scope: the Namespaces listed, minus ``pss_exempt_namespaces``.
"""

from __future__ import annotations

from typing import Any

from soma_audit.core.model import Evidence, Outcome
from soma_audit.domain.pss import LABEL_PREFIX, parse_level
from soma_audit.kube.inventory import Resource
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    errored,
    ev,
    failed,
    probe,
    skipped,
    verdict,
)

FORBIDDEN = "forbidden (needs patch on namespaces for a dry-run)"
OPT_IN = ("opt-in: --probe-writes (a server-side dry-run PATCH of each namespace's labels; "
          "needs the role in manifests/rbac/clusterrole-dryrun.yaml)")


def _cluster(ctx: ProbeContext) -> Any:
    cluster = ctx.services.get("cluster")
    if cluster is None or not hasattr(cluster, "dry_run_label_namespace"):
        raise ProbeError("no live cluster connection to send the dry-run to")
    return cluster


def _target(ctx: ProbeContext, namespace: Resource) -> tuple[str | None, str]:
    configured = ctx.config.namespaces.get(namespace.name)
    if configured is not None:
        return configured.enforce, f"config namespaces.{namespace.name}.enforce"
    value = namespace.labels.get(f"{LABEL_PREFIX}enforce")
    if value is None:
        return None, "no enforce label and not in config `namespaces`"
    # PodSecurity reads an invalid level as restricted.
    return parse_level(value) or "restricted", f"label enforce={value}"


def dry_run_labels(namespace: Resource, level: str, server_minor: int | None) -> dict[str, str]:
    """The labels whose dry-run makes PodSecurity evaluate ``level`` at policy latest."""
    labels = {f"{LABEL_PREFIX}enforce": level, f"{LABEL_PREFIX}enforce-version": "latest"}
    current = namespace.labels
    unchanged = (current.get(f"{LABEL_PREFIX}enforce") == level
                 and current.get(f"{LABEL_PREFIX}enforce-version", "latest") == "latest")
    if unchanged and server_minor is not None:
        labels[f"{LABEL_PREFIX}enforce-version"] = f"v1.{server_minor}"
    return labels


@probe("pss.admission-verdict", kinds=["Namespace"])
def admission_verdict(ctx: ProbeContext, params: Params) -> Outcome:
    """A server-side dry-run of each namespace's target enforce level warns of nothing."""
    from soma_audit.sources.cluster import ListError

    if not ctx.config.probe_writes:
        return skipped(OPT_IN)
    cluster = _cluster(ctx)
    exempt = set(ctx.config.pss_exempt_namespaces)
    namespaces = {r.name: r for r in ctx.inventory.of_kind("Namespace") if r.name}
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for name in sorted(set(ctx.config.namespaces) - set(namespaces) - exempt):
        problems.append(ev(f"Namespace/{name}", "configured in `namespaces` but not found in "
                                                "the cluster: nothing to evaluate"))
    minor: int | None = None
    asked_version = False
    for name in sorted(set(namespaces) - exempt):
        namespace = namespaces[name]
        level, why = _target(ctx, namespace)
        if level is None:
            continue
        if level == "privileged":
            ok.append(ev(namespace.ref, f"target level privileged ({why}): nothing to enforce"))
            continue
        if not asked_version:
            minor, asked_version = cluster.server_minor(), True
        labels = dry_run_labels(namespace, level, minor)
        try:
            warnings = cluster.dry_run_label_namespace(name, labels)
        except ListError as exc:
            if exc.status == 403:
                return errored(FORBIDDEN, namespace.ref)
            if exc.status == 404:
                problems.append(ev(namespace.ref, "deleted during the scan: not evaluated"))
                continue
            raise ProbeError(f"dry-run on {namespace.ref}: {exc}") from None
        version = labels[f"{LABEL_PREFIX}enforce-version"]
        if warnings:
            problems += [ev(namespace.ref, f"dry-run enforce={level} ({why}): {w}")
                         for w in warnings]
        else:
            ok.append(ev(namespace.ref, f"dry-run enforce={level}:{version} ({why}): "
                                        "no PodSecurity warnings, every pod complies"))
    if not problems and not ok:
        return failed(ev("cluster", "no namespace in scope has a target enforce level "
                                    "(config `namespaces` or an enforce label)"))
    return verdict(problems, ok)
