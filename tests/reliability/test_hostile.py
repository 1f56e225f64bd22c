"""Hostile input: generated files and objects fed to the real loaders and evaluators.

The only clean failures are :class:`~soma_audit.core.errors.AuditError` (and its subclass
``ConfigError``): one clear line for the user, exit code 2. Anything else escaping is a
bug. Example counts are set per test; their total is recorded in results.json.
"""

from __future__ import annotations

import ipaddress
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soma_audit.catalog.checks import load_catalog
from soma_audit.config import load_config
from soma_audit.core.errors import AuditError
from soma_audit.core.paths import data_path
from soma_audit.domain import pss
from soma_audit.domain.netpol import policy as netpol
from soma_audit.engine import attestations
from soma_audit.sources.documents import parse_bytes
from soma_audit.sources.manifests import ManifestsSource
from soma_audit.sources.snapshot import SnapshotSource
from tests.reliability.conftest import Figures
from tests.reliability.strategies import (
    WORDS,
    documents,
    dump,
    k8s_objects,
    keys,
    mutated,
    scalars,
    yaml_text,
)

pytestmark = pytest.mark.reliability



def fuzz(examples: int) -> settings:
    """Settings of one fuzz test: ``examples`` inputs, no deadline, no example database."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

KINDS = frozenset({"Pod", "Deployment", "NetworkPolicy", "Namespace", "CronJob", "Service"})
NAMES = ["a.yaml", "b.yml", "c.json", "Chart.yaml", "kustomization.yaml", "notes.txt"]
DIRS = ["", "apps", "templates", "chart/templates", "deep/er/still", ".git"]
DEFAULT_CONFIG = yaml.safe_load(data_path("config", "default.yaml").read_text(encoding="utf-8"))
BUNDLED_CATALOG = yaml.safe_load(
    sorted(data_path("checks").glob("*.yaml"))[0].read_text(encoding="utf-8"))

file_bodies = st.one_of(
    yaml_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(lambda d: dump(d).encode(), k8s_objects()),
    st.binary(max_size=200),
    st.builds(lambda d: yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": d}).encode(),
              st.lists(k8s_objects(), max_size=4)),
)


def _write(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _touch_resources(inventory: Any) -> None:
    """What probes read of every object: the accessors must not raise on hostile bodies."""
    for resource in inventory:
        _ = (resource.kind, resource.api_version, resource.group, resource.metadata,
             resource.name, resource.namespace, resource.labels, resource.spec, resource.ref)


@fuzz(800)
@given(files=st.lists(st.tuples(st.sampled_from(DIRS), st.sampled_from(NAMES), file_bodies),
                      min_size=1, max_size=6))
def test_manifests_loader(files: list[tuple[str, str, bytes]], figures: Figures) -> None:
    """Generated GitOps trees (Helm/Kustomize markers, binary, JSON, YAML streams)."""
    figures.count("fuzz", "manifests loader (generated trees)")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for folder, name, data in files:
            _write(root, f"{folder}/{name}" if folder else name, data)
        try:
            inventory = ManifestsSource(root).load(KINDS)
        except AuditError:
            return
        _touch_resources(inventory)
        for problem in inventory.problems:
            assert problem.where and problem.message


@fuzz(800)
@given(data=file_bodies, name=st.sampled_from(["dump.yaml", "dump.json", "dump.yml"]))
def test_snapshot_loader(data: bytes, name: str, figures: Figures) -> None:
    """Generated snapshot files, as ``--snapshot`` reads them."""
    figures.count("fuzz", "snapshot loader")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, name)
        path.write_bytes(data)
        try:
            inventory = SnapshotSource(path).load(KINDS)
        except AuditError as exc:
            assert str(exc).strip()
            return
        _touch_resources(inventory)


config_texts = st.one_of(mutated(DEFAULT_CONFIG).map(dump), yaml_text)


@fuzz(800)
@given(text=config_texts)
def test_config_loader(text: str, figures: Figures) -> None:
    """``load_config`` on the bundled config with generated subtrees, and raw YAML."""
    figures.count("fuzz", "config loader")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, "config.yaml")
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(path)
        except AuditError as exc:
            assert str(exc).strip()


@fuzz(500)
@given(text=st.one_of(mutated(BUNDLED_CATALOG).map(dump), yaml_text))
def test_catalog_loader(text: str, figures: Figures) -> None:
    """``load_catalog(extra=[...])`` on a bundled catalog file with generated subtrees."""
    figures.count("fuzz", "catalog loader")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, "catalog.yaml")
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_catalog([path])
        except AuditError as exc:
            assert str(exc).strip()


@fuzz(300)
@given(text=st.one_of(st.builds(dump, st.dictionaries(keys, documents, max_size=3)), yaml_text))
def test_attestations_loader(text: str, figures: Figures) -> None:
    """The attestations file (read on every scan)."""
    figures.count("fuzz", "attestations loader")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, attestations.DEFAULT_FILE)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            attestations.load(path)
        except AuditError as exc:
            assert str(exc).strip()


pod_like = st.dictionaries(keys, documents, max_size=6)


@fuzz(1500)
@given(spec=st.one_of(pod_like, documents), meta=st.one_of(pod_like, documents),
       level=st.sampled_from(pss.LEVELS), template=st.booleans())
def test_pss_evaluator(spec: Any, meta: Any, level: str, template: bool,
                       figures: Figures) -> None:
    """``pss.evaluate`` on generated pod specs at every level: violations, never a crash."""
    figures.count("fuzz", "PSS evaluator")
    violations = pss.evaluate(spec, meta, level, template=template)
    assert isinstance(violations, list)


def test_pss_rejects_unknown_level() -> None:
    """An unknown level is a programming error with a clear message, not a silent pass."""
    with pytest.raises(ValueError, match="unknown Pod Security level"):
        pss.evaluate({}, {}, "strict")


labels = st.dictionaries(st.sampled_from(["app", "role", "tier", "kubernetes.io/metadata.name"]),
                         st.sampled_from(["a", "b", "web", "db", "soma-agent-hub"]), max_size=3)
endpoints = st.builds(
    netpol.Endpoint,
    name=st.sampled_from(["web", "db", "x"]),
    namespace=st.one_of(st.none(), st.sampled_from(["soma-agent-hub", "kube-system", "a"])),
    labels=labels,
    named_ports=st.dictionaries(st.sampled_from(["http", "grpc", "metrics"]),
                                st.tuples(st.integers(1, 65535), st.sampled_from(["TCP", "UDP"])),
                                max_size=2),
    ip=st.one_of(st.none(), st.ip_addresses().map(str)),
)
policy_bodies = st.one_of(
    documents,
    st.fixed_dictionaries({
        "apiVersion": st.just("networking.k8s.io/v1"), "kind": st.just("NetworkPolicy"),
        "metadata": st.fixed_dictionaries({"name": st.just("p"),
                                           "namespace": st.sampled_from(["a", "soma-agent-hub"])}),
        "spec": st.dictionaries(st.sampled_from(["podSelector", "policyTypes", "ingress",
                                                 "egress"]), documents, max_size=4),
    }),
)


@fuzz(1500)
@given(bodies=st.lists(policy_bodies, max_size=4), src=endpoints, dst=endpoints,
       port=st.integers(-5, 70000), protocol=st.sampled_from(["TCP", "UDP", "SCTP", "tcp", ""]),
       ns_labels=st.dictionaries(st.sampled_from(["a", "soma-agent-hub", "kube-system"]), labels))
def test_netpol_evaluator(bodies: list[Any], src: Any, dst: Any, port: int, protocol: str,
                          ns_labels: dict[str, dict[str, str]], figures: Figures) -> None:
    """``netpol.parse_policy`` never raises; ``allowed`` decides every generated flow."""
    figures.count("fuzz", "NetworkPolicy evaluator")
    policies = [netpol.parse_policy(body, f"NetworkPolicy/{i}") for i, body in enumerate(bodies)]
    decision = netpol.allowed(src, dst, port, protocol, policies, ns_labels)
    assert decision is not None


def test_scalar_strategies_cover_ip_words() -> None:
    """The vocabulary holds valid and invalid CIDRs (so ipBlock parsing sees both)."""
    valid = [w for w in WORDS if "/" in w and _is_network(w)]
    assert valid and len(valid) < len([w for w in WORDS if "/" in w])
    assert scalars is not None


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def test_parse_bytes_reports_file_and_line_for_an_alias_bomb() -> None:
    """One clear per-file problem with file:line, the neighbouring documents still load."""
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(8))
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n" + bomb
    parsed = parse_bytes(text.encode(), "apps/bomb.yaml")
    assert [r.name for r in parsed.resources] == ["ok"]
    assert len(parsed.problems) == 1
    where, message = parsed.problems[0].where, parsed.problems[0].message
    assert where.startswith("apps/bomb.yaml:") and int(where.rsplit(":", 1)[1]) > 4
    assert "alias bomb" in message
