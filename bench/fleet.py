"""`make bench`, fleet mode: one audit of four remote clusters against each cluster alone.

Starts four further real kube-apiservers (``testenv/apiservers.py``: each on its own etcd
prefix, bootstrapped with the CRDs), seeds each with :data:`NAMESPACES_PER_CLUSTER` bench
namespaces (``bench/run.py``'s SomaAgentHub-shaped tenants, 96 objects each) and puts a
Toxiproxy in front of every one. Then, per latency, medians of several repetitions of:

- ``single <context>``: ``soma-audit --ci --format json --context <context>`` alone;
- ``fleet``: the four contexts in one ``soma-audit --ci --format json`` run;

and the ratio the fleet is judged by, fleet wall time ÷ the slowest single's.

"Latency L" is a Toxiproxy ``latency`` toxic of L ms on the downstream (server → client)
side of every proxy: each request/answer round trip pays it once, as a request to a
cluster L ms away would; a TLS handshake pays it too (its server flight is delayed), and so
does each new connection's first answer. Bytes flow at loopback speed otherwise.

Figures per subject: wall, CPU (user+sys of the whole process tree, from wait4), the CPU
the servers (the four API servers, their etcd, the proxy) used meanwhile, the peak
RSS of the largest single process (GNU time) and the peak of the summed PSS of the whole
process tree (sampled from /proc every :data:`bench.run.PSS_SAMPLE_SECONDS`; PSS splits the
pages that forked processes share): with one process per cluster the latter is what the
machine pays. The 1-minute load average is recorded at
every timed repetition. Each fleet run is also checked against the single runs of the
same repetition: every cluster's summary and exit code must be the same (``consistent``).

Nothing here asserts a time. Every process started (API servers, Toxiproxy, audits) is
stopped at the end, also on Ctrl-C or SIGTERM; the API servers' etcd keys are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `testenv` and `soma_audit` importable
    sys.path.insert(0, str(ROOT))

import testenv  # noqa: E402
from bench.run import (  # noqa: E402
    OBJECTS_PER_NAMESPACE,
    Api,
    Sample,
    TreePss,
    audit_list_paths,
    clean_env,
    count_objects,
    cpu_seconds,
    run_child,
    seed,
    soma_audit_bin,
    summarize,
)
from testenv import toxiproxy  # noqa: E402
from testenv.apiservers import ExtraApiServer, start_extra_apiserver, write_kubeconfig  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CLUSTERS = 4
#: Ten tenants (960 bench objects, about 1,100 listed with the bootstrap objects): a
#: mid-sized production cluster's workloads, and enough data that parsing and probes cost
#: real CPU next to the waits (seeding four of them takes well under a minute).
NAMESPACES_PER_CLUSTER = 10
LATENCIES_MS = (50, 150)
FLEET = "fleet"


def context_names(count: int = CLUSTERS) -> list[str]:
    """The kube contexts of the benchmark's clusters, in fleet order."""
    return [f"region-{i + 1}" for i in range(count)]


# -- the clusters -----------------------------------------------------------------------
@dataclass
class FleetEnvironment:
    """The running clusters behind their proxies, and the kubeconfig that reaches them."""

    kubeconfig: Path
    proxy: toxiproxy.Server
    servers: dict[str, ExtraApiServer]
    objects: dict[str, dict[str, int]]
    seeding: dict[str, dict[str, Any]]

    @property
    def serving_pids(self) -> tuple[int, ...]:
        """The processes that stand for the remote clusters on this machine: the API
        servers, their etcd and the proxy (their CPU competes with the audit's)."""
        etcd = testenv.state()["components"]["etcd"]["pid"]
        return (*(s.pid for s in self.servers.values()), etcd, self.proxy.pid)

    def set_latency(self, latency_ms: int) -> None:
        """Every proxy: only a downstream latency toxic of ``latency_ms``."""
        for name in self.servers:
            self.proxy.remove_toxics(name)
            if latency_ms:
                self.proxy.add_toxic(name, "latency", "downstream", latency=latency_ms, jitter=0)


def _objects_listed(server: ExtraApiServer) -> dict[str, int]:
    """Objects per kind the audit lists on this server (read directly, not through a proxy)."""
    api = Api(server.server, server.pki, pool=4)
    return count_objects(api, audit_list_paths(api))


@contextlib.contextmanager
def fleet_environment(home: Path, names: Sequence[str], namespaces: int,
                      log: Callable[[str], None] = print) -> Iterator[FleetEnvironment]:
    """Start, seed and proxy one API server per name; stop them all on the way out."""
    servers: dict[str, ExtraApiServer] = {}
    with toxiproxy.running(home / "toxiproxy") as proxy:
        try:
            for name in names:
                started = time.perf_counter()
                servers[name] = start_extra_apiserver(home / name, prefix_name="soma-bench-fleet")
                log(f"{name}: API server {servers[name].server} up in "
                    f"{time.perf_counter() - started:.1f}s")
            seeding = {name: seed(Api(s.server, s.pki, pool=8), namespaces, log)
                       for name, s in servers.items()}
            objects = {name: _objects_listed(s) for name, s in servers.items()}
            proxied = {}
            for name, server in servers.items():
                upstream = server.server.removeprefix("https://").rstrip("/")
                proxied[name] = f"https://{proxy.create_proxy(name, upstream)}"
            pki = next(iter(servers.values())).pki
            kubeconfig = write_kubeconfig(home / "fleet.kubeconfig", proxied, pki)
            yield FleetEnvironment(kubeconfig, proxy, servers, objects, seeding)
        finally:
            for server in servers.values():
                server.stop()


# -- measuring --------------------------------------------------------------------------
@dataclass
class Run:
    """One timed audit run: its sample, the tree's peak PSS and what it reported."""

    sample: Sample
    tree_pss_mb: float
    clusters: dict[str, tuple[dict[str, int] | None, int]]


def run_audit(env: FleetEnvironment, contexts: Sequence[str], scratch: Path) -> Run:
    """``soma-audit --ci --format json`` on ``contexts``; each cluster's (summary, exit),
    and the CPU the servers used meanwhile."""
    cmd = [soma_audit_bin(), "--ci", "--format", "json", "--kubeconfig", str(env.kubeconfig)]
    for context in contexts:
        cmd += ["--context", context]
    out = scratch / f"{uuid.uuid4().hex}.json"
    serving = env.serving_pids
    server_cpu = cpu_seconds(serving)
    with TreePss() as pss:
        sample = run_child(cmd, clean_env(env.kubeconfig), stdout=out)
    sample.server_cpu_s = cpu_seconds(serving) - server_cpu
    try:
        report = json.loads(out.read_text())
    except (OSError, ValueError):
        report = {}
    out.unlink(missing_ok=True)
    if "clusters" in report:
        clusters = {c["name"]: (c["summary"], c["exit_code"]) for c in report["clusters"]}
    else:
        clusters = {contexts[0]: (report.get("summary"), sample.rc)}
    return Run(sample, pss.peak_kb / 1024, clusters)


def summarize_runs(runs: Sequence[Run]) -> dict[str, Any]:
    """``bench.run.summarize`` of the samples, plus the tree's peak PSS (median, max)."""
    out = summarize([r.sample for r in runs])
    if runs:
        trees = [r.tree_pss_mb for r in runs]
        out["tree_pss_mb"] = round(statistics.median(trees), 1)
        out["tree_pss_mb_max"] = round(max(trees), 1)
    return out


def measure_latency(env: FleetEnvironment, latency_ms: int, reps: int, scratch: Path,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Round-robin repetitions (a warm-up first, untimed) of each single and the fleet."""
    env.set_latency(latency_ms)
    names = list(env.servers)
    runs: dict[str, list[Run]] = {**{name: [] for name in names}, FLEET: []}
    load: list[float] = []
    consistent: list[bool] = []
    for rep in range(reps + 1):
        if rep:
            load.append(os.getloadavg()[0])
        singles = {name: run_audit(env, [name], scratch) for name in names}
        fleet = run_audit(env, names, scratch)
        expected = {name: run.clusters.get(name) for name, run in singles.items()}
        same = fleet.clusters == expected and list(fleet.clusters) == names
        if not rep:
            if not same:
                log(f"  warm-up: fleet {fleet.clusters} differs from singles {expected}")
            continue
        consistent.append(same)
        for name, run in singles.items():
            runs[name].append(run)
        runs[FLEET].append(fleet)
        line = "  ".join(f"{n} {r[-1].sample.wall_s:.2f}s" for n, r in runs.items())
        log(f"latency {latency_ms} ms rep {rep}/{reps}: {line}  (load {load[-1]:.2f})")
    summaries = {name: summarize_runs(r) for name, r in runs.items()}
    slowest = max(names, key=lambda n: summaries[n]["wall_s"])
    fleet = summaries[FLEET]
    # The fleet's wall cannot be below its CPU and the servers' together over the cores.
    floor = (fleet["cpu_s"] + fleet["server_cpu_s"]) / (os.cpu_count() or 1)
    return {
        "latency_ms": latency_ms,
        "summaries": summaries,
        "slowest_single": slowest,
        "fleet_over_slowest_single": round(summaries[FLEET]["wall_s"]
                                           / summaries[slowest]["wall_s"], 3),
        "cpu_floor_s": round(floor, 3),
        "floor_over_slowest_single": round(floor / summaries[slowest]["wall_s"], 3),
        "fleet_over_mean_single": round(summaries[FLEET]["wall_s"] / statistics.fmean(
            summaries[n]["wall_s"] for n in names), 3),
        "fleet_over_sum_of_singles": round(summaries[FLEET]["wall_s"] / sum(
            summaries[n]["wall_s"] for n in names), 3),
        "consistent": consistent,
        "load_average": load,
    }


def machine_info() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


# -- the docs' table --------------------------------------------------------------------
def markdown(results: dict[str, Any]) -> str:
    """One row per (latency, subject): wall, CPU, RSS, and the fleet's ratio."""
    label = f" ({results['label']})" if results.get("label") else ""
    lines = [f"Fleet of {len(results['objects'])} clusters{label}, commit {results['commit']}, "
             f"objects listed per cluster: "
             + ", ".join(f"{name} {sum(kinds.values()):,}"
                         for name, kinds in results["objects"].items()),
             "",
             "| latency | subject | wall s (median) | CPU s | servers' CPU s | "
             "peak RSS MB (largest process) | peak PSS MB (process tree) | "
             "fleet ÷ slowest single (÷ mean single) | load average (min / max) |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for latency in results["latencies"]:
        load = latency["load_average"] or [0.0]
        load_text = f"{min(load):.1f} / {max(load):.1f}"
        for name, s in latency["summaries"].items():
            if not s.get("n"):
                continue
            ratio = (f"**{latency['fleet_over_slowest_single']:.2f}** "
                     f"({latency['fleet_over_mean_single']:.2f})" if name == FLEET
                     else ("slowest" if name == latency["slowest_single"] else ""))
            server = f"{s['server_cpu_s']:.2f}" if s.get("server_cpu_s") else "—"
            lines.append(f"| {latency['latency_ms']} ms | {name} | {s['wall_s']:.2f} | "
                         f"{s['cpu_s']:.2f} | {server} | {s['rss_mb']:.0f} | "
                         f"{s['tree_pss_mb']:.0f} | {ratio} | {load_text} |")
    floors = [f"{latency['latency_ms']} ms: {latency['cpu_floor_s']:.2f} s, "
              f"{latency['floor_over_slowest_single']:.2f}x the slowest single"
              for latency in results["latencies"] if "cpu_floor_s" in latency]
    if floors:
        lines += ["", "The fleet's CPU floor (its CPU and the servers' over the cores): "
                  + "; ".join(floors) + "."]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------
def _commit() -> str:
    """The checked-out commit, ``+`` when the tree has changes (what was measured)."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+" if git("status", "--porcelain") else "")


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per latency")
    parser.add_argument("--latencies", default=",".join(map(str, LATENCIES_MS)),
                        help="comma-separated downstream latencies in ms (default: %(default)s)")
    parser.add_argument("--namespaces", type=int, default=NAMESPACES_PER_CLUSTER,
                        help="bench namespaces seeded per cluster (default: %(default)s)")
    parser.add_argument("--name", default="fleet",
                        help="result file: bench/results/<date>-<name>.json")
    parser.add_argument("--label", default="",
                        help="what is measured (e.g. the fleet engine), kept in the result")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, metavar="RESULT",
                        help="only print the markdown table of this result file")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return 0
    latencies = [int(x) for x in args.latencies.split(",") if x.strip()]
    signal.signal(signal.SIGTERM, _terminate)  # stop everything as Ctrl-C does
    home = Path(tempfile.mkdtemp(prefix="soma-bench-fleet-"))
    scratch = home / "reports"
    scratch.mkdir()
    with fleet_environment(home, context_names(), args.namespaces) as env:
        results: dict[str, Any] = {
            "date": dt.date.today().isoformat(),
            "label": args.label,
            "commit": _commit(),
            "namespaces_per_cluster": args.namespaces,
            "bench_objects_per_cluster": args.namespaces * OBJECTS_PER_NAMESPACE,
            "objects": env.objects,
            "seeding": env.seeding,
            "machine": machine_info(),
            "latencies": [measure_latency(env, ms, args.reps, scratch) for ms in latencies],
        }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{results['date']}-{args.name}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
