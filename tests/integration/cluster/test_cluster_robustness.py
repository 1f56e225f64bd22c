"""Robustness of live audits: unusable kubeconfigs, an unreachable or vanishing API server,
least privilege (the read-only ServiceAccount, a kind it may not list) and what a scan
costs the API server (its own request metrics and audit log)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.core.errors import AuditError
from soma_audit.core.model import Status
from soma_audit.core.paths import data_path
from soma_audit.sources.cluster import PAGE_SIZE, ClusterSource, Timeouts
from tests.integration.cluster.kube_helpers import (
    AdminKube,
    audit,
    audit_events,
    cluster_source,
    only,
    rbac_rules,
    request_totals,
    service_account_kubeconfig,
    show,
)

pytestmark = pytest.mark.integration
SOMA_AUDIT = str(Path(sys.executable).parent / "soma-audit")
QUICK = Timeouts(connect=2, read=10, retries=1, backoff=0.05)


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SOMA_AUDIT_", "KUBECONFIG"))}
    return subprocess.run([SOMA_AUDIT, "--ci", *args], capture_output=True, text=True,
                          timeout=120, env={**base, **(env or {})}, check=False)


def _one_line_exit_2(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert done.stdout == ""


def test_missing_kubeconfig_is_one_line_exit_2(tmp_path: Path) -> None:
    _one_line_exit_2(_run_cli("--kubeconfig", str(tmp_path / "nope")), "kubeconfig not found")


def test_corrupt_kubeconfig_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    bad.write_text("clusters: [unclosed\n  : : :\n")
    _one_line_exit_2(_run_cli("--kubeconfig", str(bad)), "kubeconfig")


def test_unknown_context_is_one_line_exit_2(kube_env: Any) -> None:
    done = _run_cli("--kubeconfig", str(kube_env.admin_kubeconfig), "--context", "nowhere")
    _one_line_exit_2(done, "context 'nowhere' not found", "soma-testenv-admin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kubeconfig_for(kube_env: Any, server: str, path: Path) -> Path:
    config = yaml.safe_load(kube_env.admin_kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(config))
    return path


def test_unreachable_server_is_one_line_exit_2(kube_env: Any, tmp_path: Path) -> None:
    dead = _kubeconfig_for(kube_env, f"https://127.0.0.1:{_free_port()}", tmp_path / "dead")
    started = time.monotonic()
    done = _run_cli("--kubeconfig", str(dead))
    _one_line_exit_2(done, "cannot reach the API server at https://127.0.0.1:")
    assert time.monotonic() - started < 60


class CuttingProxy:
    """A TCP pass-through in front of the real API server that can be cut at will.

    A fake only for the fault itself: the real kube-apiserver cannot be made to vanish at a
    chosen point of one scan (it is shared); everything before the cut is the real server.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.cut_done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut_done.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_done.is_set():
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """The server goes away: open connections drop, new ones are refused."""
        self.cut_done.set()
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


@pytest.fixture
def proxy(kube_env: Any) -> Iterator[CuttingProxy]:
    host, port = kube_env.server.removeprefix("https://").rsplit(":", 1)
    p = CuttingProxy((host, int(port)))
    yield p
    p.cut()


class _CutAfterFirstKind(ClusterSource):
    """The real source; the proxy is cut once the first kind has been listed in full."""

    proxy: CuttingProxy

    def _list(self, info: Any, version: str) -> Iterator[Any]:
        yield from super()._list(info, version)
        self.proxy.cut()


class _CutAfterDiscovery(ClusterSource):
    proxy: CuttingProxy

    def served(self) -> Any:
        served = super().served()
        self.proxy.cut()
        return served


def test_server_lost_mid_scan_errors_only_the_unread_checks(
        kube_env: Any, proxy: CuttingProxy, tmp_path: Path) -> None:
    config = _kubeconfig_for(kube_env, f"https://127.0.0.1:{proxy.port}", tmp_path / "proxy")
    source = _CutAfterFirstKind(str(config), timeouts=QUICK, workers=1)
    source.proxy = proxy
    # Kinds are listed in name order: Application first, then Namespace, workloads, ...
    report = audit(source, ["argocd.apps-healthy", "pss.namespace-labels"])
    argo, labels = only(report, "argocd.apps-healthy"), only(report, "pss.namespace-labels")
    assert argo.status in (Status.PASS, Status.FAIL), show(argo)
    assert labels.status is Status.ERROR, show(labels)
    assert any(e.object == "Namespace" and "after 2 attempts" in e.message
               for e in labels.evidence), show(labels)


def test_server_lost_before_any_list_cannot_run(kube_env: Any, proxy: CuttingProxy,
                                                tmp_path: Path) -> None:
    config = _kubeconfig_for(kube_env, f"https://127.0.0.1:{proxy.port}", tmp_path / "proxy")
    source = _CutAfterDiscovery(str(config), timeouts=QUICK, workers=2)
    source.proxy = proxy
    with pytest.raises(AuditError, match=r"lost the API server at .*nothing could be listed"):
        audit(source, ["argocd.apps-healthy", "pss.namespace-labels"])


def test_full_audit_with_the_readonly_service_account_completes(kube_env: Any) -> None:
    done = _run_cli("--kubeconfig", str(kube_env.readonly_kubeconfig), "--format", "json")
    assert done.returncode == 1, done.stderr  # ran; the shared cluster is not ready
    report = json.loads(done.stdout)
    assert report["source"]["kind"] == "cluster"
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    evidence = {c["id"]: " ".join(e["message"] for e in c["evidence"])
                for c in report["checks"]}
    assert not [i for i, text in evidence.items() if "needs list on" in text], evidence
    # Without --probe-writes nothing write-shaped is sent: the read-only role is enough.
    assert statuses["pss.admission-verdict"] == "skip"
    assert "--probe-writes" in evidence["pss.admission-verdict"]
    assert not [i for i, text in evidence.items() if "forbidden" in text], evidence
    for check_id in ("argocd.apps-healthy", "argocd.last-sync", "chaos.recent-runs",
                     "pss.namespace-labels", "netpol.default-deny", "kafka.topics-declared"):
        assert statuses[check_id] in ("pass", "fail"), (check_id, evidence[check_id])


def test_a_kind_it_may_not_list_errors_only_its_checks(
        kube: AdminKube, kube_env: Any, tmp_path: Path,
        unique_name: Callable[[str], str]) -> None:
    rules = [
        {**rule, "resources": [r for r in rule["resources"] if r != "networkpolicies"]}
        for rule in rbac_rules(data_path("manifests", "rbac", "clusterrole.yaml"))
    ]
    rules = [r for r in rules if r["resources"]]
    kubeconfig, _ = service_account_kubeconfig(kube, tmp_path, unique_name("audit-nonetpol"),
                                               [], rules=rules)
    report = audit(cluster_source(kubeconfig), None)
    needs = "forbidden (needs list on networkpolicies.networking.k8s.io)"
    for result in report.results:
        reads_netpol = any(e.object == "NetworkPolicy" for e in result.evidence)
        if result.check.area == "netpol" and result.check.id not in (
                "netpol.istio-mtls", "netpol.istio-authz", "netpol.denial-logging"):
            assert result.status is Status.ERROR, show(result)
            assert [e.message for e in result.evidence] == [needs], show(result)
        else:
            assert not reads_netpol, show(result)
            assert all(needs not in e.message for e in result.evidence), show(result)


def test_a_scan_is_one_list_per_kind(kube: AdminKube, kube_env: Any) -> None:
    """The API server's own count: apiserver_request_total before/after (shared server, so
    at least ours), and the audit log of the read-only identity, told apart from other
    tests by a unique User-Agent (exactly ours)."""
    source = cluster_source(kube_env.readonly_kubeconfig, workers=4)
    agent = f"soma-audit-count-{uuid.uuid4().hex[:8]}"
    source._user_agent = agent
    offset = kube_env.audit_log.stat().st_size
    before = request_totals(kube)
    started = time.perf_counter()
    report = audit(source, _catalog_ids())
    elapsed = time.perf_counter() - started
    sent = sum(source.requests.values())
    after = request_totals(kube)
    events = [e for e in audit_events(kube_env.audit_log, kube_env.readonly_user, offset)
              if e.get("userAgent") == agent]
    for _ in range(20):  # the audit log is written asynchronously
        if len(events) >= sent:
            break
        time.sleep(0.25)
        events = [e for e in audit_events(kube_env.audit_log, kube_env.readonly_user, offset)
                  if e.get("userAgent") == agent]
    verbs = Counter(e["verb"] for e in events)
    lists = Counter(e["objectRef"]["resource"] for e in events if e["verb"] == "list")
    object_gets = [e for e in events if e["verb"] == "get" and e.get("objectRef")]
    assert set(verbs) <= {"list", "get"}, verbs
    assert not object_gets, object_gets
    assert verbs["get"] == 1  # discovery: /apis
    sizes = Counter(r.kind for r in _inventory(kube_env.readonly_kubeconfig))
    for resource, count in lists.items():
        kind = _kind_of(resource)
        assert count == max(1, math.ceil(sizes.get(kind, 0) / PAGE_SIZE)), (resource, count)
    assert sent == len(events)
    served = Counter(e["objectRef"]["resource"] for e in events if e["verb"] == "list"
                     and e.get("responseStatus", {}).get("code") == 200)
    # Discovery names the resources served: a CRD not installed is not listed at all.
    assert served == lists, lists - served
    for resource, count in served.items():
        group = _group_of(resource)
        delta = after.get(("LIST", group, resource), 0) - before.get(("LIST", group, resource), 0)
        assert delta >= count, (resource, delta, count)
    print(f"\nscan: {len(lists)} kinds ({len(served)} served), {sum(lists.values())} LIST + "
          f"{verbs['get']} GET requests, {len(report.results)} checks in {elapsed:.2f}s")


def _catalog_ids() -> list[str]:
    from soma_audit.catalog.checks import load_catalog

    return [c.id for c in load_catalog() if not c.manual]


def _inventory(kubeconfig: Path) -> list[Any]:
    from soma_audit.sources.kinds import KINDS

    return list(cluster_source(kubeconfig).load(frozenset(KINDS)))


def _kind_of(resource: str) -> str:
    from soma_audit.sources.kinds import KINDS

    return next(k.kind for k in KINDS.values() if k.plural == resource)


def _group_of(resource: str) -> str:
    from soma_audit.sources.kinds import KINDS

    return next(k.group for k in KINDS.values() if k.plural == resource)
