"""A plan: what applying one remediation to one target would change, object by object.

The plan is what the user previews (the unified diff) and confirms; ``apply`` executes
exactly it, so each change carries what its target needs to write it (``payload``) and a
``token`` taken when it was planned, to detect that someone changed the thing in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from soma_audit.core.errors import AuditError

if TYPE_CHECKING:
    from soma_audit.remediation.targets import Target

#: ``conflict``: another field manager owns a field we would change (or, for a rollback, the
#: file changed after the apply); ``rejected``: the API server's dry-run refused the object;
#: ``refused``: it would remove what no check flagged. All three block the apply.
#: ``recreate``: a bare Pod, whose spec cannot change (the diff is the manifest to recreate
#: it with); ``managed``: Argo CD or Helm deploys it, so it is fixed in their repository.
#: Neither is written.
ChangeKind = Literal["create", "update", "unchanged", "conflict", "rejected", "refused",
                     "recreate", "managed"]
#: Every kind, in the order a summary counts them.
CHANGE_KINDS: tuple[ChangeKind, ...] = ("create", "update", "unchanged", "conflict",
                                        "rejected", "refused", "recreate", "managed")
#: Kinds that stop the whole apply.
BLOCKING_KINDS: tuple[ChangeKind, ...] = ("conflict", "rejected", "refused")

#: Metadata the API server sets; never part of a diff, never sent back.
SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation",
                 "selfLink")


class RemediationError(AuditError):
    """A remediation cannot be planned, applied or rolled back; the message says why (one
    line, exit code 2 like every error the user must act on)."""


class StaleError(RemediationError):
    """The target changed between the preview and the apply: nothing was written."""


@dataclass
class Change:
    """One file, object, model, topic or ACL set, as it is and as the apply leaves it."""

    kind: ChangeKind
    where: str
    before: str | None
    after: str | None
    diff: str
    note: str = ""
    #: What the target's ``write`` needs (file text, object body, model JSON ...).
    payload: Any = None
    #: The state seen when planning (sha256 of a file, resourceVersion, model id ...).
    token: Any = None
    #: Per object and field, what the change does ("update Application/argocd/x: set
    #: spec.syncPolicy.automated.selfHeal"), listed before the diff.
    fields: list[str] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.kind in ("create", "update")


@dataclass
class Plan:
    recipe: str
    target: Target
    changes: list[Change]
    #: Things the user should know that are not changes (files a cluster cannot hold ...).
    notes: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    #: What a live plan covers ("N objects in M namespaces"); shown first.
    scope: str = ""

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.pending]

    @property
    def conflicts(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "conflict"]

    @property
    def blocked(self) -> list[Change]:
        """Changes that stop the whole apply: conflicts, objects the server rejects and
        removals no check justifies."""
        return [c for c in self.changes if c.kind in BLOCKING_KINDS]

    def summary(self) -> str:
        counts = {k: sum(c.kind == k for c in self.changes) for k in CHANGE_KINDS}
        names = {"recreate": "bare Pods to recreate", "managed": "managed by GitOps"}
        parts = [f"{n} to {k}" if k in ("create", "update") else f"{n} {names.get(k, k)}"
                 for k, n in counts.items() if n]
        tail = "" if self.pending or self.blocked else " (nothing to do)"
        return f"{self.recipe} on {self.target.kind} {self.target.ref}: " + (
            ", ".join(parts) or "no files or objects") + tail

    def render_diff(self) -> str:
        """The preview: per object and field what each change does, then its minimal
        unified diff; conflicts and refusals; then notes."""
        chunks = [f"# {self.scope}\n"] if self.scope else []
        for change in self.changes:
            if change.kind == "refused":
                chunks.append(f"!! refused: {change.where}: {change.note}\n")
                chunks.extend(f"#   {line}\n" for line in change.fields)
            elif change.kind == "managed":
                chunks.append(f"# not patched live: {change.where}: {change.note}\n")
            elif change.kind == "recreate":
                chunks.append(f"# recreate {change.where} ({change.note})\n{change.diff}")
            elif change.kind == "conflict":
                chunks.append(f"!! conflict on {change.where}: {change.note}\n")
            elif change.kind == "rejected":
                chunks.append(f"!! rejected by the API server: {change.where}: {change.note}\n")
            elif change.pending:
                head = f"# {change.kind} {change.where}" + (f" ({change.note})"
                                                              if change.note else "")
                lines = "".join(f"#   {line}\n" for line in change.fields)
                chunks.append(head + "\n" + lines + change.diff)
        chunks.extend(f"# note: {note}\n" for note in self.notes)
        return "".join(chunks)


def unified(before: str | None, after: str | None, where: str) -> str:
    """A unified diff of two texts (None = absent), labelled like ``git diff``."""
    import difflib

    old = (before or "").splitlines(keepends=True)
    new = (after or "").splitlines(keepends=True)
    lines = list(difflib.unified_diff(
        old, new,
        fromfile="/dev/null" if before is None else f"a/{where}",
        tofile="/dev/null" if after is None else f"b/{where}",
    ))
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def strip_server_fields(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of ``obj`` without what the API server sets: managedFields, resourceVersion,
    uid, creationTimestamp, generation and status — what diffs compare and tests check."""
    if obj is None:
        return None
    copy = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(copy.get("metadata") or {})
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    copy["metadata"] = meta
    return copy


def to_yaml(obj: Any) -> str:
    """Stable YAML for diffs: block style, keys sorted, unicode kept. libyaml's emitter
    when present (a live plan dumps every object twice; same text, a quarter the time)."""
    import yaml  # lazily: the CLI imports this module while building its parser

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(obj, Dumper=dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True)
