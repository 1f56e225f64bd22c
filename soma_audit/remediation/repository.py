"""Plan a recipe's objects against a repository: find each by identity wherever it lives,
patch it in place (owned paths only), create what is missing, never duplicate.

Identity is (API group, kind, namespace, name), looked up across every plain YAML file of
the repository (multi-document files and ``kind: List`` items included). An existing object
is edited where it is, through :mod:`yamledit`; a missing one is appended beside its
siblings when all of its kind live together in one file, else written to the recipe's
path. Other documents of a touched file keep their bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from soma_audit.core.model import Result, Status
from soma_audit.remediation.merge import edit_object, merged_target
from soma_audit.remediation.output import RenderedFile, dump_objects
from soma_audit.remediation.plan import RemediationError
from soma_audit.remediation.yamledit import YamlFile, value_of
from soma_audit.sources.documents import parse_bytes
from soma_audit.sources.manifests import survey

Identity = tuple[str, str, str | None, str]
_YAML = (".yaml", ".yml")
_OBJECT_REF = re.compile(r"\b[A-Z][A-Za-z]+/[a-z0-9][a-z0-9.-]*(?:/[a-z0-9][a-z0-9.-]*)?\b")


def flagged_by(results: Iterable[Result], checks: set[str]) -> dict[str, set[str]]:
    """Check id → the objects its failing evidence names (the evidence's object and those
    its message mentions, such as the policy that admits an unintended flow)."""
    flagged: dict[str, set[str]] = {}
    for result in results:
        if result.check.id in checks and result.status == Status.FAIL:
            names = flagged.setdefault(result.check.id, set())
            for evidence in result.evidence:
                names.update(_OBJECT_REF.findall(f"{evidence.object} {evidence.message}"))
    return flagged


def identity(obj: dict[str, Any]) -> Identity:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = meta.get("namespace")
    api = str(obj.get("apiVersion", ""))
    return (api.rpartition("/")[0] if "/" in api else "", str(obj.get("kind", "")),
            str(namespace) if namespace else None, str(meta.get("name", "")))


def describe(ident: Identity) -> str:
    _, kind, namespace, name = ident
    return "/".join(p for p in (kind, namespace, name) if p)


def _same(found: Identity, wanted: Identity) -> bool:
    """Same object: a manifest without a namespace is the wanted namespace's (Argo CD
    deploys it to its destination)."""
    return found[:2] == wanted[:2] and found[3] == wanted[3] and (
        found[2] == wanted[2] or found[2] is None)


@dataclass
class FilePlan:
    """What the plan does to one file: its edits, or its new text, and the summary."""

    path: str
    source: YamlFile | None = None
    new_text: str | None = None
    lines: list[str] = field(default_factory=list)
    unjustified: list[str] = field(default_factory=list)


class RepositoryPlanner:
    """Locates objects in the repository at ``root`` and plans the edits of one recipe."""

    def __init__(self, root: Path, read: Callable[[str], bytes | None],
                 flagged: dict[str, set[str]] | None = None) -> None:
        self.root = root
        self.read = read
        #: Check id → the objects its evidence names; a removal rule applies to an object
        #: only when its check flagged that object (None: no evidence, nothing removed).
        self.flagged = flagged
        self.files: dict[str, FilePlan] = {}
        self._index: dict[tuple[str, str, str], list[tuple[Identity, str]]] | None = None

    # -- the index -------------------------------------------------------------------

    def index(self) -> dict[tuple[str, str, str], list[tuple[Identity, str]]]:
        if self._index is None:
            found: dict[tuple[str, str, str], list[tuple[Identity, str]]] = {}
            for path, below_kustomization in survey(self.root).files:
                if below_kustomization:
                    continue  # reaches the cluster only through its overlay's build
                where = path.relative_to(self.root).as_posix()
                data = self.read(where)
                if data is None:
                    continue
                for resource in parse_bytes(data, where).resources:
                    ident = identity(resource.body)
                    found.setdefault((ident[0], ident[1], ident[3]), []).append(
                        (ident, where))
            self._index = found
        return self._index

    def locate(self, wanted: Identity) -> str | None:
        """The file holding ``wanted``; RemediationError when two files define it."""
        candidates = [(ident, path) for ident, path in self.index().get(
            (wanted[0], wanted[1], wanted[3]), []) if _same(ident, wanted)]
        exact = [c for c in candidates if c[0][2] == wanted[2]] or candidates
        paths = sorted({path for _, path in exact})
        if len(paths) > 1 or len(exact) > 1:
            raise RemediationError(f"{describe(wanted)} is defined more than once "
                                   f"({', '.join(paths)}); fix that first, nothing planned")
        return paths[0] if paths else None

    def siblings_file(self, wanted: Identity) -> str | None:
        """The one file holding every object of ``wanted``'s kind and namespace, when
        there are several of them together there."""
        paths = [path for entries in self.index().values() for ident, path in entries
                 if ident[:3] == wanted[:3]]
        return paths[0] if len(paths) > 1 and len(set(paths)) == 1 else None

    # -- files -----------------------------------------------------------------------

    def file(self, path: str) -> FilePlan:
        if path not in self.files:
            plan = FilePlan(path)
            data = self.read(path)
            if data is not None:
                if not path.endswith(_YAML):
                    raise RemediationError(f"{path}: not a YAML file (JSON is never "
                                           "re-formatted); change it by hand")
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise RemediationError(f"{path}: not UTF-8 text; not edited") from None
                plan.source = YamlFile(path, text)
            self.files[path] = plan
        return self.files[path]

    def _find(self, source: YamlFile, wanted: Identity
              ) -> tuple[yaml.Node | None, int, yaml.Node, int]:
        """(parent list or None, slot, node, document index) of ``wanted`` in ``source``."""
        for number, root in enumerate(source.documents):
            data = value_of(root)
            if not isinstance(data, dict):
                continue
            if _same(identity(data), wanted):
                return None, 0, root, number
            items = data.get("items")
            if str(data.get("kind", "")).endswith("List") and isinstance(items, list):
                for key, value in root.value:  # type: ignore[union-attr]
                    if key.value == "items" and isinstance(value, yaml.SequenceNode):
                        for slot, item in enumerate(value.value):
                            body = value_of(item)
                            if isinstance(body, dict) and _same(identity(body), wanted):
                                return value, slot, item, number
        raise RemediationError(f"{source.where}: {describe(wanted)} moved while planning")

    # -- planning --------------------------------------------------------------------

    def plan(self, rendered: RenderedFile) -> None:
        new: dict[str, list[dict[str, Any]]] = {}
        for index, obj in enumerate(rendered.objects):
            if index in rendered.replaces:
                self._replace(rendered, obj, rendered.replaces[index])
                continue
            wanted = identity(obj)
            path = self.locate(wanted)
            if path is None:
                if rendered.patch:
                    raise RemediationError(f"{describe(wanted)} is no longer in the "
                                           "repository; re-run the diff")
                dest = self.siblings_file(wanted) or rendered.path
                new.setdefault(dest, []).append(obj)
                continue
            self._update(rendered, obj, wanted, path)
        for dest, objects in new.items():
            plan = self.file(dest)
            names = ", ".join(describe(identity(o)) for o in objects)
            if plan.source is not None:
                for obj in objects:
                    plan.source.append_document(obj)
            elif dest == rendered.path and len(objects) == len(rendered.objects):
                plan.new_text = rendered.text
            else:
                plan.new_text = (plan.new_text + "---\n" if plan.new_text else "") + (
                    dump_objects(objects))
            plan.lines.append(f"create {names}")

    def _update(self, rendered: RenderedFile, obj: dict[str, Any], wanted: Identity,
                path: str) -> None:
        plan = self.file(path)
        assert plan.source is not None
        parent, slot, node, _ = self._find(plan.source, wanted)
        current = value_of(node)
        recipe = rendered.recipe
        rules = [r for r in (recipe.removes if recipe else [])
                 if self.is_flagged(r.check, wanted)]
        owns = recipe.owned(wanted[1]) if recipe else []
        if rendered.patch:
            target = obj
        else:
            if not owns:
                plan.lines.append(f"keep {describe(wanted)} (exists; the recipe only "
                                  "creates this kind)")
                return
            target = merged_target(current, obj, owns, rules)
        outcome = edit_object(plan.source, parent, slot, node, target, rules)
        outside = outcome.outside(owns)
        if outside:
            raise RemediationError(f"{path}: {describe(wanted)}: the recipe would change "
                                   f"{', '.join(outside)}, which it does not own; nothing "
                                   "planned")
        if outcome.fields:
            plan.lines.append(f"update {describe(wanted)}: " + ", ".join(outcome.fields))
        plan.unjustified += [f"{describe(wanted)}: {item}" for item in outcome.unjustified]

    def is_flagged(self, check: str, wanted: Identity) -> bool:
        return self.flagged is not None and describe(wanted) in self.flagged.get(check, set())

    def _replace(self, rendered: RenderedFile, obj: dict[str, Any],
                 old: tuple[str, str | None, str]) -> None:
        kind, namespace, name = old
        group = identity(obj)[0]
        wanted: Identity = (group, kind, namespace, name)
        path = self.locate(wanted)
        if path is None:
            raise RemediationError(f"{describe(wanted)} is no longer in the repository")
        check = rendered.replaced_because.partition(":")[0]
        if not self.is_flagged(check, wanted):
            raise RemediationError(f"{path}: replacing {describe(wanted)} needs evidence: "
                                   f"{check} does not flag it (re-run the audit)")
        plan = self.file(path)
        assert plan.source is not None
        parent, _, node, number = self._find(plan.source, wanted)
        plan.source.replace_document(number, obj, node if parent is not None else None)
        plan.lines.append(f"replaces {describe(wanted)} by {describe(identity(obj))} "
                          f"(justified by {rendered.replaced_because})")

    def results(self) -> list[FilePlan]:
        """Every file the plan touches, by path (a stable preview)."""
        return [self.files[path] for path in sorted(self.files)]
