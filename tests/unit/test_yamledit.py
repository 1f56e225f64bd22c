"""The position-guided YAML editor: edits change their node spans and nothing else, and what
cannot be edited safely is refused with the file and line."""

from __future__ import annotations

import difflib
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soma_audit.remediation.plan import RemediationError
from soma_audit.remediation.yamledit import YamlFile, value_of

APP = """\
# head comment
apiVersion: argoproj.io/v1alpha1   # trailing comment
kind: Application
metadata:
  name: gateway-api
spec:
  source:
    repoURL: "https://example.com/repo.git"
    helm:
      valueFiles:
      - values.yaml
  syncPolicy:
    automated: {prune: true}
    syncOptions:
      - CreateNamespace=true
  empty: {}
  nothing:
---
kind: Other
"""


def _key(mapping: yaml.Node, name: str) -> tuple[int, yaml.Node]:
    for slot, (key, value) in enumerate(mapping.value):
        if key.value == name:
            return slot, value
    raise KeyError(name)


def _at(node: yaml.Node, *names: str) -> yaml.Node:
    for name in names:
        node = _key(node, name)[1]
    return node


def test_edits_keep_every_other_byte() -> None:
    source = YamlFile("app.yaml", APP)
    root = source.documents[0]
    sync = _at(root, "spec", "syncPolicy")
    source.add_key(_at(sync, "automated"), "selfHeal", True)
    source.append_item(_at(sync, "syncOptions"), "PruneLast=true")
    source.add_key(sync, "retry", {"limit": 5, "backoff": {"duration": "5s"}})
    spec = _at(root, "spec")
    source.set_value(spec, _key(spec, "empty")[0], {"runAsNonRoot": True})
    source.set_value(spec, _key(spec, "nothing")[0], "set")
    source.set_value(_at(root, "spec", "source"), 0, "https://example.com/other.git")
    text = source.text()
    assert text == APP.replace(
        "{prune: true}", "{prune: true, selfHeal: true}").replace(
        "      - CreateNamespace=true\n",
        "      - CreateNamespace=true\n      - PruneLast=true\n"
        "    retry:\n      limit: 5\n      backoff:\n        duration: 5s\n").replace(
        "  empty: {}\n", "  empty:\n    runAsNonRoot: true\n").replace(
        "  nothing:\n", "  nothing: set\n").replace(
        '"https://example.com/repo.git"', '"https://example.com/other.git"')


def test_crlf_bom_and_missing_final_newline_are_kept() -> None:
    text = "\ufeffa:\r\n  b: 1\r\nlist:\r\n- x"
    source = YamlFile("f.yaml", text)
    root = source.documents[0]
    source.add_key(_at(root, "a"), "c", 2)
    source.append_item(_at(root, "list"), "y")
    assert source.text() == "\ufeffa:\r\n  b: 1\r\n  c: 2\r\nlist:\r\n- x\r\n- y\r\n"


def test_removals_take_whole_lines() -> None:
    text = "acls:\n  # keep this comment\n  - a  # first\n  - b\nspec:\n  x: 1\n  y: 2\n"
    source = YamlFile("f.yaml", text)
    root = source.documents[0]
    source.remove_item(_at(root, "acls"), 1)
    source.remove_key(_at(root, "spec"), 0)
    assert source.text() == "acls:\n  # keep this comment\n  - a  # first\nspec:\n  y: 2\n"


def test_flow_collections_gain_and_lose_items_in_place() -> None:
    source = YamlFile("f.yaml", "a: [x, y, z]\nb: {k: 1, l: 2}\nc: []\n")
    root = source.documents[0]
    source.remove_item(_at(root, "a"), 1)
    source.remove_key(_at(root, "b"), 0)
    source.append_item(_at(root, "c"), "new, with comma")
    assert source.text() == "a: [x, z]\nb: {l: 2}\nc: ['new, with comma']\n"


def test_appended_document_follows_a_separator() -> None:
    source = YamlFile("f.yaml", "a: 1\n")
    source.append_document({"kind": "Namespace"})
    assert source.text() == "a: 1\n---\nkind: Namespace\n"


def test_a_custom_tag_is_refused_when_the_file_is_read() -> None:
    with pytest.raises(RemediationError, match="a tag outside the plain YAML types"):
        YamlFile("f.yaml", "a: !custom 1\n")


@pytest.mark.parametrize("text, edit, message", [
    ("base: &b {x: 1}\nuse: *b\n", lambda f, r: f.add_key(_at(r, "base"), "y", 2),
     r"f\.yaml:1: the mapping is shared through a YAML anchor/alias"),
    ("a: !!str 1\n", lambda f, r: f.set_value(r, 0, 2), "explicit tag"),
    ("a: |\n  text\nb:\n  c: 1\n", lambda f, r: f.set_value(r, 1, 5), None),
    ("a: &x 1\n", lambda f, r: f.set_value(r, 0, 2), "anchor"),
    ("base: {x: 1}\nm:\n  <<: {y: 2}\n  z: 3\n",
     lambda f, r: f.add_key(_at(r, "m"), "w", 1), "merge key"),
    ("- name: a\n  x: 1\n", lambda f, r: f.remove_key(r.value[0], 0), "shares its line"),
])
def test_unsafe_edits_are_refused(text: str, edit: Any, message: str | None) -> None:
    source = YamlFile("f.yaml", text)
    if message is None:
        edit(source, source.documents[0])  # a plain value beside a block scalar is fine
        return
    with pytest.raises(RemediationError, match=message):
        edit(source, source.documents[0])


@pytest.mark.parametrize("text, message", [
    ("metadata:\n  name: {{ .Values.name }}\n", r"f\.yaml:2: holds template syntax"),
    ("name: app-{{ .Release.Name }}\n", r"f\.yaml:1: holds template syntax"),
    ("a: [unclosed\n", r"f\.yaml:2: not valid YAML"),
])
def test_files_that_are_not_plain_yaml_are_refused(text: str, message: str) -> None:
    with pytest.raises(RemediationError, match=message):
        YamlFile("f.yaml", text)


def test_template_braces_inside_quoted_data_are_data() -> None:
    text = 'summary: "{{ $labels.service }} is down"\nlegend: "{{service}}"\n'
    assert YamlFile("f.yaml", text).documents


def test_a_block_scalar_is_replaced_whole() -> None:
    text = "data:\n  d.json: |\n    {\"a\": 1}\n  other: x\n"
    source = YamlFile("f.yaml", text)
    data = _at(source.documents[0], "data")
    source.set_value(data, 0, '{\n  "a": 2\n}\n')
    assert source.text() == 'data:\n  d.json: |\n    {\n      "a": 2\n    }\n  other: x\n'


# ---------------------------------------------------------------------------- property

_names = st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=6)
_scalars = st.one_of(st.integers(-5, 500), st.booleans(), _names,
                     st.sampled_from(["a b", "x: y", "#no", "- z", "10", "true", "é"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, min_size=1, max_size=3),
    st.dictionaries(_names, inner, min_size=1, max_size=3)), max_leaves=8)
_documents = st.dictionaries(_names, _values, min_size=1, max_size=5)


def _collections(node: yaml.Node, path: tuple[Any, ...] = ()
                 ) -> list[tuple[yaml.Node, tuple[Any, ...]]]:
    found = []
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.value:
        found.append((node, path))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            found += _collections(value, (*path, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found += _collections(item, (*path, index))
    return found


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents, st.booleans(), st.booleans(), st.data())
def test_random_edits_change_only_their_spans(document: dict[str, Any], flow: bool,
                                              crlf: bool, data: st.DataObject) -> None:
    """Random documents in random styles with comments; a random add or append: the result
    is the expected value, and every original line is still there, in order."""
    text = yaml.safe_dump(document, default_flow_style=None if flow else False,
                          sort_keys=False)
    lines = text.splitlines(keepends=True)
    comment_at = data.draw(st.integers(0, len(lines)))
    if comment_at < len(lines):  # a full-line comment before a line (never in a scalar)
        indent = len(lines[comment_at]) - len(lines[comment_at].lstrip(" "))
        lines.insert(comment_at, " " * indent + "# team note\n")
    text = "".join(lines)
    if crlf:
        text = text.replace("\n", "\r\n")
    source = YamlFile("f.yaml", text)
    node, path = data.draw(st.sampled_from(_collections(source.documents[0])))
    expected = value_of(source.documents[0])
    value = data.draw(_values)
    if isinstance(node, yaml.MappingNode):
        key = data.draw(_names.filter(lambda k: k not in _get(expected, path)))
        source.add_key(node, key, value)
        _get(expected, path)[key] = value
    else:
        source.append_item(node, value)
        _get(expected, path).append(value)
    after = source.text()
    assert yaml.safe_load(after) == expected
    if crlf:
        assert after.count("\n") == after.count("\r\n")
    before_lines, after_lines = text.splitlines(), after.splitlines()
    matcher = difflib.SequenceMatcher(a=before_lines, b=after_lines, autojunk=False)
    kept = sum(block.size for block in matcher.get_matching_blocks())
    changed_flow_lines = 1 if node.flow_style else 0  # a flow collection grows in place
    assert kept >= len(before_lines) - changed_flow_lines


def test_a_list_replaced_under_a_key_keeps_the_files_sequence_style() -> None:
    text = "spec:\n  ingress:\n  - from: [a]\n  other: 1\n"
    source = YamlFile("f.yaml", text)
    spec = _at(source.documents[0], "spec")
    source.set_value(spec, 0, [{"from": ["b"]}])
    # dash under the key (the file's style), leaves in flow style (the file's style)
    assert source.text() == "spec:\n  ingress:\n  - from: [b]\n  other: 1\n"
