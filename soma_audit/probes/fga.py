"""Probes for the fga area (see checks/fga.yaml): the model file, validated and tested by
the real ``fga`` CLI, and gateway-api's wiring to OpenFGA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from soma_audit.core.model import Evidence, Outcome
from soma_audit.core.typed import mapping, wrong_type
from soma_audit.core.yamlload import safe_load
from soma_audit.domain.fga import cli_error, scenario_results, validation_problems
from soma_audit.kube.inventory import Inventory
from soma_audit.kube.selection import selector_text, service_workloads
from soma_audit.kube.workloads import WORKLOAD_KINDS, Workload
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    failed,
    passed,
    probe,
    repofiles,
    verdict,
)


def _model(ctx: ProbeContext) -> tuple[Path, Path, str]:
    return repofiles.locate(ctx, ctx.config.layout.fga_model)


@probe("fga.model-file")
def model_file(ctx: ProbeContext, params: Params) -> Outcome:
    """The model is kept in the repository, so it is reviewed and versioned."""
    repo, path, where = _model(ctx)
    if not path.is_file():
        return failed(ev(where, "missing: the authorization model is not in the repository"))
    text = repofiles.read_text(repo, path)
    if not text.strip():
        return failed(ev(where, "empty file"))
    types = sum(1 for line in text.splitlines() if line.strip().startswith("type "))
    return passed(ev(where, f"present: {len(text.splitlines())} lines, {types} types"))


@probe("fga.model-valid")
def model_valid(ctx: ProbeContext, params: Params) -> Outcome:
    """Only OpenFGA's own parser decides whether the DSL is valid."""
    repo, path, where = _model(ctx)
    if not path.is_file():
        raise ProbeError(f"model file missing: {where}")
    model = repofiles.read_text(repo, path)
    run = ctx.tools.run("fga", "model", "validate", "--file", str(path))
    problems = validation_problems(run.stdout, run.stderr, model)
    if problems is None:
        raise ProbeError(f"fga model validate gave no verdict: {cli_error(run.output)}")
    if not problems:
        return passed(ev(where, "valid (fga model validate)"))
    return failed(
        *(
            Evidence(
                where,
                f"line {p.line}: {p.message}" if p.line else p.message,
                location=f"{where}:{p.line}" if p.line else "",
            )
            for p in problems
        )
    )


def _tested_model(repo: Path, tests: Path, model: Path) -> str | None:
    """Why the test file does not exercise the repository model, or None when it does
    (or cannot be read: then ``fga model test`` reports the problem itself)."""
    try:
        spec: Any = safe_load(repofiles.read_text(repo, tests))
    except yaml.YAMLError:
        return None
    if not isinstance(spec, dict):
        return None
    model_ref = spec.get("model_file")
    if isinstance(model_ref, str):
        if (tests.parent / model_ref).resolve() != model.resolve():
            return f"model_file {model_ref} is not the repository model"
        return None
    if "model" in spec:
        return "tests use an inline `model`, not the repository model (set model_file)"
    return None


@probe("fga.scenarios")
def scenarios(ctx: ProbeContext, params: Params) -> Outcome:
    """The scenarios run on OpenFGA's embedded engine (``fga model test``), not a mock."""
    repo, model, model_where = _model(ctx)
    _, tests, where = repofiles.locate(ctx, ctx.config.layout.fga_tests)
    if not tests.is_file():
        return failed(ev(where, "missing: no authorization scenarios (fga model test file)"))
    elsewhere = _tested_model(repo, tests, model)
    if elsewhere:
        return failed(ev(where, f"{elsewhere}: {model_where} is untested"))
    run = ctx.tools.run(
        "fga", "model", "test", "--verbose", "--suppress-summary", "--tests", str(tests)
    )
    result = scenario_results(run.stdout)
    if result is None:
        if run.returncode > 0 and run.stderr.strip():
            return failed(ev(where, f"fga model test: {cli_error(run.stderr)}"))
        raise ProbeError(f"fga model test gave no results: {cli_error(run.output)}")
    if result.failures:
        return failed(*(ev(where, failure) for failure in result.failures))
    if run.returncode != 0:
        raise ProbeError(f"fga model test exited {run.returncode}: {cli_error(run.output)}")
    if result.assertions == 0:
        return failed(ev(where, "no assertions: the test file declares no checks"))
    return passed(
        ev(where, f"{result.tests} tests, {result.assertions} assertions passed (fga model test)")
    )


def _config_value(inventory: Inventory, namespace: str | None, name: str, key: str) -> str | None:
    config_map = inventory.get("ConfigMap", name, namespace)
    data = config_map.body.get("data") if config_map else None
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value not in (None, "") else None


def _from_env(
    entry: dict[str, Any], inventory: Inventory, namespace: str | None
) -> tuple[bool, str]:
    """(is set, description) of one ``env`` entry; Secrets are named, never read."""
    name = entry.get("name")
    if entry.get("value") not in (None, ""):
        return True, f"{name}={entry['value']}"
    source = entry.get("valueFrom")
    if not isinstance(source, dict):
        return False, f"{name} is empty"
    secret = source.get("secretKeyRef")
    if isinstance(secret, dict):
        return True, f"{name} from Secret {secret.get('name')} key {secret.get('key')} (not read)"
    ref = source.get("configMapKeyRef")
    if not isinstance(ref, dict):
        return False, f"{name} is set from {', '.join(map(str, source))}, not a value or ConfigMap"
    cm, key = str(ref.get("name")), str(ref.get("key"))
    if inventory.get("ConfigMap", cm, namespace) is None:
        return True, f"{name} from ConfigMap {cm} key {key} (ConfigMap not in this source)"
    value = _config_value(inventory, namespace, cm, key)
    if value is None:
        return False, f"{name} from ConfigMap {cm}: key {key} missing or empty"
    return True, f"{name}={value} (ConfigMap {cm})"


def _setting(
    workload: Workload, names: list[str], inventory: Inventory
) -> tuple[str | None, list[str]]:
    """``container c: NAME=value`` for the first of ``names`` set in the workload's
    containers, or None and what was found instead."""
    notes = []
    namespace = workload.namespace
    for field, container in workload.containers():
        if field != "containers":
            continue
        label = f"container {container.get('name')}"
        env, env_from = container.get("env") or [], container.get("envFrom") or []
        for key, value in (("env", env), ("envFrom", env_from)):
            if not isinstance(value, list):
                notes.append(f"{label}: {wrong_type(key, 'a list', value)}")
        for entry in env if isinstance(env, list) else []:
            if isinstance(entry, dict) and entry.get("name") in names:
                ok, text = _from_env(entry, inventory, namespace)
                if ok:
                    return f"{label}: {text}", []
                notes.append(f"{label}: {text}")
        for source in env_from if isinstance(env_from, list) else []:
            if not isinstance(source, dict):
                continue
            cm = mapping(source.get("configMapRef")).get("name")
            for name in names:
                value = _config_value(inventory, namespace, str(cm), name) if cm else None
                if value is not None:
                    return f"{label}: {name}={value} (envFrom ConfigMap {cm})", []
            secret = mapping(source.get("secretRef")).get("name")
            if secret:
                notes.append(f"{label}: envFrom Secret {secret} may set it (Secrets are not read)")
    return None, notes


def _joined(settings: list[str]) -> str:
    """``container c: A; B`` rather than repeating the container for each setting."""
    prefixes = {setting.partition(": ")[0] for setting in settings}
    if len(prefixes) == 1:
        return f"{prefixes.pop()}: " + "; ".join(s.partition(": ")[2] for s in settings)
    return "; ".join(settings)


@probe("fga.gateway-wired", kinds=[*WORKLOAD_KINDS, "ConfigMap"])
def gateway_wired(ctx: ProbeContext, params: Params) -> Outcome:
    """gateway-api can only ask OpenFGA when it knows the API URL and the store."""
    name = str(params.get("service", "gateway-api"))
    service = ctx.config.service(name)
    if service is None:
        raise ProbeError(f"service {name} is not in the config's services")
    wanted = {
        "API URL": [str(v) for v in params.get("url_env", [])],
        "store id": [str(v) for v in params.get("store_env", [])],
    }
    namespace = ctx.config.namespace
    found = service_workloads(ctx.inventory, service, namespace)
    if not found:
        return failed(
            ev(
                f"Deployment/{namespace}/{name}",
                f"not found: no workload with pods labelled {selector_text(service)}",
            )
        )
    problems: list[Evidence] = []
    ok: list[Evidence] = []
    for workload in found:
        settings = []
        for what, names in wanted.items():
            setting, notes = _setting(workload, names, ctx.inventory)
            if setting is None:
                detail = "; ".join(notes) or "none set in any container"
                problems.append(
                    ev(workload.resource.ref, f"no OpenFGA {what}: {' / '.join(names)} — {detail}")
                )
            else:
                settings.append(setting)
        if len(settings) == len(wanted):
            ok.append(ev(workload.resource.ref, _joined(settings)))
    return verdict(problems, ok)
