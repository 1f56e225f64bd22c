"""The whole tool on mutated inputs: hypothesis mutates the demo's files (bytes, lines,
parsed subtrees) and the config, runs the real ``soma-audit --ci`` in a subprocess, and
asserts exit 0, 1 or 2, no traceback, one stderr line at most on exit 2, bounded time
and memory (``wait4``), and an output that parses in its format.

Examples are few (each one is a full audit of the demo, about 2 s) so the tier stays
within minutes; their count is recorded in results.json.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from soma_audit.core.paths import data_path
from tests.reliability.conftest import Figures, demo_tree, run_measured
from tests.reliability.strategies import YAML_ALPHABET, documents, mutated

pytestmark = pytest.mark.reliability

EXAMPLES = 30
MAX_SECONDS = 90
MAX_MB = 500
FORMATS = ["table", "json", "markdown", "junit", "sarif"]
DEFAULT_CONFIG = yaml.safe_load(data_path("config", "default.yaml").read_text(encoding="utf-8"))
SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-demo-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
DEMO = demo_tree(SCRATCH / "template")
FILES = sorted(str(p.relative_to(DEMO)) for p in DEMO.rglob("*") if p.is_file()
               and p.suffix in (".yaml", ".yml", ".json", ".js", ".fga", ".xml"))

byte_edits = st.tuples(st.sampled_from(["truncate", "insert", "replace-line", "subtree"]),
                       st.integers(0, 10**6), st.binary(max_size=40),
                       st.lists(YAML_ALPHABET | st.text(max_size=4), max_size=12).map("".join))


def _edit(data: bytes, edit: tuple[str, int, bytes, str], draw: Any) -> bytes:
    kind, where, blob, text = edit
    at = where % (len(data) + 1)
    if kind == "truncate":
        return data[:at]
    if kind == "insert":
        return data[:at] + blob + data[at:]
    lines = data.split(b"\n")
    if kind == "replace-line":
        lines[where % len(lines)] = text.encode("utf-8", "surrogatepass")
        return b"\n".join(lines)
    try:
        docs = list(yaml.safe_load_all(data.decode("utf-8")))
    except (yaml.YAMLError, UnicodeDecodeError, ValueError):
        return data + blob
    if not docs:
        return data
    index = where % len(docs)
    docs[index] = draw(mutated(docs[index]))
    return yaml.safe_dump_all(docs, allow_unicode=True).encode("utf-8", "surrogatepass")


def _parses(fmt: str, text: str) -> None:
    if fmt == "json":
        assert isinstance(json.loads(text)["checks"], list)
    elif fmt == "sarif":
        assert json.loads(text)["version"] == "2.1.0"
    elif fmt == "junit":
        assert ET.fromstring(text.encode()).tag == "testsuites"
    elif fmt == "markdown":
        tokens = MarkdownIt("commonmark").parse(text)
        assert tokens and not {t.type for t in tokens} & {"html_block"}
    else:
        assert "ready" in text


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data(), fmt=st.sampled_from(FORMATS))
def test_mutated_demo_and_config(data: st.DataObject, fmt: str, figures: Figures) -> None:
    work = Path(tempfile.mkdtemp(prefix="fuzz-run-"))
    try:
        tree = work / "repo"
        shutil.copytree(DEMO, tree, symlinks=True)
        for relative in data.draw(st.lists(st.sampled_from(FILES), min_size=1, max_size=3)):
            path = tree / relative
            path.write_bytes(_edit(path.read_bytes(), data.draw(byte_edits), data.draw))
        config = work / "config.yaml"
        if data.draw(st.booleans()):
            text = yaml.safe_dump(data.draw(mutated(DEFAULT_CONFIG)), allow_unicode=True)
        else:
            text = yaml.safe_dump(data.draw(documents), allow_unicode=True)
        config.write_text(text, encoding="utf-8", errors="surrogatepass")
        report = work / "report"
        run = run_measured(["--manifests", str(tree), "--config", str(config), "--ci",
                            "--format", fmt, "-o", str(report)], work, timeout=MAX_SECONDS)
        assert run.code in (0, 1, 2), (run.code, run.stderr[-2000:])
        assert "Traceback" not in run.stderr, run.stderr[-3000:]
        assert run.peak_mb < MAX_MB, run.peak_mb
        if run.code == 2:
            assert len(run.stderr.strip().splitlines()) == 1, run.stderr
            assert not report.exists()
        else:
            _parses(fmt, report.read_text(encoding="utf-8"))
        figures.count("fuzz", f"mutated demo runs ({fmt})")
        worst = figures.data.get("fuzz bounds", {})
        figures.add("fuzz bounds", "slowest mutated demo run (s)",
                    max(round(run.seconds, 1), worst.get("slowest mutated demo run (s)", 0)))
        figures.add("fuzz bounds", "largest peak RSS of a mutated demo run (MB)",
                    max(round(run.peak_mb), worst.get(
                        "largest peak RSS of a mutated demo run (MB)", 0)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
