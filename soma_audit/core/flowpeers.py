"""The peers a ``flows:`` entry can name — one grammar for the check and the recipe.

=========================  =========================================================
``<service>``              a configured service (its pods, on its service port)
``ns/<namespace>``         any pod in that namespace
``ns/<namespace>{k=v,…}``  the pods with those labels in that namespace
``cidr/<network>``         addresses in that network (a flow's ``except:`` carves
                           networks out of it), e.g. ``cidr/10.20.0.0/16``
``kafka/<cluster>``        the Strimzi brokers of that Kafka cluster (port 9093, TLS)
``external/https``         the internet on 443: ``0.0.0.0/0`` except 10.0.0.0/8,
                           172.16.0.0/12 and 192.168.0.0/16 (and ``::/0`` except fc00::/7)
=========================  =========================================================

Service names are DNS labels, so they never contain ``/``: the prefixed forms cannot be
mistaken for a service.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What ``external/https`` leaves out of ``0.0.0.0/0``: the private ranges (RFC 1918),
#: where cluster pods, nodes and internal services live.
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
#: Port of the Strimzi TLS listener (KafkaUsers authenticate with mTLS).
KAFKA_TLS_PORT = 9093
HTTPS_PORT = 443
_LABEL_PAIR = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*=\s*([A-Za-z0-9._-]*)\s*$")
_NAMESPACED = re.compile(r"^ns/(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\{(?P<labels>[^{}]*)\})?$")
_KAFKA = re.compile(r"^kafka/(?P<cluster>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")


class PeerError(ValueError):
    """A flow peer that does not follow the grammar."""


@dataclass(frozen=True)
class FlowPeer:
    """One end of a flow, parsed. ``kind``: service, namespace, cidr, kafka or external."""

    text: str
    kind: str
    #: service name, namespace, or Kafka cluster
    name: str = ""
    #: pod labels of a namespace peer (empty: any pod)
    pods: tuple[tuple[str, str], ...] = ()
    networks: tuple[Network, ...] = ()
    excepts: tuple[Network, ...] = field(default=())

    @property
    def outside(self) -> bool:
        """Addresses outside the cluster (an ipBlock peer)."""
        return self.kind in ("cidr", "external")

    def default_port(self) -> int | None:
        """The port a flow to this peer means when it names none (services: their own)."""
        return {"kafka": KAFKA_TLS_PORT, "external": HTTPS_PORT}.get(self.kind)

    def covers(self, network: Network) -> bool:
        """Whether every address of ``network`` is one this peer names."""
        return any(
            network.version == mine.version and network.subnet_of(mine)  # type: ignore[arg-type]
            and not any(network.overlaps(e) for e in self.excepts)
            for mine in self.networks
        )


def _network(text: str, where: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise PeerError(f"{where}: {text!r} is not a CIDR network") from None


def _labels(text: str, where: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _LABEL_PAIR.match(part)
        if match is None:
            raise PeerError(f"{where}: pod selector entry {part!r} is not key=value")
        pairs.append((match[1], match[2]))
    return tuple(sorted(pairs))


def parse_peer(text: str, excepts: list[str] | tuple[str, ...] = (),
               where: str = "peer") -> FlowPeer:
    """``text`` as a peer; ``excepts`` only with a ``cidr/`` peer. Raises PeerError."""
    if text.startswith("ns/"):
        match = _NAMESPACED.match(text)
        if match is None:
            raise PeerError(f"{where}: {text!r} is not ns/<namespace> or "
                            "ns/<namespace>{key=value,...}")
        kind, name, pods = "namespace", match["ns"], _labels(match["labels"] or "", where)
        peer = FlowPeer(text, kind, name, pods)
    elif text.startswith("cidr/"):
        network = _network(text[5:], where)
        carved = tuple(_network(e, f"{where} except") for e in excepts)
        for inner in carved:
            if inner.version != network.version or not inner.subnet_of(network):  # type: ignore[arg-type]
                raise PeerError(f"{where}: except {inner} is not inside {network}")
        return FlowPeer(text, "cidr", networks=(network,), excepts=carved)
    elif text.startswith("kafka/"):
        match = _KAFKA.match(text)
        if match is None:
            raise PeerError(f"{where}: {text!r} is not kafka/<cluster>")
        peer = FlowPeer(text, "kafka", match["cluster"])
    elif text == "external/https":
        peer = FlowPeer(text, "external",
                        networks=(ipaddress.ip_network("0.0.0.0/0"),
                                  ipaddress.ip_network("::/0")),
                        excepts=(*(ipaddress.ip_network(n) for n in PRIVATE_V4),
                                 ipaddress.ip_network("fc00::/7")))
    elif "/" in text or not text:
        raise PeerError(f"{where}: {text!r} is not a service name, ns/<namespace>, "
                        "cidr/<network>, kafka/<cluster> or external/https")
    else:
        peer = FlowPeer(text, "service", text)
    if excepts:
        raise PeerError(f"{where}: `except` applies to a cidr/<network> peer only")
    return peer


def representative_addresses(peer: FlowPeer) -> list[str]:
    """Addresses standing for an outside peer: for each network, the first address not
    carved out; for ``external/https`` two well-known public addresses."""
    if peer.kind == "external":
        return ["1.1.1.1", "8.8.8.8"]
    found: list[str] = []
    for network in peer.networks:
        for candidate in _candidates(network, peer.excepts):
            found.append(str(candidate))
            break
    return found


def _candidates(network: Network, excepts: tuple[Network, ...]) -> list[object]:
    """Addresses of ``network`` worth trying: its first host and the address right after
    each carved-out range (the first that is not carved out is the representative)."""
    tries = [network.network_address + (1 if network.num_addresses > 2 else 0)]
    tries += [e.broadcast_address + 1 for e in excepts
              if e.version == network.version and int(e.broadcast_address) <
              int(network.broadcast_address)]
    return [a for a in tries if a in network
            and not any(a.version == e.version and a in e for e in excepts)]
