"""Regenerate ``docs/performance.md`` from the newest ``bench/results/*.json``.

The prose lives in ``bench/performance.template.md``; each ``{{name}}`` in it is replaced
by a table computed from the result files, and the goals' verdicts are computed from the
figures (never written by hand). ``make bench`` runs this last.

    python bench/docs.py [--check]   # --check: exit 1 when docs/performance.md is stale
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.run import growth, growth_rows, list_requests, load_rows, markdown_rows  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TEMPLATE = ROOT / "bench" / "performance.template.md"
TARGET = ROOT / "docs" / "performance.md"
_FILE = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})-(?P<name>[a-z0-9]+)\.json$")

#: The goals: (what, size or None, test of the figures).
CI_OVER_BASELINE = 1.5
RSS_GOALS = {30_000: 250.0, 100_000: 450.0}
TUI_FIRST_FRAME_S = 0.5
TUI_COMPLETE_FRAME_S = 1.0
FLEET_OVER_SLOWEST = 1.3


def newest(name_test: Callable[[str], bool]) -> dict[str, Path]:
    """The newest result file of each name that passes ``name_test``, by name."""
    found: dict[str, tuple[str, Path]] = {}
    for path in RESULTS.glob("*.json"):
        match = _FILE.match(path.name)
        if match and name_test(match["name"]) and (
                match["name"] not in found or match["date"] > found[match["name"]][0]):
            found[match["name"]] = (match["date"], path)
    return {name: path for name, (_date, path) in found.items()}


def _read(path: Path | None) -> Any:
    return json.loads(path.read_text()) if path else None


def size_series() -> list[dict[str, Any]]:
    results = [_read(p) for p in newest(str.isdigit).values()]
    return sorted(results, key=lambda d: d["size"])


def _median(summary: dict[str, Any] | None, metric: str = "wall_s") -> float | None:
    return summary.get(metric) if summary and summary.get("n") else None


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return pattern.format(value) if value is not None else "—"


def goals(sizes: list[dict[str, Any]], cold: dict[str, Any] | None,
          fleet: dict[str, Any] | None) -> str:
    """The goals table: each verdict computed from the figures beside it."""
    rows = ["| goal | size | figure | verdict |", "| --- | ---: | --- | --- |"]

    def row(goal: str, size: str, figure: str, met: bool | None) -> None:
        verdict = "not measured" if met is None else ("**met**" if met else "**missed**")
        rows.append(f"| {goal} | {size} | {figure} | {verdict} |")

    for data in sizes:
        s = data["summaries"]
        label = f"{data['size']:,}"
        mine, base = _median(s.get("soma-audit")), _median(s.get("baseline"))
        if data["size"] >= 10_000:
            ratio = mine / base if mine and base else None
            row(f"`--ci` ≤ {CI_OVER_BASELINE}x the raw-LIST baseline", label,
                f"{_fmt(ratio)}x ({_fmt(mine)} s vs {_fmt(base)} s)",
                None if ratio is None else ratio <= CI_OVER_BASELINE)
        if data["size"] in RSS_GOALS:
            # The largest process's peak RSS, and (when measured) the whole tree's peak PSS:
            # the forks' own pages count too; the goal holds only if both are within it.
            rss = _median(s.get("soma-audit"), "rss_mb")
            tree = data.get("tree_pss_mb", {}).get("soma-audit")
            figure = f"{_fmt(rss, '{:.0f}')} MB"
            if tree:
                figure += f" (whole process tree, PSS: {tree:.0f} MB)"
            row(f"peak RSS ≤ {RSS_GOALS[data['size']]:.0f} MB", label, figure,
                None if rss is None else max(rss, tree or 0.0) <= RSS_GOALS[data["size"]])
        for peer in ("polaris", "popeye"):
            theirs = s.get(peer)
            if theirs is None:
                continue
            if theirs.get("stopped"):
                row(f"faster than {peer.capitalize()}", label,
                    f"{peer} stopped ({theirs['stopped']}); soma-audit {_fmt(mine)} s",
                    mine is not None)
            else:
                other = _median(theirs)
                row(f"faster than {peer.capitalize()}", label,
                    f"{_fmt(mine)} s vs {_fmt(other)} s",
                    None if not (mine and other) else mine < other)
    points = [(sum(d["cluster_objects"].values()), _median(d["summaries"].get("soma-audit"),
                                                            "rss_mb")) for d in sizes]
    exponent = growth([(x, y) for x, y in points if y])
    row("peak RSS grows sub-linearly", "all", f"exponent {_fmt(exponent, '{:.2f}')}",
        None if exponent is None else exponent < 1.0)
    for how, prefix in (("headless", "tui_"), ("on a terminal", "tui_terminal_")):
        first = _median((cold or {}).get(f"{prefix}first_frame"))
        complete = _median((cold or {}).get(f"{prefix}first_complete_frame"))
        row(f"TUI first frame on the demo ≤ {TUI_FIRST_FRAME_S} s ({how})", "demo",
            f"{_fmt(first, '{:.3f}')} s", None if first is None else first <= TUI_FIRST_FRAME_S)
        row(f"TUI first complete frame ≤ {TUI_COMPLETE_FRAME_S} s ({how})", "demo",
            f"{_fmt(complete, '{:.3f}')} s",
            None if complete is None else complete <= TUI_COMPLETE_FRAME_S)
    for latency in (fleet or {}).get("latencies", []):
        ratio = latency.get("fleet_over_slowest_single")
        clusters = len(latency.get("summaries", {})) - 1
        floor = latency.get("floor_over_slowest_single")
        row(f"fleet of {clusters} ≤ {FLEET_OVER_SLOWEST}x the slowest single cluster",
            f"{latency.get('latency_ms')} ms",
            f"{_fmt(ratio)}x" + (f" (CPU floor {_fmt(floor)}x)" if floor else ""),
            None if ratio is None else ratio <= FLEET_OVER_SLOWEST)
    return "\n".join(rows)


def cpu_budget(sizes: list[dict[str, Any]]) -> str:
    """What the ``--ci`` ratio goal leaves soma-audit on this machine's cores.

    The scan and the API server (with etcd) share the cores, so a run cannot take less wall
    time than their CPU seconds together divided by the cores: the floor. For ``--ci`` to
    stay within the goal, its own CPU may be at most goal * baseline * cores minus the
    server's CPU during a ``--ci`` run."""
    out = ["| size | goal: wall ≤ | API server + etcd CPU during `--ci` | soma-audit CPU that "
           "fits | soma-audit CPU | floor: (both CPU) ÷ cores | `--ci` wall |",
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for data in sizes:
        cores = data.get("machine", {}).get("cpus") or 1
        mine, base = data["summaries"].get("soma-audit", {}), data["summaries"].get("baseline")
        server = mine.get("server_cpu_s")
        if not (mine.get("n") and _median(base) and server):
            continue
        goal = CI_OVER_BASELINE * base["wall_s"]
        fits = goal * cores - server
        floor = (mine["cpu_s"] + server) / cores
        out.append(f"| {data['size']:,} | {goal:.2f} s | {server:.2f} s | "
                   f"{max(fits, 0.0):.2f} s | {mine['cpu_s']:.2f} s | {floor:.2f} s | "
                   f"{mine['wall_s']:.2f} s |")
    if len(out) == 2:
        return "(the API server's CPU was not measured in this round)"
    return "\n".join(out)


def requests_table(sizes: list[dict[str, Any]]) -> str:
    out = ["| size | subject | LIST requests | resources listed | other requests |",
           "| --- | --- | ---: | ---: | ---: |"]
    for d in sizes:
        for name, reqs in d["requests"].items():
            n, kinds, other = list_requests(reqs)
            out.append(f"| {d['size']:,} | {name} | {n} | {kinds} | {other} |")
    return "\n".join(out)


def seeding_table(sizes: list[dict[str, Any]]) -> str:
    out = ["| size | shape | namespaces | bench objects | objects listed by `--ci` kinds | "
           "storage seeded in |", "| ---: | ---: | ---: | ---: | ---: | --- |"]
    for d in sizes:
        seeded = d["seed"]
        when = (f"{seeded['seconds']:.0f} s ({seeded['rate_per_s']:.0f}/s)"
                if seeded.get("created") else "earlier run (reused)")
        out.append(f"| {d['size']:,} | {seeded.get('shape', 1)} | {seeded['namespaces']} | "
                   f"{seeded['bench_objects']:,} | "
                   f"{sum(d['cluster_objects'].values()):,} | {when} |")
    return "\n".join(out)


def peers_table(sizes: list[dict[str, Any]]) -> str:
    if not sizes:
        return ""
    peers = sizes[-1].get("peers") or {}
    out = ["| peer | module | version | result |", "| --- | --- | --- | --- |"]
    for name, info in peers.items():
        result = info.get("stopped") or info.get("error", "")[:120] or "ran at every size"
        out.append(f"| {name} | `{info.get('module')}` | `{info.get('version')}` | {result} |")
    return "\n".join(out)


def cold_text(cold: dict[str, Any] | None) -> str:
    """The TUI probe's own prose and table (bench/tui_first_frame.py)."""
    from bench import tui_first_frame

    return f"{tui_first_frame.PROSE}\n{_module_markdown('tui_first_frame', cold)}"


def levers_table(levers: dict[str, Any] | None) -> str:
    if not levers:
        return "(not measured: run `python bench/levers.py`)"
    out = ["| change | commits | subject | wall s before → after | CPU s before → after | "
           "peak RSS MB before → after | load (median) |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for lever in levers["levers"]:
        b, a = lever["before_summary"], lever["after_summary"]
        subject = lever["subject"] + (f" at {lever['size']:,}" if lever.get("size") else
                                      f" at {lever['latency']} ms" if lever.get("latency")
                                      else "")
        load = statistics.median(lever["load_average"]) if lever["load_average"] else 0.0
        out.append(
            f"| {lever['name']} | `{lever['before']}` → `{lever['after']}` | {subject} | "
            f"{b['wall_s']:.2f} → {a['wall_s']:.2f} | {b['cpu_s']:.2f} → {a['cpu_s']:.2f} | "
            f"{b['rss_mb']:.0f} → {a['rss_mb']:.0f} | {load:.1f} |")
    return "\n".join(out)


def live_diff_text(data: dict[str, Any] | None) -> str:
    if not data:
        return "(not measured in this round: `python bench/run.py --only-live-diff`)"
    s = data["summary"]
    return (f"`soma-audit diff {data['recipe']}` over {data['objects']:,} objects in "
            f"{data['namespaces']} namespaces ({data['updates']} updates): median "
            f"{s['wall_s']:.1f} s ({s['wall_s_min']:.1f}-{s['wall_s_max']:.1f} s, n={s['n']}), "
            f"{s['cpu_s']:.1f} s CPU, {s['rss_mb']:.0f} MB peak RSS, load average "
            f"{data['load_average']:.1f}.")


def verdicts_text(data: dict[str, Any] | None) -> str:
    if not data:
        return "(not checked in this run: `python bench/verdicts.py bench --rev REV`)"

    def said(same: bool) -> str:
        return "**identical**" if same else "**different** (see the run's output)"

    return (f"Against `{data['rev']}` (the code before this round), at `{data['head']}`: a "
            f"recorded `--ci` scan of the {data['size']:,}-object cluster ({data['checks']} "
            f"checks, {data['evidence']:,} evidence items) replayed into both, JSON and SARIF: "
            f"{said(data['replay_same'])}; the demo's JSON and SARIF: "
            f"{said(data['demo_same'])}.")


def _module_markdown(module: str, data: Any) -> str:
    """A bench module's own ``markdown(results)``, or a note when it has not run."""
    if data is None:
        return f"(not measured: run `python bench/{module}.py`)"
    import importlib

    return str(importlib.import_module(f"bench.{module}").markdown(data))


def render() -> str:
    sizes = size_series()
    others = newest(lambda name: not name.isdigit())
    cold = _read(others.get("coldstart"))
    fleet = _read(others.get("fleet"))
    tables = {
        "seeding": seeding_table(sizes),
        "sizes": markdown_rows(sizes),
        "goals": goals(sizes, cold, fleet),
        "cpu_budget": cpu_budget(sizes),
        "growth": growth_rows(sizes),
        "load": load_rows(sizes),
        "requests": requests_table(sizes),
        "peers": peers_table(sizes),
        "cold": cold_text(cold),
        "fleet": _module_markdown("fleet", fleet),
        "rendering": _module_markdown("rendering", _read(others.get("rendering"))),
        "levers": levers_table(_read(others.get("levers"))),
        "livediff": live_diff_text(_read(others.get("livediff"))),
        "verdicts": verdicts_text(_read(others.get("verdicts"))),
        "sources": ", ".join(f"`{p.name}`" for p in sorted(
            [*newest(str.isdigit).values(), *others.values()], key=lambda p: p.name)),
    }
    text = TEMPLATE.read_text()
    for name, table in tables.items():
        text = text.replace("{{" + name + "}}", table)
    missing = re.findall(r"\{\{(\w+)\}\}", text)
    if missing:
        raise SystemExit(f"bench/docs.py: no table for {', '.join(missing)} in {TEMPLATE}")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when docs/performance.md differs from the results")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        return 0 if TARGET.read_text() == text else 1
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
