"""The pure parts of bench/fleet.py: the docs' table and the process-tree walk.

The benchmark itself asserts no time; this keeps the script importable and its table
faithful to a result file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import fleet
from bench.run import descendants, pss_kb

#: The newest result of the default run (``<date>-fleet.json``).
RESULT = max(Path(fleet.RESULTS).glob("*-fleet.json"))


def test_the_table_has_a_row_per_latency_and_subject_and_the_fleet_ratio() -> None:
    results = json.loads(RESULT.read_text())
    table = fleet.markdown(results).splitlines()
    rows = [line for line in table if line.startswith("| ") and " ms |" in line]
    subjects = [*fleet.context_names(), fleet.FLEET]
    assert len(rows) == len(results["latencies"]) * len(subjects)
    for latency in results["latencies"]:
        (fleet_row,) = [r for r in rows if r.startswith(f"| {latency['latency_ms']} ms | fleet |")]
        assert f"**{latency['fleet_over_slowest_single']:.2f}**" in fleet_row
        (slowest,) = [r for r in rows if r.startswith(f"| {latency['latency_ms']} ms | ")
                      and "| slowest |" in r]
        assert f"| {latency['slowest_single']} |" in slowest
    for name, kinds in results["objects"].items():  # each cluster with its listed objects
        assert f"{name} {sum(kinds.values()):,}" in table[0]
    for latency in results["latencies"]:  # the CPU floor, where the servers' CPU was read
        if "cpu_floor_s" in latency:
            assert (f"{latency['latency_ms']} ms: {latency['cpu_floor_s']:.2f} s, "
                    f"{latency['floor_over_slowest_single']:.2f}x") in table[-1]


def test_descendants_include_a_grandchild() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import subprocess; subprocess.run(['sleep', '30'])"],
                             start_new_session=True)
    try:
        found: list[int] = []
        for _ in range(200):
            found = descendants(os.getpid())
            if set(found) - {child.pid}:
                break
            time.sleep(0.05)
        assert child.pid in found
        assert set(found) - {child.pid}, found  # the sleep started by the child
        assert pss_kb(child.pid) > 0
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the child and its sleep
        child.wait()
