"""Alert rules and the runbooks their ``runbook_url`` annotations point to.

A runbook counts when the URL's path ends in a file kept under the runbooks folder: a
repository-relative path must name that file; a full URL (a Git host's blob view, a docs
site built from the folder) must end in its path, with or without the file's extension.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from soma_audit.domain.slo.rules import rules_of

#: Extensions a docs site may drop or replace when it publishes a runbook.
_DOC_SUFFIXES = (".md", ".markdown", ".html", ".htm", ".adoc", ".rst", ".txt")


def alert_rules(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(alert name, rule) for every alerting rule in a PrometheusRule ``spec`` (walked by
    :func:`soma_audit.domain.slo.rules.rules_of`);
    an alert whose name is not a string is skipped."""
    for rule in rules_of("", None, spec):
        name = rule.body.get("alert")
        if isinstance(name, str):
            yield name, rule.body


def runbook_url(rule: Mapping[str, Any]) -> str | None:
    annotations = rule.get("annotations")
    value = annotations.get("runbook_url") if isinstance(annotations, dict) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _stem(path: str) -> str:
    for suffix in _DOC_SUFFIXES:
        if path.lower().endswith(suffix):
            return path[: -len(suffix)]
    return path


def resolve(url: str, runbooks_dir: str, files: Iterable[str]) -> str | None:
    """The runbook (a path relative to ``runbooks_dir``, from ``files``) that ``url`` names,
    or None. ``runbooks_dir`` is relative to the repository."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if not path.strip("/"):
        return None
    if parts.scheme or parts.netloc:
        wanted = _stem(path.strip("/"))
        for name in files:
            key = _stem(name)
            if wanted == key or wanted.endswith("/" + key):
                return name
        return None
    wanted = _stem(posixpath.normpath(path.lstrip("/")))
    base = posixpath.normpath(runbooks_dir)
    for name in files:
        if wanted == _stem(posixpath.normpath(posixpath.join(base, name))):
            return name
    return None
