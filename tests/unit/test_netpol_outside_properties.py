"""Property tests of ``netpol.flows`` (hypothesis): adding a rule, or widening one, never
turns a finding into a pass. Policies are additive, so anything a broader peer admits
includes what the narrower one admitted: the check may only find more.

The platform is a fixture case's (tests/fixtures/checks/netpol.flows/...), read into an
in-memory inventory; each example appends a drawn rule to one of its policies.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soma_audit.config import load_config
from soma_audit.core.model import Status
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.probes import ProbeContext, load_probes
from soma_audit.services.tools import ToolRunner
from soma_audit.sources import SourceInfo
from tests.helpers import FIXTURES

CASES = FIXTURES / "checks" / "netpol.flows"
FLOWS = load_probes()["netpol.flows"].fn


def _case(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    folder = CASES / name
    bodies = [doc for path in sorted(folder.glob("*.yaml")) if path.name != "expect.yaml"
              for doc in yaml.safe_load_all(path.read_text()) if doc]
    return bodies, yaml.safe_load((folder / "expect.yaml").read_text())["config"]


def _status(bodies: list[dict[str, Any]], overrides: dict[str, Any]) -> Status:
    config = load_config(**overrides)
    inventory = Inventory.of(Resource(b, "case.yaml:1") for b in bodies)
    ctx = ProbeContext(inventory, config, SourceInfo("manifests", "case"),
                       ToolRunner(config.tools))
    return FLOWS(ctx, {}).status


NAMES = ("soma-agent-hub", "ingress", "monitoring", "kube-system", "elsewhere")
LABELS = st.dictionaries(st.sampled_from(["app", "team", "kubernetes.io/metadata.name"]),
                         st.sampled_from(["web", "api", "db", *NAMES]), max_size=2)
SELECTORS = st.fixed_dictionaries({}, optional={"matchLabels": LABELS})
CIDRS = st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "10.20.0.0/16", "203.0.113.0/24"])


@st.composite
def peers(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["pods", "namespaces", "both", "block"]))
    if kind == "block":
        return {"ipBlock": {"cidr": draw(CIDRS)}}
    peer: dict[str, Any] = {}
    if kind in ("pods", "both"):
        peer["podSelector"] = draw(SELECTORS)
    if kind in ("namespaces", "both"):
        peer["namespaceSelector"] = draw(SELECTORS)
    return peer


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        rule["peers"] = draw(st.lists(peers(), min_size=1, max_size=2))
    if draw(st.booleans()):
        rule["ports"] = [{"protocol": "TCP", "port": p}
                         for p in draw(st.lists(st.sampled_from([443, 5432, 8081, 9000]),
                                                min_size=1, max_size=2, unique=True))]
    return rule


def _broader(peer: dict[str, Any], how: str) -> dict[str, Any]:
    """A peer admitting at least what ``peer`` admits."""
    if "ipBlock" in peer:
        return {"ipBlock": {"cidr": "0.0.0.0/0"}}
    wider = copy.deepcopy(peer)
    if how == "any-namespace":
        wider["namespaceSelector"] = {}
    elif how == "drop-labels":
        wider = {k: {} for k in wider}
    return wider


def _add(bodies: list[dict[str, Any]], policy: str, direction: str,
         rule: dict[str, Any]) -> list[dict[str, Any]]:
    changed = copy.deepcopy(bodies)
    target = next(b for b in changed
                  if b["kind"] == "NetworkPolicy" and b["metadata"]["name"] == policy)
    key = "from" if direction == "ingress" else "to"
    written = {k: v for k, v in rule.items() if k == "ports"}
    if "peers" in rule:
        written[key] = rule["peers"]
    target["spec"].setdefault(direction, []).append(written)
    return changed


POLICIES = st.sampled_from(["web", "api", "db"])
DIRECTIONS = st.sampled_from(["ingress", "egress"])
WIDENING = st.sampled_from(["any-namespace", "drop-labels", "drop-ports", "drop-peers"])


def _widen(rule: dict[str, Any], how: str) -> dict[str, Any]:
    wider = copy.deepcopy(rule)
    if how == "drop-ports":
        wider.pop("ports", None)
    elif how == "drop-peers":
        wider.pop("peers", None)
    elif "peers" in wider:
        wider["peers"] = [_broader(p, how) for p in wider["peers"]]
    return wider


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=POLICIES, direction=DIRECTIONS, rule=rules(), how=WIDENING)
def test_a_broader_peer_never_turns_a_finding_into_a_pass(
        policy: str, direction: str, rule: dict[str, Any], how: str) -> None:
    bodies, config = _case("pass-outside-peers-intended")
    narrow = _add(bodies, policy, direction, rule)
    broad = _add(bodies, policy, direction, _widen(rule, how))
    if _status(narrow, config) is Status.FAIL:
        assert _status(broad, config) is Status.FAIL, (rule, how)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=POLICIES, direction=DIRECTIONS, rule=rules())
def test_adding_a_rule_never_fixes_an_exposure(policy: str, direction: str,
                                               rule: dict[str, Any]) -> None:
    bodies, config = _case("fail-ingress-from-any-namespace")
    assert _status(bodies, config) is Status.FAIL
    assert _status(_add(bodies, policy, direction, rule), config) is Status.FAIL


def test_the_properties_start_from_a_passing_platform() -> None:
    bodies, config = _case("pass-outside-peers-intended")
    assert _status(bodies, config) is Status.PASS
    assert _status(_add(bodies, "api", "ingress", {"peers": [{"namespaceSelector": {}}]}),
                   config) is Status.FAIL
