"""Merge what a recipe renders into the object a team already has, touching owned paths only.

Semantics in the spirit of server-side apply and strategic merge patch: mappings merge key
by key, owned scalars are set, lists of named things merge by their key (containers,
volumes, env by name; ports by name or number; rule groups by name, rules by ``alert`` or
``record``; ACLs by resource and pattern, operations united), lists of scalars are united,
other lists (NetworkPolicy rules) gain an item only when no equal one exists. Nothing is
removed unless a recipe's removal rule names the check whose evidence justifies it; every
other removal is reported as unjustified and blocks the apply unless the user allows it.
The result is a list of position-guided edits on the file (:mod:`yamledit`) and a
per-field summary for the preview.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from soma_audit.remediation.recipes import RemovalRule
from soma_audit.remediation.yamledit import YamlFile, value_of

_SEGMENT = re.compile(r"\[([^\]]+)\]|([^.\[\]]+)")


def parse_path(path: str) -> tuple[str, ...]:
    """``spec.syncPolicy`` or ``metadata.labels[pod-security.kubernetes.io/*]`` → segments
    (``**`` matches any number of segments, ``*`` and ``?`` glob within one)."""
    return tuple(a or b for a, b in _SEGMENT.findall(path))


def matches(pattern: Sequence[str], path: Sequence[str]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(matches(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and matches(
        pattern[1:], path[1:])


def _within(patterns: Sequence[Sequence[str]], path: Sequence[str]) -> bool:
    """``path`` is owned: it or one of its ancestors matches a pattern."""
    return any(matches(p, path[:i]) for p in patterns for i in range(1, len(path) + 1))


def _leads_to(patterns: Sequence[Sequence[str]], path: Sequence[str]) -> bool:
    """Some owned pattern lies below ``path`` (the merge must walk into it)."""
    for pattern in patterns:
        if "**" in pattern:
            return True
        if len(pattern) > len(path) and matches(pattern[: len(path)], path):
            return True
    return False


def project(desired: dict[str, Any], patterns: Sequence[Sequence[str]],
            path: tuple[str, ...] = ()) -> dict[str, Any]:
    """The part of ``desired`` under owned paths (mappings only are walked into)."""
    out: dict[str, Any] = {}
    for key, value in desired.items():
        here = (*path, str(key))
        if _within(patterns, here):
            out[key] = value
        elif isinstance(value, dict) and _leads_to(patterns, here):
            inner = project(value, patterns, here)
            if inner:
                out[key] = inner
    return out


# ------------------------------------------------------------------------ list identity


def _name(item: dict[str, Any]) -> Any:
    return item.get("name")


def _port(item: dict[str, Any]) -> Any:
    return item.get("name") or item.get("containerPort") or item.get("port")


def _rule(item: dict[str, Any]) -> Any:
    return ("alert", item["alert"]) if "alert" in item else ("record", item.get("record"))


def _acl(item: dict[str, Any]) -> Any:
    resource = item.get("resource") if isinstance(item.get("resource"), dict) else {}
    return (item.get("type", "allow"), resource.get("type"), resource.get("name"),
            resource.get("patternType", "literal"), item.get("host", "*"))


#: How the items of a list are identified, by the list's field name.
LIST_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "containers": _name, "initContainers": _name, "ephemeralContainers": _name,
    "volumes": _name, "env": _name, "groups": _name, "dependencies": _name,
    "volumeMounts": lambda item: item.get("mountPath"),
    "ports": _port, "rules": _rule, "acls": _acl,
}

#: Lists whose matched items merge only these fields: an ACL that exists keeps its own
#: type and host (their defaults) and only gains the operations it lacks.
ITEM_FIELDS: dict[str, tuple[str, ...]] = {"acls": ("operations",)}

#: Scalars that only ever grow (Kafka cannot shrink a topic's partitions).
INCREASE_ONLY = (parse_path("spec.partitions"),)


def _key_of(field_name: str, item: Any) -> Any:
    function = LIST_KEYS.get(field_name)
    if function is None or not isinstance(item, dict):
        return None
    key = function(item)
    return None if key is None or key == ("record", None) else repr(key)


def _same_item(field_name: str, old: Any, new: Any) -> bool:
    """The same list item: equal, or with the same identity (a container's name ...)."""
    key = _key_of(field_name, new)
    return old == new or (key is not None and _key_of(field_name, old) == key)


def merge_value(current: Any, desired: Any, path: tuple[str, ...] = (),
                defaults: Sequence[Sequence[str]] = ()) -> Any:
    """``desired`` merged into ``current`` (neither is modified); a path matching one of
    ``defaults`` is only filled in when the object does not have it yet."""
    if isinstance(current, dict) and isinstance(desired, dict):
        out = dict(current)
        for key, value in desired.items():
            here = (*path, str(key))
            if key not in current:
                out[key] = value
            elif not any(matches(p, here) for p in defaults):
                out[key] = merge_value(current[key], value, here, defaults)
        return out
    if isinstance(current, list) and isinstance(desired, list):
        field_name = path[-1] if path else ""
        out_list = list(current)
        for item in desired:
            key = _key_of(field_name, item)
            index = next((i for i, old in enumerate(out_list)
                          if key is not None and _key_of(field_name, old) == key), None)
            if index is not None:
                only = ITEM_FIELDS.get(field_name)
                wanted = {k: v for k, v in item.items() if k in only} if only else item
                out_list[index] = merge_value(out_list[index], wanted, path, defaults)
            elif item not in out_list:
                out_list.append(item)
        return out_list
    if any(matches(p, path) for p in INCREASE_ONLY) and isinstance(current, int) and (
            isinstance(desired, int) and current > desired):
        return current
    return desired


# ------------------------------------------------------------------- removal predicates


def _wildcard_acl(item: Any, desired: list[Any]) -> bool:
    """An ACL on every resource (``*``) or granting ``All``: never least privilege."""
    if not isinstance(item, dict):
        return False
    resource = item.get("resource") if isinstance(item.get("resource"), dict) else {}
    operations = item.get("operations") or [item.get("operation")]
    return resource.get("name") == "*" or "All" in [str(o) for o in operations]


def _unintended_pod_rule(item: Any, desired: list[Any]) -> bool:
    """A NetworkPolicy rule the recipe does not render whose peers are all pods of the
    policy's own namespace picked by one label (a lone ``podSelector`` such as
    ``app: billing-service``): a service-to-service flow that is not intended. Rules to
    other namespaces, CIDRs, everything, or pods picked by several labels (a Kafka
    cluster's brokers) are never picked."""
    if not isinstance(item, dict) or item in desired:
        return False
    peers = item.get("from", item.get("to"))
    return bool(peers) and isinstance(peers, list) and all(
        isinstance(p, dict) and set(p) == {"podSelector"} and isinstance(
            p["podSelector"], dict) and set(p["podSelector"]) == {"matchLabels"}
        and len(p["podSelector"]["matchLabels"] or {}) == 1 for p in peers)


PREDICATES: dict[str, Callable[[Any, list[Any]], bool]] = {
    "wildcard-acl": _wildcard_acl, "unintended-pod-rule": _unintended_pod_rule}


def _drop_flagged(value: Any, desired: Any, rules: Sequence[RemovalRule],
                  path: tuple[str, ...]) -> Any:
    """``value`` without the list items a predicate rule flags."""
    if isinstance(value, dict):
        wanted = desired if isinstance(desired, dict) else {}
        return {k: _drop_flagged(v, wanted.get(k), rules, (*path, str(k)))
                for k, v in value.items()}
    if isinstance(value, list):
        wanted_items = desired if isinstance(desired, list) else []
        flagged = [r for r in rules if r.when and matches(parse_path(r.path), path)]
        return [item for item in value
                if not any(PREDICATES[r.when](item, wanted_items) for r in flagged if r.when)]
    return value


# --------------------------------------------------------------------------- the edits


@dataclass
class Outcome:
    """The edits planned on one object: what the preview lists, and what blocks it."""

    fields: list[str] = field(default_factory=list)
    unjustified: list[str] = field(default_factory=list)
    #: Every path the edits touch (list indices left out), for the ownership check.
    paths: list[tuple[str, ...]] = field(default_factory=list)

    def outside(self, owns: Sequence[str]) -> list[str]:
        """The touched paths no owned path covers (an added parent of one is covered)."""
        patterns = [parse_path(p.rstrip("?")) for p in owns]
        return [".".join(p) for p in self.paths
                if not (_within(patterns, p) or _leads_to(patterns, p))]


def _item_label(item: Any) -> str:
    if isinstance(item, dict):
        for key in ("name", "alert", "record", "mountPath"):
            if key in item:
                return str(item[key])
        resource = item.get("resource")
        if isinstance(resource, dict):
            return f"{resource.get('type')}:{resource.get('name')}"
        text = yaml.dump(item, Dumper=yaml.SafeDumper, default_flow_style=True, width=1 << 20,
                         sort_keys=False).strip()
        return text if len(text) <= 90 else text[:87] + "..."
    return str(item)


class Editor:
    """Turns the difference between an object as written and as wanted into edits."""

    def __init__(self, source: YamlFile, rules: Sequence[RemovalRule], kind: str,
                 outcome: Outcome) -> None:
        self.source = source
        #: The rules in force for this object (its checks flagged it).
        self.rules = [r for r in rules if r.kind in (kind, "*")]
        self.outcome = outcome

    def _justify(self, path: tuple[str, ...], value: Any, whole: bool = False
                 ) -> str | None:
        """The rule that justifies removing ``value`` at ``path`` (``whole``: a list
        replaced as a whole, each of its items must be removable), or None."""
        for rule in self.rules:
            if not matches(parse_path(rule.path), path):
                continue
            items = value if whole and isinstance(value, list) else [value]
            if rule.when is None or all(PREDICATES[rule.when](i, []) for i in items):
                return f"{rule.check}: {rule.reason}"
        return None

    def _removal(self, path: tuple[str, ...], value: Any, label: str,
                 whole: bool = False) -> None:
        """Record a removal at ``path`` (``label`` says what, for the preview)."""
        self.outcome.paths.append(path)
        why = self._justify(path, value, whole)
        if why is None:
            self.outcome.unjustified.append(label)
            self.outcome.fields.append(f"removes {label} (no flagged evidence)")
        else:
            self.outcome.fields.append(f"removes {label} (justified by {why})")

    def edit(self, parent: yaml.Node, slot: int, node: yaml.Node, target: Any,
             path: tuple[str, ...], shown: str) -> None:
        """Edit ``node`` (entry ``slot`` of ``parent``) into ``target``; ``path`` is what
        ownership rules match (list indices left out), ``shown`` what the preview says."""
        current = value_of(node)
        if current == target and type(current) is type(target):
            return
        if (isinstance(target, dict) and isinstance(node, yaml.MappingNode) and target
                and set(map(str, current)) & set(map(str, target))):
            self._mapping(node, current, target, path, shown)
        elif isinstance(target, list) and isinstance(node, yaml.SequenceNode) and any(
                _same_item(path[-1] if path else "", old, item)
                for item in target for old in current):
            self._sequence(node, current, target, path, shown)
        elif isinstance(target, dict) and isinstance(current, dict) and current:
            # nothing of the mapping stays: it is written anew, each key's removal recorded
            for name, value in current.items():
                if name not in target:
                    self._removal((*path, str(name)), value, f"{shown}.{name}")
            self.source.set_value(parent, slot, target)
            self.outcome.fields.append(f"set {shown}")
            self.outcome.paths.append(path)
        else:
            if isinstance(current, list) and current:
                gone = [item for item in current if item not in target] if isinstance(
                    target, list) else current
                if gone:
                    self._removal(path, gone, f"{shown}[{', '.join(map(_item_label, gone))}]",
                                  whole=True)
            elif isinstance(current, dict) and current:
                self._removal(path, current, f"the old value of {shown}")
            self.source.set_value(parent, slot, target)
            self.outcome.fields.append(f"set {shown}")
            self.outcome.paths.append(path)

    def _mapping(self, node: yaml.MappingNode, current: dict[str, Any],
                 target: dict[str, Any], path: tuple[str, ...], shown: str) -> None:
        names = [str(value_of(key)) for key, _ in node.value]
        prefix = f"{shown}." if shown else ""
        for slot, name in enumerate(names):
            if name not in target:
                self._removal((*path, name), current.get(name), prefix + name)
                self.source.remove_key(node, slot)
        for name, value in target.items():
            here = (*path, str(name))
            if str(name) in names:
                slot = names.index(str(name))
                self.edit(node, slot, node.value[slot][1], value, here, prefix + str(name))
            else:
                self.source.add_key(node, name, value)
                self.outcome.fields.append(f"add {prefix}{name}")
                self.outcome.paths.append(here)

    def _sequence(self, node: yaml.SequenceNode, current: list[Any], target: list[Any],
                  path: tuple[str, ...], shown: str) -> None:
        field_name = path[-1] if path else ""
        used: set[int] = set()
        pairs: list[tuple[int | None, Any]] = []
        for item in target:
            index = next((i for i, old in enumerate(current)
                          if i not in used and _same_item(field_name, old, item)), None)
            if index is not None:
                used.add(index)
            pairs.append((index, item))
        for index, old in enumerate(current):
            if index not in used:
                self._removal(path, old, f"{shown}[{_item_label(old)}]")
                self.source.remove_item(node, index)
        for index, item in pairs:
            if index is None:
                self.source.append_item(node, item)
                self.outcome.fields.append(f"add {shown}[{_item_label(item)}]")
                self.outcome.paths.append(path)
            else:
                self.edit(node, index, node.value[index], item, path,
                          f"{shown}[{_item_label(current[index])}]")


def merged_target(current: dict[str, Any], desired: dict[str, Any],
                  owns: Sequence[str], rules: Sequence[RemovalRule]) -> dict[str, Any]:
    """What an existing object becomes: its owned paths merged with ``desired`` (a path
    written ``path?`` is a default, set only where the object lacks it), then the items a
    removal rule's predicate flags dropped."""
    patterns = [parse_path(p.rstrip("?")) for p in owns]
    defaults = [parse_path(p.rstrip("?")) for p in owns if p.endswith("?")]
    owned = project(desired, patterns)
    merged = merge_value(current, owned, (), defaults)
    return _drop_flagged(merged, owned, [r for r in rules if r.kind in (
        str(current.get("kind")), "*")], ())


def edit_object(source: YamlFile, parent: yaml.Node | None, slot: int, node: yaml.Node,
                target: dict[str, Any], rules: Sequence[RemovalRule]) -> Outcome:
    """Plan the edits turning ``node`` (a document root, or an item of a ``kind: List``
    whose sequence is ``parent``) into ``target``."""
    outcome = Outcome()
    editor = Editor(source, rules, str(target.get("kind")), outcome)
    current = value_of(node)
    if not isinstance(node, yaml.MappingNode) or not isinstance(current, dict):
        raise ValueError("an object is a mapping")
    if parent is None and current != target:
        editor._mapping(node, current, target, (), "")
    elif current != target:
        editor.edit(parent, slot, node, target, (), "")
    return outcome
