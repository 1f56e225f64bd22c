"""Probes for the pss area (see checks/pss.yaml): namespace labels and pod hardening.

The Pod Security Standards themselves are evaluated by :mod:`soma_audit.domain.pss`; these
probes decide which level applies where and turn violations into evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from soma_audit.config import NamespaceLevels, PssLevel
from soma_audit.core.model import Evidence, Outcome, Status
from soma_audit.domain.ops.cost import missing_resources, resource_value
from soma_audit.domain.pss import (
    LABEL_PREFIX,
    LEVELS,
    MODES,
    at_least,
    evaluate,
    parse_level,
    run_checks,
    show,
)
from soma_audit.kube.inventory import Resource
from soma_audit.kube.workloads import WORKLOAD_KINDS, Workload, workloads
from soma_audit.probes import Params, ProbeContext, ev, failed, passed, probe, skipped, verdict

_KINDS = ["Namespace", *WORKLOAD_KINDS]
_VERSION = re.compile(r"^(latest|v1\.(0|[1-9][0-9]*))$")
#: A Kubernetes resource quantity ("500m", "1Gi", "0.5", "1e3").
_QUANTITY = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
)
_LEVEL_NAMES = ", ".join(LEVELS)


@dataclass(frozen=True)
class _Namespaces:
    """The namespaces in scope of the PSS checks and what the inventory says of them."""

    #: Namespace objects by name.
    objects: dict[str, Resource]
    #: namespace → refs of the objects placed in it.
    users: dict[str, list[str]]
    #: In scope: every namespace declared or used, minus the exempt ones, sorted.
    names: list[str]

    def missing_object(self, name: str) -> Evidence:
        users = self.users.get(name, [])
        more = f" and {len(users) - 1} more" if len(users) > 1 else ""
        return ev(f"Namespace/{name}",
                  f"no Namespace object in the inventory, though {users[0]}{more} use it: "
                  "its pod-security.kubernetes.io labels are not declared anywhere")

    def declared(self, problems: list[Evidence]) -> Iterator[Resource]:
        """The Namespace object of each name in scope, in order; a name without one adds
        :meth:`missing_object` to ``problems``."""
        for name in self.names:
            namespace = self.objects.get(name)
            if namespace is None:
                problems.append(self.missing_object(name))
            else:
                yield namespace


def _namespaces(ctx: ProbeContext) -> _Namespaces:
    objects = {r.name: r for r in ctx.inventory.of_kind("Namespace") if r.name}
    users: dict[str, list[str]] = {}
    for resource in ctx.inventory:
        if resource.kind != "Secret" and resource.namespace:
            users.setdefault(resource.namespace, []).append(resource.ref)
    exempt = set(ctx.config.pss_exempt_namespaces)
    names = sorted((set(objects) | set(users)) - exempt)
    return _Namespaces(objects, users, names)


def _label(namespace: Resource, mode: str) -> str | None:
    return namespace.labels.get(f"{LABEL_PREFIX}{mode}")


def _enforce_level(ctx: ProbeContext, spaces: _Namespaces,
                   name: str | None) -> tuple[PssLevel | None, str]:
    """The level pods of namespace ``name`` must meet, and where that level comes from."""
    if name is None:
        return None, "no metadata.namespace, so its namespace's level is unknown"
    namespace = spaces.objects.get(name)
    value = _label(namespace, "enforce") if namespace else None
    if namespace is not None and value is not None:
        level = parse_level(value)
        source = f"label enforce={value}"
        if level is None:
            # PodSecurity evaluates an unparsable enforce level as restricted.
            return "restricted", f"{source} is not a level, so PodSecurity applies restricted"
        version = _label(namespace, "enforce-version")
        if version not in (None, "latest"):
            source += f"; enforce-version={version} pinned, evaluated at latest"
        return level, source
    configured = ctx.config.namespaces.get(name)
    if configured is not None:
        return configured.enforce, f"config namespaces.{name}.enforce={configured.enforce}"
    return None, "no enforce label and not in config `namespaces`, so its level is unknown"


def _prefix(workload: Workload) -> str:
    """What to put before a pod-relative path (``spec...``) to make it object-relative."""
    return workload.spec_path.removesuffix("spec")


def _metadata(workload: Workload) -> Any:
    return workload.template.get("metadata")


def _label_problems(namespace: Resource, configured: NamespaceLevels | None) -> list[str]:
    """What is wrong with a namespace's PodSecurity labels, given its configured levels."""
    problems = []
    for mode in MODES:
        key = f"{LABEL_PREFIX}{mode}"
        want: PssLevel | None = getattr(configured, mode) if configured else None
        expected = f"{want} or stricter (config)" if want else f"one of {_LEVEL_NAMES}"
        value = _label(namespace, mode)
        level = parse_level(value)
        if value is None:
            problems.append(f"label {key} unset, expected {expected}")
        elif level is None:
            problems.append(f"label {key}={value!r} is not a level, expected {expected}")
        elif want and not at_least(level, want):
            problems.append(f"label {key}={level}, expected {expected}")
        version = _label(namespace, f"{mode}-version")
        if version is not None and not _VERSION.match(version):
            problems.append(f"label {key}-version={version!r}, expected 'latest' or 'v1.<minor>'")
    return problems


@probe("pss.namespace-labels", kinds=_KINDS)
def namespace_labels(ctx: ProbeContext, params: Params) -> Outcome:
    """Every namespace carries enforce/audit/warn labels, at least as strict as configured."""
    spaces = _namespaces(ctx)
    if not spaces.names:
        return skipped("no namespaces in the inventory (besides exempt ones)")
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for namespace in spaces.declared(problems):
        configured = ctx.config.namespaces.get(namespace.name)
        found = _label_problems(namespace, configured)
        problems += [ev(namespace.ref, message) for message in found]
        if not found:
            levels = " ".join(f"{mode}={_label(namespace, mode)}" for mode in MODES)
            ok.append(ev(namespace.ref, levels + (" (meets config)" if configured else "")))
    for name in sorted(set(ctx.config.namespaces) - set(spaces.names)):
        if name not in ctx.config.pss_exempt_namespaces:
            ok.append(ev(f"Namespace/{name}",
                         "configured, but not in the inventory: nothing to check"))
    return verdict(problems, ok)


@probe("pss.audit-label", kinds=_KINDS)
def audit_label(ctx: ProbeContext, params: Params) -> Outcome:
    """The audit level is set and at least the enforce level, so violations get logged."""
    spaces = _namespaces(ctx)
    if not spaces.names:
        return skipped("no namespaces in the inventory (besides exempt ones)")
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for namespace in spaces.declared(problems):
        key = f"{LABEL_PREFIX}audit"
        value = _label(namespace, "audit")
        audit = parse_level(value)
        enforce_value = _label(namespace, "enforce")
        # Unset enforce means privileged; an unparsable one is evaluated as restricted.
        enforce: PssLevel = "privileged"
        if enforce_value is not None:
            enforce = parse_level(enforce_value) or "restricted"
        if value is None:
            problems.append(ev(namespace.ref, f"label {key} unset: PSS violations are not "
                                              f"audit-logged (expected at least {enforce})"))
        elif audit is None:
            problems.append(ev(namespace.ref, f"label {key}={value!r} is not a level: "
                                              "PodSecurity audits nothing"))
        elif not at_least(audit, enforce):
            problems.append(ev(namespace.ref, f"label {key}={audit} is below enforce={enforce}, "
                                              f"expected {enforce} or stricter"))
        else:
            ok.append(ev(namespace.ref, f"audit={audit}, enforce={enforce}"))
    return verdict(problems, ok)


@probe("pss.pod-compliance", kinds=_KINDS)
def pod_compliance(ctx: ProbeContext, params: Params) -> Outcome:
    """Every pod and pod template meets the enforce level of its namespace."""
    spaces = _namespaces(ctx)
    levels: dict[str | None, tuple[PssLevel | None, str]] = {}
    problems: list[Evidence] = []
    counts: dict[str, int] = {}
    unknown: dict[str | None, list[str]] = {}
    for workload in workloads(ctx.inventory):
        name = workload.namespace
        if name not in levels:
            levels[name] = _enforce_level(ctx, spaces, name)
        level, _ = levels[name]
        if level is None or name is None:
            unknown.setdefault(name, []).append(workload.resource.ref)
            continue
        counts[name] = counts.get(name, 0) + 1
        template = workload.resource.kind != "Pod"
        for violation in evaluate(workload.template.get("spec"), _metadata(workload), level,
                                  template=template):
            problems.append(ev(workload.resource.ref,
                               f"{level}: {violation.describe(_prefix(workload))}"))
    notes = [
        ev(refs[0] if name is None else f"Namespace/{name}",
           f"{len(refs)} workload(s) not evaluated: {levels[name][1]}")
        for name, refs in sorted(unknown.items(), key=lambda item: str(item[0]))
    ]
    if problems:
        return failed(*problems, *notes)
    if not counts:
        return Outcome(Status.SKIP, tuple(notes)) if notes else skipped(
            "no workload in the inventory")
    ok = [ev(f"Namespace/{name}",
             f"{count} workload(s) comply with {levels[name][0]} ({levels[name][1]})")
          for name, count in sorted(counts.items())]
    return passed(*ok, *notes)


def _hardening_scope(ctx: ProbeContext) -> tuple[list[Workload], list[Evidence]]:
    """Workloads outside the exempt namespaces, and a note of what was left out."""
    exempt = set(ctx.config.pss_exempt_namespaces)
    chosen, left_out = [], []
    for workload in workloads(ctx.inventory):
        (left_out if workload.namespace in exempt else chosen).append(workload)
    notes = []
    if left_out:
        names = ", ".join(sorted({str(w.namespace) for w in left_out}))
        notes.append(ev("config", f"{len(left_out)} workload(s) in exempt namespaces "
                                  f"({names}) not checked"))
    return chosen, notes


def _indexed_containers(workload: Workload,
                        fields: tuple[str, ...]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(name, object-relative path, container) for the containers in ``fields``."""
    for field, container in workload.containers():
        if field not in fields:
            continue
        items = workload.pod_spec[field]
        index = next(i for i, item in enumerate(items) if item is container)
        name = container.get("name")
        yield (str(name) if name is not None else "",
               f"{workload.spec_path}.{field}[{index}]", container)


def _no_workloads(notes: list[Evidence]) -> Outcome:
    reason = "no workload in the inventory"
    return skipped(reason + ("; " + notes[0].message if notes else ""))


@probe("pss.no-privileged", kinds=WORKLOAD_KINDS)
def no_privileged(ctx: ProbeContext, params: Params) -> Outcome:
    """No container, init container or ephemeral container runs privileged."""
    chosen, notes = _hardening_scope(ctx)
    if not chosen:
        return _no_workloads(notes)
    problems = []
    containers = 0
    for workload in chosen:
        containers += sum(1 for _ in workload.containers())
        for violation in run_checks(workload.template.get("spec"), _metadata(workload),
                                    ["privileged"], template=workload.resource.kind != "Pod"):
            problems.append(ev(workload.resource.ref, violation.describe(_prefix(workload))))
    ok = [ev(ctx.source.ref, f"{containers} container(s) in {len(chosen)} workload(s): "
                             "none sets securityContext.privileged=true")]
    return failed(*problems, *notes) if problems else passed(*ok, *notes)


@probe("pss.readonly-root", kinds=WORKLOAD_KINDS)
def readonly_root(ctx: ProbeContext, params: Params) -> Outcome:
    """Every container sets securityContext.readOnlyRootFilesystem: true."""
    chosen, notes = _hardening_scope(ctx)
    if not chosen:
        return _no_workloads(notes)
    problems = []
    containers = 0
    fields = ("initContainers", "containers", "ephemeralContainers")
    for workload in chosen:
        for name, path, container in _indexed_containers(workload, fields):
            containers += 1
            security = container.get("securityContext")
            value = security.get("readOnlyRootFilesystem") if isinstance(security, dict) else None
            if value is not True:
                found = show(value)
                problems.append(ev(workload.resource.ref,
                                   f"container {name!r}: {path}.securityContext."
                                   f"readOnlyRootFilesystem={found}, expected true"))
    ok = [ev(ctx.source.ref, f"{containers} container(s) in {len(chosen)} workload(s) set "
                             "readOnlyRootFilesystem=true")]
    return failed(*problems, *notes) if problems else passed(*ok, *notes)


def _is_quantity(value: Any) -> bool:
    """A number, or a string in Kubernetes quantity syntax."""
    return (isinstance(value, str | int | float) and not isinstance(value, bool)
            and (not isinstance(value, str) or bool(_QUANTITY.match(value))))


@probe("pss.resources", kinds=WORKLOAD_KINDS)
def resources(ctx: ProbeContext, params: Params) -> Outcome:
    """CPU and memory requests and limits on every container and init container.

    A value set in the pod-level ``spec.resources`` covers every container of the pod.
    Ephemeral containers cannot declare resources, so they are not checked.
    """
    chosen, notes = _hardening_scope(ctx)
    if not chosen:
        return _no_workloads(notes)
    problems = []
    containers = 0
    for workload in chosen:
        pod_level = workload.pod_spec.get("resources")
        for name, path, container in _indexed_containers(
                workload, ("initContainers", "containers")):
            containers += 1
            for section, resource in missing_resources(container, pod_level, _is_quantity):
                value = resource_value(container.get("resources"), section, resource)
                found = "unset" if value is None else f"{show(value)} (not a quantity)"
                problems.append(ev(workload.resource.ref,
                                   f"container {name!r}: {path}.resources.{section}."
                                   f"{resource}={found}, expected a quantity"))
    ok_evidence = [ev(ctx.source.ref, f"{containers} container(s) in {len(chosen)} workload(s) "
                                      "declare cpu and memory requests and limits")]
    return failed(*problems, *notes) if problems else passed(*ok_evidence, *notes)
