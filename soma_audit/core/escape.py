"""Untrusted text made safe for each output format.

Object names, file paths and messages from servers and tools come from whoever wrote the
audited repository or runs the audited cluster. Printed raw, a name could clear the
terminal, print a fake "all checks passed" line, add a ticked box or a link to the
markdown export, or break the JUnit XML. Each renderer passes such text through the
function of its format here; the text stays readable, its effects are gone.
"""

from __future__ import annotations

import re
from urllib.parse import quote

#: C0 and C1 control characters, DEL, and the Unicode marks that reorder or hide text
#: (bidirectional overrides and isolates, zero-width characters, line/paragraph
#: separators): shown as escapes, never interpreted.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}
#: Characters with a meaning in CommonMark/GFM inline text, escaped with a backslash.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#!|~>])")
#: A list marker or ordered-list number at the start of the text (after the exporter's
#: own "- ", it would nest a list of the attacker's).
_LEADING_MARKER = re.compile(r"^([-+]|\d+(?=[.)]))")
#: Characters XML 1.0 cannot hold at all, even escaped: compiled by :func:`xml` on first
#: use (its charset spans all of Unicode, a few milliseconds that every start paid).
_NOT_XML = "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


def _show(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                else f"\\u{ord(char):04x}")


def visible(text: object) -> str:
    """``text`` on one line with every control character written as an escape
    (``\\n``, ``\\e``, ``\\x07``, ``\\u202e``): what a terminal or a log shows as is."""
    return _CONTROL.sub(_show, str(text))


def terminal(text: object) -> str:
    """For rich console markup (the table): visible, and ``[`` escaped so ``[/bold]`` or
    ``[link=…]`` in a name is text, not markup."""
    from rich.markup import escape

    return escape(visible(text))


def markdown(text: object) -> str:
    """For markdown inline text: one line, HTML escaped, markdown punctuation escaped (no
    heading, list item, box, link, image, table cell or code span can start here)."""
    shown = visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _LEADING_MARKER.sub(r"\\\1", _MARKDOWN.sub(r"\\\1", shown))


def markdown_code(text: object) -> str:
    """For text inside a markdown code span: one line, no backtick to close the span."""
    return visible(text).replace("`", "'")


def xml(text: object) -> str:
    """For XML text and attributes (ElementTree escapes ``<&>"`` itself): every character
    XML 1.0 cannot hold is written as a visible escape."""
    return re.sub(_NOT_XML, _show, str(text))


def uri(path: str) -> str:
    """A relative file path as a URI reference: percent-encoded, ``/`` kept."""
    return quote(path, safe="/")
