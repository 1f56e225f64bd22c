"""What the TUI shows, computed without Textual: scopes, filters, per-area counts, gaps.

Kept apart from the widgets so that it stays plain Python (unit-testable, no event loop)
and so that the widgets only draw. None of this judges a check: statuses come from the
engine; this module only selects and counts them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from soma_audit.core.model import AREAS, PHASES, Check, Result, Severity, Status
from soma_audit.results.report import DONE

if TYPE_CHECKING:
    from soma_audit.remediation.plan import Plan

#: Statuses that are gaps: ``n``/``N`` jump between them.
GAPS = (Status.FAIL, Status.ERROR)


@dataclass(frozen=True)
class Scope:
    """A node of the phase tree: everything, one phase, or one area within a phase."""

    phase: int | None = None
    area: str | None = None

    def contains(self, check: Check) -> bool:
        return (self.phase is None or check.phase == self.phase) and (
            self.area is None or check.area == self.area
        )

    @property
    def title(self) -> str:
        if self.phase is None:
            return "All checks"
        if self.area:
            return f"Phase {self.phase} · {AREAS.get(self.area, self.area)}"
        return f"Phase {self.phase} · {PHASES.get(self.phase, '')}".rstrip(" ·")


@dataclass(frozen=True)
class Filter:
    """The ``/`` filter: status words, severity words and free text, all case-insensitive.

    Several statuses (or severities) match any of them; text words must all occur in the
    check's id, title, criterion or evidence. ``fail critical fga`` shows the failing
    critical OpenFGA checks.
    """

    text: str = ""
    statuses: frozenset[Status] = frozenset()
    severities: frozenset[Severity] = frozenset()
    words: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> Filter:
        statuses: set[Status] = set()
        severities: set[Severity] = set()
        words: list[str] = []
        for token in text.lower().split():
            if token in {s.value for s in Status}:
                statuses.add(Status(token))
            elif token in {s.value for s in Severity}:
                severities.add(Severity(token))
            else:
                words.append(token)
        return cls(text.strip(), frozenset(statuses), frozenset(severities), tuple(words))

    def __bool__(self) -> bool:
        return bool(self.text)

    def matches(self, check: Check, result: Result | None) -> bool:
        if self.statuses and (result is None or result.status not in self.statuses):
            return False
        if self.severities and check.severity not in self.severities:
            return False
        if not self.words:
            return True
        haystack = " ".join(
            [check.id, check.title, check.criterion, check.remediation or ""]
            + [f"{e.object} {e.message}" for e in (result.evidence if result else ())]
        ).lower()
        return all(word in haystack for word in self.words)


@dataclass(frozen=True)
class Tally:
    """How far a group of checks is: ``done`` of ``counted`` (skipped ones do not count)."""

    total: int
    evaluated: int
    done: int
    counted: int

    @property
    def ratio(self) -> float | None:
        return self.done / self.counted if self.counted else None

    @property
    def gaps(self) -> int:
        return self.counted - self.done


def tally(checks: Iterable[Check], results: Mapping[str, Result],
          pending: AbstractSet[str] = frozenset()) -> Tally:
    """Count like :func:`soma_audit.results.report.score`, over the results known so far."""
    total = evaluated = done = counted = 0
    for check in checks:
        total += 1
        result = results.get(check.id)
        if check.id not in pending and result is not None:
            evaluated += 1
        if result is None or result.status is Status.SKIP:
            continue
        counted += 1
        done += result.status in DONE
    return Tally(total, evaluated, done, counted)


def phases_and_areas(checks: Iterable[Check]) -> dict[int, list[str]]:
    """The tree's shape: each phase with its areas, in catalog order."""
    shape: dict[int, list[str]] = {}
    for check in checks:
        areas = shape.setdefault(check.phase, [])
        if check.area not in areas:
            areas.append(check.area)
    return dict(sorted(shape.items()))


def next_gap(checks: list[Check], results: Mapping[str, Result], current: str | None,
             forward: bool = True, visible: Filter | None = None) -> Check | None:
    """The next (or previous) failing check after ``current``, wrapping around."""
    order = checks if forward else list(reversed(checks))
    ids = [c.id for c in order]
    start = ids.index(current) + 1 if current in ids else 0
    for check in order[start:] + order[:start]:
        result = results.get(check.id)
        if result is None or result.status not in GAPS:
            continue
        if visible is None or visible.matches(check, result):
            return check
    return None


def target_label(kind: str, ref: str, cwd: Path | None = None) -> str:
    """How a remediation target is named on screen: ``directory soma-gitops`` (relative
    to the working directory when it lies inside it, else absolute), ``cluster
    https://… (context prod-eu-1)``, ``openfga URL store ID``, ``kafka HOST:PORT``."""
    if kind == "directory":
        base = (cwd or Path.cwd()).resolve()
        path = Path(ref)
        if path == base or base in path.parents:
            ref = os.path.relpath(path, base)
    return f"{kind} {ref}"


def affected_checks(checks: Iterable[Check], recipe: str, fixes: Iterable[str]) -> set[str]:
    """The checks to re-run after ``recipe`` was applied or rolled back: those it fixes
    and those that name it as their remediation."""
    fixed = set(fixes)
    return {c.id for c in checks if c.id in fixed or c.remediation == recipe}


def only_unjustified_removals(plan: Plan) -> bool:
    """Whether the only thing blocking ``plan`` is removals no check's evidence justifies
    (a typed confirmation may allow them)."""
    return bool(plan.blocked) and all(c.kind == "refused" for c in plan.blocked)


def apply_refusal(plan: Plan) -> str:
    """Why ``plan`` is not offered for apply ("" when it is): what the engine says blocks
    it (field-manager conflicts, objects the API server rejects, removals no check's
    evidence justifies), or nothing to change."""
    if plan.blocked:
        kinds = sorted({c.kind for c in plan.blocked})
        where = ", ".join(c.where for c in plan.blocked[:3])
        more = f" and {len(plan.blocked) - 3} more" if len(plan.blocked) > 3 else ""
        hint = (" — it removes what no check flagged; press a to review the removals and "
                "allow them with a typed confirmation" if "refused" in kinds else "")
        return (f"{plan.recipe} cannot be applied: {' and '.join(kinds)} on {where}{more} "
                f"(see the diff); nothing was changed{hint}")
    if not plan.pending:
        return f"Nothing to apply: the target already matches {plan.recipe}."
    return ""
