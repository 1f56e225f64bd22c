"""Faults between the tool and each live component, injected by a real Toxiproxy.

One proxy per component (kube-apiserver, OpenFGA, Prometheus, Kafka) in its own *lane*:
in a lane only that component is reached through the proxy, the others directly, so a
fault on it must change only the checks that need it. Kafka clients reconnect to the
address the broker advertises, so its lane has a test-scoped broker (same jars and config
code as the testenv one) that advertises the proxy.

Each fault is one round: the four lanes run ``soma-audit --ci --format json`` at once
and every run is compared with its lane's fault-free run. Asserted: the run ends within a
bound computed from the configured timeouts (no hang), no traceback, the exit code of
the contract (2 only when the cluster itself cannot be read), the checks of the faulted
service ``error`` with the cause, every other check as in the fault-free run.
A last test cuts the API server between two writes of ``apply``: the failure is
reported, the backup stays, ``rollback`` restores every object once the server is back.
The observations go to results.json, and from there to docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import Cluster as ClusterReading
from soma_audit.config import load_config
from soma_audit.probes import load_probes
from soma_audit.services import Failure
from soma_audit.sources.cluster import PAGE_SIZE, ClusterSource, Timeouts
from soma_audit.sources.kinds import KINDS
from testenv import config as testenv_config
from testenv import kafka as testenv_kafka
from testenv.context import Context
from testenv.proc import free_port, stop_group, wait_for
from tests.reliability.conftest import (
    Figures,
    Run,
    Toxiproxy,
    demo_tree,
    run_cli,
    service_env,
)

pytestmark = pytest.mark.reliability

#: Checks of every component whose cluster part lists few objects (the shared API server
#: holds ~45k bench objects). The kube lane leaves out those reading PrometheusRules (the
#: bench namespaces hold ~7 MB of them: a bandwidth fault would only measure that).
ONLY = ("argocd.apps-per-service", "argocd.sync-policy", "argocd.apps-healthy",
        "argocd.last-sync", "fga.store-model", "fga.live-scenarios", "slo.series-present",
        "slo.rules-loaded", "ops.stability-24h", "kafka.live-topics", "kafka.live-acls",
        "kafka.consumer-groups", "kafka.consumer-lag")
#: Checks the API server's lane adds: kinds served with few objects, so that after
#: discovery its scan lists several kinds at once, on connections of their own, and a cut
#: mid-scan finds LISTs in flight (discovery names the resources served: a kind whose CRD
#: is missing is not listed at all).
KUBE_ALSO = ("kafka.topics-declared", "kafka.user-acls")
#: The per-request timeout of the live services in the scans' config (seconds).
SERVICE_TIMEOUT = 3.0
#: Attempts one request of each service client may make (services/*.py): OpenFGA's SDK
#: retries once; the Prometheus session's urllib3 Retry allows 2 retries; a Kafka call
#: may wait for metadata and then for its request, each up to the timeout.
ATTEMPTS = {"OpenFGA": 2, "Prometheus": 3, "Kafka": 2}
#: Slack of one service request beyond its attempts: SDK retry waits, urllib3 backoff,
#: Kafka's ``future.result(timeout + 1)``.
SLACK = 1.0
#: Latency of every answer during the mid-apply cut: the margin between the first write
#: reaching the server and the next write being sent (seconds).
APPLY_LATENCY = 0.5
#: What a check of a faulted service may say: the connection failed, never "unauthorised"
#: or "rejected" (the credentials and requests are the fault-free run's).
FAILURE_WORDS = (Failure.UNREACHABLE.value, Failure.TIMEOUT.value)
#: Ports in causes (they change every run), as ``127.0.0.1:N`` or urllib3's ``port=N``.
PORT = re.compile(r"(?<=127\.0\.0\.1:)\d+|(?<=port=)\d+")


@dataclass(frozen=True)
class Fault:
    """One fault; ``toxics(lane)`` are (type, stream, attributes) to add to its proxy."""

    name: str
    describe: str
    #: Whether the faulted component's checks must error (else: results as fault-free).
    breaks: bool
    toxics: Callable[[Lane], list[tuple[str, str, dict[str, Any]]]] = lambda lane: []
    #: "before": proxy disabled before the scan; "mid": disabled during it (see
    #: ``Lane.cut_after``).
    down: str = ""


@dataclass
class Lane:
    """One component reached through its proxy; everything else directly."""

    component: str
    proxy: str
    env: dict[str, str]
    #: Checks that need this component (for the cluster: every check of the scan).
    affected: set[str]
    #: The checks this lane scans.
    only: tuple[str, ...]
    #: The per-request timeout the client applies to this component (seconds).
    timeout: float
    #: A latency well below that timeout (seconds).
    moderate: float
    #: Worst case a fault may add to a fault-free run (seconds), from the timeouts.
    allowance: float
    #: The bandwidth limit (KB/s): low enough that the fault-free bytes feel it.
    bandwidth: int
    #: How many ``moderate`` latencies after the tool's ``cut_on_connection``-th
    #: connection "down mid-scan" disables the proxy: after the first answer of a service
    #: (1.5 after the first), after discovery of the API server (1 after the second: the
    #: LIST workers connect once discovery has answered, and their TLS handshake and first
    #: answer take two latencies more).
    cut_after: float
    cut_on_connection: int = 1
    #: Worst case added when every request fails from the start, if less than
    #: ``allowance`` (the API server: discovery's attempts, after which the scan stops).
    allowance_dead: float | None = None
    #: The scan's arguments and working directory.
    argv: list[str] = field(default_factory=list)
    cwd: Path = Path()
    baseline: Run | None = None
    baseline_bytes: int = 0

    def bound(self, fault: Fault) -> float:
        """The wall-time bound of a faulted run: fault-free time plus the allowance."""
        assert self.baseline is not None
        if fault.breaks and fault.down != "mid" and self.allowance_dead is not None:
            return self.baseline.seconds + self.allowance_dead
        return self.baseline.seconds + self.allowance


def _moderate(lane: Lane) -> list[tuple[str, str, dict[str, Any]]]:
    return [("latency", "downstream", {"latency": int(lane.moderate * 1000)})]


FAULTS = (
    Fault("latency-above-timeout", "latency on every answer, 1 s over the client's "
          "per-request timeout (API server: connect + read)", True,
          lambda lane: [("latency", "downstream", {"latency": int((lane.timeout + 1) * 1000)})]),
    Fault("latency-below-timeout", "latency on every answer, a tenth of the (connect) "
          "timeout", False, _moderate),
    Fault("bandwidth-limit", "answers throttled: 1 MB/s from the API server (~6.5 MB of "
          "LIST pages), 16 KB/s from a service", False,
          lambda lane: [("bandwidth", "downstream", {"rate": lane.bandwidth})]),
    Fault("reset-peer", "every connection reset (TCP RST) as soon as data arrives", True,
          lambda lane: [("reset_peer", "upstream", {"timeout": 0})]),
    Fault("blackhole", "connections accepted, no data ever passed (Toxiproxy `timeout` "
          "toxic)", True, lambda lane: [("timeout", "upstream", {"timeout": 0})]),
    Fault("down-before-scan", "proxy disabled before the scan: connection refused", True,
          down="before"),
    Fault("down-mid-scan", "answers delayed as above; proxy disabled (open connections "
          "closed) after the first answer of a service, after discovery of the API server",
          True, _moderate, down="mid"),
)


def _pages(source: ClusterSource, kinds: set[str]) -> list[int]:
    """LIST pages a scan of ``kinds`` requests: ``limit=1`` answers with the remaining
    count; a kind discovery says is not served costs none, one it cannot tell its one
    (404) request."""
    served = source.served()
    pages = []
    for kind in sorted(kinds):
        info = KINDS[kind]
        version, _ = served.locate(info)
        if version is None:
            continue
        answer = source.request("GET", info.collection(version), [("limit", 1)])
        if answer.status != 200:
            pages.append(1)
            continue
        listed = json.loads(answer.data)
        total = len(listed.get("items") or []) + int(
            (listed.get("metadata") or {}).get("remainingItemCount") or 0)
        pages.append(max(1, math.ceil(total / PAGE_SIZE)))
    return pages


def _cluster_request(timeouts: Timeouts) -> float:
    """One API server request at worst: every attempt times out (connect + read), with
    the backoff between attempts."""
    return ((timeouts.retries + 1) * (timeouts.connect + timeouts.read)
            + sum(timeouts.backoff * 2 ** i for i in range(timeouts.retries)))


def _cluster_allowance(timeouts: Timeouts, pages: list[int],
                       workers: int = ClusterReading.workers) -> float:
    """Discovery, then the LIST pages (a kind's pages one after the other, kinds spread
    over ``workers``: at most total/workers + the longest kind, in requests)."""
    return (1 + math.ceil(sum(pages) / workers) + max(pages)) * _cluster_request(timeouts)


def _service_allowance(name: str, checks: int) -> float:
    """Each live check pays at most one request's attempts: after a connection-level
    failure the client's Guard fails the following calls at once."""
    return checks * (ATTEMPTS[name] * SERVICE_TIMEOUT + SLACK)


@pytest.fixture(scope="module")
def faulty_kafka(proxies: Toxiproxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A test-scoped broker whose advertised listener is a proxy; yields the proxy address.

    The shared broker advertises its own port, to which clients would reconnect past any
    proxy; restarting it with another listener would disturb every other test.
    """
    ctx = Context(home=tmp_path_factory.mktemp("kafka-faults"), cache=testenv_config.cache_dir(),
                  state={}, quiet=True)
    broker = free_port()
    ctx.process("kafka")["ports"]["broker"] = broker  # start() reuses a recorded free port
    listen = proxies.create("kafka", f"127.0.0.1:{broker}")
    testenv_kafka.start(ctx, testenv_kafka.prepare(ctx), advertised=listen)
    proc = ctx.process("kafka")
    try:
        testenv_kafka.wait(ctx)
        wait_for(lambda: _coordinator_ready(testenv_kafka.client_config(ctx.state["kafka"])),
                 what="the group coordinator", component="kafka", timeout=120,
                 log=ctx.log_path("kafka"), pid=proc["pid"], started=proc["start"])
        yield listen
    finally:
        if stop_group(proc["pid"], proc["start"]):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc["pid"], 0)  # our child: collected now, not left a zombie


def _coordinator_ready(settings: dict[str, Any]) -> bool:
    """Whether a fresh broker answers group requests (its __consumer_offsets is loaded):
    before that it says NOT_COORDINATOR, a state no fault-free run should see."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**settings, "logger": logging.getLogger("faults.kafka")})
    description = admin.describe_consumer_groups(["soma-audit-faults"], request_timeout=5)
    description["soma-audit-faults"].result(timeout=6)
    return True


@pytest.fixture(scope="module")
def lanes(proxies: Toxiproxy, faulty_kafka: str, kube_env: Any, openfga_env: Any,
          kafka_env: Any, prometheus_env: Any,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Lane]:
    """The four lanes, each with its fault-free run (run at once)."""
    work = tmp_path_factory.mktemp("faults")
    repo = demo_tree(work / "repo")
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump({
        "repo": str(repo),
        "openfga": {"timeout_seconds": SERVICE_TIMEOUT},
        "prometheus": {"timeout_seconds": SERVICE_TIMEOUT},
        "kafka": {"timeout_seconds": SERVICE_TIMEOUT},
    }), encoding="utf-8")
    configured = load_config(config_file)
    assert {configured.openfga.timeout_seconds, configured.prometheus.timeout_seconds,
            configured.kafka.timeout_seconds} == {SERVICE_TIMEOUT}
    catalog = load_catalog()
    checks = [c for c in catalog if c.id in ONLY]
    probes = load_probes()
    small = [c for c in checks if "PrometheusRule" not in probes[c.probe].kinds]
    small += [c for c in catalog if c.id in KUBE_ALSO]
    kube_only = tuple(c.id for c in small)
    kinds = set().union(*(probes[c.probe].kinds for c in small))
    needing = {name: {c.id for c in checks if name in c.requires}
               for name in ("openfga", "prometheus", "kafka")}
    base = service_env(kube_env, openfga_env, kafka_env, prometheus_env) | {
        "SOMA_AUDIT_STATE": str(work / "state")}

    kube_listen = proxies.create("kube", kube_env.server.split("://", 1)[1])
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(Path(kube_env.readonly_kubeconfig).read_text(encoding="utf-8")
                          .replace(kube_env.server, f"https://{kube_listen}"), encoding="utf-8")
    fga = proxies.create("openfga", openfga_env.url.split("://", 1)[1])
    prom = proxies.create("prometheus", prometheus_env.url.split("://", 1)[1])
    timeouts = Timeouts()
    admin = ClusterSource(str(kube_env.admin_kubeconfig))
    found = {
        "kube-apiserver": Lane("kube-apiserver", "kube", base | {"KUBECONFIG": str(kubeconfig)},
                               set(kube_only), kube_only, timeouts.connect + timeouts.read,
                               timeouts.connect / 10,
                               _cluster_allowance(timeouts, _pages(admin, kinds)),
                               bandwidth=1024, cut_after=1, cut_on_connection=2,
                               allowance_dead=_cluster_request(timeouts)),
        "OpenFGA": Lane("OpenFGA", "openfga", base | {"SOMA_AUDIT_OPENFGA_URL": f"http://{fga}"},
                        needing["openfga"], ONLY, SERVICE_TIMEOUT, SERVICE_TIMEOUT / 10,
                        _service_allowance("OpenFGA", len(needing["openfga"])),
                        bandwidth=16, cut_after=1.5),
        "Prometheus": Lane("Prometheus", "prometheus",
                           base | {"SOMA_AUDIT_PROMETHEUS_URL": f"http://{prom}"},
                           needing["prometheus"], ONLY, SERVICE_TIMEOUT, SERVICE_TIMEOUT / 10,
                           _service_allowance("Prometheus", len(needing["prometheus"])),
                           bandwidth=16, cut_after=1.5),
        "Kafka": Lane("Kafka", "kafka", base | {"SOMA_AUDIT_KAFKA_BOOTSTRAP": faulty_kafka},
                      needing["kafka"], ONLY, SERVICE_TIMEOUT, SERVICE_TIMEOUT / 10,
                      _service_allowance("Kafka", len(needing["kafka"])),
                      bandwidth=16, cut_after=1.5),
    }
    for lane in found.values():
        lane.argv = ["--ci", "--format", "json", "--config", str(config_file),
                     *(arg for check in lane.only for arg in ("--only", check))]
        lane.cwd = work

    def fault_free(lane: Lane) -> None:
        before = proxies.delivered(lane.proxy)
        lane.baseline = run_cli(lane.argv, lane.env, work)
        lane.baseline_bytes = proxies.delivered(lane.proxy) - before

    with ThreadPoolExecutor(max_workers=len(found)) as pool:
        list(pool.map(fault_free, found.values()))
    for lane in found.values():
        run = lane.baseline
        assert run is not None
        assert run.code == 1, (lane.component, run.stderr)  # the shared env is not ready
        assert "Traceback" not in run.stderr, run.stderr
        statuses = _statuses(run)
        assert set(statuses) == set(lane.only)
        errors = {c: _messages(run)[c] for c in lane.affected if statuses[c] == "error"}
        assert not errors, (lane.component, errors)
        assert lane.baseline_bytes > 0, f"nothing went through the {lane.proxy} proxy"
    return found


def _report(run: Run) -> dict[str, Any] | None:
    try:
        return json.loads(run.stdout)
    except ValueError:
        return None


def _statuses(run: Run) -> dict[str, str]:
    report = _report(run)
    return {c["id"]: c["status"] for c in report["checks"]} if report else {}


def _messages(run: Run) -> dict[str, str]:
    report = _report(run)
    if not report:
        return {}
    return {c["id"]: " | ".join(e["message"] for e in c["evidence"]) for c in report["checks"]}


def _short(text: str, keep: int = 110) -> str:
    """A cause for the matrix: ports masked (they change every run), the middle of a long
    line elided (its start says what failed, its end how)."""
    text = PORT.sub("PORT", text)
    return text if len(text) <= 2 * keep else f"{text[:keep]} … {text[-keep:]}"


def _run(lane: Lane, fault: Fault, proxies: Toxiproxy) -> Run:
    """One faulted scan in ``lane``; the proxy is healed afterwards."""
    for kind, stream, attributes in fault.toxics(lane):
        proxies.add(lane.proxy, kind, stream, **attributes)
    if fault.down == "before":
        proxies.enable(lane.proxy, False)
    cut: list[bool] = []
    since = proxies.log_size()

    def cut_mid_scan(process: subprocess.Popen[str]) -> None:
        while process.poll() is None:
            if proxies.accepted(lane.proxy, since) >= lane.cut_on_connection:
                time.sleep(lane.cut_after * lane.moderate)
                proxies.enable(lane.proxy, False)
                cut.append(process.poll() is None)
                return
            time.sleep(0.02)

    try:
        run = run_cli(lane.argv, lane.env, lane.cwd, timeout=lane.bound(fault) + 60,
                      while_running=cut_mid_scan if fault.down == "mid" else None)
    finally:
        proxies.heal(lane.proxy)
    if fault.down == "mid":
        assert cut == [True], f"{lane.component}: the scan ended before the proxy was cut"
    return run


def _observe(lane: Lane, fault: Fault, run: Run) -> tuple[dict[str, Any], list[str]]:
    """What happened, for the matrix, and every broken promise."""
    assert lane.baseline is not None
    problems: list[str] = []
    before, after = _statuses(lane.baseline), _statuses(run)
    messages = _messages(run)
    if run.seconds > lane.bound(fault):
        problems.append(f"took {run.seconds:.1f}s, over the bound {lane.bound(fault):.1f}s")
    if "Traceback" in run.stderr:
        problems.append(f"traceback: {run.stderr[-2000:]}")
    unaffected = set(before) - lane.affected
    changed = sorted(c for c in unaffected if after.get(c) != before[c])
    errors = sorted(c for c in lane.affected if after.get(c) == "error")
    if run.code == 2:
        lines = run.stderr.strip().splitlines()
        if lane.component != "kube-apiserver" or not fault.breaks:
            problems.append("exit 2, but only an unreadable cluster may stop the audit")
        if len(lines) != 1 or not lines[0].startswith("soma-audit: error: ") or (
                "the API server at https://" not in lines[0]):
            problems.append(f"exit 2 without one line naming the API server: {run.stderr!r}")
        outcome = "no report (exit 2)"
        cause = lines[-1] if lines else ""
    elif not after:
        problems.append(f"no JSON report, exit {run.code}: {run.stderr[-500:]!r}")
        outcome, cause = "no report", run.stderr.strip()
    else:
        if changed:
            problems.append(f"checks not needing {lane.component} changed: "
                            + ", ".join(f"{c} {before[c]}->{after.get(c)}" for c in changed))
        if run.code != (1 if "error" in after.values() else lane.baseline.code):
            problems.append(f"exit {run.code} for statuses {sorted(set(after.values()))}")
        if not fault.breaks:
            differs = sorted(c for c in lane.affected if after.get(c) != before[c])
            if differs:
                problems.append(f"{lane.component} checks changed under a harmless fault: "
                                + ", ".join(f"{c}: {messages.get(c)}" for c in differs))
        elif fault.down == "mid":
            if not errors:
                problems.append("no check of the lost component errored")
            stray = [c for c in lane.affected - set(errors) if after.get(c) != before[c]]
            if stray:
                problems.append(f"neither error nor the fault-free result: {stray}")
        elif errors != sorted(lane.affected):
            problems.append(f"not error: {sorted(lane.affected - set(errors))}")
        for check in errors:
            text = messages.get(check, "")
            if lane.component != "kube-apiserver" and not (
                    any(text.startswith(f"{lane.component} {word}:")
                        for word in FAILURE_WORDS)):
                problems.append(f"{check}: the cause is not named: {text!r}")
        outcome = (f"{len(errors)}/{len(lane.affected)} checks error"
                   if errors else f"{len(lane.affected)} checks as fault-free")
        cause = messages.get(errors[0], "") if errors else ""
    observed = {
        "component": lane.component, "fault": fault.name, "exit": run.code,
        "seconds": round(run.seconds, 1), "bound": round(lane.bound(fault), 1),
        "outcome": outcome, "unaffected": f"{len(unaffected) - len(changed)}/{len(unaffected)}"
        " unchanged" if after and unaffected else "-",
        "cause": _short(cause),
    }
    return observed, problems


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_on_each_component(fault: Fault, lanes: dict[str, Lane], proxies: Toxiproxy,
                                 figures: Figures) -> None:
    with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
        runs = dict(zip(lanes, pool.map(lambda lane: _run(lane, fault, proxies),
                                        lanes.values()), strict=True))
    failures = []
    for name, lane in lanes.items():
        observed, problems = _observe(lane, fault, runs[name])
        figures.add("faults", f"{name} | {fault.name}", observed)
        figures.add("fault_kinds", fault.name, fault.describe)
        failures += [f"{name}: {p}" for p in problems]
    for name, lane in lanes.items():
        assert lane.baseline is not None
        figures.add("fault_baselines", name, {"seconds": round(lane.baseline.seconds, 1),
                                              "bytes": lane.baseline_bytes,
                                              "allowance": round(lane.allowance, 1),
                                              "allowance_dead": lane.allowance_dead})
    assert not failures, "\n".join(failures)


def _policies(api_client: Any, namespace: str, names: tuple[str, ...]) -> list[str]:
    """Which of the NetworkPolicies ``names`` exist (read directly, not through a proxy)."""
    from kubernetes import client

    found = client.NetworkingV1Api(api_client).list_namespaced_network_policy(
        namespace, _request_timeout=10)
    return [p.metadata.name for p in found.items if p.metadata.name in names]


def test_apply_cut_between_objects_is_rolled_back_exactly(
        proxies: Toxiproxy, kube_env: Any, kube_admin_client: Any,
        unique_name: Callable[[str], str], tmp_path: Path, figures: Figures) -> None:
    """``apply`` through a proxy that dies once its first object is written: the apply
    reports the failure and the backup, and ``rollback`` (the server back) restores all."""
    from kubernetes import client

    namespace = unique_name("faults-apply")
    client.CoreV1Api(kube_admin_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    services = [{"name": "gateway-api", "port": 10000}, {"name": "orchestrator", "port": 10001}]
    apps = client.AppsV1Api(kube_admin_client)
    for service in services:
        labels = {"app": service["name"]}
        apps.create_namespaced_deployment(namespace, client.V1Deployment(
            metadata=client.V1ObjectMeta(name=service["name"], labels=labels),
            spec=client.V1DeploymentSpec(
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(
                        name=service["name"], image=f"soma/{service['name']}:1.0",
                        ports=[client.V1ContainerPort(container_port=service["port"])])])))))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({
        "namespace": namespace, "services": services,
        "flows": [{"from": "gateway-api", "to": "orchestrator", "port": 10001}],
        "namespaces": {namespace: {"enforce": "restricted"}}}), encoding="utf-8")
    listen = proxies.create("kube-apply", kube_env.server.split("://", 1)[1])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(kube_env.admin_kubeconfig).read_text(encoding="utf-8")
                          .replace(kube_env.server, f"https://{listen}"), encoding="utf-8")
    env = {"KUBECONFIG": str(kubeconfig), "SOMA_AUDIT_STATE": str(tmp_path / "state")}
    names = ("default-deny-all", "allow-dns-egress")
    assert not _policies(kube_admin_client, namespace, names)
    # Every answer late by APPLY_LATENCY: the cut lands after the first write is saved
    # and before the next one is sent.
    proxies.add("kube-apply", "latency", "downstream", latency=int(APPLY_LATENCY * 1000))
    cut: list[bool] = []

    def cut_after_first_write(process: subprocess.Popen[str]) -> None:
        while process.poll() is None:
            if _policies(kube_admin_client, namespace, names):
                proxies.enable("kube-apply", False)
                cut.append(True)
                return
            time.sleep(0.02)

    applied = run_cli(["--config", str(config_file), "apply", "netpol-baseline", "--yes"],
                      env, tmp_path, while_running=cut_after_first_write)
    proxies.heal("kube-apply")
    written = _policies(kube_admin_client, namespace, names)
    assert cut, f"the apply ended before its first write: {applied.stdout}{applied.stderr}"
    assert written, "nothing was written before the cut"
    assert "Traceback" not in applied.stderr, applied.stderr
    lines = applied.stderr.strip().splitlines()
    assert applied.code == 2 and len(lines) == 1, applied.stderr
    assert lines[0].startswith("soma-audit: error: apply of netpol-baseline failed at "), lines
    (backup,) = (tmp_path / "state" / "backups").glob("*-netpol-baseline")
    assert f"soma-audit rollback {backup.name}" in lines[0], lines[0]
    # The server is gone: restoring what was written cannot work either, and says so.
    assert "the automatic rollback failed" in lines[0], lines[0]

    listing = run_cli(["rollback"], env, tmp_path)
    row = next(line for line in listing.stdout.splitlines() if backup.name in line)
    assert "interrupted" in row, listing.stdout
    restored = run_cli(["rollback", backup.name, "--yes"], env, tmp_path)
    assert restored.code == 0, restored.stdout + restored.stderr
    assert "Traceback" not in restored.stderr
    assert not _policies(kube_admin_client, namespace, names)
    figures.add("faults", "kube-apiserver | cut mid-apply", {
        "component": "kube-apiserver", "fault": "cut mid-apply", "exit": applied.code,
        "seconds": round(applied.seconds, 1), "bound": "-",
        "outcome": f"written before the cut: {', '.join(written)}; automatic rollback "
                   f"failed too (server gone), backup left 'interrupted'; server back: "
                   f"`rollback {{id}} --yes` exit {restored.code}, "
                   f"{len(names)} objects as before",
        "unaffected": "-", "cause": _short(lines[0])})
    figures.add("fault_kinds", "cut mid-apply",
                f"`apply netpol-baseline --yes`, answers late by {APPLY_LATENCY:g} s, proxy "
                "disabled once the first NetworkPolicy exists (read directly)")
