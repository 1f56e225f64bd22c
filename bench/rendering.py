"""`make bench`, manifests mode: what rendering charts and overlays adds to loading a repository.

On a copy of the tests' platform repository (a chart rendered for two Argo CD Applications,
plus a third Application with the same inputs as one of them, a vendored dependency, two
Kustomize overlays, plain files), medians of several repetitions of:

- ``rendered``: ``ManifestsSource.load()`` with the real helm and kustomize of the test
  environment (through a shim that counts the processes started);
- ``plain``: the same objects written as plain YAML files, loaded by the same source
  (nothing to render): the baseline.

Prints the added cost and how many helm/kustomize processes one load started (distinct
inputs are rendered once per load). Asserts no time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `testenv` and `soma_audit` importable
    sys.path.insert(0, str(ROOT))

from soma_audit.config import Config, load_config  # noqa: E402
from soma_audit.sources.manifests import ManifestsSource  # noqa: E402
from testenv import build  # noqa: E402
from testenv import config as testenv_config  # noqa: E402

PLATFORM = ROOT / "tests" / "fixtures" / "platform"
RESULTS = ROOT / "bench" / "results"


def _shim(folder: Path, name: str, binary: Path, counter: Path) -> Path:
    """A wrapper that records each start of ``binary`` in ``counter``, then runs it."""
    shim = folder / name
    shim.write_text(f'#!/bin/sh\necho {name} >> "{counter}"\nexec "{binary}" "$@"\n')
    shim.chmod(0o755)
    return shim


def _repository(scratch: Path, helm: Path) -> Path:
    root = scratch / "platform"
    shutil.copytree(PLATFORM, root)
    subprocess.run([str(helm), "package", str(root / "dependencies/soma-cache"),
                    "--destination", str(root / "k8s/helm/soma/charts")],
                   check=True, capture_output=True, timeout=120)
    prod = (root / "argocd/soma-prod.yaml").read_text()
    # Same chart, same inputs, another Application name: rendered once, counted once.
    (root / "argocd/soma-prod-mirror.yaml").write_text(
        prod.replace("name: soma-prod\n", "name: soma-prod-mirror\n"))
    return root


def _timed(root: Path, config: Config, reps: int) -> tuple[list[float], int]:
    walls, count = [], 0
    for _ in range(reps):
        began = time.perf_counter()
        inventory = ManifestsSource(root, config=config).load(frozenset())
        walls.append(time.perf_counter() - began)
        count = len(inventory)
    return walls, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    def report(component: str, message: str) -> None:
        print(f"[testenv] {component}: {message}")

    cache, logs = testenv_config.cache_dir(), testenv_config.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    binaries = {"helm": build.helm(cache, logs, report),
                "kustomize": build.kustomize(cache, logs, report)}
    with tempfile.TemporaryDirectory(prefix="soma-audit-bench-render-") as scratch_dir:
        scratch = Path(scratch_dir)
        root = _repository(scratch, binaries["helm"])
        counter = scratch / "starts.log"
        shims = scratch / "bin"
        shims.mkdir()
        tools = {name: str(_shim(shims, name, path, counter)) for name, path in binaries.items()}
        config = load_config(tools=tools)
        inventory = ManifestsSource(root, config=config).load(frozenset())
        starts = counter.read_text().split() if counter.exists() else []
        renderings = [s for s in inventory.sources if s.status == "rendered"]
        plain = scratch / "plain"
        for index, resource in enumerate(inventory):
            path = plain / f"{index:04d}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(resource.body))
        rendered_walls, objects = _timed(root, config, args.reps)
        plain_walls, plain_objects = _timed(plain, config, args.reps)
    rendered, baseline = statistics.median(rendered_walls), statistics.median(plain_walls)
    result = {
        "date": dt.date.today().isoformat(),
        "objects": objects,
        "plain_objects": plain_objects,
        "renderings": len(renderings),
        "helm_processes_per_load": starts.count("helm"),
        "kustomize_processes_per_load": starts.count("kustomize"),
        "rendered_wall_s": rendered_walls,
        "plain_wall_s": plain_walls,
        "median_rendered_s": round(rendered, 4),
        "median_plain_s": round(baseline, 4),
        "added_s": round(rendered - baseline, 4),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-rendering.json"
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    print("| objects | renderings (helm / kustomize processes) | load rendered s | load plain s "
          "| added s |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {objects} | {len(renderings)} ({result['helm_processes_per_load']} / "
          f"{result['kustomize_processes_per_load']}) | {rendered:.3f} | {baseline:.3f} | "
          f"{rendered - baseline:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
