"""The command line of fleet audits: repeated --context, --all-contexts, SOMA_AUDIT_CONTEXT,
and the modes that audit one cluster only. Clusters here are kube contexts whose API
server port is closed, so a whole fleet run needs no service and fails the real way."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soma_audit import cli
from soma_audit.core.errors import AuditError
from testenv.proc import free_port

BIN = Path(sys.executable).parent / "soma-audit"
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith("SOMA_AUDIT_") and k != "KUBECONFIG"}


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """Contexts east, west and north, each an API server address nothing listens on."""
    names = ("east", "west", "north")
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "east",
        "clusters": [{"name": n, "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                             "insecure-skip-tls-verify": True}}
                     for n in names],
        "users": [{"name": "u", "user": {"token": "unused"}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "u"}} for n in names],
    }))
    return path


def _args(monkeypatch: pytest.MonkeyPatch, *argv: str,
          env: dict[str, str] | None = None) -> argparse.Namespace:
    for key in list(os.environ):
        if key.startswith("SOMA_AUDIT_"):
            monkeypatch.delenv(key)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    args = cli._parser().parse_args(list(argv))
    cli._apply_environment(args)
    return args


def test_one_context_stays_a_single_cluster_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _args(monkeypatch, "--context", "east")
    assert cli._fleet_contexts(args) is None and args.context == "east"
    args = _args(monkeypatch, "--context", "east", "--context", "east")
    assert cli._fleet_contexts(args) is None and args.context == "east"
    args = _args(monkeypatch)
    assert cli._fleet_contexts(args) is None and args.context is None


def test_repeated_context_and_environment_list(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _args(monkeypatch, "--context", "west", "--context", "east", "--context", "west")
    assert cli._fleet_contexts(args) == ["west", "east"]
    args = _args(monkeypatch, env={"SOMA_AUDIT_CONTEXT": "east, west north"})
    assert cli._fleet_contexts(args) == ["east", "west", "north"]
    # Flags win over the environment.
    args = _args(monkeypatch, "--context", "north", env={"SOMA_AUDIT_CONTEXT": "east,west"})
    assert cli._fleet_contexts(args) is None and args.context == "north"


def test_all_contexts_reads_the_kubeconfig_in_order(monkeypatch: pytest.MonkeyPatch,
                                                    kubeconfig: Path) -> None:
    args = _args(monkeypatch, "--all-contexts", "--kubeconfig", str(kubeconfig))
    assert cli._fleet_contexts(args) == ["east", "west", "north"]
    args = _args(monkeypatch, env={"SOMA_AUDIT_ALL_CONTEXTS": "1",
                                   "SOMA_AUDIT_KUBECONFIG": str(kubeconfig)})
    assert cli._fleet_contexts(args) == ["east", "west", "north"]
    # A flag wins over the environment: --context beats SOMA_AUDIT_ALL_CONTEXTS, and
    # --all-contexts beats SOMA_AUDIT_CONTEXT.
    args = _args(monkeypatch, "--context", "west", "--kubeconfig", str(kubeconfig),
                 env={"SOMA_AUDIT_ALL_CONTEXTS": "1"})
    assert cli._fleet_contexts(args) is None and args.context == "west"
    args = _args(monkeypatch, "--all-contexts", "--kubeconfig", str(kubeconfig),
                 env={"SOMA_AUDIT_CONTEXT": "west"})
    assert cli._fleet_contexts(args) == ["east", "west", "north"]


def test_all_contexts_and_context_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli._parser().parse_args(["--all-contexts", "--context", "east"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_remediation_subcommand_context_stays_single(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _args(monkeypatch, "--context", "east", "diff", "pss-namespaces",
                 "--context", "west")
    assert cli._fleet_contexts(args) is None and args.context == "west"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--context", "east", "--context", "west"],
         "the TUI audits one cluster; use --ci for several contexts"),
        (["--context", "east", "--context", "west", "diff", "pss-namespaces"],
         "diff works on one cluster: give one --context"),
        (["--ci", "--demo", "--context", "east", "--context", "west"],
         "several contexts and --all-contexts audit live clusters"),
        (["--ci", "--all-contexts", "--kubeconfig", "/nonexistent/kubeconfig"],
         "kubeconfig not found: /nonexistent/kubeconfig"),
    ],
)
def test_one_clear_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], argv: list[str],
                                   message: str) -> None:
    for key in list(os.environ):
        if key.startswith("SOMA_AUDIT_"):
            monkeypatch.delenv(key)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("soma-audit: error: ") and message in captured.err
    assert len(captured.err.splitlines()) == 1 and captured.out == ""


def test_unreachable_fleet_reports_every_cluster(kubeconfig: Path, tmp_path: Path) -> None:
    """The installed command: every cluster unreachable → exit 2, one stderr line each,
    and still a complete report naming every cluster."""
    out = tmp_path / "fleet.json"
    proc = subprocess.run(
        [str(BIN), "--ci", "--all-contexts", "--kubeconfig", str(kubeconfig), "--only",
         "pss.*", "--format", "json", "--output", str(out)],
        capture_output=True, text=True, timeout=120, env=CLEAN_ENV, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert [line.split("'")[1] for line in lines] == ["east", "west", "north"]
    assert all("not audited: cannot reach the API server" in line for line in lines)
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["clusters"]] == ["east", "west", "north"]
    assert {c["exit_code"] for c in data["clusters"]} == {2} and data["checks"] == []


def test_a_session_from_the_environment_takes_one_context(monkeypatch: pytest.MonkeyPatch,
                                                          kubeconfig: Path) -> None:
    """What the TUI benchmark and read-only test do: parse, apply the environment, build."""
    args = _args(monkeypatch, "--kubeconfig", str(kubeconfig),
                 env={"SOMA_AUDIT_CONTEXT": "west"})
    assert cli._build_session(args).source.info.ref == "west"
    args = _args(monkeypatch, "--kubeconfig", str(kubeconfig),
                 env={"SOMA_AUDIT_CONTEXT": "west,north"})
    with pytest.raises(AuditError, match="one cluster expected, got contexts west, north"):
        cli._build_session(args)


def test_a_fleet_imports_what_each_cluster_scan_needs_before_it_forks() -> None:
    """What a cluster's first scan imports (the session, the HTTP client, the decoder) is
    imported by the fleet before it forks, not once per child."""
    script = ("import sys\n"
              "from soma_audit.engine.fleet import _import_before_forking\n"
              "_import_before_forking()\n"
              "print(' '.join(m for m in ('soma_audit.engine.session', 'urllib3', 'orjson') "
              "if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=CLEAN_ENV, check=True)
    assert proc.stdout.split() == ["soma_audit.engine.session", "urllib3", "orjson"]
