"""Child process of test_bounds: load one hostile input, print time and memory as JSON.

``python -m tests.reliability.measure CASE SCRATCH`` — run in a subprocess with a timeout,
so that an unbounded loader shows as a timeout or a memory figure, never a hung test run.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
MERGE_BOMB = "m0: &m0 {x: 1, y: 2}\n" + "".join(
    f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}], k{i}: v}}\n" for i in range(1, 9))
RECURSIVE = "a: &a [*a, *a]\n"
DEEP = "[" * 200_000 + "]" * 200_000
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{i}\n  labels: {{a: b}}\n"


def _huge(target_bytes: int) -> bytes:
    """A valid multi-document stream of about ``target_bytes``."""
    chunk = "---\n".join(NAMESPACE.format(i=i) for i in range(1000)) + "---\n"
    return (chunk * (target_bytes // len(chunk) + 1)).encode()


def _manifests(scratch: Path, data: bytes) -> Any:
    from soma_audit.sources.manifests import ManifestsSource

    tree = scratch / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "file.yaml").write_bytes(data)
    inventory = ManifestsSource(tree).load(frozenset({"Namespace"}))
    return {"objects": len(inventory), "problems": [p.message for p in inventory.problems][:3]}


def _via(loader: str, scratch: Path, text: str) -> Any:
    from soma_audit.catalog.checks import load_catalog
    from soma_audit.config import load_config
    from soma_audit.core.errors import AuditError
    from soma_audit.engine import attestations

    path = scratch / f"{loader}.yaml"
    path.write_text(text, encoding="utf-8")
    call: Callable[[], Any] = {"config": lambda: load_config(path),
                               "catalog": lambda: load_catalog([path]),
                               "attestations": lambda: attestations.load(path)}[loader]
    try:
        call()
    except AuditError as exc:
        return {"error": str(exc)}
    return {"error": None}


CASES: dict[str, Callable[[Path], Any]] = {
    "manifests: billion laughs (9^9 nodes)": lambda s: _manifests(s, LAUGHS.encode()),
    "manifests: merge-key bomb (10^8 keys)": lambda s: _manifests(s, MERGE_BOMB.encode()),
    "manifests: recursive alias": lambda s: _manifests(s, RECURSIVE.encode()),
    "manifests: nesting 200,000 deep": lambda s: _manifests(s, DEEP.encode()),
    "manifests: 30 MB valid stream": lambda s: _manifests(s, _huge(30 * 1024 * 1024)),
    "manifests: 40 MB file (over the limit)": lambda s: _manifests(s, _huge(40 * 1024 * 1024)),
    "config: billion laughs": lambda s: _via("config", s, LAUGHS),
    "config: merge-key bomb": lambda s: _via("config", s, MERGE_BOMB),
    "catalog: billion laughs": lambda s: _via("catalog", s, LAUGHS),
    "attestations: merge-key bomb": lambda s: _via("attestations", s, MERGE_BOMB),
    "config: nesting 200,000 deep": lambda s: _via("config", s, DEEP),
}


def main() -> None:
    case, scratch = sys.argv[1], Path(sys.argv[2])
    traced = "--tracemalloc" in sys.argv  # exact Python peak, but several times slower
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    outcome = CASES[case](scratch)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"case": case, "seconds": round(seconds, 3),
                      "python_peak_mib": round(peak / 2**20, 1) if traced else None,
                      "max_rss_mib": round(rss_mib, 1), "outcome": outcome}))


if __name__ == "__main__":
    main()
