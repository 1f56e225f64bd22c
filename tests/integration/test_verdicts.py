"""bench/verdicts.py on the real API server: a recorded scan replays with the same verdicts.

A small scan (the checks reading Chaos Mesh Schedules, whose evidence depends on the
clock, and Pods' privileges) of the test API server is recorded through the proxy; the
working tree replayed on the recording gives the recorded report, verdict for verdict.
The comparison must see a difference: a doctored report, and a doctored answer in the
recording, both make it report the changed check.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bench import verdicts
from soma_audit.sources import discovery
from tests.integration.conftest import KubeEnv

pytestmark = pytest.mark.integration

ONLY = ["--only", "chaos.recent-runs", "--only", "pss.no-privileged"]
SCHEDULES = "GET /apis/chaos-mesh.org/v1alpha1/schedules?limit=500"
FORBIDDEN = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Forbidden", "code": 403,
                        "message": "schedules is forbidden"}).encode()


def _replayed(directory: Path) -> dict[str, Any]:
    """The working tree's JSON report on the recording, as `replay` runs it."""
    recording = verdicts.Recording.load(directory)
    names = {k: recording.meta[k] for k in ("context", "cluster", "user")}
    with tempfile.TemporaryDirectory(prefix="verdicts-test-") as scratch_dir:
        scratch = Path(scratch_dir)
        with verdicts.serving(recording, None, scratch) as (proxy, ca):
            return verdicts.scan(
                verdicts.ROOT, recording.meta["recorded_at"],
                ["--ci", *recording.meta["args"], "--format", "json"], scratch,
                verdicts.proxy_kubeconfig(names, proxy.url, ca, scratch))


@pytest.fixture(scope="module")
def recorded(kube_env: KubeEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("recording")
    assert verdicts.main(["record", "--out", str(directory), "--kubeconfig",
                          str(kube_env.admin_kubeconfig), "--", *ONLY]) == 0
    return directory


def test_a_replayed_scan_has_the_recorded_verdicts(recorded: Path) -> None:
    live = json.loads((recorded / verdicts.LIVE_REPORT).read_text())
    assert {c["id"] for c in live["checks"]} == {"chaos.recent-runs", "pss.no-privileged"}
    index = json.loads((recorded / verdicts.INDEX).read_text())
    requests = {a["request"] for a in index["answers"]}
    assert SCHEDULES in requests
    # Discovery in the form asked for, and plain for a revision that asks for that.
    assert {"GET /apis", f"GET /apis accept:{discovery.ACCEPT}"} <= requests
    replayed = _replayed(recorded)
    assert verdicts.json_differences(live, replayed) == []
    assert replayed["checks"] == live["checks"]  # not just the compared fields

    doctored = copy.deepcopy(replayed)
    doctored["checks"][0]["status"] = "waived"
    assert verdicts.json_differences(live, doctored) == [
        f"{doctored['checks'][0]['id']}: status {live['checks'][0]['status']} → waived"]


def test_a_changed_answer_in_the_recording_changes_the_verdict(
        recorded: Path, tmp_path: Path) -> None:
    """The replay reads the recording: Schedules answered 403 make the check `error`."""
    live = json.loads((recorded / verdicts.LIVE_REPORT).read_text())
    recording = verdicts.Recording.load(recorded)
    recording.answers[SCHEDULES] = [verdicts.Answer(
        403, [("Content-Type", "application/json")], FORBIDDEN)]
    recording.save(tmp_path)
    found = verdicts.json_differences(live, _replayed(tmp_path))
    before = next(c["status"] for c in live["checks"] if c["id"] == "chaos.recent-runs")
    assert before != "error"
    assert f"chaos.recent-runs: status {before} → error" in found
    assert not any(line.startswith("pss.no-privileged") for line in found)
