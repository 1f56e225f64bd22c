"""Live OpenFGA probes (checks/fga.yaml, ``requires: [openfga]``): the store runs the
repository's model, and the live Check API answers the repository's scenarios.

Both are read-only. The scenarios run with their tuples sent as *contextual* tuples, so
nothing is written to the store; the latest model is pinned by id for every request.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from soma_audit.core.model import Evidence, Outcome
from soma_audit.core.yamlload import describe_error, safe_load
from soma_audit.domain.fga import cli_error
from soma_audit.probes import (
    Params,
    ProbeContext,
    ProbeError,
    ev,
    failed,
    live_client,
    passed,
    probe,
    repofiles,
)
from soma_audit.services import ServiceError
from soma_audit.services.openfga import (
    MAX_CONTEXTUAL_TUPLES,
    Assertion,
    OpenFgaService,
    ScenarioError,
    Store,
    canonical_model,
    model_differences,
    scenario_assertions,
)


def _service(ctx: ProbeContext) -> OpenFgaService:
    return live_client(ctx, "openfga", OpenFgaService,
                       "no OpenFGA client (set --openfga-url and --openfga-store)")


def _store_ref(service: OpenFgaService, store: Store | None = None) -> str:
    name = f" ({store.name})" if store and store.name else ""
    return f"openfga:{service.url}/stores/{service.store_id}{name}"


def _live_model(service: OpenFgaService) -> tuple[Store | None, tuple[str, dict[str, Any]] | None]:
    """The store and its latest model; ServiceErrors other than "no such store" become
    the check's error."""
    try:
        store = service.get_store()
        if store is None:
            return None, None
        return store, service.latest_model()
    except ServiceError as exc:
        raise ProbeError(str(exc)) from None


def _missing(service: OpenFgaService, store: Store | None) -> Outcome:
    if store is None:
        return failed(ev(_store_ref(service), f"store {service.store_id} does not exist on "
                                              f"{service.url}"))
    return failed(ev(_store_ref(service, store), "the store has no authorization model: "
                                                 "nothing has been written to it"))


def _repo_model(ctx: ProbeContext) -> tuple[str, dict[str, Any]]:
    """(path as evidence names it, JSON form) of the repository model, converted by the
    real ``fga model transform``."""
    _, path, where = repofiles.locate(ctx, ctx.config.layout.fga_model)
    if not path.is_file():
        raise ProbeError(f"model file missing: {where} (see fga.model-file)")
    run = ctx.tools.run("fga", "model", "transform", "--file", str(path),
                        "--output-format", "json")
    try:
        model = json.loads(run.stdout)
    except json.JSONDecodeError:
        model = None
    if run.returncode != 0 or not isinstance(model, dict):
        raise ProbeError(f"{where} cannot be converted to JSON (see fga.model-valid): "
                         f"{cli_error(run.output) or 'no output'}")
    return where, model


@probe("fga.store-model")
def store_model(ctx: ProbeContext, params: Params) -> Outcome:
    """The store's latest model means the same as the repository's: compared as
    normalised JSON (types, relations, directly related types, conditions), so
    formatting, ordering and ids never count."""
    service = _service(ctx)
    where, repo_json = _repo_model(ctx)
    store, latest = _live_model(service)
    if store is None or latest is None:
        return _missing(service, store)
    model_id, live_json = latest
    ref = f"{_store_ref(service, store)} model {model_id}"
    live = canonical_model(live_json)
    differences = model_differences(canonical_model(repo_json), live)
    if differences:
        return failed(*(ev(ref, f"differs from {where}: {d}") for d in differences))
    types = live.types
    relations = sum(len(r) for r in types.values())
    return passed(ev(ref, f"equals {where}: {len(types)} types, {relations} relations"))


def _scenarios(ctx: ProbeContext) -> tuple[str, list[Assertion]]:
    repo, path, where = repofiles.locate(ctx, ctx.config.layout.fga_tests)
    if not path.is_file():
        raise ProbeError(f"scenario file missing: {where} (see fga.scenarios)")
    try:
        spec = safe_load(repofiles.read_text(repo, path))
        return where, scenario_assertions(spec, path.parent)
    except yaml.YAMLError as exc:
        raise ProbeError(f"{where}: cannot read the scenarios: {describe_error(exc)}") from None
    except ScenarioError as exc:
        raise ProbeError(f"{where}: cannot read the scenarios: {exc}") from None


def _answer(service: OpenFgaService, assertion: Assertion, model_id: str) -> bool | tuple[str, ...]:
    a = assertion
    if a.kind == "check":
        return service.check(a.user, a.relation, a.object, a.tuples, a.context, model_id)
    if a.kind == "list_objects":
        return tuple(sorted(service.list_objects(a.user, a.relation, a.type, a.tuples,
                                                 a.context, model_id)))
    return tuple(sorted(service.list_users(a.object, a.relation, a.user_filters, a.tuples,
                                           a.context, model_id)))


def _shown(value: bool | tuple[str, ...]) -> str:
    return json.dumps(value if isinstance(value, bool) else list(value))


@probe("fga.live-scenarios")
def live_scenarios(ctx: ProbeContext, params: Params) -> Outcome:
    """Every assertion of the repository's scenario file, answered by the live Check /
    ListObjects / ListUsers APIs on the store's latest model, with the scenario tuples as
    contextual tuples (read-only). Each failing assertion is one evidence item."""
    service = _service(ctx)
    where, assertions = _scenarios(ctx)
    if not assertions:
        return failed(ev(where, "no assertions: the scenario file declares no checks"))
    store, latest = _live_model(service)
    if store is None or latest is None:
        return _missing(service, store)
    model_id = latest[0]
    problems: list[Evidence] = []
    for a in assertions:
        label = f'test "{a.test}": {a.kind} {a.describe()}'
        if len(a.tuples) > MAX_CONTEXTUAL_TUPLES:
            problems.append(ev(where, f"{label}: {len(a.tuples)} tuples exceed the "
                                      f"{MAX_CONTEXTUAL_TUPLES} contextual tuples the API "
                                      "accepts; not evaluated"))
            continue
        try:
            got = _answer(service, a, model_id)
        except ServiceError as exc:
            if exc.failure.sticky:
                raise ProbeError(str(exc)) from None
            problems.append(ev(where, f"{label}: expected {_shown(a.expected)}, got an error "
                                      f"({exc.detail})"))
            continue
        if got != a.expected:
            problems.append(ev(where, f"{label}: expected {_shown(a.expected)}, "
                                      f"got {_shown(got)}"))
    ref = f"{_store_ref(service, store)} model {model_id}"
    if problems:
        return failed(*problems, ev(ref, f"{len(problems)} of {len(assertions)} assertions "
                                         "failed on the live store"))
    tests = len({a.test for a in assertions})
    return passed(ev(ref, f"{tests} tests, {len(assertions)} assertions of {where} answered "
                          "as expected by the live API (contextual tuples, nothing written)"))

