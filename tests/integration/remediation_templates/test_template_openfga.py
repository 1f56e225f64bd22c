"""The rendered OpenFGA model is accepted by a real server (WriteAuthorizationModel) and
answers every scenario of the rendered test file the same way there."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from openfga_sdk.client import ClientConfiguration
from openfga_sdk.client.models import ClientCheckRequest, ClientTuple, ClientWriteRequest
from openfga_sdk.sync import OpenFgaClient

from soma_audit.config import load_config
from soma_audit.kube.inventory import Inventory
from soma_audit.remediation.recipes import load_recipes
from soma_audit.remediation.render import render

pytestmark = pytest.mark.integration


def _fga(tools: dict[str, Path], *args: str) -> dict[str, Any]:
    proc = subprocess.run([str(tools["fga"]), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    return result


def test_rendered_model_is_written_to_a_store_and_answers_its_scenarios(
        openfga_env: Any, testenv_tools: dict[str, Path], tmp_path: Path,
        unique_name: Callable[[str], str]) -> None:
    model_file, tests_file = render(load_recipes()["fga-model"], load_config(), Inventory())
    model = tmp_path / "model.fga"
    model.write_text(model_file.text)
    url = openfga_env.url
    store = _fga(testenv_tools, "store", "create", "--name", unique_name("remediation"),
                 "--api-url", url)
    store_id = store["store"]["id"]
    written = _fga(testenv_tools, "model", "write", "--store-id", store_id, "--file", str(model),
                   "--api-url", url)
    model_id = written["authorization_model_id"]
    scenarios = yaml.safe_load(tests_file.text)
    config = ClientConfiguration(api_url=url, store_id=store_id, authorization_model_id=model_id)
    checked = 0
    with OpenFgaClient(config) as sdk:
        sdk.write(ClientWriteRequest(writes=[
            ClientTuple(user=t["user"], relation=t["relation"], object=t["object"])
            for t in scenarios["tuples"]]))
        for test in scenarios["tests"]:
            for case in test.get("check", []):
                for relation, expected in case["assertions"].items():
                    answer = sdk.check(ClientCheckRequest(
                        user=case["user"], relation=relation, object=case["object"]))
                    assert answer.allowed is expected, (test["name"], case["user"], relation)
                    checked += 1
    assert checked >= 30
