"""Write docs/reliability.md from the figures the reliability tier measured.

``python -m tests.reliability.report`` (or ``make reliability-report``) after
``make test-reliability``; the tests merge their figures into ``results.json``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results.json"
DOC = HERE.parents[1] / "docs" / "reliability.md"

#: The static part: promises, test files and the observed-behaviour matrix.
STATIC = HERE / "matrix.md"


def _fmt(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(data: dict[str, Any]) -> str:
    """The whole document from ``results.json``'s content."""
    static = STATIC.read_text(encoding="utf-8")
    parts = [static.replace("{generated}", str(data.get("generated", "unknown")))]
    fuzz = data.get("fuzz", {})
    readonly = data.get("readonly", {})
    leaks = data.get("leaks", {})
    rows = [("generated inputs (hypothesis), total", sum(fuzz.values())),
            *((f"— {name}", count) for name, count in sorted(fuzz.items())),
            ("API server requests audited (read-only identity)",
             readonly.get("requests_audited", 0) + leaks.get("requests_audited", 0)),
            ("tool runs checked against the audit log", readonly.get("runs", 0)),
            ("server-side dry-runs seen in scans (none expected)",
             readonly.get("dry_runs", 0)),
            ("leak runs / marker values / files searched",
             f"{leaks.get('runs', 0)} / {leaks.get('markers', 0)} / "
             f"{leaks.get('files_checked', 0)}"),
            ("faults injected (fault-by-component runs, mid-apply cut included)",
             len(data.get("faults", {})))]
    parts.append("## Figures\n\n| figure | value |\n| --- | --- |\n"
                 + "".join(f"| {name} | {_fmt(value)} |\n" for name, value in rows))
    modes = data.get("readonly_modes", {})
    if modes:
        parts.append("## Read-only promise, per mode (read-only ServiceAccount)\n\n"
                     "| run | requests | persisting writes | dry-runs | exit |\n"
                     "| --- | --- | --- | --- | --- |\n" + "".join(
            f"| `{name}` | {row.get('requests')} | {row.get('persisting')} | "
            f"{row.get('dry_run')} | {row.get('exit')} |\n" for name, row in sorted(modes.items())))
        parts.append(
            "A scan sends reads only, and every one of them is allowed by the bundled "
            "read-only role. The one write-shaped probe, `pss.admission-verdict`'s "
            "server-side dry-run PATCH of namespace labels (`?dryRun=All`, nothing saved), "
            "runs only with `--probe-writes` and the opt-in `soma-audit-dryrun` role "
            "(manifests/rbac/clusterrole-dryrun.yaml); without them it is skipped with that "
            "reason. `diff` needs `get` and dry-run `patch`, which the "
            "read-only role lacks: it stops with one clear `soma-audit: error:` line.\n")
    if data.get("faults"):
        parts.append(_faults(data))
    parts.append(_round_two(data))
    bounds = data.get("bounds", {})
    if bounds:
        table = ("## Bounds (child process, `getrusage` peak RSS)\n\n"
                 "| input | wall time | peak RSS | outcome |\n| --- | --- | --- | --- |\n")
        for name, row in sorted(bounds.items()):
            outcome = row.get("outcome", {})
            text = (outcome.get("error") or "; ".join(outcome.get("problems") or [])
                    or f"{outcome.get('objects', 0):,} objects loaded")
            text = re.sub(r"/\S*/(?=[\w.-]+\.yaml)", "", text.splitlines()[0])
            text = text.replace("|", "\\|")
            table += f"| {name} | {row['seconds']} s | {row['max_rss_mib']} MiB | {text} |\n"
        parts.append(table)
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


#: Sections of results.json written by the hostile-input tests beyond the loaders.
ROUND_TWO = {
    "files": "special files and bombs (`test_untrusted_files.py`)",
    "live bounds": "hostile API server (`test_live_bounds.py`)",
    "output paths": "special output paths (`test_output_paths.py`)",
    "forgery": "forged output (`test_forgery.py`)",
    "render": "hostile config values in every recipe (`test_render_hostile.py`)",
    "repo-code": "repository code (`test_repo_code.py`)",
    "typed": "wrong-typed objects (`test_typed_probes.py`)",
    "fuzz bounds": "mutated demo and config (`test_fuzz_demo.py`)",
}


def _round_two(data: dict[str, Any]) -> str:
    """One row per figure of the sections in :data:`ROUND_TWO`."""
    text = ("## Hostile files, servers, names and scripts: figures\n\n"
            "| test | case | figures |\n| --- | --- | --- |\n")
    for section, title in ROUND_TWO.items():
        for case, value in sorted(data.get(section, {}).items()):
            shown = (", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
                     if isinstance(value, dict) else _fmt(value))
            text += f"| {title} | {_cell(case)} | {_cell(shown)} |\n"
    return text


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _faults(data: dict[str, Any]) -> str:
    """The fault matrix: one row per component and fault, as the tests observed it."""
    kinds = data.get("fault_kinds", {})
    baselines = data.get("fault_baselines", {})
    text = ("## Faults: component and fault → observed behaviour (`test_faults.py`)\n\n"
            "A real Toxiproxy (built from its Go module by the testenv) sits between the "
            "tool and one component at a time; the other components are reached directly. "
            "Each run is `soma-audit --ci --format json` on the same checks as a fault-free "
            "run through the same proxy, and is compared with it. *Bound* is the fault-free "
            "time plus the worst case the configured timeouts allow (API server: "
            "`Timeouts` of `sources/cluster.py`, every attempt of discovery and of every "
            "LIST page timing out, or only discovery's when every request fails, since the "
            "scan must stop there; services: the configured `timeout_seconds` times the "
            "client's attempts per live check). Kafka's lane uses a test-scoped broker "
            "that advertises the proxy, since clients reconnect to the advertised "
            "address.\n\n"
            "| fault | what the proxy does |\n| --- | --- |\n")
    text += "".join(f"| {name} | {_cell(what)} |\n" for name, what in kinds.items())
    if baselines:
        text += ("\n| component | fault-free run | bytes through the proxy | allowance "
                 "| allowance, every request failing |\n| --- | --- | --- | --- | --- |\n")
        for name, row in sorted(baselines.items()):
            dead = row.get("allowance_dead")
            text += (f"| {name} | {row['seconds']} s | {row['bytes']:,} | "
                     f"{row['allowance']} s | {f'{dead} s' if dead else 'same'} |\n")
    order = list(kinds)
    rows = sorted(data["faults"].values(), key=lambda r: (
        r["component"], order.index(r["fault"]) if r["fault"] in order else len(order)))
    text += ("\n| component | fault | exit | checks needing it | other checks | time / bound "
             "| cause shown |\n| --- | --- | --- | --- | --- | --- | --- |\n")
    for row in rows:
        bound = f"{row['bound']} s" if row["bound"] != "-" else "-"
        text += (f"| {row['component']} | {row['fault']} | {row['exit']} | "
                 f"{_cell(row['outcome'])} | {_cell(row['unaffected'])} | "
                 f"{row['seconds']} s / {bound} | {_cell(row['cause']) or '-'} |\n")
    return text


def main() -> int:
    if not RESULTS.exists():
        print(f"no {RESULTS}: run `make test-reliability` first", file=sys.stderr)
        return 1
    DOC.write_text(render(json.loads(RESULTS.read_text(encoding="utf-8"))), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
