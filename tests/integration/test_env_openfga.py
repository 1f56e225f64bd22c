"""The test OpenFGA is a real server: models written with the real `fga` CLI, real Checks."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openfga_sdk.client import ClientConfiguration
from openfga_sdk.client.models import ClientCheckRequest
from openfga_sdk.sync import OpenFgaClient

pytestmark = pytest.mark.integration

# The plan's project roles, corrected: developers may view, not edit.
MODEL = """\
model
  schema 1.1

type user

type project
  relations
    define admin: [user]
    define maintainer: [user]
    define developer: [user]
    define can_edit_project: admin or maintainer
    define can_view_project: can_edit_project or developer
"""


def _fga(tools: dict[str, Path], url: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [str(tools["fga"]), *args, "--api-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    return result


def test_soma_agent_hub_store_exists(openfga_env: Any) -> None:
    with urllib.request.urlopen(f"{openfga_env.url}/stores/{openfga_env.store_id}") as resp:
        store = json.loads(resp.read())
    assert store["name"] == "soma-agent-hub"


def test_check_answers_per_model_written_with_fga_cli(
    openfga_env: Any,
    testenv_tools: dict[str, Path],
    tmp_path: Path,
    unique_name: Callable[[str], str],
) -> None:
    model = tmp_path / "model.fga"
    model.write_text(MODEL)
    url = openfga_env.url
    store = _fga(testenv_tools, url, "store", "create", "--name", unique_name("check"))
    store_id = store["store"]["id"]
    written = _fga(
        testenv_tools, url, "model", "write", "--store-id", store_id, "--file", str(model)
    )
    model_id = written["authorization_model_id"]
    for user, relation in (("alice", "admin"), ("bob", "developer")):
        _fga(testenv_tools, url, "tuple", "write", "--store-id", store_id,
             f"user:{user}", relation, "project:soma")  # fmt: skip

    def check(user: str, relation: str) -> bool:
        answer = _fga(testenv_tools, url, "query", "check", "--store-id", store_id,
                      "--model-id", model_id, f"user:{user}", relation, "project:soma")  # fmt: skip
        return bool(answer["allowed"])

    assert check("alice", "can_edit_project") is True
    assert check("bob", "can_edit_project") is False
    assert check("bob", "can_view_project") is True
    assert check("carol", "can_view_project") is False

    # The product's SDK gets the same answers from the same server.
    config = ClientConfiguration(api_url=url, store_id=store_id, authorization_model_id=model_id)
    with OpenFgaClient(config) as sdk:
        latest = sdk.read_latest_authorization_model()
        assert latest.authorization_model.id == model_id
        for user, expected in (("alice", True), ("bob", False)):
            response = sdk.check(
                ClientCheckRequest(
                    user=f"user:{user}", relation="can_edit_project", object="project:soma"
                )
            )
            assert response.allowed is expected


def test_invalid_model_is_rejected_by_the_server(
    openfga_env: Any,
    testenv_tools: dict[str, Path],
    tmp_path: Path,
    unique_name: Callable[[str], str],
) -> None:
    # The plan's error: a tupleset (`from owner`) whose relation is computed, not assignable.
    broken = MODEL.replace(
        "define can_view_project: can_edit_project or developer",
        "define owner: admin\n    define can_view_project: admin from owner",
    )
    path = tmp_path / "broken.fga"
    path.write_text(broken)
    store = _fga(testenv_tools, openfga_env.url, "store", "create", "--name", unique_name("bad"))
    proc = subprocess.run(
        [str(testenv_tools["fga"]), "model", "write", "--store-id", store["store"]["id"],
         "--file", str(path), "--api-url", openfga_env.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "invalid_authorization_model" in proc.stderr  # the server's verdict, not the CLI's
    assert "must be a direct relation" in proc.stderr
