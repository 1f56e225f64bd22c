"""The fetch phase alone: ``ClusterSource.load`` of exactly the kinds ``--ci`` lists.

Run as a child by bench/run.py so that the scan's own cost (threads, HTTP, JSON decoding,
Resource wrapping) can be compared with the raw-LIST baseline without the probes, the
report and the interpreter start. Prints ``LOAD <seconds> <objects>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def audit_kinds() -> tuple[frozenset[str], frozenset[str]]:
    """The kinds ``run_audit`` asks the source for when only the cluster is available, and
    those whose status it keeps."""
    from soma_audit.catalog.checks import load_catalog
    from soma_audit.config import load_config
    from soma_audit.engine.scan import kinds_read
    from soma_audit.probes import load_probes

    probes = load_probes()
    checks = load_catalog(list(load_config().catalogs))
    runnable = [c for c in checks if not c.manual and not set(c.requires) - {"cluster", "status"}]
    return kinds_read([c for c in runnable if c.probe in probes], probes)


def main() -> None:
    from soma_audit.engine.scan import cyclic_gc_paused
    from soma_audit.sources.cluster import ClusterSource

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    kinds, status_of = audit_kinds()
    source = ClusterSource(args[0] if args else None)
    started = time.perf_counter()
    with cyclic_gc_paused():  # as run_audit does around the whole scan
        inventory = source.load(kinds, status_of)
    seconds = time.perf_counter() - started
    objects = sum(len(inventory.of_kind(kind)) for kind in kinds)
    print(f"LOAD {seconds:.6f} {objects}", flush=True)


if __name__ == "__main__":
    main()
