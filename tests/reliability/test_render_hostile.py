"""Rendered files are built as data: no config value can add, remove or retype an object.

Every recipe is rendered by the real renderer (``soma_audit.remediation.render.render``)
over the demo's objects. A value with a line break or a control character is refused when
the config loads, naming its key; a value the config accepts but YAML would read as
something else (``true``, ``null``, ``123``, ``0x1f`` …) must come out of every recipe as
that very string, everything else unchanged.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.config import load_config
from soma_audit.core.errors import ConfigError
from soma_audit.core.paths import data_path
from soma_audit.engine.demo import prepare_demo
from soma_audit.kube.inventory import Inventory
from soma_audit.remediation.recipes import load_recipes
from soma_audit.remediation.render import render
from soma_audit.sources.kinds import KINDS
from soma_audit.sources.manifests import ManifestsSource
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.reliability

DEFAULT = yaml.safe_load(data_path("config", "default.yaml").read_text(encoding="utf-8"))
INJECTION = "x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"


def _rename_service(data: dict[str, Any], index: int, value: str) -> None:
    old = data["services"][index]["name"]
    data["services"][index]["name"] = value
    for flow in data["flows"]:
        for end in ("from", "to"):
            if flow[end] == old:
                flow[end] = value


def _rename_topic(data: dict[str, Any], value: str) -> None:
    old = data["kafka"]["topics"][0]["name"]
    data["kafka"]["topics"][0]["name"] = value
    for user in data["kafka"]["users"]:
        for key in ("produces", "consumes"):
            user[key] = [value if t == old else t for t in user.get(key, [])]


def _set(path: str) -> Any:
    def put(data: dict[str, Any], value: str) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return put


#: Every config field whose value lands in a rendered file, and how to set it. Fields
#: read by PromQL or label syntax take only letters (``alpha``).
FIELDS: list[tuple[str, Any, bool]] = [
    ("namespace", _set("namespace"), False),
    ("argocd.namespace", _set("argocd.namespace"), False),
    ("kafka.namespace", _set("kafka.namespace"), False),
    ("kafka.cluster", _set("kafka.cluster"), False),
    ("chaos.namespace", _set("chaos.namespace"), False),
    ("services[0].name", lambda d, v: _rename_service(d, 0, v), False),
    ("services[1].name", lambda d, v: _rename_service(d, 1, v), False),
    ("kafka.topics[0].name", _rename_topic, False),
    ("kafka.users[0].name", lambda d, v: d["kafka"]["users"][0].update(name=v), False),
    ("kafka.users[0].groups[0]",
     lambda d, v: d["kafka"]["users"][0].update(groups=[v]), False),
    ("namespaces.<key>", lambda d, v: d["namespaces"].update({v: d["namespaces"].pop(
        "observability")}), False),
    ("pss_exempt_namespaces[0]", lambda d, v: d["pss_exempt_namespaces"].__setitem__(0, v),
     False),
    ("k6.profiles[0].name", lambda d, v: d["k6"]["profiles"][0].update(name=v), False),
    ("slo.dashboard_label", _set("slo.dashboard_label"), True),
    ("slo.service_label", _set("slo.service_label"), True),
    ("slo.request_metric", _set("slo.request_metric"), True),
    ("layout.runbooks", _set("layout.runbooks"), False),
]
#: Values YAML 1.1 reads as booleans, null, integers, floats, when not quoted.
HOSTILE = ["true", "null", "123", "1e3", "0x1f", "off", "0o17", "yes", "no", "on"]
ALPHA = ["true", "null", "yes", "off", "no", "on", "y", "n"]


def _marker(index: int) -> str:
    return f"zqmark{index:02d}q"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    """The demo's objects (transforms patch them)."""
    tree = prepare_demo(tmp_path_factory.mktemp("demo"))
    return ManifestsSource(tree).load(frozenset(KINDS))


def _render_all(data: dict[str, Any], inventory: Inventory) -> dict[str, Any]:
    """path → parsed objects (YAML files) or text (other files), over every recipe."""
    config = load_config(**data)
    out: dict[str, Any] = {}
    for recipe in load_recipes().values():
        for rendered in render(recipe, config, inventory):
            if rendered.path.endswith((".yaml", ".yml")):
                out[rendered.path] = list(yaml.safe_load_all(rendered.text))
            else:
                out[rendered.path] = rendered.text
    return out


def _in_any_order(content: Any) -> Any:
    """A file's documents as a sorted list (text files as they are)."""
    if isinstance(content, str):
        return content
    return sorted(content, key=lambda doc: json.dumps(doc, sort_keys=True, default=str))


def _substitute(node: Any, names: dict[str, str]) -> Any:
    """``node`` with every marker replaced by its value, in keys and strings."""
    pattern = re.compile("|".join(map(re.escape, names)))

    def swap(text: str) -> str:
        return pattern.sub(lambda m: names[m.group()], text)

    if isinstance(node, str):
        return swap(node)
    if isinstance(node, dict):
        return {(swap(k) if isinstance(k, str) else k): _substitute(v, names)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, names) for v in node]
    return node


def _configured(values: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(DEFAULT)
    for (_, put, _alpha), value in zip(FIELDS, values, strict=True):
        put(data, value)
    return data


@pytest.mark.parametrize("round_", range(3))
def test_every_recipe_renders_hostile_values_as_strings(round_: int, inventory: Inventory,
                                                        figures: Figures) -> None:
    """Markers in every field give the expected objects; the hostile values must give
    exactly those objects with each marker replaced by its value (as a string)."""
    markers = [_marker(i) for i in range(len(FIELDS))]
    values = [(ALPHA if alpha else HOSTILE)[(i + 3 * round_) % len(ALPHA if alpha else HOSTILE)]
              for i, (_, _, alpha) in enumerate(FIELDS)]
    baseline = _render_all(_configured(markers), inventory)
    hostile = _render_all(_configured(values), inventory)
    expected = _substitute(baseline, dict(zip(markers, values, strict=True)))
    assert sorted(hostile) == sorted(expected)
    for path in expected:
        # Objects per namespace follow the names' order, which the values change.
        assert _in_any_order(hostile[path]) == _in_any_order(expected[path]), path
    figures.count("render", "hostile renders (every recipe, every field)")


def _string_leaves(node: Any, place: str = "") -> list[str]:
    if isinstance(node, str):
        return [place]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _string_leaves(v, f"{place}.{k}".lstrip("."))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _string_leaves(v, f"{place}[{i}]")]
    return []


def _put_leaf(data: Any, place: str, value: str) -> None:
    steps = re.findall(r"[^.\[\]]+|\[\d+\]", place)
    node = data
    for step in steps[:-1]:
        node = node[int(step[1:-1])] if step.startswith("[") else node[step]
    last = steps[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value


@pytest.mark.parametrize("place", _string_leaves(DEFAULT))
def test_a_line_break_in_any_config_string_is_refused_naming_the_key(place: str) -> None:
    data = copy.deepcopy(DEFAULT)
    _put_leaf(data, place, INJECTION)
    with pytest.raises(ConfigError) as raised:
        load_config(**data)
    message = str(raised.value)
    assert place in message and "ClusterRoleBinding" not in message, message


def test_newline_in_kafka_cluster_is_refused_at_load(tmp_path: Path) -> None:
    """The reported case: ``kafka.cluster`` with a ClusterRoleBinding after a newline."""
    config = tmp_path / "hostile.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"cluster": INJECTION}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kafka\.cluster: must be one line"):
        load_config(config)


@pytest.mark.parametrize(("override", "key"), [
    ({"services": [{"name": "x" * 300, "port": 1}]}, "services[0].name"),
    ({"services": [{"name": "Gateway", "port": 1}]}, "services[0].name"),
    ({"services": [{"name": "a", "port": 70000}]}, "services[0].port"),
    ({"kafka": {"cluster": "a b"}}, "kafka.cluster"),
    ({"namespace": "-bad"}, "namespace"),
    ({"slo": {"request_metric": "rate(x)"}}, "slo.request_metric"),
])
def test_bad_names_and_ports_are_one_config_error(override: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(**override)
