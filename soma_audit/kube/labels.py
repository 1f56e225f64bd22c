"""Kubernetes label selectors (``metav1.LabelSelector``), parsed once and matched.

One parse serves two kinds of caller:

- :meth:`Selector.matches` is the API's own semantics, as NetworkPolicy needs it: an
  empty selector selects everything, a selector the API server would reject (bad label
  keys or values, an unknown operator, ``values`` where none are allowed or missing where
  they are needed) selects nothing.
- :meth:`Selector.verdict` reads what it can, for objects whose selectors we only need to
  evaluate (Chaos Mesh experiments, the Prometheus operator's ``Alertmanager``): keys and
  values are compared as strings, entries the API would reject but that still say what
  they mean are applied as written, and an entry that cannot be evaluated at all (not a
  mapping, an unknown operator, a ``matchExpressions`` that is not a list) makes the answer
  ``None`` unless another part already rules the labels out.

:func:`parse_selector` records what is wrong in ``problems``; nothing here raises on
malformed input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
#: The label Kubernetes sets on every namespace: namespace selectors can match its name.
LABEL_METADATA_NAME = "kubernetes.io/metadata.name"

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_ok(key: Any) -> bool:
    """A valid label key: an optional DNS-subdomain prefix and ``/``, then a name."""
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def label_value_ok(value: Any) -> bool:
    """A valid label value: empty, or at most 63 name characters."""
    return isinstance(value, str) and (
        value == "" or (len(value) <= 63 and bool(_LABEL_NAME.match(value)))
    )


def has_labels(labels: Mapping[str, str], wanted: Iterable[tuple[str, str]]) -> bool:
    """Whether ``labels`` carry every ``(key, value)`` of ``wanted`` (the items of a
    Service-style selector, or of ``matchLabels``)."""
    return all(labels.get(k) == v for k, v in wanted)


def namespace_selector_labels(namespace: str, own: Mapping[str, str] | None) -> dict[str, str]:
    """A namespace's labels as namespace selectors see them: its own (``own``, None when
    there is no Namespace object) plus the automatic :data:`LABEL_METADATA_NAME`."""
    return {**(own or {}), LABEL_METADATA_NAME: namespace}


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry. An ``operator`` outside :data:`OPERATORS` stands for
    an entry that cannot be evaluated."""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def verdict(self, labels: Mapping[str, str]) -> bool | None:
        """Whether ``labels`` satisfy it; None when it cannot be evaluated."""
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        return None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.verdict(labels) is True

    def describe(self) -> str:
        values = ",".join(sorted(self.values))
        return {
            "In": f"{self.key} in ({values})",
            "NotIn": f"{self.key} notin ({values})",
            "Exists": self.key,
            "DoesNotExist": f"!{self.key}",
        }.get(self.operator, "<unreadable requirement>")


#: An entry that cannot be evaluated (not a mapping, unknown operator, not a list).
_UNREADABLE = Requirement("", "")


@dataclass(frozen=True)
class Selector:
    """A parsed label selector. ``valid`` is False when the API server would reject it;
    ``match_labels`` and ``requirements`` then hold what could be read of it (for
    :meth:`verdict`)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    requirements: tuple[Requirement, ...] = ()
    valid: bool = True

    @property
    def empty(self) -> bool:
        return self.valid and not self.match_labels and not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        """The API's semantics: an invalid selector selects nothing, an empty one all."""
        return (
            self.valid
            and has_labels(labels, self.match_labels)
            and all(r.matches(labels) for r in self.requirements)
        )

    def verdict(self, labels: Mapping[str, str]) -> bool | None:
        """What was read applied as written, validity aside: False when a label or an
        expression rules ``labels`` out, else None when an expression cannot be
        evaluated, else True."""
        if not has_labels(labels, self.match_labels):
            return False
        verdicts = [r.verdict(labels) for r in self.requirements]
        if False in verdicts:
            return False
        return None if None in verdicts else True

    def describe(self) -> str:
        if not self.valid:
            return "<invalid selector>"
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [r.describe() for r in self.requirements]
        return ",".join(parts) if parts else "{}"


def parse_selector(data: Any, where: str, problems: list[str], *,
                   labels_key: str = "matchLabels",
                   expressions_key: str = "matchExpressions") -> Selector:
    """Parse a selector mapping; what the API server would reject goes to ``problems``
    (named after ``where``) and makes the selector invalid. Chaos Mesh spells the two
    fields ``labelSelectors``/``expressionSelectors``: pass them as the keys."""
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a label selector mapping")
        return Selector(valid=False)
    before = len(problems)
    pairs: list[tuple[str, str]] = []
    labels = data.get(labels_key)
    if isinstance(labels, dict):
        for key, value in labels.items():
            if not (label_key_ok(key) and label_value_ok(value)):
                problems.append(f"{where}.{labels_key}: invalid label {key!r}: {value!r}")
            pairs.append((str(key), str(value)))
    elif labels is not None:
        problems.append(f"{where}.{labels_key}: expected a mapping")
    requirements: list[Requirement] = []
    expressions = data.get(expressions_key)
    if isinstance(expressions, list):
        requirements = [
            _parse_requirement(expr, f"{where}.{expressions_key}[{i}]", problems)
            for i, expr in enumerate(expressions)
        ]
    elif expressions is not None:
        problems.append(f"{where}.{expressions_key}: expected a list")
        if expressions:
            requirements.append(_UNREADABLE)
    return Selector(tuple(sorted(pairs)), tuple(requirements), len(problems) == before)


def _parse_requirement(data: Any, where: str, problems: list[str]) -> Requirement:
    """The entry as written (keys and values as strings, ``values`` ignored unless a list);
    a problem is recorded when the API server would reject it."""
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a mapping")
        return _UNREADABLE
    key, operator, values = data.get("key"), data.get("operator"), data.get("values")
    if operator not in OPERATORS:
        operator = ""
    listed = frozenset(str(v) for v in values) if isinstance(values, list) else frozenset()
    requirement = Requirement(str(data.get("key", "")), operator, listed)
    if not label_key_ok(key):
        problems.append(f"{where}.key: invalid label key {key!r}")
    elif not operator:
        problems.append(
            f"{where}.operator: {data.get('operator')!r} is not one of {', '.join(OPERATORS)}"
        )
    elif operator in ("In", "NotIn"):
        if not isinstance(values, list) or not values:
            problems.append(f"{where}.values: must be non-empty for {operator}")
        elif not all(label_value_ok(v) for v in values):
            problems.append(f"{where}.values: invalid label value in {values!r}")
    elif values:
        problems.append(f"{where}.values: must be empty for {operator}")
    return requirement
