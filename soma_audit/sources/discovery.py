"""What an API server serves, read from one discovery answer.

Servers since Kubernetes 1.26 answer ``/apis`` with *aggregated* discovery when asked
(GA in 1.30, as kubectl asks): every group and version with the resources it serves. A
kind whose group is installed but whose own resource is not (a Chaos Mesh without
``blockchaos``, an Argo CD without ApplicationSets) is then known to be absent without
listing it; on a remote cluster each such LIST was a round trip answered 404. Older
servers answer the plain list of groups, and then only the group is known.

The answer is the server's, so it is read defensively: an entry of the wrong shape is
skipped, and a version whose resources are not known for certain (the plain list, or an
aggregated API marked stale) is listed as before, its 404 deciding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from soma_audit.sources.kinds import KindInfo

#: The Accept header of the discovery request: aggregated discovery (v2, else the
#: v2beta1 of Kubernetes 1.26 to 1.29), else the plain list of groups.
ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
          "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
          "application/json")

_AGGREGATED = "APIGroupDiscoveryList"


@dataclass(frozen=True)
class Served:
    """The groups a server serves, each with its versions; and, where the server said so
    for certain, the resources of a group version."""

    versions: Mapping[str, tuple[str, ...]]
    resources: Mapping[tuple[str, str], frozenset[str]]

    def locate(self, info: KindInfo) -> tuple[str | None, str]:
        """The version to list ``info`` at, or None and why it is not installed.

        Built-in kinds are always listed at their version. Of the kind's versions the
        group serves, the first whose resources include the kind's, or whose resources
        are not known (its LIST decides).
        """
        if not info.group:
            return info.versions[0], ""
        offered = [v for v in info.versions if v in self.versions.get(info.group, ())]
        if not offered:
            return None, f"{info.product or info.kind} not installed (no {info.group} API)"
        for version in offered:
            resources = self.resources.get((info.group, version))
            if resources is None or info.plural in resources:
                return version, ""
        return None, info.not_installed


def parse(document: Mapping[str, Any]) -> Served:
    """``/apis`` as the server answered it, aggregated or the plain list of groups."""
    if document.get("kind") == _AGGREGATED:
        return _aggregated(document.get("items"))
    groups = document.get("groups")
    versions: dict[str, tuple[str, ...]] = {}
    for group in groups if isinstance(groups, list) else []:
        if isinstance(group, dict) and isinstance(group.get("versions"), list):
            versions[str(group.get("name", ""))] = tuple(
                str(v.get("version", "")) for v in group["versions"] if isinstance(v, dict))
    return Served(versions, {})


def _aggregated(items: Any) -> Served:
    versions: dict[str, tuple[str, ...]] = {}
    resources: dict[tuple[str, str], frozenset[str]] = {}
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("versions"), list):
            continue
        metadata = item.get("metadata")
        group = str(metadata.get("name", "")) if isinstance(metadata, dict) else ""
        names: list[str] = []
        for entry in item["versions"]:
            if not isinstance(entry, dict):
                continue
            version = str(entry.get("version", ""))
            names.append(version)
            listed = entry.get("resources")
            # "Stale": an aggregated API server the answer could not be refreshed from.
            if entry.get("freshness", "Current") == "Current" and isinstance(listed, list):
                resources[(group, version)] = frozenset(
                    str(r.get("resource", "")) for r in listed if isinstance(r, dict))
        versions[group] = tuple(names)
    return Served(versions, resources)
