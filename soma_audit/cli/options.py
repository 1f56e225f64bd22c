"""What the command line's verbs share: the environment prefix of every option, the
settings that come only from the environment, and the config overrides the flags make."""

from __future__ import annotations

import argparse
import os
from typing import Any

#: ``SOMA_AUDIT_<OPTION>`` sets any option (flags win over it, it wins over the config).
ENV_PREFIX = "SOMA_AUDIT_"

#: Settings that only come from the environment (or config), never from a flag, because
#: a flag would put credentials in the process list and shell history.
ENV_ONLY: dict[str, tuple[str, str]] = {
    "KAFKA_SASL_USERNAME": ("kafka", "sasl_username"),
    "KAFKA_SASL_PASSWORD": ("kafka", "sasl_password"),
    "KAFKA_SASL_MECHANISM": ("kafka", "sasl_mechanism"),
    "KAFKA_SECURITY_PROTOCOL": ("kafka", "security_protocol"),
    "OPENFGA_API_TOKEN": ("openfga", "api_token"),
    "PROMETHEUS_BEARER_TOKEN": ("prometheus", "bearer_token"),
}


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            overrides.setdefault(section, {})[key] = value

    put("openfga", "url", args.openfga_url)
    put("openfga", "store", args.openfga_store)
    put("prometheus", "url", args.prometheus_url)
    put("kafka", "bootstrap", args.kafka_bootstrap)
    for env, (section, key) in ENV_ONLY.items():
        put(section, key, os.environ.get(ENV_PREFIX + env))
    if args.probe_writes is not None:
        overrides["probe_writes"] = args.probe_writes
    if args.run_repo_code is not None:
        overrides["run_repo_code"] = args.run_repo_code
    if args.repo:
        overrides["repo"] = args.repo
    return overrides
