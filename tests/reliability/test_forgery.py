"""Names, paths and server messages cannot forge a report: in every format, untrusted text
is text — no terminal escape, no extra line, no markdown heading, box, link or HTML, valid
XML, percent-encoded SARIF URIs, one stderr line.

The hostile names are in a demo copy's manifests (object names and a file name); each
format's output is parsed back with a real parser (json, ElementTree, markdown-it).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml
from markdown_it import MarkdownIt

from tests.reliability.conftest import Figures, demo_tree, run_measured
from tests.reliability.faulty_server import HOSTILE_MESSAGE, faulty_server

pytestmark = pytest.mark.reliability

FORGED = "all checks passed"
HOSTILE_NAME = (f"evil\x1b[2J\x1b[H\r\n{FORGED}\x07\x00\u202e [/bold][link=http://e]x "
                "<script>alert(1)</script>\n# Heading\n- [x] ticked [l](http://e.example) "
                "| cell | ![i](http://e.example/i.png) `code` *em* \ufeff\x85")
HOSTILE_FILE = "evil\x1b[31m\n# file [bold] <b>x<b> %41 #?.yaml"


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = demo_tree(tmp_path_factory.mktemp("forgery"))
    pod = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": HOSTILE_NAME, "namespace": "soma-agent-hub"},
           "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
               "metadata": {"labels": {"app": "x"}},
               "spec": {"containers": [{"name": HOSTILE_NAME, "image": "x",
                                        "securityContext": {"privileged": True}}]}}}}
    (tree / "k8s" / "evil.yaml").write_text(yaml.safe_dump(pod), encoding="utf-8")
    (tree / "k8s" / HOSTILE_FILE).write_text("a: [\n", encoding="utf-8")
    return tree


def _audit(tree: Path, fmt: str, folder: Path) -> str:
    run = run_measured(["--manifests", str(tree), "--ci", "--format", fmt], folder,
                       timeout=120)
    assert run.code == 1, run.stderr
    assert "Traceback" not in run.stderr and not run.stderr.strip(), run.stderr
    return run.stdout


def _no_controls(text: str) -> None:
    bad = [hex(ord(c)) for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c)
           < 0xa0 or c in "\u202e\ufeff"]
    assert not bad, bad


def test_table(hostile_tree: Path, tmp_path: Path) -> None:
    out = _audit(hostile_tree, "table", tmp_path)
    _no_controls(out)
    assert not any(line.strip().startswith(FORGED) for line in out.splitlines())
    assert "evil\\e[2J" in out and "[/bold]" in out  # shown, as text


def test_markdown(hostile_tree: Path, tmp_path: Path, figures: Figures) -> None:
    out = _audit(hostile_tree, "markdown", tmp_path)
    _no_controls(out)
    tokens = MarkdownIt("commonmark").enable("table").parse(out)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert not kinds & {"html_block", "html_inline", "link_open", "image"}, kinds
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert not [h for h in headings if "evil" in h or "Heading" in h], headings
    items = [t.content for t in tokens if t.type == "inline"]
    assert not [i for i in items if i.startswith("[x] ticked")], "a forged ticked box"
    assert not [i for i in items if i.startswith(FORGED)], "a forged line"
    figures.count("forgery", "formats parsed back with hostile names")


def test_junit_is_valid_xml(hostile_tree: Path, tmp_path: Path) -> None:
    out = _audit(hostile_tree, "junit", tmp_path)
    root = ET.fromstring(out.encode())
    texts = " ".join(" ".join(filter(None, [e.text, *e.attrib.values()])) for e in root.iter())
    assert "evil" in texts and "<script>" in texts  # escaped by XML, read back as text
    assert "\x1b" not in texts and "\x00" not in texts


def test_sarif_uris_are_percent_encoded(hostile_tree: Path, tmp_path: Path) -> None:
    sarif = json.loads(_audit(hostile_tree, "sarif", tmp_path))
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"]
            for run in sarif["runs"] for result in run["results"]
            for loc in result["locations"] if "physicalLocation" in loc]
    assert uris
    for uri in uris:
        assert uri == urllib.parse.quote(urllib.parse.unquote(uri), safe="/"), uri
        assert all(33 <= ord(c) < 127 for c in uri), uri


def test_json_keeps_the_text_exactly(hostile_tree: Path, tmp_path: Path) -> None:
    report = json.loads(_audit(hostile_tree, "json", tmp_path))
    objects = {e["object"] for c in report["checks"] for e in c["evidence"]}
    assert f"Deployment/soma-agent-hub/{HOSTILE_NAME}" in objects


def test_server_error_message_is_one_stderr_line(tmp_path: Path) -> None:
    with faulty_server("hostile-error", tmp_path) as (_, kubeconfig):
        run = run_measured(["--kubeconfig", str(kubeconfig), "--ci", "--only",
                            "pss.admission-verdict"], tmp_path, timeout=60)
    assert run.code == 2, run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr
    _no_controls(run.stderr)
    assert HOSTILE_MESSAGE.splitlines()[-1] not in run.stderr.splitlines()
