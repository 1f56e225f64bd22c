"""bench/docs.py computes each goal's verdict from the figures, and bench/run.py stops a
child at its limits: the pure parts of the benchmark (which itself asserts no time)."""

from __future__ import annotations

import os
import sys
from typing import Any

from bench import docs
from bench.run import TreePss, run_child


def _size(size: int, mine: float, base: float, rss: float,
          peers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    summaries = {"soma-audit": {"n": 3, "wall_s": mine, "rss_mb": rss},
                 "baseline": {"n": 3, "wall_s": base}, **peers}
    return {"size": size, "summaries": summaries, "cluster_objects": {"Pod": size}}


def _verdicts(table: str) -> dict[tuple[str, str], str]:
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    return {(r[0].lstrip("| "), r[1]): r[3].rstrip(" |") for r in rows}


def test_goal_verdicts_follow_the_figures() -> None:
    sizes = [
        _size(10_000, 1.4, 1.0, 90.0, {"polaris": {"n": 3, "wall_s": 9.0}}),
        _size(30_000, 2.0, 1.0, 260.0, {"popeye": {"n": 0, "stopped": "over 16384 MB"}}),
        _size(100_000, 6.0, 4.0, 400.0, {"polaris": {"n": 3, "wall_s": 5.0}}),
    ]
    cold = {"tui_first_frame": {"n": 3, "wall_s": 0.4},
            "tui_first_complete_frame": {"n": 3, "wall_s": 1.2}}
    fleet = {"latencies": [{"latency_ms": 50, "fleet_over_slowest_single": 1.2,
                            "summaries": {"a": {}, "b": {}, "fleet": {}}}]}
    found = _verdicts(docs.goals(sizes, cold, fleet))
    with_forks = _size(100_000, 6.0, 4.0, 400.0, {})
    with_forks["tree_pss_mb"] = {"soma-audit": 460.0}  # the process under, its tree over
    assert _verdicts(docs.goals([with_forks], None, None))[
        ("peak RSS ≤ 450 MB", "100,000")] == "**missed**"
    ratio = "`--ci` ≤ 1.5x the raw-LIST baseline"
    assert found[(ratio, "10,000")] == "**met**"
    assert found[(ratio, "30,000")] == "**missed**"
    assert found[(ratio, "100,000")] == "**met**"
    assert found[("peak RSS ≤ 250 MB", "30,000")] == "**missed**"
    assert found[("peak RSS ≤ 450 MB", "100,000")] == "**met**"
    assert found[("faster than Polaris", "10,000")] == "**met**"
    assert found[("faster than Polaris", "100,000")] == "**missed**"
    assert found[("faster than Popeye", "30,000")] == "**met**"  # it was stopped
    assert found[("TUI first frame on the demo ≤ 0.5 s (headless)", "demo")] == "**met**"
    assert found[("TUI first complete frame ≤ 1.0 s (headless)", "demo")] == "**missed**"
    assert found[("TUI first frame on the demo ≤ 0.5 s (on a terminal)", "demo")] \
        == "not measured"
    assert found[("fleet of 2 ≤ 1.3x the slowest single cluster", "50 ms")] == "**met**"


def test_the_cpu_budget_is_what_the_goal_leaves_after_the_server() -> None:
    measured = _size(30_000, 2.5, 1.0, 100.0, {})
    measured["machine"] = {"cpus": 2}
    measured["summaries"]["soma-audit"] |= {"cpu_s": 3.0, "server_cpu_s": 1.25}
    unmeasured = _size(10_000, 1.0, 0.5, 60.0, {})  # an older round: no server CPU
    rows = docs.cpu_budget([unmeasured, measured]).splitlines()[2:]
    # goal 1.5 s; fits 1.5 * 2 - 1.25; floor (3.0 + 1.25) / 2
    assert rows == ["| 30,000 | 1.50 s | 1.25 s | 1.75 s | 3.00 s | 2.12 s | 2.50 s |"]
    assert "not measured" in docs.cpu_budget([unmeasured])


def test_the_page_has_no_placeholder_left() -> None:
    text = docs.render()
    assert "{{" not in text and "## The goals" in text


def test_a_child_over_its_memory_or_time_is_stopped() -> None:
    grow = [sys.executable, "-c", "import time; b = bytearray(300 << 20); time.sleep(30)"]
    over_memory = run_child(grow, dict(os.environ), timeout=60, max_rss_mb=100)
    assert over_memory.stopped == "over 100 MB" and over_memory.wall_s < 30
    slow = run_child([sys.executable, "-c", "import time; time.sleep(30)"], dict(os.environ),
                     timeout=0.5)
    assert slow.stopped == "over 0.5 s"
    done = run_child([sys.executable, "-c", "pass"], dict(os.environ))
    assert done.stopped == "" and done.rc == 0


def test_the_tree_memory_counts_every_forked_childs_own_pages() -> None:
    # Two forks write 60 MB each of their own: the largest process's RSS sees one of them,
    # the tree's PSS both.
    code = ("import os, time\n"
            "for _ in range(2):\n"
            "    if os.fork() == 0:\n"
            "        own = b'x' * (60 << 20); time.sleep(1.5); os._exit(0)\n"
            "os.wait(); os.wait()\n")
    with TreePss(0.02) as pss:
        sample = run_child([sys.executable, "-c", code], dict(os.environ))
    assert sample.rc == 0
    assert pss.peak_kb / 1024 > 120 > 100 > sample.rss_mb


def test_the_seeding_table_names_each_size_s_shape() -> None:
    seeded = {"namespaces": 19, "bench_objects": 2052, "created": 2052, "seconds": 8.3,
              "rate_per_s": 247.2}
    old = {"size": 2_000, "seed": seeded, "cluster_objects": {"Pod": 475}}
    new = {**old, "size": 10_000, "seed": {**seeded, "shape": 2}}
    rows = docs.seeding_table([old, new]).splitlines()[2:]
    assert rows[0].startswith("| 2,000 | 1 | 19 | 2,052 | 475 | 8 s (247/s) |")
    assert rows[1].startswith("| 10,000 | 2 |")
