"""The bundled read-only ClusterRole grants exactly what the live source lists."""

from __future__ import annotations

from collections import defaultdict

import yaml

from soma_audit.core.paths import data_path
from soma_audit.sources.kinds import KINDS


def test_clusterrole_is_list_only_on_exactly_the_audited_resources() -> None:
    role = yaml.safe_load(data_path("manifests", "rbac", "clusterrole.yaml").read_text())
    granted: dict[str, set[str]] = defaultdict(set)
    for rule in role["rules"]:
        assert rule["verbs"] == ["list"]
        for group in rule["apiGroups"]:
            granted[group].update(rule["resources"])
    wanted: dict[str, set[str]] = defaultdict(set)
    for info in KINDS.values():
        wanted[info.group].add(info.plural)
    assert granted == wanted
    assert "secrets" not in granted[""]
