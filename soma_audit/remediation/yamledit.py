"""Edit YAML sources in place, guided by node positions: every byte outside the edited
node spans stays as the team wrote it (comments, quoting, flow/block style, key order,
indentation, document separators, BOM, CRLF).

A file is composed (not constructed) with the bounded loader of
:mod:`soma_audit.core.yamlload`, so each node knows where it starts and ends. Edits are
splices of the original text; new values are emitted by the YAML serializer and re-indented
to their surroundings, never pasted as strings. What cannot be edited safely — a node that
an alias shares, one with an anchor or explicit tag, a block scalar, a mapping with merge
keys, a Helm template or a file that is not YAML — is refused with the file and line.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from soma_audit.core.yamlload import Loader, check_graph
from soma_audit.remediation.plan import RemediationError

_BOM = "\ufeff"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FLOW_INDICATORS = re.compile(r"[,\[\]{}#]")
#: Orders insertions at one position: a deeper (further indented) node's text comes first.
_DEEPER = 1000
#: Go-template (Helm) actions: such a file is a template, never edited as YAML. A Grafana
#: legend such as ``{{service}}`` inside a string is not one.
_TEMPLATE_ACTION = re.compile(
    r"\{\{-?\s*(\.|-|/\*|include\b|template\b|if\b|else\b|range\b|with\b|end\b|"
    r"define\b|toYaml\b|tpl\b|printf\b|quote\b)|\{%")


class _BlockDumper(yaml.SafeDumper):
    """Block YAML without aliases; sequences under a key are not indented (PyYAML's style)."""

    indent_sequences = False

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, indentless and not self.indent_sequences)

    def represent(self, data: Any) -> None:
        self._root = data  # the value emitted is block style even when its leaves are not
        super().represent(data)

    def represent_mapping(self, tag: str, mapping: Any, flow_style: Any = None) -> Any:
        if mapping is getattr(self, "_root", None) and self.default_flow_style is None:
            flow_style = False
        return super().represent_mapping(tag, mapping, flow_style)

    def represent_sequence(self, tag: str, sequence: Any, flow_style: Any = None) -> Any:
        if sequence is getattr(self, "_root", None) and self.default_flow_style is None:
            flow_style = False
        return super().represent_sequence(tag, sequence, flow_style)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Multi-line text as a literal block (``|``) when it can be one; text holding template
    braces double-quoted, so the file never looks like a template afterwards."""
    lines = value.split("\n")
    if "\n" in value.rstrip("\n") and not any(
            line != line.rstrip() or "\t" in line or "\r" in line for line in lines):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if "{{" in value or "{%" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_BlockDumper.add_representer(str, _represent_str)


class _IndentedDumper(_BlockDumper):
    """Block YAML whose sequences under a key are indented (``key:\\n  - item``)."""

    indent_sequences = True


@dataclass
class _Splice:
    start: int
    end: int
    text: str
    #: Tie-break for splices at one position: deeper nodes' insertions come first.
    order: int


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def value_of(node: yaml.Node) -> Any:
    """The Python value of ``node`` (merge keys resolved on a copy: the tree stays as read)."""
    constructor = yaml.constructor.SafeConstructor()
    has_merge = any(isinstance(n, yaml.MappingNode) and any(
        k.tag == _MERGE_TAG for k, _ in n.value) for n in _walk(node))
    return constructor.construct_document(copy.deepcopy(node) if has_merge else node)


def _walk(node: yaml.Node) -> Iterator[yaml.Node]:
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(_children(current))


class YamlFile:
    """One YAML file: its documents as node trees and the splices planned on its text."""

    def __init__(self, where: str, text: str) -> None:
        self.where = where
        self.bom = text.startswith(_BOM)
        self.source = text[1:] if self.bom else text
        self.newline = "\r\n" if "\r\n" in self.source else "\n"
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.source)]
        self.documents = self._compose()
        self._refuse_templates()
        self._shared = self._shared_nodes()
        self._splices: list[_Splice] = []
        self._appended: list[str] = []

    # -- parsing ---------------------------------------------------------------------

    def _compose(self) -> list[yaml.Node]:
        loader = Loader(self.source)
        documents = []
        try:
            while loader.check_node():
                node = loader.get_node()
                if node is not None:
                    check_graph(node, loader)
                    documents.append(node)
        except yaml.YAMLError as exc:
            template = _TEMPLATE_ACTION.search(self.source)
            if template:
                line = self.source.count("\n", 0, template.start()) + 1
                raise RemediationError(f"{self.where}:{line}: holds template syntax: a Helm "
                                       "or other template is never edited as YAML") from None
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "not parseable"
            raise RemediationError(f"{self.where}{line}: not valid YAML ({problem}): "
                                   "not edited") from None
        except RecursionError:
            raise RemediationError(f"{self.where}: nested too deep: not edited") from None
        finally:
            loader.dispose()
        return documents

    def _refuse_templates(self) -> None:
        """A template action outside quoted and block scalars is a template that happens to
        parse (``name: {{ .Values.name }}`` is a flow mapping); inside them it is data (an
        alert annotation's ``{{ $labels.service }}``, a Grafana legend). Comments are
        skipped."""
        quoted = sorted(
            (self.offset(node.start_mark), self.offset(node.end_mark))
            for document in self.documents for node in _walk(document)
            if isinstance(node, yaml.ScalarNode) and node.style in ('"', "'", "|", ">"))
        for match in _TEMPLATE_ACTION.finditer(self.source):
            at = match.start()
            line_start = self._line_start(at)
            if self.source[line_start:at].lstrip().startswith("#"):
                continue
            if not any(start <= at < end for start, end in quoted):
                line = self.source.count("\n", 0, at) + 1
                raise RemediationError(f"{self.where}:{line}: holds template syntax: a Helm "
                                       "or other template is never edited as YAML")

    def _shared_nodes(self) -> set[int]:
        """Nodes reachable twice (an anchor and its aliases): editing one edits all."""
        counts: dict[int, int] = {}
        for document in self.documents:
            stack = [document]
            while stack:
                node = stack.pop()
                counts[id(node)] = counts.get(id(node), 0) + 1
                if counts[id(node)] == 1:
                    stack.extend(_children(node))
        return {key for key, count in counts.items() if count > 1}

    # -- positions -------------------------------------------------------------------

    def offset(self, mark: yaml.Mark) -> int:
        return self._line_starts[mark.line] + mark.column

    def line_of(self, node: yaml.Node) -> str:
        return f"{self.where}:{node.start_mark.line + 1}"

    def content_end(self, node: yaml.Node) -> int:
        """Where ``node``'s own text ends (a block collection's end mark is the next token)."""
        if isinstance(node, yaml.ScalarNode) or node.flow_style or not node.value:
            return self.offset(node.end_mark)
        last = node.value[-1]
        return self.content_end(last[1] if isinstance(node, yaml.MappingNode) else last)

    def _line_start(self, pos: int) -> int:
        return self.source.rfind("\n", 0, pos) + 1

    def _line_after(self, pos: int) -> int:
        """The start of the line after the one holding ``pos`` (end of text if none)."""
        if pos > 0 and self.source[pos - 1] == "\n":
            return pos
        found = self.source.find("\n", pos)
        return len(self.source) if found < 0 else found + 1

    def _needs_newline(self, pos: int) -> str:
        return self.newline if pos == len(self.source) and not self.source.endswith(
            "\n") and self.source else ""

    # -- guards ----------------------------------------------------------------------

    def _check_editable(self, node: yaml.Node, what: str, whole: bool = False) -> None:
        """Refuse an edit of ``node``; ``whole``: it is replaced as a whole (a block
        scalar may be, by a new text in the same style)."""
        where = self.line_of(node)
        if id(node) in self._shared:
            raise RemediationError(f"{where}: {what} is shared through a YAML anchor/alias; "
                                   "editing it would change every place that uses it")
        start = self.offset(node.start_mark)
        if self.source[start:start + 1] in ("&", "!"):
            raise RemediationError(f"{where}: {what} carries an anchor or an explicit tag; "
                                   "not edited")
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") and not whole:
            raise RemediationError(f"{where}: {what} is a block scalar; not edited")
        if isinstance(node, yaml.MappingNode) and any(k.tag == _MERGE_TAG
                                                      for k, _ in node.value):
            raise RemediationError(f"{where}: {what} uses a merge key (<<); not edited")

    def _only_spaces_before(self, node: yaml.Node, what: str) -> int:
        start = self.offset(node.start_mark)
        line = self._line_start(start)
        if self.source[line:start].strip():
            raise RemediationError(f"{self.line_of(node)}: {what} shares its line with other "
                                   "content; not removed")
        return line

    # -- emitting --------------------------------------------------------------------

    def _step(self) -> int:
        """The indentation step the file uses (2 unless its nested mappings say otherwise)."""
        for document in self.documents:
            for node in _walk(document):
                if isinstance(node, yaml.MappingNode) and not node.flow_style:
                    for key, value in node.value:
                        if (isinstance(value, yaml.MappingNode) and not value.flow_style
                                and value.value):
                            step = value.value[0][0].start_mark.column - key.start_mark.column
                            if 2 <= step <= 8:
                                return step
        return 2

    def _indented_sequences(self) -> bool:
        for document in self.documents:
            for node in _walk(document):
                if isinstance(node, yaml.MappingNode) and not node.flow_style:
                    for key, value in node.value:
                        if (isinstance(value, yaml.SequenceNode) and not value.flow_style
                                and value.value):
                            return self._dash_column(value) > key.start_mark.column
        return True

    def _dash_column(self, sequence: yaml.SequenceNode) -> int:
        first = self.offset(sequence.value[0].start_mark)
        dash = self.source.rfind("-", self._line_start(first), first)
        return dash - self._line_start(first) if dash >= 0 else sequence.start_mark.column

    def _flow_leaves(self) -> bool:
        """Whether the file writes its innermost collections in flow style
        (``matchLabels: {app: x}``, ``operations: [Read]``): new values then do too."""
        flow = block = 0
        for document in self.documents:
            for node in _walk(document):
                if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.value and all(
                        isinstance(child, yaml.ScalarNode) for child in _children(node)):
                    flow += bool(node.flow_style)
                    block += not node.flow_style
        return flow > block

    def _block(self, value: Any) -> list[str]:
        dumper = _IndentedDumper if self._indented_sequences() else _BlockDumper
        leaves = None if self._flow_leaves() else False
        text = yaml.dump(value, Dumper=dumper, sort_keys=False, default_flow_style=leaves,
                         allow_unicode=True, width=4096, indent=self._step())
        if text.endswith("\n...\n"):
            text = text[:-4]
        return text.rstrip("\n").split("\n")

    def _flow(self, value: Any) -> str:
        text = yaml.dump(value, Dumper=_BlockDumper, sort_keys=False, default_flow_style=True,
                         allow_unicode=True, width=1 << 30)
        return (text[:-4] if text.endswith("\n...\n") else text).rstrip("\n")

    def _scalar(self, value: Any, style: str | None, in_flow: bool) -> str:
        quoted = style if style in ('"', "'") and isinstance(value, str) else None
        text = yaml.dump(value, Dumper=_BlockDumper, default_style=quoted,
                         allow_unicode=True, width=1 << 30)
        text = (text[:-4] if text.endswith("\n...\n") else text).rstrip("\n")
        if "\n" in text or (in_flow and isinstance(value, str) and not quoted
                            and _FLOW_INDICATORS.search(text)):
            text = yaml.dump(value, Dumper=yaml.SafeDumper, default_style='"',
                             allow_unicode=True, width=1 << 30).rstrip("\n")
        return text

    def _lines(self, lines: list[str], indent: int) -> str:
        pad = " " * indent
        return "".join((pad + line if line else "") + self.newline for line in lines)

    # -- edits -----------------------------------------------------------------------

    def _splice(self, start: int, end: int, text: str, depth: int = 0) -> None:
        self._splices.append(_Splice(start, end, text, -depth))

    def _colon_after(self, key: yaml.Node) -> int:
        pos = self.offset(key.end_mark)
        while pos < len(self.source) and self.source[pos] in " \t":
            pos += 1
        if self.source[pos:pos + 1] != ":":
            raise RemediationError(f"{self.line_of(key)}: cannot place a value after this "
                                   "key; not edited")
        return pos + 1

    def set_value(self, parent: yaml.Node, slot: int, value: Any) -> None:
        """Replace the value of entry ``slot`` of a mapping (by index) or a sequence item."""
        if isinstance(parent, yaml.MappingNode):
            key, node = parent.value[slot]
        else:
            key, node = None, parent.value[slot]
        block = (isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
                 and isinstance(value, str) and key is not None)
        self._check_editable(node, "the value", whole=block)
        depth = node.start_mark.line
        if block and key is not None:
            self._replace_block_scalar(key, node, value, depth)
            return
        if (isinstance(node, yaml.ScalarNode) and not isinstance(value, dict | list)
                and (node.value != "" or node.style)):
            self._splice(self.offset(node.start_mark), self.offset(node.end_mark),
                         self._scalar(value, node.style, bool(parent.flow_style)), depth)
            return
        #: ``key:`` with nothing after it: the value is inserted after the colon
        empty = isinstance(node, yaml.ScalarNode) and node.value == "" and not node.style
        end = self.content_end(node)
        if parent.flow_style or (not isinstance(node, yaml.ScalarNode) and node.flow_style
                                 and node.value and isinstance(value, dict | list)):
            # inside a flow collection, or a written flow collection replaced: flow again
            # (an empty ``{}`` / ``[]`` placeholder becomes block in a block context)
            self._splice(self.offset(node.start_mark), end, self._flow(value), depth)
            return
        simple = not isinstance(value, dict | list) or not value
        if key is not None:
            start = self._colon_after(key)
            end = start if empty else end
            if simple:
                text = " " + (self._flow(value) if isinstance(value, dict | list)
                              else self._scalar(value, None, False))
            else:
                indent = key.start_mark.column + self._step()
                if isinstance(value, list) and not self._indented_sequences():
                    indent = key.start_mark.column  # ``key:`` then ``- item`` below it
                text = self.newline + self._lines(self._block(value), indent).rstrip("\r\n")
            self._splice(start, end, text, depth)
            return
        start = self.offset(node.start_mark)
        if simple:
            text = (self._flow(value) if isinstance(value, dict | list)
                    else self._scalar(value, None, False))
        else:
            lines = self._block(value)
            text = lines[0] + self.newline + self._lines(lines[1:], node.start_mark.column)
            text = text.rstrip("\r\n")
        self._splice(start, end, text, depth)

    def _replace_block_scalar(self, key: yaml.Node, node: yaml.ScalarNode, value: str,
                              depth: int) -> None:
        """A block scalar replaced by a literal block with the new text (its own value
        only: the header, indentation and trailing blank lines around it are the file's)."""
        start = self._colon_after(key)
        end = self.offset(node.end_mark)
        while end > start and self.source[end - 1] in "\r\n \t":
            end -= 1
        indent = " " * (key.start_mark.column + self._step())
        chomp = "" if value.endswith("\n") and not value.endswith("\n\n") else (
            "-" if not value.endswith("\n") else "+")
        body = value[:-1] if value.endswith("\n") else value
        if any(line[:1] == " " for line in body.split("\n")[:1]) or "\r" in body:
            raise RemediationError(f"{self.line_of(node)}: the new text cannot be written "
                                   "as a block scalar; not edited")
        lines = [indent + line if line else "" for line in body.split("\n")]
        self._splice(start, end, f" |{chomp}" + self.newline + self.newline.join(lines),
                     depth)

    def add_key(self, mapping: yaml.MappingNode, key: str, value: Any) -> None:
        """Add ``key: value`` after the mapping's last entry, at its indentation."""
        self._check_editable(mapping, "the mapping")
        depth = mapping.start_mark.line + _DEEPER * mapping.start_mark.column
        if mapping.flow_style:
            pair = self._flow({key: value})[1:-1]
            if not mapping.value:
                self._splice(self.offset(mapping.start_mark), self.offset(mapping.end_mark),
                             "{" + pair + "}", depth)
            else:
                self._splice(self.content_end(mapping.value[-1][1]),
                             self.content_end(mapping.value[-1][1]), ", " + pair, depth)
            return
        column = mapping.value[0][0].start_mark.column
        pos = self._line_after(self.content_end(mapping.value[-1][1]))
        self._splice(pos, pos, self._needs_newline(pos)
                     + self._lines(self._block({key: value}), column), depth)

    def append_item(self, sequence: yaml.SequenceNode, value: Any) -> None:
        """Append ``value`` after the sequence's last item, with the siblings' dash column."""
        self._check_editable(sequence, "the list")
        depth = _DEEPER * sequence.start_mark.column
        if sequence.flow_style:
            if not sequence.value:
                self._splice(self.offset(sequence.start_mark), self.offset(sequence.end_mark),
                             "[" + self._flow([value])[1:-1] + "]", depth)
            else:
                end = self.content_end(sequence.value[-1])
                self._splice(end, end, ", " + self._flow([value])[1:-1], depth)
            return
        dash = self._dash_column(sequence)
        pos = self._line_after(self.content_end(sequence.value[-1]))
        lines = self._block(value) if isinstance(value, dict | list) and value else [
            self._flow(value) if isinstance(value, dict | list)
            else self._scalar(value, None, False)]
        text = " " * dash + "- " + lines[0] + self.newline + self._lines(lines[1:], dash + 2)
        self._splice(pos, pos, self._needs_newline(pos) + text, depth)

    def remove_key(self, mapping: yaml.MappingNode, slot: int) -> None:
        key, value = mapping.value[slot]
        self._check_editable(mapping, "the mapping")
        if mapping.flow_style:
            self._remove_flow(mapping, slot, key, value)
            return
        start = self._only_spaces_before(key, "the key")
        self._splice(start, self._line_after(self.content_end(value)), "")

    def remove_item(self, sequence: yaml.SequenceNode, slot: int) -> None:
        item = sequence.value[slot]
        self._check_editable(sequence, "the list")
        if sequence.flow_style:
            self._remove_flow(sequence, slot, item, item)
            return
        first = self.offset(item.start_mark)
        line = self._line_start(first)
        if self.source[line:first].strip() != "-":
            raise RemediationError(f"{self.line_of(item)}: the list item shares its line "
                                   "with other content; not removed")
        self._splice(line, self._line_after(self.content_end(item)), "")

    def _remove_flow(self, collection: yaml.Node, slot: int, first: yaml.Node,
                     last: yaml.Node) -> None:
        entries = collection.value
        if len(entries) == 1:
            opening = "{}" if isinstance(collection, yaml.MappingNode) else "[]"
            self._splice(self.offset(collection.start_mark), self.offset(collection.end_mark),
                         opening)
            return
        if slot > 0:
            previous = entries[slot - 1]
            start = self.content_end(previous[1] if isinstance(previous, tuple) else previous)
            self._splice(start, self.content_end(last), "")
            return
        following = entries[1]
        nxt = following[0] if isinstance(following, tuple) else following
        self._splice(self.offset(first.start_mark), self.offset(nxt.start_mark), "")

    def replace_document(self, index: int, value: Any, node: yaml.Node | None = None) -> None:
        """Replace a whole document (or ``node``, an item of a ``kind: List``) by ``value``;
        the comments and separators around it stay."""
        root = node if node is not None else self.documents[index]
        self._check_editable(root, "the object")
        start = self.offset(root.start_mark)
        end = self._line_after(self.content_end(root))
        if node is not None:
            column = root.start_mark.column
            lines = self._block(value)
            text = lines[0] + self.newline + self._lines(lines[1:], column)
        else:
            start = self._line_start(start)
            text = self._lines(self._block(value), 0)
        self._splice(start, end, self._needs_newline(end) + text if end == len(
            self.source) else text)

    def append_document(self, value: Any) -> None:
        """A new document at the end of the file, after a ``---`` separator."""
        self._appended.append(self._lines(["---", *self._block(value)], 0))

    # -- result ----------------------------------------------------------------------

    @property
    def changed(self) -> bool:
        return bool(self._splices or self._appended)

    def text(self) -> str:
        """The edited text: the original with every splice applied, BOM and newlines kept."""
        splices = sorted(self._splices, key=lambda s: (s.start, s.end != s.start, s.order))
        out: list[str] = []
        pos = 0
        for splice in splices:
            if splice.start < pos:
                raise RemediationError(f"{self.where}: two edits overlap; nothing written")
            out.append(self.source[pos:splice.start])
            out.append(splice.text)
            pos = splice.end
        out.append(self.source[pos:])
        body = "".join(out)
        if self._appended:
            if body.strip() and not body.endswith("\n"):
                body += self.newline
            if not body.strip():
                body = ""
            tail = "".join(self._appended)
            body += tail[len("---" + self.newline):] if not body else tail
        return (_BOM if self.bom else "") + body
