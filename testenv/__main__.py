"""Command line: `python -m testenv up|down|status` (what `make testenv` runs)."""

from __future__ import annotations

import argparse
import json
import sys

from testenv import config
from testenv.env import UpError, down, status, up
from testenv.proc import ComponentError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one command, map expected failures to exit code 1."""
    parser = argparse.ArgumentParser(
        prog="python -m testenv", description="soma-audit's real test environment"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("up", "start or reuse the environment"), ("down", "stop everything")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument(
            "--only",
            help=f"comma-separated groups (default all): {','.join(config.GROUPS)}",
        )
        cmd.add_argument("--quiet", action="store_true", help="no progress lines")
    stat = sub.add_parser("status", help="show what runs")
    stat.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "status":
            return _status(args.json)
        only = args.only.split(",") if args.only else None
        if args.command == "up":
            up(only, quiet=args.quiet)
        else:
            down(only, quiet=args.quiet)
    except (ComponentError, UpError) as exc:
        print(f"testenv {args.command} failed:\n{exc}", file=sys.stderr)
        if args.command == "up":
            logs = config.state_dir() / "logs"
            print(f"Logs: {logs}/ (see docs/testenv.md, 'Debugging').", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"testenv: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("testenv: interrupted; run `python -m testenv down` to clean up", file=sys.stderr)
        return 130
    return 0


def _status(as_json: bool) -> int:
    rows = status()
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            state = "running" if row["running"] else "stopped"
            ports = " ".join(f"{k}={v}" for k, v in sorted(row["ports"].items()))
            pid = row["pid"] or "-"
            print(f"{row['group']:<11} {row['name']:<15} {state:<8} pid={pid:<8} {ports}")
    return 0 if all(row["running"] for row in rows) else 3


if __name__ == "__main__":
    sys.exit(main())
