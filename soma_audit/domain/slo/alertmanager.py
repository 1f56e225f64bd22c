"""Alertmanager routing trees, and where an alert with given labels ends up.

Two spellings of the same tree are read: a plain ``alertmanager.yml`` (``route`` with
``matchers``/``match``/``match_re``, ``receivers[]`` with ``*_configs``) and the Prometheus
Operator's ``AlertmanagerConfig`` (``spec.route`` with ``matchers[]`` objects,
``spec.receivers[]`` with ``*Configs``). Routing follows Alertmanager: depth first, the
first matching child wins unless it has ``continue``, and an alert that no child takes
stays on the parent. Nothing here reads a Secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from soma_audit.domain.slo.promql import Matcher
from soma_audit.kube.labels import parse_selector

_MATCHER = re.compile(
    r"""^\s*\{?\s*(?P<name>"[^"]*"|[^\s"=!~{},]+)\s*(?P<op>=~|!~|!=|=)\s*
    (?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^"{},]*?))\s*}?\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Route:
    receiver: str | None
    matchers: tuple[Matcher, ...] = ()
    routes: tuple[Route, ...] = ()
    cont: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)


@dataclass(frozen=True)
class Tree:
    """One routing tree: where it was found, its top route and its receivers."""

    where: str
    route: Route
    #: receiver name → whether it has at least one integration (else alerts are dropped).
    receivers: dict[str, bool]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivery:
    """Where one alert ends up in one tree, and what is wrong with that destination."""

    receiver: str | None
    path: tuple[Route, ...]
    problems: tuple[str, ...] = field(default=())


def parse_matcher(text: str) -> Matcher | None:
    """``severity=~"critical|page"`` (quotes optional) → Matcher; None if not a matcher."""
    match = _MATCHER.match(text)
    if match is None:
        return None
    name = match["name"].strip('"')
    value = match["quoted"] if match["quoted"] is not None else (match["bare"] or "")
    return Matcher(name, match["op"], re.sub(r"\\(.)", r"\1", value))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _route(data: dict[str, Any], problems: list[str], where: str,
           matchers_of: Callable[[dict[str, Any], list[str], str], list[Matcher]]) -> Route:
    """A route and, depth first, its child routes; ``matchers_of`` reads each one's
    matchers (the two spellings differ only there)."""
    matchers = matchers_of(data, problems, where)
    routes = tuple(
        _route(_mapping(r), problems, f"{where}.routes[{i}]", matchers_of)
        for i, r in enumerate(_items(data.get("routes")))
    )
    receiver = data.get("receiver")
    return Route(str(receiver) if receiver else None, tuple(matchers), routes,
                 bool(data.get("continue")))


def _yaml_matchers(data: dict[str, Any], problems: list[str], where: str) -> list[Matcher]:
    """The matchers of an ``alertmanager.yml`` route."""
    matchers: list[Matcher] = []
    for text in _items(data.get("matchers")):
        matcher = parse_matcher(str(text))
        if matcher is None:
            problems.append(f"{where}.matchers: cannot read {text!r}")
            matcher = Matcher("__unreadable__", "=", "\x00")
        matchers.append(matcher)
    matchers += [Matcher(str(k), "=", str(v)) for k, v in _mapping(data.get("match")).items()]
    matchers += [Matcher(str(k), "=~", str(v)) for k, v in _mapping(data.get("match_re")).items()]
    return matchers


def _receivers(items: Any, suffix: str) -> dict[str, bool]:
    """Receiver name → whether it has an integration (a non-empty ``*<suffix>`` list)."""
    return {
        str(r.get("name")): any(k.endswith(suffix) and _items(v) for k, v in r.items())
        for r in map(_mapping, _items(items))
        if r.get("name")
    }


def from_alertmanager_yaml(data: Any, where: str) -> Tree | None:
    """The tree of a plain ``alertmanager.yml`` document; None when it has no ``route``."""
    if not isinstance(data, dict) or not isinstance(data.get("route"), dict):
        return None
    problems: list[str] = []
    route = _route(data["route"], problems, "route", _yaml_matchers)
    receivers = _receivers(data.get("receivers"), "_configs")
    return Tree(where, route, receivers, tuple(problems))


def _crd_matchers(data: dict[str, Any], problems: list[str], where: str) -> list[Matcher]:
    """The matchers of an ``AlertmanagerConfig`` route (objects, not strings)."""
    matchers = []
    for i, item in enumerate(_items(data.get("matchers"))):
        item = _mapping(item)
        op = str(item.get("matchType") or ("=~" if item.get("regex") else "="))
        if "name" not in item or op not in ("=", "!=", "=~", "!~"):
            problems.append(f"{where}.matchers[{i}]: needs name and a matchType of =, !=, =~, !~")
            continue
        matchers.append(Matcher(str(item["name"]), op, str(item.get("value", ""))))
    return matchers


def from_alertmanager_config(spec: dict[str, Any], where: str,
                             namespace_matcher: Matcher | None) -> Tree:
    """The tree of an ``AlertmanagerConfig`` spec; the operator ANDs ``namespace_matcher``
    (``namespace="<its namespace>"``) into its top route unless told not to."""
    problems: list[str] = []
    route = _route(_mapping(spec.get("route")), problems, "spec.route", _crd_matchers)
    if namespace_matcher is not None:
        route = Route(route.receiver, (*route.matchers, namespace_matcher), route.routes,
                      route.cont)
    receivers = _receivers(spec.get("receivers"), "Configs")
    if not isinstance(spec.get("route"), dict):
        problems.append("spec.route is missing")
    return Tree(where, route, receivers, tuple(problems))


def _walk(route: Route, labels: Mapping[str, str], receiver: str | None,
          path: tuple[Route, ...]) -> Iterator[tuple[str | None, tuple[Route, ...]]]:
    receiver = route.receiver or receiver
    path = (*path, route)
    taken = False
    for child in route.routes:
        if child.matches(labels):
            taken = True
            yield from _walk(child, labels, receiver, path)
            if not child.cont:
                break
    if not taken:
        yield receiver, path


def deliver(tree: Tree, labels: Mapping[str, str], match_top: bool) -> list[Delivery]:
    """Where an alert with ``labels`` goes in ``tree``: one delivery per matched leaf.

    ``match_top`` applies the top route's matchers (an AlertmanagerConfig's route is a
    child of the global tree); the root of a whole ``alertmanager.yml`` matches everything.
    """
    if match_top and not tree.route.matches(labels):
        return []
    deliveries = []
    for receiver, path in _walk(tree.route, labels, None, ()):
        problems = []
        if receiver is None:
            problems.append("no receiver set on the route")
        elif receiver not in tree.receivers:
            problems.append(f"receiver {receiver!r} is not defined in receivers")
        elif not tree.receivers[receiver]:
            problems.append(f"receiver {receiver!r} has no integration: alerts are dropped")
        deliveries.append(Delivery(receiver, path, tuple(problems)))
    return deliveries


def severity_routed(delivery: Delivery, severity_label: str, top_counts: bool) -> bool:
    """Whether a matcher on ``severity_label`` selected this path (a dedicated route)."""
    routes = delivery.path if top_counts else delivery.path[1:]
    return any(m.name == severity_label for r in routes for m in r.matchers)


def selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (``matchLabels``/``matchExpressions``) against labels,
    read as written (:meth:`soma_audit.kube.labels.Selector.verdict`); an entry that cannot be
    evaluated selects nothing. An empty selector selects everything; a missing one (None)
    is handled by callers."""
    return parse_selector(selector, "selector", []).verdict(labels) is True
