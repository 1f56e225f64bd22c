"""Offline sources: manifests directories and snapshots, including broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soma_audit.core.errors import AuditError
from soma_audit.sources.documents import parse_bytes, parse_text
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.sources.snapshot import SnapshotSource

ALL = frozenset()


def _tree(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return tmp_path


def test_directory_reads_multi_document_yaml_json_and_lists(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "a/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\n"
                     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n",
        "b/list.json": json.dumps({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "x"}}
        ]}),
        "c/not-k8s.yaml": "model_file: model.fga\ntests: []\n",
        ".git/config.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: hidden}\n",
    })
    inventory = ManifestsSource(root).load(ALL)
    assert sorted(r.ref for r in inventory) == ["ConfigMap/x/c", "Namespace/x", "Service/x/s"]
    assert inventory.get("ConfigMap", "c", "x").origin == "a/ns.yaml:5"
    assert not inventory.problems


def test_broken_files_are_reported_with_file_and_line_and_the_rest_is_read(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "good.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
        "bad.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: [\n",
        "bad.json": "{\"apiVersion\": \"v1\", \"kind\": ",
        "binary.yaml": b"\x00\x01\x02",
        "latin1.yaml": "name: caf\xe9\n".encode("latin-1"),
    })
    inventory = ManifestsSource(root).load(ALL)
    assert [r.ref for r in inventory] == ["Namespace/ok"]
    problems = {p.where.split(":")[0]: p for p in inventory.problems}
    assert problems["bad.yaml"].where == "bad.yaml:4"
    assert "invalid JSON" in problems["bad.json"].message
    assert "binary file" in problems["binary.yaml"].message
    assert "not UTF-8" in problems["latin1.yaml"].message


def test_documents_without_apiversion_and_kind_are_ignored_and_counted(tmp_path: Path) -> None:
    """Not manifests, not errors: package.json, JSON with comments, compose, a workflow,
    Helm-style values, an OpenAPI spec; a broken file that does look like one still is."""
    root = _tree(tmp_path, {
        "web/package.json": '{"name": "web", "version": "1.0.0"}\n',
        "web/tsconfig.json": '{\n  // JSONC\n  "compilerOptions": {"strict": true,},\n}\n',
        "docker-compose.yml": "services:\n  web:\n    image: nginx\n",
        ".github/workflows/ci.yml": "on: [push]\njobs:\n  t: {runs-on: x, steps: []}\n",
        "values.yaml": "replicaCount: 2\nimage: {tag: '1'}\n",
        "api/openapi.yaml": "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n",
        "broken-compose.yaml": "services: [\n",
        "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n",
        "bad-manifest.json": '{"apiVersion": "v1",\n "kind": "Namespace", // no\n}',
    })
    inventory = ManifestsSource(root).load(ALL)
    assert [r.ref for r in inventory] == ["Namespace/ok"]
    assert [(p.where, p.message) for p in inventory.problems] == [
        ("bad-manifest.json:2", "invalid JSON: Expecting property name enclosed in double quotes")]
    (files,) = inventory.sources
    assert files.kind == "files" and files.objects == 1
    assert "7 files without Kubernetes objects ignored" in files.detail
    for name in ("web/tsconfig.json", "docker-compose.yml", "broken-compose.yaml"):
        assert name in files.detail

def test_missing_or_empty_directory_cannot_be_audited(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="not found"):
        ManifestsSource(tmp_path / "missing")
    with pytest.raises(AuditError, match="expects a directory"):
        ManifestsSource(_tree(tmp_path, {"f.yaml": "a: 1"}) / "f.yaml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AuditError, match="empty"):
        ManifestsSource(empty).load(ALL)


def test_snapshot_list_and_stream(tmp_path: Path) -> None:
    dump = tmp_path / "dump.yaml"
    dump.write_text("apiVersion: v1\nkind: List\nitems:\n"
                    "- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
                    "- {apiVersion: apps/v1, kind: DeploymentList, items: [{apiVersion: apps/v1,"
                    " kind: Deployment, metadata: {name: d, namespace: a}}]}\n")
    inventory = SnapshotSource(dump).load(ALL)
    assert sorted(r.ref for r in inventory) == ["Deployment/a/d", "Namespace/a"]


def test_snapshot_without_objects_cannot_be_audited(tmp_path: Path) -> None:
    dump = tmp_path / "dump.yaml"
    dump.write_text("items: [\n")
    with pytest.raises(AuditError, match=r"holds no Kubernetes objects.*invalid YAML"):
        SnapshotSource(dump).load(ALL)
    with pytest.raises(AuditError, match="not found"):
        SnapshotSource(tmp_path / "nope.yaml")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_parse_text_never_raises(text: str) -> None:
    parsed = parse_text(text, "fuzz.yaml")
    assert all(r.kind for r in parsed.resources)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(["f.yaml", "f.json"]))
def test_parse_bytes_never_raises(data: bytes, name: str) -> None:
    parse_bytes(data, name)


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["kind", "apiVersion", "items", "metadata", "x"]),
                      children, max_size=4),
    max_leaves=20,
))
def test_arbitrary_json_documents_load_without_error(doc: object) -> None:
    parse_text(json.dumps(doc), "fuzz.json")


@pytest.mark.parametrize(("text", "name"), [("[" * 100_000 + "]" * 100_000, "deep.yaml"),
                                            ('{"a":' * 5000 + "1" + "}" * 5000, "deep.json")],
                         ids=["yaml", "json"])
def test_deeply_nested_input_is_a_problem_not_a_crash(text: str, name: str) -> None:
    parsed = parse_text(text, name)
    assert not parsed.resources
    assert "nest" in parsed.problems[0].message


def test_fifos_and_links_out_of_the_repository_are_never_opened(tmp_path: Path) -> None:
    import os

    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: secret-place}\n")
    root = _tree(tmp_path / "repo", {
        "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n"})
    os.mkfifo(root / "pipe.yaml")
    (root / "escape.yaml").symlink_to(outside)
    os.mkfifo(root / "chart-pipe.yaml")
    (root / "chart").mkdir()
    os.mkfifo(root / "chart" / "Chart.yaml")  # a chart whose Chart.yaml blocks a read
    inventory = ManifestsSource(root, config=None).load(ALL)
    assert [r.ref for r in inventory] == ["Namespace/ok"]
    problems = {p.where: p.message for p in inventory.problems}
    assert problems["pipe.yaml"] == "a FIFO, not read"
    assert problems["escape.yaml"] == "a symbolic link leading out of the repository, not read"
    chart_problems = [p for p in inventory.problems if p.where == "chart"]
    assert not chart_problems, "a Chart.yaml that is a FIFO makes no chart"
