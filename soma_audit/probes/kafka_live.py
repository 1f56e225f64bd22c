"""Live Kafka probes (checks/kafka.yaml, ``requires: [kafka]``): what the broker really
has — topics and their configs, ACLs per service principal, consumer groups and their
lag — and, only with ``--probe-writes``, an end-to-end canary round trip.

Every probe here is read-only except ``kafka.event-flow``, which writes one message to
``kafka.canary_topic`` and only when ``probe_writes`` is set (``--probe-writes``).
"""

from __future__ import annotations

from soma_audit.core.model import Evidence, Outcome
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    errored,
    ev,
    failed,
    live_client,
    live_probe,
    passed,
    probe,
    skipped,
    verdict,
)
from soma_audit.services import Failure, ServiceError
from soma_audit.services.kafka import (
    KafkaService,
    acl_findings,
    group_lag,
    needs,
    topic_differences,
)


def _service(ctx: ProbeContext) -> KafkaService:
    return live_client(ctx, "kafka", KafkaService, "no Kafka client (set --kafka-bootstrap)")


def _planned_groups(ctx: ProbeContext) -> dict[str, str]:
    """Planned consumer group → the principal that consumes as it, in plan order."""
    groups: dict[str, str] = {}
    for user in ctx.config.kafka.users:
        for group in user.groups:
            groups.setdefault(group, user.name)
    if not groups:
        raise ProbeError("no consumer groups in the plan (config kafka.users[].groups)")
    return groups


def _groups(service: KafkaService, planned: dict[str, str]) -> dict[str, str]:
    """Planned groups that exist → state; a group the listing leaves out is asked for by
    name, so one the audit principal may not describe is an error, not "missing"."""
    listed = service.groups()
    found = {g: listed[g] for g in planned if g in listed}
    for group in (g for g in planned if g not in listed):
        state = service.group_state(group)
        if state is not None:
            found[group] = state
    return found


@probe("kafka.live-topics")
@live_probe
def live_topics(ctx: ProbeContext, params: Params) -> Outcome:
    """Each planned topic exists on the broker with the planned partitions, replication
    factor and configs (retention.ms, cleanup.policy, min.insync.replicas when planned)."""
    service = _service(ctx)
    planned = ctx.config.kafka.topics
    if not planned:
        raise ProbeError("no topics in the plan (config kafka.topics)")
    listed = service.topics()
    topics = {t.name: listed.get(t.name) or service.topic(t.name) for t in planned}
    configs = service.topic_configs([name for name, state in topics.items() if state])
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for topic in planned:
        ref = f"kafka:topic/{topic.name}"
        state = topics.get(topic.name)
        if state is None:
            problems.append(ev(ref, f"missing on the broker {service.bootstrap}"))
            continue
        found = configs.get(topic.name, {})
        differences = topic_differences(topic, state, found)
        problems += [ev(ref, d) for d in differences]
        if not differences:
            settings = ", ".join(f"{k}={found[k]}" for k in
                                 ("retention.ms", "cleanup.policy", "min.insync.replicas")
                                 if k in found)
            ok.append(ev(ref, f"{state.partitions} partitions, replication "
                              f"{topic.replicas}, {settings}"))
    return verdict(problems, ok)


@probe("kafka.live-acls")
@live_probe
def live_acls(ctx: ProbeContext, params: Params) -> Outcome:
    """Each service principal's ACLs are exactly its least privilege: no ALL, no wildcard
    or prefixed resource, WRITE only on the topics it produces to, READ only on the topics
    it consumes and its groups — every excess or missing grant is one evidence item."""
    service = _service(ctx)
    principals = ctx.config.kafka.users
    if not principals:
        raise ProbeError("no service principals in the plan (config kafka.users)")
    try:
        acls = service.acls()
    except ServiceError as exc:
        if exc.failure is Failure.REJECTED and "SECURITY_DISABLED" in exc.detail:
            return failed(ev(f"kafka:{service.bootstrap}", "the broker has no authorizer: "
                             "ACLs are not enforced, every principal may do everything"))
        raise
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for principal in principals:
        ref = f"kafka:principal/User:{principal.name}"
        found, count = acl_findings(principal, acls)
        problems += [ev(ref, p) for p in found]
        if not found:
            plan = "; ".join(f"{'/'.join(sorted(ops))} on {kind.lower()} {name}"
                             for (kind, name), ops in sorted(
                                 needs(principal).items(),
                                 key=lambda item: (item[0][0] != "TOPIC", item[0])))
            ok.append(ev(ref, f"least privilege: {plan or 'nothing'} ({count} bindings)"))
    return verdict(problems, ok)


@probe("kafka.consumer-groups")
@live_probe
def consumer_groups(ctx: ProbeContext, params: Params) -> Outcome:
    """Every planned consumer group exists on the broker (it has members or committed
    offsets): its service really consumes."""
    service = _service(ctx)
    planned = _planned_groups(ctx)
    present = _groups(service, planned)
    problems = [ev(f"kafka:group/{group}", f"missing: {user} has never consumed as group "
                                           f"{group!r} on {service.bootstrap}")
                for group, user in planned.items() if group not in present]
    ok = [ev(f"kafka:group/{group}", f"present (state {present[group]}, used by {user})")
          for group, user in planned.items() if group in present]
    return verdict(problems, ok)


@probe("kafka.consumer-lag")
@live_probe
def consumer_lag(ctx: ProbeContext, params: Params) -> Outcome:
    """Each planned group keeps up: the sum over its partitions of high watermark minus
    committed offset is at most ``kafka.max_lag``."""
    service = _service(ctx)
    limit = ctx.config.kafka.max_lag
    planned = _planned_groups(ctx)
    present = _groups(service, planned)
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for group in planned:
        ref = f"kafka:group/{group}"
        committed = service.committed(group) if group in present else {}
        if not any(offset >= 0 for offset in committed.values()):
            problems.append(ev(ref, "no committed offsets: lag cannot be measured "
                                    "(see kafka.consumer-groups)"))
            continue
        high = service.high_watermarks(committed)
        total, per_partition = group_lag(committed, high)
        if total > limit:
            worst = sorted(per_partition, key=lambda item: -item[1])[:5]
            detail = ", ".join(f"{t}[{p}]={lag}" for (t, p), lag in worst if lag)
            problems.append(ev(ref, f"lag {total} > {limit} (kafka.max_lag): {detail}"))
        else:
            ok.append(ev(ref, f"lag {total} <= {limit} over {len(per_partition)} partitions"))
    return verdict(problems, ok)


@probe("kafka.event-flow")
@live_probe
def event_flow(ctx: ProbeContext, params: Params) -> Outcome:
    """Opt-in (``--probe-writes``): a uniquely keyed message produced to the canary topic
    is read back within the timeout. Without the opt-in nothing is written."""
    settings = ctx.config.kafka
    if not ctx.config.probe_writes:
        return skipped("opt-in: --probe-writes (writes one canary message to "
                       f"{settings.canary_topic})")
    service = _service(ctx)
    topic = settings.canary_topic
    ref = f"kafka:topic/{topic}"
    if service.topic(topic) is None:
        return failed(ev(ref, f"canary topic {topic} does not exist: create it and allow "
                              "the audit principal Write and Read on it"))
    try:
        trip = service.round_trip(topic)
    except ServiceError as exc:
        if exc.failure in (Failure.UNREACHABLE, Failure.UNAUTHORISED, Failure.FORBIDDEN):
            return errored(str(exc), ref)  # the audit cannot tell: not the flow's fault
        return failed(ev(ref, f"event flow broken: {exc.detail}"))
    return passed(ev(ref, f"canary produced to {topic}[{trip.partition}]@{trip.offset} and "
                          f"read back in {trip.seconds:.2f}s"))
