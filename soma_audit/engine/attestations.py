"""Attestations of manual checks: a small YAML file teams commit beside their config."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from soma_audit.core.fileio import write_atomically
from soma_audit.core.typed import build
from soma_audit.core.yamlload import load_file

DEFAULT_FILE = "soma-audit.attestations.yaml"


@dataclass(frozen=True)
class Attestation:
    check: str
    by: str
    note: str
    expires: dt.date
    date: dt.date = field(default_factory=dt.date.today)

    def expired(self, today: dt.date) -> bool:
        return today > self.expires


@dataclass(frozen=True)
class _File:
    attestations: list[Attestation] = field(default_factory=list)


def default_path(config_file: str | None) -> Path:
    """Beside the config file when there is one, else in the working directory."""
    base = Path(config_file).parent if config_file else Path.cwd()
    return base / DEFAULT_FILE


def load(path: Path) -> dict[str, Attestation]:
    """The latest attestation per check id; a missing file means none."""
    if not path.exists():
        return {}
    data = load_file(path, "attestations")
    parsed = build(_File, data, str(path))
    return {a.check: a for a in parsed.attestations}


def save(path: Path, attestations: dict[str, Attestation]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    rows = [
        {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(a).items()}
        for a in sorted(attestations.values(), key=lambda a: a.check)
    ]
    text = yaml.safe_dump({"attestations": rows}, sort_keys=False)
    write_atomically(path, text)


def attest(path: Path, attestation: Attestation) -> None:
    current = load(path)
    current[attestation.check] = attestation
    save(path, current)
