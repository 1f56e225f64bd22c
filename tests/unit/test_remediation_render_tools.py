"""Rendered remediations pass the upstream tools themselves: fga, promtool, k6.

These run the real binaries (fga and k6 from the venv, promtool from Debian's prometheus)
on rendered output, so a template drifting from what upstream accepts fails here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.config import load_config
from soma_audit.core.paths import data_path
from soma_audit.kube.inventory import Inventory
from soma_audit.remediation.output import RenderedFile
from soma_audit.remediation.recipes import load_recipes
from soma_audit.remediation.render import render
from tests.unit.test_remediation_render import CUSTOM

RECIPES = load_recipes()
VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = VENV_BIN / name if (VENV_BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (make install / apt-get install prometheus)")
    return str(found)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


def _write(root: Path, files: list[RenderedFile]) -> None:
    for rendered in files:
        target = root / rendered.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rendered.text, encoding="utf-8")


def _rendered(recipe_id: str, overrides: dict[str, Any]) -> list[RenderedFile]:
    return render(RECIPES[recipe_id], load_config(**overrides), Inventory())


# ------------------------------------------------------------------------------ OpenFGA

LAYOUTS = [{}, {"layout": {"fga_model": "authz/soma.fga", "fga_tests": "authz/soma.fga.yaml"}}]


@pytest.mark.parametrize("overrides", LAYOUTS, ids=["default", "custom-layout"])
def test_fga_model_validates_and_its_scenarios_pass(overrides: dict[str, Any],
                                                    tmp_path: Path) -> None:
    files = _rendered("fga-model", overrides)
    _write(tmp_path, files)
    config = load_config(**overrides)
    model, tests = tmp_path / config.layout.fga_model, tmp_path / config.layout.fga_tests
    fga = _tool("fga")
    validated = _run(fga, "model", "validate", "--file", str(model), cwd=tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert json.loads(validated.stdout)["is_valid"] is True
    tested = _run(fga, "model", "test", "--tests", str(tests), cwd=tests.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "FAIL" not in tested.stdout + tested.stderr


#: The plan's permission definitions, as who holds each permission (roles on the
#: organization acme or the project agent-platform of the rendered test file).
PLAN_PERMISSIONS = {
    "can_admin_org": {"organization admin"},
    "is_member": {"organization member"},
    "can_edit_project": {"organization admin", "project admin", "maintainer"},
    "can_deploy": {"organization admin", "project admin", "maintainer"},
    "can_run_agent": {"organization admin", "project admin", "developer"},
}
ROLES = ("organization admin", "organization member", "project admin", "maintainer",
         "developer", "viewer", "no role")


def _permission_table(tests_text: str) -> dict[tuple[str, str], bool]:
    table: dict[tuple[str, str], bool] = {}
    for test in yaml.safe_load(tests_text)["tests"]:
        if not test["name"].startswith("permission table: "):
            continue
        role = test["name"].removeprefix("permission table: ").rsplit(" (", 1)[0]
        for case in test["check"]:
            for permission, granted in case["assertions"].items():
                table[(role, permission)] = granted
    return table


def test_fga_permission_table_is_the_plans_least_privilege() -> None:
    """Every plan permission for every role is asserted, grants and denials, exactly as the
    plan defines them (a developer may not edit the project, whatever its E2E example
    expects; a maintainer may not run agents)."""
    (_, tests) = _rendered("fga-model", {})
    table = _permission_table(tests.text)
    expected = {(role, permission): role in holders
                for permission, holders in PLAN_PERMISSIONS.items() for role in ROLES}
    assert table == expected
    assert "contradicts itself" in tests.text


def test_fga_model_test_fails_a_model_granting_more_than_the_plan(tmp_path: Path) -> None:
    """The permission table is checked by the real ``fga model test``: a model that lets
    maintainers run agents fails it."""
    model_file, tests = _rendered("fga-model", {})
    _write(tmp_path, [model_file, tests])
    model = tmp_path / model_file.path
    widened = model.read_text().replace("define can_run_agent: developer or admin",
                                        "define can_run_agent: developer or maintainer or admin")
    assert widened != model.read_text()
    model.write_text(widened)
    tests_path = tmp_path / tests.path
    tested = _run(_tool("fga"), "model", "test", "--tests", str(tests_path),
                  cwd=tests_path.parent)
    assert tested.returncode != 0
    assert "can_run_agent" in tested.stdout + tested.stderr


def test_fga_model_keeps_permissions_inside_their_types() -> None:
    model = _rendered("fga-model", {})[0].text
    outside = [line for line in model.splitlines()
               if line.startswith("define") or line.startswith("  define")]
    assert not outside, outside
    for kind in ("organization", "project", "agent", "resource", "service"):
        assert f"type {kind}\n" in model


# ----------------------------------------------------------------------------- promtool


def _rule_file(files: list[RenderedFile]) -> dict[str, Any]:
    """What Prometheus loads: the PrometheusRules' ``.spec`` groups as a plain rule file."""
    groups = [g for f in files for obj in f.objects if obj["kind"] == "PrometheusRule"
              for g in obj["spec"]["groups"]]
    assert groups
    return {"groups": groups}


@pytest.mark.parametrize("overrides", [{}, CUSTOM], ids=["default", "custom"])
def test_slo_rules_pass_promtool_check(overrides: dict[str, Any], tmp_path: Path) -> None:
    rules = tmp_path / "slo-rules.yml"
    rules.write_text(yaml.safe_dump(_rule_file(_rendered("slo-rules", overrides))))
    checked = _run(_tool("promtool"), "check", "rules", str(rules), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_slo_burn_rate_alert_fires_and_slis_compute_under_promtool_test(
        tmp_path: Path) -> None:
    """manifests/slo/tests: a service failing 10 % pages (SLOErrorBudgetBurnFast), a
    healthy one does not, SLIs come out as ratios and p99 from summed buckets."""
    (tmp_path / "slo-rules.yml").write_text(
        yaml.safe_dump(_rule_file(_rendered("slo-rules", {}))))
    for case in sorted(data_path("manifests", "slo", "tests").glob("*.yaml")):
        shutil.copy(case, tmp_path / case.name)
        tested = _run(_tool("promtool"), "test", "rules", case.name, cwd=tmp_path)
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "SUCCESS" in tested.stdout


def test_burn_rate_thresholds_follow_the_configured_budget() -> None:
    alerts = _rendered("slo-rules", CUSTOM)[1].text
    assert "(14.4 * 0.005)" in alerts and "(6 * 0.005)" in alerts
    assert "shop_requests_total" in _rendered("slo-rules", CUSTOM)[0].text
    assert "sli:latency_seconds:p99_rate5m > 0.3" in alerts


# ----------------------------------------------------------------------------------- k6


def _inspect(script: Path) -> dict[str, Any]:
    ran = _run(_tool("k6"), "inspect", "--execution-requirements", script.name,
               cwd=script.parent)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return dict(json.loads(ran.stdout))


@pytest.mark.parametrize("overrides", [{}, CUSTOM], ids=["default", "custom"])
def test_k6_scripts_pass_inspect_and_follow_their_profile(overrides: dict[str, Any],
                                                          tmp_path: Path) -> None:
    config = load_config(**overrides)
    _write(tmp_path, _rendered("k6-scripts", overrides))
    profiles = yaml.safe_load((tmp_path / config.layout.k6_profiles).read_text())["profiles"]
    assert [p["name"] for p in profiles] == [p.name for p in config.k6.profiles]
    for profile in config.k6.profiles:
        script = tmp_path / config.layout.k6_scripts / f"{profile.name}.js"
        options = _inspect(script)
        (scenario,) = options["scenarios"].values()
        assert scenario["executor"] == profile.executor
        if profile.stages:
            assert [s["target"] for s in scenario["stages"]] == [
                s["target"] for s in profile.stages]
        assert options["thresholds"]["http_req_duration"] == profile.thresholds[
            "http_req_duration"]
        assert options["thresholds"]["http_req_failed"] == profile.thresholds["http_req_failed"]
        assert any(t.startswith("p(99)") for t in options["thresholds"]["http_req_duration"])
        assert not options.get("stages")  # never beside scenarios
        text = script.read_text()
        assert "sleep(1)" not in text
