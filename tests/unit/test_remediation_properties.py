"""Property: whatever a team adds to the demo's files (comments, fields, documents), an
apply changes only what the recipe changes on the unedited demo, keeps every added line,
and the recipe's checks pass."""

from __future__ import annotations

import difflib
import shutil
import tempfile
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from soma_audit.config import load_config
from soma_audit.core.model import Status
from soma_audit.remediation.recipes import load_recipes
from soma_audit.remediation.render import render
from soma_audit.remediation.repository import flagged_by
from soma_audit.remediation.targets import DirectoryTarget
from soma_audit.sources.manifests import ManifestsSource
from tests.helpers import REPO, audit_dir

DEMO = REPO / "demo" / "soma-gitops"
RECIPES = load_recipes()
#: Recipes and the demo files they edit in place (no block scalars: comments can go anywhere).
EDITED = {
    "argocd-apps": ["k8s/apps/orchestrator-app.yaml", "k8s/apps/gateway-api-app.yaml"],
    "kafka-users": ["k8s/kafka/users.yaml"],
    "kafka-topics": ["k8s/kafka/topics.yaml"],
    "pss-namespaces": ["k8s/namespaces.yaml"],
    "pss-hardening": ["k8s/services/billing-service/deployment.yaml",
                      "k8s/services/llm-hub/deployment.yaml"],
    "netpol-services": ["k8s/network/gateway-api.yaml", "k8s/network/billing-service.yaml"],
}


def apply(recipe_id: str, root: Path) -> None:
    """What ``soma-audit apply`` does, in process: evidence, plan, write."""
    recipe = RECIPES[recipe_id]
    checks = {rule.check for rule in recipe.removes}
    target = DirectoryTarget(root)
    target.flagged = flagged_by(audit_dir(root, sorted(checks)).results, checks)
    inventory = ManifestsSource(root).load(frozenset())
    changes, _ = target.plan(render(recipe, load_config(), inventory))
    assert not [c.note for c in changes if c.kind == "refused"]
    for change in changes:
        if change.pending:
            target.write(change)


def removed_lines(before: str, after: str) -> list[str]:
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(),
                                      autojunk=False)
    return [line for tag, i1, i2, _, _ in matcher.get_opcodes() if tag in ("delete", "replace")
            for line in before.splitlines()[i1:i2]]


@cache
def baseline_removals(recipe_id: str) -> dict[str, frozenset[str]]:
    """Per file, the lines the recipe removes or rewrites on the unedited demo."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "repo"
        shutil.copytree(DEMO, root)
        apply(recipe_id, root)
        return {rel: frozenset(removed_lines((DEMO / rel).read_text(),
                                             (root / rel).read_text()))
                for rel in EDITED[recipe_id]}


def _in_removable_list(lines: list[str], at: int, recipe_id: str) -> bool:
    """Whether line ``at`` is inside a list the recipe may remove items from (a comment
    there belongs to an item and may leave with it)."""
    if not RECIPES[recipe_id].removes:
        return False
    for index in range(at - 1, -1, -1):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        key = line.strip().rstrip(":")
        if line.rstrip().endswith(":") and key in ("ingress", "egress", "acls"):
            return True
        if indent == 0:
            return False
    return False


_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@settings(max_examples=10, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(EDITED)), st.data())
def test_team_additions_survive_any_apply(recipe_id: str, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "repo"
        shutil.copytree(DEMO, root)
        added: dict[str, list[str]] = {}
        gone: dict[str, list[str]] = {}
        for rel in EDITED[recipe_id]:
            lines = (root / rel).read_text().splitlines(keepends=True)
            mine: list[str] = []
            lost: list[str] = []
            removable = baseline_removals(recipe_id)[rel]
            for _ in range(data.draw(st.integers(1, 3), label="comments")):
                at = data.draw(st.integers(0, len(lines) - 1), label="line")
                indent = len(lines[at]) - len(lines[at].lstrip(" "))
                comment = " " * indent + f"# team: {data.draw(_words)}\n"
                inside_removed = at > 0 and (
                    {lines[at - 1].rstrip("\n"), lines[at].rstrip("\n")} <= removable
                    or _in_removable_list(lines, at, recipe_id))
                lines.insert(at, comment)
                # a comment inside a removed item goes with it
                (lost if inside_removed else mine).append(comment)
            meta = lines.index("metadata:\n")
            field = f"  annotations: {{team.example/note: {data.draw(_words)}}}\n"
            lines.insert(meta + 1, field)
            mine.append(field)
            if data.draw(st.booleans(), label="extra document"):
                document = (f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                            f"  name: team-{data.draw(_words)}\n  namespace: soma-agent-hub\n"
                            f"data:\n  note: {data.draw(_words)}\n")
                if not lines[-1].endswith("\n"):
                    lines[-1] += "\n"
                lines.append(document)
                mine.extend(document.splitlines(keepends=True)[1:])
            (root / rel).write_text("".join(lines))
            added[rel] = mine
            gone[rel] = lost
        before = {rel: (root / rel).read_text() for rel in EDITED[recipe_id]}

        apply(recipe_id, root)

        allowed = baseline_removals(recipe_id)
        for rel, mine in added.items():
            after = (root / rel).read_text()
            kept = after.splitlines(keepends=True)
            for line in mine:
                assert line in kept, f"{rel} lost {line!r}"
            extra = set(removed_lines(before[rel], after)) - allowed[rel] - {
                line.rstrip("\n") for line in gone[rel]}
            assert not extra, f"{rel}: lines outside the edited nodes changed: {extra}"
        report = audit_dir(root, [c for c in RECIPES[recipe_id].fixes
                                  if c not in ("pss.admission-verdict", "kafka.live-topics",
                                               "kafka.live-acls")])
        assert all(r.status is Status.PASS for r in report.results), [
            (r.check.id, r.evidence[:1]) for r in report.results if r.status is not Status.PASS]
