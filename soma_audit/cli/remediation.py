"""The remediation verbs of the command line — ``render``, ``diff``, ``apply``,
``rollback``: their flags, previews, questions and exit codes, over
:mod:`soma_audit.remediation.workflow`.

Nothing is written without a preview: ``apply`` shows the diff and asks, and refuses
without a terminal unless ``--yes``; ``rollback`` does the same with its restore preview.
The remediation machinery is imported when a verb runs: every start builds these parsers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma_audit.cli.options import config_overrides
from soma_audit.core.errors import AuditError

if TYPE_CHECKING:
    from soma_audit.engine.session import AuditSession
    from soma_audit.remediation.backup import Backup, BackupStore
    from soma_audit.remediation.ownership import LiveOptions
    from soma_audit.remediation.plan import Plan
    from soma_audit.remediation.targets import Target

COMMANDS = ("render", "diff", "apply", "rollback")
TARGETS = ("auto", "directory", "cluster", "openfga", "kafka")
def add_parsers(commands: Any, source_options: Any) -> None:
    """The four subcommands; ``source_options(parser)`` repeats the audit's source flags
    so they may also follow the subcommand (``soma-audit diff X --demo``)."""
    render = commands.add_parser("render", help="render a remediation's files")
    render.add_argument("remediation", metavar="REMEDIATION")
    render.add_argument("-o", "--output-dir", dest="render_output", metavar="DIR", default="",
                        help="write the files under DIR (default: print them)")
    diff = commands.add_parser(
        "diff", help="preview what applying a remediation changes (exit 0: nothing to do, "
        "1: changes pending, 2: error)",
        description="Lists per object and field what the remediation adds, changes and "
        "removes, then the minimal unified diff. Exit code: 0 nothing to do, 1 changes "
        "pending (like diff(1)), 2 error (including a change that is refused).")
    diff.add_argument("remediation", metavar="REMEDIATION")
    apply = commands.add_parser("apply", help="apply a remediation (backup first)")
    apply.add_argument("remediation", metavar="REMEDIATION")
    apply.add_argument("--yes", "-y", action="store_true", default=False,
                       help="apply without asking (the diff is still printed)")
    rollback = commands.add_parser("rollback", help="list backups, or restore one")
    rollback.add_argument("backup", metavar="BACKUP", nargs="?", default="")
    rollback.add_argument("--yes", "-y", action="store_true", default=False,
                          help="restore without asking (the preview is still printed)")
    rollback.add_argument("--force", action="store_true", default=False,
                          help="restore files even if they changed after the apply")
    for parser in (render, diff, apply):
        parser.add_argument("--target", choices=TARGETS, default="auto",
                            help="where to apply (default: the audited source; a cluster "
                            "uses OpenFGA/Kafka for their recipes)")
    for parser in (diff, apply):
        parser.add_argument("--force-conflicts", action="store_true", default=False,
                            help="take over fields a controller owns (cluster; it will "
                            "likely set them back)")
        parser.add_argument("--allow-removals", action="store_true", default=False,
                            help="allow removing content that no check's evidence flagged")
        _add_scope_options(parser)
    for parser in (render, diff, apply, rollback):
        source_options(parser)


def _add_scope_options(parser: argparse.ArgumentParser) -> None:
    """How far a live fix reaches (default: the app namespace and the configured ones)."""
    parser.add_argument("--namespace", dest="live_namespaces", metavar="NS",
                        action="append", default=[],
                        help="also fix namespace NS (cluster; repeatable)")
    parser.add_argument("--all-namespaces", action="store_true", default=False,
                        help="fix every namespace but the system and exempt ones (cluster)")
    parser.add_argument("--enforce-namespace", dest="enforce_namespaces", metavar="NS",
                        action="append", default=[],
                        help="set the enforce label on NS even though existing pods would "
                        "violate it (cluster; repeatable)")
    parser.add_argument("--patch-managed", action="store_true", default=False,
                        help="patch objects Argo CD or Helm deploy, too (cluster; their "
                        "next sync reverts it)")


def _live_options(args: argparse.Namespace) -> LiveOptions:
    from soma_audit.remediation.ownership import LiveOptions

    progress = None
    if sys.stderr.isatty():
        def progress(done: int, total: int) -> None:
            end = "\n" if done == total else ""
            sys.stderr.write(f"\rserver-side dry-run: {done}/{total} objects{end}")
            sys.stderr.flush()
    return LiveOptions(tuple(args.live_namespaces), args.all_namespaces,
                       tuple(args.enforce_namespaces), args.patch_managed, progress)


def run(args: argparse.Namespace, build_session: Any) -> int:
    from soma_audit.remediation.plan import RemediationError
    from soma_audit.remediation.workflow import prepare

    if args.command == "rollback":
        return _rollback(args)
    if args.demo:
        _use_persistent_demo(args)
    if args.snapshot and args.command != "render":
        raise AuditError(f"{args.command} needs a target: a snapshot can only be rendered "
                         "from (use --manifests DIR, --demo or a kube context)")
    session = build_session(args)
    if args.command == "render":
        return _render(args, session)
    plan = prepare(session, args.remediation, args.target, args.force_conflicts,
                   _live_options(args), args.allow_removals)
    _print_plan(plan)
    if args.command == "diff":
        if plan.blocked:
            raise RemediationError("some changes are blocked (shown above with !!)")
        return 1 if plan.pending else 0
    return _apply(args, session, plan)


def _use_persistent_demo(args: argparse.Namespace) -> None:
    """``--demo`` remediations work on one demo copy kept in the state folder, so diff,
    apply and rollback see each other's results (an audit copies afresh each time)."""
    from soma_audit.engine.demo import DEMO_NAME, prepare_demo
    from soma_audit.remediation.backup import state_dir

    directory = state_dir() / "demo" / DEMO_NAME
    if not directory.is_dir():
        prepare_demo(directory.parent)
    print(f"demo repository: {directory} (audit it with --manifests {directory})",
          file=sys.stderr)
    args.demo = False
    args.manifests = str(directory)


def _render(args: argparse.Namespace, session: AuditSession) -> int:
    from soma_audit.remediation.recipes import get_recipe
    from soma_audit.remediation.targets import DirectoryTarget
    from soma_audit.remediation.workflow import rendered

    recipe = get_recipe(args.remediation)
    api_versions = None
    if session.source.info.kind == "cluster":
        from soma_audit.remediation.cluster import ClusterTarget

        api_versions = ClusterTarget(session.source).served_versions()  # type: ignore[arg-type]
    files = rendered(session, recipe, api_versions)
    if not args.render_output:
        for item in files:
            sys.stdout.write(f"# --- {item.path}\n{item.text}")
            if not item.text.endswith("\n"):
                sys.stdout.write("\n")
        return 0
    root = Path(args.render_output)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuditError(f"cannot create {root}: {exc.strerror}") from None
    target = DirectoryTarget(root)
    changes, _ = target.plan(files)
    for change in changes:
        if change.pending:
            target.write(change)
        print(f"{change.kind:<9} {target.root / change.where}")
    return 0


def _print_plan(plan: Plan) -> None:
    text = plan.render_diff()
    if text:
        sys.stdout.write(text)
    print(plan.summary())


def _confirm(question: str, yes: bool, what: str) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise AuditError(f"{what} needs a confirmation: run it in a terminal or pass --yes")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _offer_interrupted(store: BackupStore, args: argparse.Namespace) -> None:
    """An apply that never finished must be rolled back before anything else is applied."""
    from soma_audit.remediation.apply import InterruptedApply

    with store.lock():
        stale = store.interrupted()
    if not stale:
        return
    if args.yes or not sys.stdin.isatty():
        raise InterruptedApply(stale)
    for backup in stale:
        print(f"interrupted apply: {backup.id} ({backup.recipe} on "
              f"{backup.describe_target()}, {backup.created})")
        if not _confirm(f"Roll back {backup.id} now?", False, "rollback"):
            raise InterruptedApply(stale)
        _restore(args, backup, store, yes=True)


def _apply(args: argparse.Namespace, session: AuditSession, plan: Plan) -> int:
    from soma_audit.remediation.apply import apply_plan
    from soma_audit.remediation.backup import BackupStore
    from soma_audit.remediation.plan import RemediationError

    if plan.conflicts:
        raise RemediationError("field-manager conflicts with controllers (shown above); "
                               "nothing was applied. Fix those fields where the controller "
                               "takes them from (its repository or chart values)")
    if plan.blocked:
        raise RemediationError("some changes are blocked (shown above with !!: rejected by "
                               "the API server, or removals no check flagged — "
                               "--allow-removals); nothing was applied")
    if not plan.pending:
        elsewhere = [c for c in plan.changes if c.kind in ("recreate", "managed")]
        print(f"nothing to apply live: {len(elsewhere)} object(s) are fixed elsewhere "
              "(shown above)" if elsewhere else "nothing to apply: the target already matches")
        return 0
    store = BackupStore()
    _offer_interrupted(store, args)
    if not _confirm(f"Apply {len(plan.pending)} change(s) to {plan.target.kind} "
                    f"{plan.target.ref}?", args.yes, "apply"):
        print("not applied")
        return 1
    result = apply_plan(plan, store)
    backup = result.backup
    print(f"applied {len(result.written)} change(s); backup {backup.id if backup else '-'} "
          f"(undo: soma-audit rollback {backup.id if backup else ''})")
    _rescan(session, plan.fixes)
    return 0


def _rescan(session: AuditSession, fixes: list[str]) -> None:
    """Re-run the checks the recipe fixes and print their statuses."""
    wanted = {c.id for c in session.checks} & set(fixes)
    if not wanted:
        return
    report = session.scan(only=wanted)
    print("re-audit of the checks this remediation fixes:")
    for result in report.results:
        if result.check.id in wanted:
            first = result.evidence[0].message if result.evidence else ""
            print(f"  {result.status.value:<6} {result.check.id}"
                  + (f" — {first}" if first and result.status.value != "pass" else ""))


def _target_of(backup: Backup, args: argparse.Namespace) -> Target:
    """Reconnect to the target a backup was taken from (credentials from config/env)."""
    from soma_audit.remediation.plan import RemediationError
    from soma_audit.remediation.targets import DirectoryTarget

    described = backup.target
    kind = described.get("kind")
    if kind == "directory":
        return DirectoryTarget(str(described["root"]), force=getattr(args, "force", False))
    if kind == "cluster":
        from soma_audit.remediation.cluster import ClusterTarget
        from soma_audit.sources.cluster import ClusterSource

        source = ClusterSource(args.kubeconfig, args.context)
        if source.server != described.get("server"):
            raise RemediationError(
                f"backup {backup.id} was taken on {described.get('server')} (context "
                f"{described.get('context')}); the current context points at "
                f"{source.server}: pass --context/--kubeconfig")
        return ClusterTarget(source)
    from soma_audit.config import load_config

    config = load_config(args.config, **config_overrides(args))
    if kind == "openfga":
        from dataclasses import replace

        from soma_audit.remediation.live import OpenFgaTarget

        settings = replace(config.openfga, url=described.get("url"),
                           store=described.get("store"))
        return OpenFgaTarget(settings, config.tools)
    if kind == "kafka":
        from dataclasses import replace

        from soma_audit.remediation.live import KafkaTarget

        return KafkaTarget(replace(config.kafka, bootstrap=described.get("bootstrap")))
    raise RemediationError(f"backup {backup.id}: unknown target {kind!r}")


def _rollback(args: argparse.Namespace) -> int:
    from soma_audit.remediation.backup import IN_PROGRESS, BackupStore

    store = BackupStore()
    if not args.backup:
        backups = store.list()
        if not backups:
            print(f"no backups under {store.root}")
            return 0
        print(f"{'BACKUP':<44} {'RECIPE':<16} {'STATUS':<12} {'TIME (UTC)':<26} TARGET")
        for backup in backups:
            status = "interrupted" if backup.status == IN_PROGRESS else backup.status
            print(f"{backup.id:<44} {backup.recipe:<16} {status:<12} {backup.created:<26} "
                  f"{backup.describe_target()}")
        if any(b.status == IN_PROGRESS for b in backups):
            print("an interrupted apply left changes behind: soma-audit rollback BACKUP "
                  "restores them")
        return 0
    backup = store.load(args.backup)
    return _restore(args, backup, store, args.yes)


def _restore(args: argparse.Namespace, backup: Backup, store: BackupStore, yes: bool) -> int:
    from soma_audit.remediation.apply import restore_preview, rollback
    from soma_audit.remediation.plan import RemediationError

    target = _target_of(backup, args)
    preview = restore_preview(backup, target)
    for change in preview:
        if change.kind == "conflict":
            sys.stdout.write(f"!! {change.where}: {change.note}\n")
        elif change.pending:
            note = f" ({change.note})" if change.note else ""
            sys.stdout.write(f"# restore {change.where}{note}\n{change.diff}")
    pending = sum(c.pending for c in preview)
    print(f"rollback {backup.id}: {pending} item(s) to restore on {backup.describe_target()}")
    if pending and not _confirm(f"Restore {backup.id}?", yes, "rollback"):
        print("not rolled back")
        return 1
    problems = rollback(backup, target, store)
    if problems:
        raise RemediationError(f"rollback {backup.id} incomplete: {'; '.join(problems)}")
    print(f"rolled back {backup.id}")
    return 0
