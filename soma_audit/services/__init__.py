"""Thin clients for the live services a readiness audit may probe: OpenFGA, Kafka and
Prometheus.

Each client is built from its config section without touching the network (and without
importing its SDK): the first call connects. Every failure surfaces as a
:class:`ServiceError` whose message is safe to show — credentials are redacted from it and
SDK exceptions are never chained, so neither a report nor a traceback can carry them.
After a connection-level failure (unreachable, unauthorised, timed out) a client fails
fast with the same reason, so one dead endpoint costs one timeout, not one per check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from soma_audit.services.base import (
    REDACTED,
    Failure,
    Guard,
    ServiceError,
    one_line,
    redact,
    transport_cause,
)

if TYPE_CHECKING:
    from soma_audit.config import Config


def connect_services(config: Config) -> dict[str, Any]:
    """The live service clients the config has endpoints for, keyed as checks'
    ``requires`` name them. Nothing is contacted here: a client connects on first use."""
    services: dict[str, Any] = {}
    if config.openfga.url:
        from soma_audit.services.openfga import OpenFgaService

        services["openfga"] = OpenFgaService(config.openfga)
    if config.kafka.bootstrap:
        from soma_audit.services.kafka import KafkaService

        services["kafka"] = KafkaService(config.kafka)
    if config.prometheus.url:
        from soma_audit.services.prometheus import PrometheusService

        services["prometheus"] = PrometheusService(config.prometheus)
    return services


__all__ = [
    "REDACTED",
    "Failure",
    "Guard",
    "ServiceError",
    "connect_services",
    "one_line",
    "redact",
    "transport_cause",
]
