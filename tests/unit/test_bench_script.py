"""The pure parts of bench/run.py (no cluster): manifests, statistics, metric parsing.

The benchmark itself asserts no time; this only keeps the script importable and its
arithmetic right.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import run


def test_a_namespace_is_somaagenthub_shaped_with_marker_last() -> None:
    objs = run.namespace_objects(7)
    counts = run.kind_counts(objs)
    assert objs[0]["kind"] == "Namespace"
    assert objs[0]["metadata"]["name"] == "bench-0007"
    assert objs[-1]["metadata"]["name"] == run.MARKER
    assert counts == {
        "Application": 12, "ConfigMap": 13, "Deployment": 12, "KafkaTopic": 4,
        "KafkaUser": 2, "Namespace": 1, "NetworkPolicy": 12, "Pod": 25,
        "PrometheusRule": 1, "ReplicaSet": 12, "Schedule": 1, "Service": 12, "StatefulSet": 1,
    }
    assert sum(counts.values()) == run.OBJECTS_PER_NAMESPACE == len(objs)
    assert set(counts) <= set(run.PATHS)
    names = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(names) == len(set(names))


def test_pods_are_owned_running_and_each_their_own() -> None:
    """As a running cluster holds them: every Pod owned (by its namespace's ReplicaSet or
    StatefulSet), bound to a node, with a status of its own; controllers with status."""
    objs = run.namespace_objects(3) + run.namespace_objects(4)
    owners = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
              for o in objs if o["kind"] in ("ReplicaSet", "StatefulSet", "Deployment")}
    pods = [o for o in objs if o["kind"] == "Pod"]
    for pod in pods:
        (owner,) = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], pod["metadata"]["namespace"], owner["name"]) in owners
        assert pod["spec"]["nodeName"].startswith("node-")
        assert pod["status"]["phase"] == "Running"
    for unique in (lambda p: p["status"]["podIP"],
                   lambda p: p["status"]["containerStatuses"][0]["containerID"],
                   lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        assert len({unique(p) for p in pods}) == len(pods)
    for rs in (o for o in objs if o["kind"] == "ReplicaSet"):
        assert rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
        assert ("Deployment", rs["metadata"]["namespace"],
                rs["metadata"]["ownerReferences"][0]["name"]) in owners
    assert all("status" in o for o in objs if o["kind"] in ("Deployment", "StatefulSet"))
    assert run.namespace_objects(3) == run.namespace_objects(3)  # reproducible


def test_sizes_round_up_to_whole_namespaces() -> None:
    per = run.OBJECTS_PER_NAMESPACE
    assert run.namespaces_for(1) == 1
    assert run.namespaces_for(per) == 1
    assert run.namespaces_for(per + 1) == 2
    for size in run.SIZES:
        n = run.namespaces_for(size)
        assert size <= n * per < size + per


def test_object_paths() -> None:
    ns, deploy = run.namespace_objects(0)[:2]
    assert run.object_path(ns) == "/api/v1/namespaces"
    assert run.object_path(deploy) == "/apis/apps/v1/namespaces/bench-0000/deployments"


def test_summary_is_the_median_and_ratios_compare_medians() -> None:
    samples = [run.Sample(3.0, 1.0, 100.0), run.Sample(1.0, 2.0, 90.0),
               run.Sample(2.0, 3.0, 95.0, rc=1)]
    summary = run.summarize(samples)
    assert summary["n"] == 3
    assert summary["wall_s"] == 2.0
    assert (summary["wall_s_min"], summary["wall_s_max"]) == (1.0, 3.0)
    assert summary["rss_mb"] == 95.0
    assert summary["rc"] == [0, 0, 1]
    assert run.summarize([]) == {"n": 0}
    summaries = {"soma-audit": {"wall_s": 3.0}, "baseline": {"wall_s": 2.0},
                 "popeye": {"wall_s": 6.0}, "polaris": {"n": 0}}
    assert run.ratios(summaries) == {"baseline": 1.5, "popeye": 0.5}


def test_growth_is_the_log_log_slope() -> None:
    assert run.growth([(1000, 1.0), (10000, 10.0)]) == 1.0
    assert run.growth([(1000, 2.0), (4000, 4.0)]) == 0.5
    assert run.growth([(1000, 1.0)]) is None


def test_request_totals_are_parsed_and_diffed() -> None:
    before = run.parse_request_totals(
        'apiserver_request_total{code="200",component="apiserver",group="apps",resource='
        '"deployments",scope="cluster",subresource="",verb="LIST",version="v1"} 4\n'
        '# HELP something else\n'
        'apiserver_request_total{code="200",group="",resource="",verb="GET"} 10\n')
    after = run.parse_request_totals(
        'apiserver_request_total{code="200",component="apiserver",group="apps",resource='
        '"deployments",scope="cluster",subresource="",verb="LIST",version="v1"} 7\n'
        'apiserver_request_total{code="200",group="",resource="namespaces",subresource="",'
        'verb="PATCH"} 2\n'
        'apiserver_request_total{code="200",group="",resource="",verb="GET"} 11\n')
    assert before["LIST apps/deployments"] == 4
    assert run.diff_totals(before, after) == {"LIST apps/deployments": 3, "PATCH namespaces": 2}


def test_continue_token_is_read_without_decoding() -> None:
    head = (b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9",'
            b'"continue":"eyJ2IjoiIn0","remainingItemCount":3},"items":[')
    assert run.continue_token(head) == "eyJ2IjoiIn0"
    assert run.continue_token(b'{"metadata":{"resourceVersion":"9"},"items":[]}') == ""
    # custom resources: keys sorted, metadata after a long items array
    tail = (b'{"apiVersion":"chaos-mesh.org/v1alpha1","items":[' + b'{"a":1},' * 2000
            + b'{"a":1}],"kind":"ScheduleList",'
            + b'"metadata":{"continue":"abc","resourceVersion":"9"}}')
    assert run.continue_token(tail) == "abc"


def test_markdown_rows_show_ratios_to_baseline() -> None:
    data = {"seed": {"bench_objects": 2016}, "cluster_objects": {"Pod": 10, "Namespace": 5},
            "summaries": {"baseline": run.summarize([run.Sample(0.5)]),
                          "soma-audit": run.summarize([run.Sample(1.0, 2.0, 150.0,
                                                                  server_cpu_s=0.75)]),
                          "popeye": run.summarize([run.Sample(4.0, 1.0, 900.0)])}}
    table = run.markdown_rows([data])
    assert "| 2,016 / 15 | soma-audit | 1.000 | 2.00 | 0.75 | 150 | 2.00 | — |" in table
    assert "| 2,016 / 15 | popeye | 4.000 | 1.00 | — | 900 | 8.00 | 0.25 |" in table


def test_load_rows_show_the_spread_of_the_load_average() -> None:
    rows = run.load_rows([{"size": 30000, "load_average": [5.0, 2.5, 7.25]},
                          {"size": 2000}])
    assert "| 30,000 | 2.5 / 5.0 / 7.2 | 3 |" in rows
    assert "2,000" not in rows  # no samples recorded: no row


def test_levers_not_measured_again_are_carried_over(tmp_path: Path) -> None:
    from bench.levers import carried_over

    old = [{"name": "a", "subject": "ci", "size": 30000, "after_summary": {"wall_s": 1}},
           {"name": "b", "subject": "fleet", "latency": 50, "after_summary": {"wall_s": 2}}]
    (tmp_path / "2026-12-01-levers.json").write_text(json.dumps({"levers": old}))
    (tmp_path / "2026-11-01-levers.json").write_text(json.dumps({"levers": [
        {"name": "gone", "subject": "ci"}]}))
    again = [{"name": "b", "subject": "fleet", "latency": 50, "after_summary": {"wall_s": 3}}]
    assert carried_over(tmp_path, again) == old[:1]
    assert carried_over(tmp_path / "none", again) == []
