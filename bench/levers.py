"""Before and after each kept performance change (``bench/levers.yaml``), side by side.

For each lever both revisions are checked out (``git worktree add --detach``, into a
temporary folder, removed afterwards) and run alternately — before, after, before, after …
— with this checkout's Python environment, on the same cluster at the same moment, so the
machine's load hits both alike. Writes ``bench/results/<date>-levers.json``.

    python bench/levers.py [--reps 3] [--only NAME] [--subject SUBJECT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fleet import (  # noqa: E402
    CLUSTERS,
    NAMESPACES_PER_CLUSTER,
    context_names,
    fleet_environment,
)
from bench.run import (  # noqa: E402  (run as a script)
    RESULTS,
    Sample,
    clean_env,
    namespaces_for,
    run_child,
    seed,
    size_cluster,
    summarize,
)
from bench.verdicts import checkout  # noqa: E402
from soma_audit.core.yamlload import load_file  # noqa: E402

LEVERS = ROOT / "bench" / "levers.yaml"


def command(tree: Path, subject: str, kubeconfig: Path | None) -> list[str]:
    """The child that measures ``subject`` with the code of ``tree``."""
    if subject == "fetch":
        return [sys.executable, str(tree / "bench" / "fetch_only.py"), str(kubeconfig)]
    if subject == "demo":
        return [sys.executable, "-m", "soma_audit", "--demo", "--ci", "--format", "json"]
    ci = [sys.executable, "-m", "soma_audit", "--ci", "--format", "json"]
    if subject in ("remote", "fleet"):
        names = context_names(1 if subject == "remote" else CLUSTERS)
        return ci + [arg for name in names for arg in ("--context", name)]
    return ci


def measure(lever: dict[str, Any], reps: int, kubeconfig: Path | None) -> dict[str, Any]:
    """Alternate runs of the two revisions (one untimed warm-up each first)."""
    samples: dict[str, list[Sample]] = {"before": [], "after": []}
    load: list[float] = []
    with (tempfile.TemporaryDirectory(prefix="soma-lever-") as scratch,
          checkout(lever["before"], Path(scratch, "before")) as before,
          checkout(lever["after"], Path(scratch, "after")) as after):
        trees = {"before": before, "after": after}
        for rep in range(reps + 1):
            if rep:
                load.append(os.getloadavg()[0])
            for side, tree in trees.items():
                env = clean_env(kubeconfig) if kubeconfig else clean_env(Path(os.devnull))
                env["PYTHONPATH"] = str(tree)
                out = Path(tempfile.mkstemp(prefix="soma-lever-out-")[1])
                sample = run_child(command(tree, lever["subject"], kubeconfig), env, stdout=out)
                if lever["subject"] == "fetch":  # the load() time, the child's CPU and RSS
                    words = out.read_text().split()
                    if words[:1] == ["LOAD"]:
                        sample = Sample(float(words[1]), sample.cpu_s, sample.rss_mb, sample.rc)
                out.unlink()
                if rep:
                    samples[side].append(sample)
            if rep:
                walls = {side: f"{s[-1].wall_s:.2f}s" for side, s in samples.items()}
                print(f"  {lever['name']} rep {rep}/{reps}: before {walls['before']} "
                      f"after {walls['after']}")
    return {**lever, "before_summary": summarize(samples["before"]),
            "after_summary": summarize(samples["after"]), "load_average": load}


def _key(lever: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(lever.get(field) for field in ("name", "subject", "size", "latency"))


def carried_over(out: Path, measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The levers of the newest earlier result not measured again (``--only``), so that
    the result stays the table of every kept change."""
    found = sorted(out.glob("*-levers.json"))
    if not found:
        return []
    again = {_key(lever) for lever in measured}
    return [lever for lever in json.loads(found[-1].read_text())["levers"]
            if _key(lever) not in again]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", help="measure only the lever of this name")
    parser.add_argument("--subject", help="measure only the levers of this subject")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    levers = [lever for lever in load_file(LEVERS, "levers")
              if (not args.only or lever["name"] == args.only)
              and (not args.subject or lever["subject"] == args.subject)]
    for lever in levers:
        if not all(isinstance(lever.get(side), str) for side in ("before", "after")):
            # an all-digit hash unquoted is read as a number (and loses its leading zeros)
            raise SystemExit(f"{LEVERS}: lever {lever.get('name')!r}: quote the revisions")
    results = []
    for latency in sorted({lever["latency"] for lever in levers if "latency" in lever}):
        with (tempfile.TemporaryDirectory(prefix="soma-lever-fleet-") as home,
              fleet_environment(Path(home), context_names(), NAMESPACES_PER_CLUSTER) as env):
            env.set_latency(latency)
            results += [measure(lever, args.reps, env.kubeconfig) for lever in levers
                        if lever.get("latency") == latency]
    levers = [lever for lever in levers if "latency" not in lever]
    for size in sorted({lever.get("size") for lever in levers}, key=lambda s: s or 0):
        group = [lever for lever in levers if lever.get("size") == size]
        if size is None:
            results += [measure(lever, args.reps, None) for lever in group]
            continue
        with size_cluster(size, fresh=False) as (api, home):
            seed(api, namespaces_for(size))
            results += [measure(lever, args.reps, home / "admin.kubeconfig")
                        for lever in group]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{dt.date.today().isoformat()}-levers.json"
    results = carried_over(args.out, results) + results
    path.write_text(json.dumps({"date": dt.date.today().isoformat(), "levers": results},
                               indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
