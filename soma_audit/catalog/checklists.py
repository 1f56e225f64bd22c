"""The plan's own checklists (``checks/plan/checklist.yaml``) mapped to check ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import yaml

from soma_audit.core.paths import data_path
from soma_audit.core.typed import build


@dataclass(frozen=True)
class PlanItem:
    text: str
    checks: list[str] = field(default_factory=list)
    #: True for "checklist 100% complete": done only when every check is done.
    all: bool = False


@dataclass(frozen=True)
class PlanGroup:
    name: str
    items: list[PlanItem]


@dataclass(frozen=True)
class PlanSection:
    name: str
    groups: list[PlanGroup]


@dataclass(frozen=True)
class Plan:
    title: str
    sections: list[PlanSection]

    def check_ids(self) -> set[str]:
        return {c for s in self.sections for g in s.groups for i in g.items for c in i.checks}


@cache
def load_plan() -> Plan:
    path = data_path("checks", "plan", "checklist.yaml")
    return build(Plan, yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
