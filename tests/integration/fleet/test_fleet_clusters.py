"""Fleet audits against two real API servers: the testenv's and a second one of our own.

Both are seeded differently (a labelled and a bare namespace on one, only a bare one on the
other), audited concurrently by the CLI as a user or CI runs it, then the second server is
killed: its section must say it could not be reached while the first cluster's results
stay the same, and `--all-contexts` must cover every context of the kubeconfig.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testenv.apiservers import ExtraApiServer, start_extra_apiserver, write_kubeconfig
from testenv.proc import free_port
from tests.helpers import fresh_suffix
from tests.integration.cluster.kube_helpers import admin_kube, namespace

REPO = Path(__file__).resolve().parents[3]
RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted"
              for mode in ("enforce", "audit", "warn")}


@dataclass(frozen=True)
class Fleet:
    """The kubeconfig (contexts a, b, down) and the namespaces seeded on a and b."""

    kubeconfig: Path
    second: ExtraApiServer
    a_labelled: str
    a_bare: str
    b_bare: str


@pytest.fixture(scope="module")
def fleet(kube_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    second = start_extra_apiserver(tmp_path_factory.mktemp("second-apiserver"),
                                   prefix_name="soma-fleet")
    try:
        tag = fresh_suffix()
        first = admin_kube(kube_env.admin_kubeconfig, kube_env.server)
        seeded = Fleet(
            kubeconfig=write_kubeconfig(
                tmp_path_factory.mktemp("fleet") / "kubeconfig",
                {"a": kube_env.server, "b": second.server,
                 "down": f"https://127.0.0.1:{free_port()}"},
                kube_env.admin_kubeconfig.parent / "kube" / "pki",
            ),
            second=second,
            a_labelled=namespace(first, f"fleet-a-labelled-{tag}", RESTRICTED),
            a_bare=namespace(first, f"fleet-a-bare-{tag}"),
            b_bare=namespace(second.admin, f"fleet-b-bare-{tag}"),
        )
        yield seeded
    finally:
        second.stop()
    assert not second.running()


def _soma(fleet: Fleet, *args: str, fmt: str = "json") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SOMA_AUDIT_") and k != "KUBECONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "soma_audit", "--ci", "--kubeconfig", str(fleet.kubeconfig),
         "--format", fmt, "--only", "pss.*", *args],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=clean,
        stdin=subprocess.DEVNULL,
    )


def _objects(report: dict[str, Any], cluster: str, check: str) -> set[str]:
    """The objects named by one cluster's check."""
    (found,) = [c for c in report["checks"] if c["cluster"] == cluster and c["id"] == check]
    return {e["object"] for e in found["evidence"]}


def _interval(entry: dict[str, Any]) -> tuple[float, float]:
    start = dt.datetime.fromisoformat(entry["started"]).timestamp()
    return start, start + entry["duration_seconds"]


def test_two_clusters_then_one_down_then_all_contexts(fleet: Fleet) -> None:
    both = _soma(fleet, "--context", "a", "--context", "b")
    assert both.returncode == 1, both.stderr
    assert both.stderr == "", both.stderr
    report = json.loads(both.stdout)
    clusters = {c["name"]: c for c in report["clusters"]}
    assert list(clusters) == ["a", "b"]
    assert report["source"] == {"kind": "cluster", "ref": "a, b"}
    for name in ("a", "b"):
        assert clusters[name]["error"] is None and clusters[name]["exit_code"] == 1
        assert clusters[name]["source"] == {"kind": "cluster", "ref": name}
        assert sum(clusters[name]["summary"].values()) == len(
            [c for c in report["checks"] if c["cluster"] == name])
    assert report["summary"] == {
        status: clusters["a"]["summary"][status] + clusters["b"]["summary"][status]
        for status in report["summary"]}
    # Concurrent, not one after the other: each cluster's scan began before the other ended.
    (a_start, a_end), (b_start, b_end) = _interval(clusters["a"]), _interval(clusters["b"])
    assert max(a_start, b_start) < min(a_end, b_end), clusters
    # Each cluster's results come from its own server, as seeded.
    a_labels = _objects(report, "a", "pss.namespace-labels")
    b_labels = _objects(report, "b", "pss.namespace-labels")
    assert f"Namespace/{fleet.a_bare}" in a_labels and f"Namespace/{fleet.b_bare}" in b_labels
    assert f"Namespace/{fleet.b_bare}" not in a_labels
    assert not {f"Namespace/{fleet.a_bare}", f"Namespace/{fleet.a_labelled}"} & b_labels
    (labelled,) = [c for c in report["checks"] if c["cluster"] == "a"
                   and c["id"] == "pss.namespace-labels"]
    assert f"Namespace/{fleet.a_labelled}" not in {
        e["object"] for e in labelled["evidence"] if "unset" in e["message"]}

    fleet.second.stop()
    every = _soma(fleet, "--all-contexts")
    assert every.returncode == 2, every.stderr
    assert "Traceback" not in every.stderr
    report_down = json.loads(every.stdout)
    after = {c["name"]: c for c in report_down["clusters"]}
    assert list(after) == ["a", "b", "down"]
    for name in ("b", "down"):
        assert after[name]["exit_code"] == 2 and after[name]["summary"] is None
        assert "cannot reach the API server" in after[name]["error"], after[name]
        assert not [c for c in report_down["checks"] if c["cluster"] == name]
    lines = every.stderr.splitlines()
    assert len(lines) == 2 and all("cannot reach the API server" in line for line in lines)
    assert [line.split("'")[1] for line in lines] == ["b", "down"]
    # The reachable cluster is audited as fully as before.
    assert after["a"]["error"] is None and after["a"]["exit_code"] == 1
    before_a = {c["id"]: c["status"] for c in report["checks"] if c["cluster"] == "a"}
    after_a = {c["id"]: c["status"] for c in report_down["checks"] if c["cluster"] == "a"}
    assert after_a == before_a
    assert _objects(report_down, "a", "pss.namespace-labels") >= {f"Namespace/{fleet.a_bare}"}

    table = _soma(fleet, "--context", "a", "--context", "b", fmt="table")
    assert table.returncode == 2, table.stderr
    assert "soma-audit — a (cluster)" in table.stdout
    assert "soma-audit — b (cluster): not audited: cannot reach the API server" in table.stdout
    assert table.stdout.rstrip().splitlines()[-1].endswith("b: not audited, exit 2 → exit 2")
