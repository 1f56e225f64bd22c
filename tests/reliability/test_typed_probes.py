"""Typed at the edge: an object with a field of the wrong type is a finding about that
object (or a check that cannot be told), never an internal error of a probe.

For every probe that reads objects, hypothesis takes real objects of its kinds (the demo
and every check fixture, plus a minimal object of each kind they lack), replaces one to
three values anywhere in them with values of another type, and runs the probe through the
engine's own runner. An ``internal error`` evidence fails the test.
"""

from __future__ import annotations

import atexit
import copy
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.errors import AuditError
from soma_audit.core.model import Check
from soma_audit.engine.demo import prepare_demo
from soma_audit.engine.scan import _run_probe
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.probes import ProbeContext, load_probes
from soma_audit.services.tools import ToolRunner
from soma_audit.sources.kinds import KINDS
from soma_audit.sources.manifests import ManifestsSource
from tests.reliability.conftest import Figures

pytestmark = pytest.mark.reliability

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checks"
PROBES = load_probes()
CHECKS = {c.probe: c for c in load_catalog() if not c.manual and PROBES[c.probe].kinds}
#: Objects kept per kind (the fixtures repeat the same shapes many times).
PER_KIND = 30

wrong_values = st.one_of(
    st.integers(-3, 10**6), st.text(max_size=6), st.booleans(), st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.one_of(st.integers(), st.none(), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.one_of(st.integers(), st.none()), max_size=2),
)


SCRATCH = Path(tempfile.mkdtemp(prefix="typed-probes-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
DEMO_REPO = prepare_demo(SCRATCH)


def _pool() -> dict[str, list[dict[str, Any]]]:
    """Distinct real objects per kind, from the demo and the check fixtures."""
    roots = [DEMO_REPO]
    roots += sorted(p for p in FIXTURES.glob("*/*") if p.is_dir())
    pool: dict[str, dict[str, dict[str, Any]]] = {}
    for root in roots:
        try:
            inventory = ManifestsSource(root).load(frozenset(KINDS))
        except AuditError:
            continue
        for resource in inventory:
            key = json.dumps(resource.body, sort_keys=True, default=str)
            bucket = pool.setdefault(resource.kind, {})
            if len(bucket) < PER_KIND:
                bucket.setdefault(key, resource.body)
    return {kind: list(bodies.values()) for kind, bodies in pool.items()}


POOL = _pool()


def _objects(kinds: frozenset[str]) -> list[dict[str, Any]]:
    found = []
    for kind in sorted(kinds):
        info = KINDS.get(kind)
        api = f"{info.group}/{info.versions[0]}" if info and info.group else "v1"
        found += POOL.get(kind) or [{
            "apiVersion": api, "kind": kind,
            "metadata": {"name": "minimal", "namespace": "soma-agent-hub",
                         "labels": {"app": "gateway-api"}},
            "spec": {"selector": {"matchLabels": {"app": "gateway-api"}}}}]
    return found


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            if prefix or key not in ("kind", "apiVersion"):
                yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:4]):
            yield from _paths(value, (*prefix, index))


def _run(check: Check, bodies: list[dict[str, Any]]) -> list[str]:
    config = load_config()
    source = ManifestsSource(DEMO_REPO)
    inventory = Inventory.of(Resource(body, "fuzz.yaml:1") for body in bodies)
    ctx = ProbeContext(inventory, config, source.info, ToolRunner(config.tools))
    outcome = _run_probe(check, PROBES[check.probe], ctx)
    return [e.message for e in outcome.evidence if "internal error" in e.message]


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_wrong_types_are_findings_not_internal_errors(name: str, figures: Figures) -> None:
    check = CHECKS[name]
    base = _objects(PROBES[name].kinds)

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def mutated(data: st.DataObject) -> None:
        bodies = copy.deepcopy(base)
        for _ in range(data.draw(st.integers(1, 3))):
            body = data.draw(st.sampled_from(bodies))
            paths = list(_paths(body))
            if not paths:
                continue
            path = data.draw(st.sampled_from(paths))
            node = body
            for step in path[:-1]:
                node = node[step]
            node[path[-1]] = data.draw(wrong_values)
        crashes = _run(check, bodies)
        assert not crashes, crashes

    mutated()
    figures.count("typed", "probes fed wrong-typed objects (25 examples each)")


def test_a_wrong_type_is_named_on_its_object() -> None:
    """The reported case: a Schedule whose ``selector.namespaces`` is a number."""
    schedule = copy.deepcopy(next(
        b for b in POOL["Schedule"] if isinstance(b.get("spec", {}).get("stressChaos"), dict)))
    schedule["spec"]["stressChaos"].setdefault("selector", {})["namespaces"] = 5
    name = schedule["metadata"]["name"]
    inventory = Inventory.of([Resource(schedule, "chaos.yaml:1")])
    config = load_config()
    ctx = ProbeContext(inventory, config, ManifestsSource(DEMO_REPO).info,
                       ToolRunner(config.tools))
    evidence = []
    for probe_name in ("chaos.coverage", "chaos.stress", "chaos.daily"):
        outcome = _run_probe(CHECKS[probe_name], PROBES[probe_name], ctx)
        evidence += [f"{e.object}: {e.message}" for e in outcome.evidence]
    assert not [e for e in evidence if "internal error" in e], evidence
    assert any(name in e and "spec.stressChaos.selector.namespaces: expected a list, got 5"
               in e for e in evidence), evidence


def test_env_of_the_wrong_type_is_named_on_its_workload() -> None:
    """The reported case: a container whose ``env`` is a number."""
    deployment = copy.deepcopy(next(
        b for b in POOL["Deployment"] if b["metadata"].get("name") == "gateway-api"))
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = 7
    inventory = Inventory.of([Resource(deployment, "gateway.yaml:1")])
    config = load_config()
    ctx = ProbeContext(inventory, config, ManifestsSource(DEMO_REPO).info,
                       ToolRunner(config.tools))
    outcome = _run_probe(CHECKS["fga.gateway-wired"], PROBES["fga.gateway-wired"], ctx)
    evidence = [f"{e.object}: {e.message}" for e in outcome.evidence]
    assert outcome.status.value == "fail", evidence
    assert any("Deployment/soma-agent-hub/gateway-api" in e
               and "env: expected a list, got 7" in e for e in evidence), evidence
