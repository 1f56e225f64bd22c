"""Probes for the argocd area (see checks/argocd.yaml). Logic: soma_audit/domain/argocd.py."""

from __future__ import annotations

from soma_audit.core.model import Evidence, Outcome, Status
from soma_audit.domain import argocd as argo
from soma_audit.kube.inventory import Resource
from soma_audit.probes import (
    Params,
    ProbeContext,
    ev,
    failed,
    passed,
    probe,
    skipped,
    verdict,
)


def _in_argocd(ctx: ProbeContext, kind: str) -> list[Resource]:
    namespace = ctx.config.argocd.namespace
    return [r for r in ctx.inventory.of_kind(kind, namespace=namespace) if argo.is_argo(r)]


def _unexpanded(ctx: ProbeContext, problems: list[Evidence], why: str) -> Outcome | None:
    """ApplicationSets generate Applications we cannot see offline: then gaps are undecided."""
    appsets = _in_argocd(ctx, "ApplicationSet")
    if not appsets:
        return None
    notes = [ev(a.ref, f"generates Applications that are not expanded offline: {why}")
             for a in appsets]
    return Outcome(Status.ERROR, (*problems, *notes))


@probe("argocd.apps-per-service", kinds=["Application", "ApplicationSet"])
def apps_per_service(ctx: ProbeContext, params: Params) -> Outcome:
    """Every configured service is deployed by an Application in Argo CD's namespace."""
    config = ctx.config
    if not config.services:
        return skipped("config lists no services", "config")
    argocd_ns, target_ns = config.argocd.namespace, config.namespace
    apps = _in_argocd(ctx, "Application")
    elsewhere = [r for r in ctx.inventory.of_kind("Application")
                 if argo.is_argo(r) and r.namespace != argocd_ns]
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for service in config.services:
        naming = [a for a in apps if argo.names_service(a, service.name)]
        deploying = [a for a in naming if argo.destination_namespace(a.spec) == target_ns]
        if deploying:
            ok.append(ev(deploying[0].ref, f"deploys {service.name} to namespace {target_ns}"))
            continue
        problems.append(ev(
            f"Application/{argocd_ns}/{service.name}",
            f"missing: no Application in namespace {argocd_ns} deploys {service.name} to "
            f"namespace {target_ns} (by name or source path)",
        ))
        problems += [
            ev(a.ref, f"names {service.name} but spec.destination.namespace="
                      f"{argo.destination_namespace(a.spec)!r}, expected {target_ns!r}")
            for a in naming
        ]
        problems += [
            ev(a.ref, f"names {service.name} but lives outside namespace {argocd_ns}, "
                      "where Argo CD does not pick it up by default")
            for a in elsewhere
            if argo.names_service(a, service.name)
        ]
    minimum = config.argocd.min_applications
    if len(apps) < minimum:
        problems.append(ev(f"Namespace/{argocd_ns}",
                           f"{len(apps)} Applications, expected at least {minimum}"))
    summary = ev(f"Namespace/{argocd_ns}",
                 f"{len(ok)} of {len(config.services)} services have an Application")
    if problems:
        undecided = _unexpanded(ctx, [summary, *problems], "cannot tell whether they cover "
                                                           "the gaps")
        return undecided or failed(summary, *problems)
    return passed(summary, *ok)


@probe("argocd.sync-policy", kinds=["Application", "ApplicationSet"])
def sync_policy(ctx: ProbeContext, params: Params) -> Outcome:
    """Each Application syncs automatically, prunes, self-heals, creates its namespace, retries."""
    argocd_ns = ctx.config.argocd.namespace
    apps = _in_argocd(ctx, "Application")
    if not apps:
        missing = [ev(f"Namespace/{argocd_ns}", "no Argo CD Application in this namespace")]
        return _unexpanded(ctx, missing, "their sync policy cannot be read") or failed(*missing)
    problems = [ev(a.ref, p) for a in apps for p in argo.sync_policy_problems(a.spec)]
    ok = [ev(a.ref, argo.describe_sync_policy(a.spec)) for a in apps]
    return verdict(problems, ok)


def _bus_problems(ctx: ProbeContext, *ends: Resource) -> list[Evidence]:
    """EventSource and Sensor exchange events through the EventBus they name."""
    found = []
    for end in ends:
        bus = str(end.spec.get("eventBusName") or "default")
        if ctx.inventory.get("EventBus", bus, end.namespace) is None:
            found.append(ev(f"EventBus/{end.namespace}/{bus}",
                            f"missing: {end.ref} sends or receives events through it"))
    return found


def _git_sources(sensor: Resource, events: dict[tuple[str | None, str], set[str]]) -> list[str]:
    """Names of the git EventSources (same namespace) whose events the Sensor depends on."""
    deps = sensor.spec.get("dependencies")
    names = []
    for dep in deps if isinstance(deps, list) else []:
        if not isinstance(dep, dict):
            continue
        source = str(dep.get("eventSourceName"))
        if str(dep.get("eventName")) in events.get((sensor.namespace, source), set()):
            names.append(source)
    return names


@probe("argocd.webhook", kinds=["EventSource", "Sensor", "EventBus", "ConfigMap"])
def webhook(ctx: ProbeContext, params: Params) -> Outcome:
    """A git push reaches Argo CD through an Argo Events EventSource → Sensor → trigger."""
    inventory = ctx.inventory
    sources = {(r.namespace, r.name): r for r in inventory.of_kind("EventSource")
               if argo.is_argo(r) and argo.git_events(r)}
    events = {key: {name for _, name in argo.git_events(r)} for key, r in sources.items()}
    problems: list[Evidence] = []
    undecided: list[Evidence] = []
    wired: list[Evidence] = []
    if not sources:
        problems.append(ev("EventSource", (
            "missing: no Argo Events EventSource with a webhook, github, gitlab, bitbucket or "
            "gitea event source, so git pushes do not trigger syncs (Argo CD's built-in webhook "
            "is configured in Secret argocd-secret, which soma-audit never reads, so it cannot "
            "count as evidence)")))
    listening = False
    for sensor in (r for r in inventory.of_kind("Sensor") if argo.is_argo(r)):
        used = [sources[(sensor.namespace, n)] for n in _git_sources(sensor, events)]
        if not used:
            continue
        listening = True
        triggers = sensor.spec.get("triggers")
        verdicts = [argo.trigger_verdict(t, i)
                    for i, t in enumerate(triggers if isinstance(triggers, list) else [])]
        reaching = [v for v in verdicts if v.reaches_argocd]
        unknown = [v for v in verdicts if v.reaches_argocd is None]
        if reaching:
            missing_bus = _bus_problems(ctx, sensor, *used)
            problems += missing_bus
            if not missing_bus:
                wired.append(ev(sensor.ref, (
                    f"{used[0].ref} git events trigger Argo CD: {reaching[0].name} "
                    f"({reaching[0].description})")))
        elif unknown:
            undecided += [ev(sensor.ref, f"trigger {v.name} ({v.description}): cannot tell "
                                         "offline whether it reaches Argo CD") for v in unknown]
        else:
            found = "; ".join(v.description for v in verdicts) or "no triggers"
            problems.append(ev(sensor.ref, (
                f"depends on git events but no trigger reaches Argo CD (found: {found}); "
                "expected a k8s trigger on an argoproj.io Application or an http trigger "
                "to argocd-server /api/webhook")))
    if sources and not listening:
        refs = ", ".join(r.ref for r in sources.values())
        problems.append(ev("Sensor", f"missing: no Sensor depends on the git events of {refs}"))
    if wired:
        return verdict([], wired)
    argocd_cm = inventory.get("ConfigMap", "argocd-cm", ctx.config.argocd.namespace)
    if argocd_cm is not None:
        problems.append(ev(argocd_cm.ref, (
            "not sufficient evidence of a git webhook: Argo CD's webhook secrets live in "
            "Secret argocd-secret, which soma-audit never reads")))
    if undecided:
        return Outcome(Status.ERROR, (*undecided, *problems))
    return failed(*problems)
