"""Reading the OpenFGA CLI's output (soma_audit/domain/fga.py), against the real ``fga`` binary
where its behaviour is what we rely on, plus the demo model and the Secret rule."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from soma_audit.config import Tools
from soma_audit.domain.fga import (
    ModelProblem,
    cli_error,
    locate,
    scenario_results,
    validation_problems,
)
from soma_audit.services.tools import ToolRunner
from tests.helpers import FIXTURES, REPO, audit_dir, run_check

DEMO = REPO / "demo" / "soma-gitops"

MODEL = """model
  schema 1.1
type user
type folder
  relations
    define viewer: [user]
type doc
  relations
    define parent: [folder]
    define owner: [user]
    define viewer: [user] or owner or editor
    define can_read: viewer or viewer from parent
"""


def test_locate_places_an_undefined_relation_where_it_is_referenced() -> None:
    assert locate(MODEL, "'doc#editor' relation is undefined") == 11


def test_locate_places_a_tupleset_error_on_the_from_clause() -> None:
    error = "the 'doc#parent' relation is referenced in at least one tupleset"
    assert locate(MODEL, error) == 12


def test_locate_falls_back_to_the_relation_definition() -> None:
    assert locate(MODEL, "'doc#owner' has a cycle") == 10


def test_locate_without_a_reference_or_type_is_none() -> None:
    assert locate(MODEL, "invalid schema version") is None
    assert locate(MODEL, "'nosuchtype#viewer' relation is undefined") is None


def test_valid_model_has_no_problems() -> None:
    assert validation_problems('{"is_valid":true,"size_kb":1}', "", MODEL) == []


def test_semantic_error_is_located_and_a_stray_define_explained() -> None:
    model = "model\n  schema 1.1\ntype user\ntype service\n  relations\n    define admin: [user]\n"
    model += "define can_deploy: admin or maintainer\n"
    out = json.dumps({"is_valid": False, "error": "'service#maintainer' relation is undefined"})
    (problem,) = validation_problems(out, "", model) or []
    assert problem.line == 7
    assert problem.message.startswith("'service#maintainer' relation is undefined — this `define`")


def test_syntax_errors_are_reported_with_one_based_lines() -> None:
    stderr = (
        "Error: failed to transform due to 2 errors occurred:\n"
        "\t* syntax error at line=6, column=4: extraneous input 'define'\n"
        "\t* syntax error at line=6, column=11: mismatched input 'y'\n"
    )
    assert validation_problems("", stderr, MODEL) == [
        ModelProblem("syntax error, column 4: extraneous input 'define'", 7),
        ModelProblem("syntax error, column 11: mismatched input 'y'", 7),
    ]


def test_output_without_a_verdict_is_not_understood() -> None:
    assert validation_problems("", "Error: failed to read file m.fga", MODEL) is None
    assert validation_problems('{"size_kb": 1}', "", MODEL) is None


def test_real_fga_reports_syntax_lines_from_zero(tmp_path: Path) -> None:
    """The +1 in validation_problems rests on this: fga counts lines from 0."""
    model = tmp_path / "m.fga"
    model.write_text("model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define x: [user\n")
    run = ToolRunner(Tools()).run("fga", "model", "validate", "--file", str(model))
    problems = validation_problems(run.stdout, run.stderr, model.read_text())
    assert problems and problems[0].line == 6


@given(st.text(), st.text(), st.text())
def test_validation_output_of_any_shape_never_crashes(stdout: str, stderr: str, model: str) -> None:
    result = validation_problems(stdout, stderr, model)
    assert result is None or all(isinstance(p, ModelProblem) for p in result)


def _result(ok: bool, **request: str) -> dict[str, object]:
    return {"request": request, "expected": True, "got": ok, "error": None, "test_result": ok}


def test_scenario_results_name_each_failing_assertion() -> None:
    out = json.dumps([
        {
            "name": "developer",
            "check_results": [
                _result(True, user="user:a", relation="can_run_agent", object="project:p"),
                _result(False, user="user:a", relation="can_edit_project", object="project:p"),
            ],
            "list_objects_results": [
                {"request": {"user": "user:a", "relation": "can_execute", "type": "agent"},
                 "expected": [], "got": ["agent:s"], "error": None, "test_result": False}
            ],
            "list_users_results": None,
        }
    ])
    run = scenario_results(out)
    assert run is not None and (run.tests, run.assertions) == (1, 3)
    assert run.failures == [
        'test "developer": check user:a can_edit_project project:p: expected true, got false',
        'test "developer": list_objects user:a can_execute objects of type agent: '
        'expected [], got ["agent:s"]',
    ]


def test_scenario_results_of_an_empty_or_unreadable_run() -> None:
    empty = scenario_results("null")
    assert empty is not None and empty.assertions == 0
    assert scenario_results("") is None
    assert scenario_results('{"oops": 1}') is None


def test_cli_error_is_one_line_without_prefix() -> None:
    assert cli_error("Error: failed to read\n\tfile x\n") == "failed to read file x"


def test_demo_model_validates_and_its_scenarios_pass() -> None:
    report = audit_dir(DEMO, ["fga.model-file", "fga.model-valid", "fga.scenarios"])
    assert {r.check.id: r.status.value for r in report.results} == {
        "fga.model-file": "pass",
        "fga.model-valid": "pass",
        "fga.scenarios": "pass",
    }


def test_gateway_wiring_never_quotes_a_secret() -> None:
    case = FIXTURES / "checks" / "fga.gateway-wired" / "pass-configmap-and-secret"
    result = run_check("fga.gateway-wired", case)
    assert result.status.value == "pass"
    assert not any("do-not-quote-me" in e.message for e in result.evidence)
