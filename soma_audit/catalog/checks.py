"""The check catalog: ``checks/*.yaml`` bundled, plus any catalog files the user adds."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from soma_audit.core.errors import ConfigError
from soma_audit.core.model import AREAS, LIVE_SERVICES, Check, Severity
from soma_audit.core.paths import data_path
from soma_audit.core.typed import build
from soma_audit.core.yamlload import load_file

LiveService = Literal["cluster", "status", "openfga", "kafka", "prometheus"]
assert set(LIVE_SERVICES) == {"cluster", "status", "openfga", "kafka", "prometheus"}


@dataclass(frozen=True)
class _Entry:
    id: str
    phase: Literal[1, 2, 3]
    title: str
    criterion: str
    severity: Literal["low", "medium", "high", "critical"]
    probe: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    requires: list[LiveService] = field(default_factory=list)
    manual: bool = False
    remediation: str | None = None


@dataclass(frozen=True)
class _CatalogFile:
    checks: list[_Entry]


def _read(path: Path) -> list[Check]:
    data = load_file(path, "catalog")
    parsed = build(_CatalogFile, data, str(path))
    checks = []
    for i, entry in enumerate(parsed.checks):
        where = f"{path}: checks[{i}] ({entry.id})"
        area, dot, name = entry.id.partition(".")
        if not dot or not name or area not in AREAS:
            raise ConfigError(f"{where}: id must be <area>.<name> with area one of {list(AREAS)}")
        if entry.manual and entry.probe:
            raise ConfigError(f"{where}: a manual check has no probe")
        checks.append(
            Check(
                id=entry.id,
                phase=entry.phase,
                area=area,
                title=entry.title,
                criterion=entry.criterion,
                severity=Severity(entry.severity),
                probe="" if entry.manual else entry.probe or entry.id,
                params=entry.params,
                requires=tuple(entry.requires),
                manual=entry.manual,
                remediation=entry.remediation,
                source_file=str(path),
            )
        )
    return checks


def load_catalog(extra: list[str | os.PathLike[str]] | None = None) -> list[Check]:
    """All bundled checks, then user catalogs; a user entry with an existing id replaces it."""
    files = sorted(data_path("checks").glob("*.yaml"))
    files += [Path(p) for p in extra or []]
    by_id: dict[str, Check] = {}
    for file in files:
        seen_here: set[str] = set()
        for check in _read(file):
            if check.id in seen_here:
                raise ConfigError(f"{file}: check {check.id} defined twice")
            seen_here.add(check.id)
            by_id[check.id] = check
    return sorted(by_id.values(), key=lambda c: (c.phase, list(AREAS).index(c.area)))


def validate_probes(checks: list[Check], registered: set[str]) -> None:
    """Every automated check must point at a registered probe."""
    for check in checks:
        if not check.manual and check.probe not in registered:
            raise ConfigError(f"{check.source_file}: {check.id}: unknown probe '{check.probe}'")
