"""No code of the audited repository runs by default, and what runs with the opt-in
cannot smuggle what it read into a report.

Hostile k6 scripts read a marker file outside the repository (as a script could read any
file of the auditing user) and try every way out: ``console.log``/``console.error``, a
thrown exception, ``require`` of the content, an executor named after it, threshold keys
and expressions made of it. The real ``soma-audit`` and the real ``k6`` run in every
format, with and without ``--run-repo-code``; the marker must appear in no output.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import Figures, demo_tree, run_cli

pytestmark = pytest.mark.reliability

MARKER = "MARKER-7f3c9e1a-contents-of-a-private-file"

SCRIPTS = {
    "smoke.js": """
const secret = open('{marker}');
console.log(secret);
console.error(secret);
throw new Error(secret);
""",
    "load.js": """
const secret = open('{marker}').trim();
export const options = {{
  thresholds: {{ [secret]: ['p(99)<1'], http_req_duration: [secret],
                 http_req_failed: ['rate<0.01'] }},
  tags: {{ leak: secret }},
  scenarios: {{ a: {{ executor: secret, vus: 1, duration: '1s' }} }},
}};
export default function () {{}}
""",
    "stress.js": """
const secret = open('{marker}').trim();
require(secret);
""",
    "soak.js": """
const secret = open('{marker}').trim();
export const options = {{
  thresholds: {{ [secret]: [secret + ' < 1'], http_req_duration: ['p(99)<' + secret] }},
}};
export default function () {{}}
""",
}
FORMATS = ["table", "json", "markdown", "junit", "sarif"]


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo copy whose k6 scripts read a marker file kept outside the repository."""
    base = tmp_path_factory.mktemp("repo-code")
    marker = base / "private" / "credentials.txt"
    marker.parent.mkdir()
    marker.write_text(MARKER + "\n", encoding="utf-8")
    tree = demo_tree(base / "demo")
    scripts = tree / "scripts" / "k6"
    for old in scripts.glob("*.js"):
        old.unlink()
    for name, body in SCRIPTS.items():
        (scripts / name).write_text(body.format(marker=marker), encoding="utf-8")
    return tree


@pytest.mark.parametrize("opt_in", [False, True], ids=["default", "run-repo-code"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_marker_read_by_a_script_appears_in_no_output(hostile_repo: Path, fmt: str,
                                                      opt_in: bool, tmp_path: Path,
                                                      figures: Figures) -> None:
    report = tmp_path / f"report.{fmt}"
    argv = ["--manifests", str(hostile_repo), "--ci", "--only", "k6.*", "--format", fmt,
            "-o", str(report), "--debug"]
    env = {"SOMA_AUDIT_RUN_REPO_CODE": "1"} if opt_in else {}
    run = run_cli(argv, env, cwd=tmp_path, timeout=300)
    assert run.code == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    text = report.read_text(encoding="utf-8")
    for where, output in (("report", text), ("stdout", run.stdout), ("stderr", run.stderr)):
        assert MARKER not in output, f"{where} quotes the file the script read"
    if fmt == "json":
        checks = {c["id"]: c for c in json.loads(text)["checks"]}
        inspect = checks["k6.inspect"]
        if opt_in:
            messages = " ".join(e["message"] for e in inspect["evidence"])
            assert inspect["status"] == "fail" and "threw an exception" in messages, inspect
        else:
            assert inspect["status"] == "skip", inspect
            assert all("k6 inspect was not run" in e["message"] for e in inspect["evidence"])
            # The thresholds of scripts built at run time are undecided: error, never pass.
            assert checks["k6.thresholds"]["status"] in ("error", "fail")
    figures.count("repo-code", "hostile k6 runs (marker in no output)")


def test_without_the_opt_in_k6_never_runs(hostile_repo: Path, tmp_path: Path) -> None:
    """A k6 that records being run, first on PATH and configured as the tool: the default
    audit must not start it."""
    real = shutil.which("k6", path=str(Path(sys.executable).parent))
    assert real, "k6 must be installed beside the interpreter (soma-audit[tools])"
    witness = tmp_path / "ran"
    fake_dir = tmp_path / "bin"
    fake_dir.mkdir()
    recorder = fake_dir / "k6"
    recorder.write_text(f"#!/bin/sh\necho run >> {witness}\nexec {real} \"$@\"\n",
                        encoding="utf-8")
    recorder.chmod(0o755)
    config = tmp_path / "config.yaml"
    config.write_text(f"tools: {{k6: {recorder}}}\n", encoding="utf-8")
    run = run_cli(["--manifests", str(hostile_repo), "--config", str(config), "--ci",
                   "--only", "k6.*", "--format", "json"], {}, cwd=tmp_path, timeout=300)
    assert run.code == 1, run.stderr
    assert not witness.exists(), "k6 ran without --run-repo-code"
    run = run_cli(["--manifests", str(hostile_repo), "--config", str(config), "--ci",
                   "--only", "k6.inspect", "--format", "json", "--run-repo-code"], {},
                  cwd=tmp_path, timeout=300)
    assert witness.exists(), "the opt-in did not run k6"
