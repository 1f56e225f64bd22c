"""OpenFGA: a thin client over openfga-sdk (sync) and the pure logic the live checks need
— an authorization model in a canonical, order-free form, the differences between two
models, and the scenarios of an ``fga model test`` file as a list of assertions.

Models are compared by meaning, not text: ids, ordering of types/relations/union members
and metadata such as source positions are ignored; ``this`` carries the directly related
user types, so a change of ``[user]`` to ``[user, team#member]`` is a difference too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from soma_audit.core import fileio
from soma_audit.core.yamlload import describe_error, safe_load
from soma_audit.services.base import Failure, Guard, ServiceError, one_line, redact, transport_cause

if TYPE_CHECKING:
    from soma_audit.config import OpenFga

T = TypeVar("T")
NAME = "OpenFGA"

#: The Check, ListObjects and ListUsers APIs accept at most this many contextual tuples.
MAX_CONTEXTUAL_TUPLES = 100


# -- canonical models -------------------------------------------------------------------

#: A rewrite as nested tuples: ("this", direct types), ("computed", relation),
#: ("ttu", tupleset, computed), ("union"|"intersection", children), ("difference", b, s).
Rewrite = tuple[Any, ...]


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _field(data: Any, name: str) -> Any:
    """``data[name]`` whether the JSON came snake_cased (SDK) or camelCased (API, CLI)."""
    if not isinstance(data, Mapping):
        return None
    if name in data:
        return data[name]
    return data.get(_camel(name))


def _reference(ref: Any) -> str:
    """A directly related user type as the DSL writes it: ``user``, ``user:*``,
    ``team#member``, ``user with cond``."""
    text = str(_field(ref, "type") or "?")
    if _field(ref, "wildcard") is not None:
        text += ":*"
    relation = _field(ref, "relation")
    if relation:
        text += f"#{relation}"
    condition = _field(ref, "condition")
    if condition:
        text += f" with {condition}"
    return text


def _rewrite(node: Any, direct: tuple[str, ...]) -> Rewrite:
    """The canonical form of one userset rewrite (commutative operands sorted, nested
    same-operator operands flattened)."""
    if _field(node, "this") is not None:
        return ("this", direct)
    computed = _field(node, "computed_userset")
    if computed is not None:
        return ("computed", str(_field(computed, "relation") or ""))
    ttu = _field(node, "tuple_to_userset")
    if ttu is not None:
        return (
            "ttu",
            str(_field(_field(ttu, "tupleset"), "relation") or ""),
            str(_field(_field(ttu, "computed_userset"), "relation") or ""),
        )
    for operator in ("union", "intersection"):
        group = _field(node, operator)
        if group is not None:
            children: list[Rewrite] = []
            for child in _field(group, "child") or []:
                canonical = _rewrite(child, direct)
                children.extend(canonical[1] if canonical[0] == operator else [canonical])
            return (operator, tuple(sorted(children, key=_order)))
    difference = _field(node, "difference")
    if difference is not None:
        return (
            "difference",
            _rewrite(_field(difference, "base"), direct),
            _rewrite(_field(difference, "subtract"), direct),
        )
    return ("unknown", repr(node))


_RANK = {"this": 0, "computed": 1, "ttu": 2}


def _order(rewrite: Rewrite) -> tuple[int, str]:
    """Operands sorted as people write them: direct types, then relations, then tuplesets."""
    return _RANK.get(rewrite[0], 3), repr(rewrite)


def render(rewrite: Rewrite, nested: bool = False) -> str:
    """A canonical rewrite in DSL words, for evidence."""
    kind = rewrite[0]
    if kind == "this":
        return "[" + ", ".join(rewrite[1]) + "]"
    if kind == "computed":
        return str(rewrite[1])
    if kind == "ttu":
        return f"{rewrite[2]} from {rewrite[1]}"
    if kind in ("union", "intersection"):
        word = " or " if kind == "union" else " and "
        text = word.join(render(child, nested=True) for child in rewrite[1])
    elif kind == "difference":
        text = f"{render(rewrite[1], True)} but not {render(rewrite[2], True)}"
    else:
        return str(rewrite[1])
    return f"({text})" if nested else text


@dataclass(frozen=True)
class CanonicalModel:
    """What an authorization model means: relations per type, conditions, schema."""

    schema_version: str
    types: dict[str, dict[str, Rewrite]]
    conditions: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=dict)


def canonical_model(model: Mapping[str, Any]) -> CanonicalModel:
    """The meaning of a model in its JSON form (API, SDK ``to_dict()`` or ``fga model
    transform`` output); ids, ordering and source metadata are dropped."""
    types: dict[str, dict[str, Rewrite]] = {}
    for definition in _field(model, "type_definitions") or []:
        name = str(_field(definition, "type"))
        metadata = _field(_field(definition, "metadata"), "relations") or {}
        relations: dict[str, Rewrite] = {}
        for relation, node in (_field(definition, "relations") or {}).items():
            refs = _field(metadata.get(relation), "directly_related_user_types") or []
            direct = tuple(sorted(_reference(r) for r in refs))
            relations[str(relation)] = _rewrite(node, direct)
        types[name] = relations
    conditions = {}
    for name, condition in (_field(model, "conditions") or {}).items():
        parameters = _field(condition, "parameters") or {}
        params = tuple(sorted(
            (str(p), _parameter_type(spec)) for p, spec in parameters.items()
        ))
        conditions[str(name)] = (str(_field(condition, "expression") or "").strip(), params)
    return CanonicalModel(str(_field(model, "schema_version") or ""), types, conditions)


def _parameter_type(spec: Any) -> str:
    type_name = str(_field(spec, "type_name") or "")
    generics = [_parameter_type(g) for g in _field(spec, "generic_types") or []]
    return f"{type_name}<{', '.join(generics)}>" if generics else type_name


def model_differences(repo: CanonicalModel, live: CanonicalModel) -> list[str]:
    """Every way the live model differs from the repository model, in words."""
    found = []
    if repo.schema_version != live.schema_version:
        found.append(f"schema {live.schema_version or 'unset'} in the store, "
                     f"{repo.schema_version or 'unset'} in the repository")
    for name in sorted(repo.types.keys() - live.types.keys()):
        found.append(f"type {name}: in the repository model, missing from the store's model")
    for name in sorted(live.types.keys() - repo.types.keys()):
        found.append(f"type {name}: in the store's model, not in the repository model")
    for name in sorted(repo.types.keys() & live.types.keys()):
        mine, theirs = repo.types[name], live.types[name]
        for relation in sorted(mine.keys() - theirs.keys()):
            found.append(f"{name}#{relation}: in the repository model "
                         f"(`{render(mine[relation])}`), missing from the store's model")
        for relation in sorted(theirs.keys() - mine.keys()):
            found.append(f"{name}#{relation}: in the store's model "
                         f"(`{render(theirs[relation])}`), not in the repository model")
        for relation in sorted(mine.keys() & theirs.keys()):
            if mine[relation] != theirs[relation]:
                found.append(f"{name}#{relation}: repository `{render(mine[relation])}`, "
                             f"store `{render(theirs[relation])}`")
    for name in sorted(repo.conditions.keys() | live.conditions.keys()):
        want, got = repo.conditions.get(name), live.conditions.get(name)
        if want == got:
            continue
        if got is None:
            found.append(f"condition {name}: in the repository model, missing from the store's")
        elif want is None:
            found.append(f"condition {name}: in the store's model, not in the repository model")
        else:
            found.append(f"condition {name}: repository `{want[0]}`, store `{got[0]}`"
                         if want[0] != got[0] else f"condition {name}: parameters differ")
    return found


# -- scenarios of an `fga model test` file ----------------------------------------------

@dataclass(frozen=True)
class TupleKey:
    user: str
    relation: str
    object: str
    condition: dict[str, Any] | None = None


@dataclass(frozen=True)
class Assertion:
    """One expectation of a test: a check (bool), list_objects or list_users (a list)."""

    test: str
    kind: str
    relation: str
    expected: bool | tuple[str, ...]
    tuples: tuple[TupleKey, ...]
    user: str = ""
    object: str = ""
    type: str = ""
    user_filters: tuple[tuple[str, str], ...] = ()
    context: dict[str, Any] | None = None

    def describe(self) -> str:
        """``user relation object`` as ``fga model test`` reports it."""
        if self.kind == "check":
            return f"{self.user} {self.relation} {self.object}"
        if self.kind == "list_objects":
            return f"{self.user} {self.relation} objects of type {self.type}"
        return f"users of {self.object} {self.relation}"


class ScenarioError(ValueError):
    """The test file cannot be read as ``fga model test`` scenarios."""


def _tuple(raw: Any, where: str) -> TupleKey:
    if not isinstance(raw, Mapping) or not all(raw.get(k) for k in ("user", "relation", "object")):
        raise ScenarioError(f"{where}: a tuple needs user, relation and object")
    condition = raw.get("condition")
    return TupleKey(str(raw["user"]), str(raw["relation"]), str(raw["object"]),
                    dict(condition) if isinstance(condition, Mapping) else None)


def _tuple_files(spec: Mapping[str, Any], base: Path, where: str) -> list[TupleKey]:
    """Tuples from ``tuple_file`` / ``tuple_files`` (YAML or JSON lists), relative to the
    test file, as the CLI reads them."""
    names = [spec["tuple_file"]] if spec.get("tuple_file") else []
    names += list(spec.get("tuple_files") or [])
    found: list[TupleKey] = []
    for name in names:
        path = base / str(name)
        if path.suffix.lower() not in (".yaml", ".yml", ".json"):
            raise ScenarioError(f"{where}: tuple file {name}: only YAML/JSON tuple files are read")
        try:
            data = safe_load(fileio.read_text(path))
        except fileio.UnreadableFile as exc:
            raise ScenarioError(f"{where}: tuple file {name}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{where}: tuple file {name}: {describe_error(exc)}") from None
        if not isinstance(data, list):
            raise ScenarioError(f"{where}: tuple file {name} is not a list of tuples")
        found += [_tuple(t, f"{where}: {name}[{i}]") for i, t in enumerate(data)]
    return found


def _each(entry: Mapping[str, Any], one: str, many: str) -> list[str]:
    values = entry.get(many)
    if isinstance(values, list):
        return [str(v) for v in values]
    return [str(entry[one])] if entry.get(one) else []


def _context(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    context = entry.get("context")
    return dict(context) if isinstance(context, Mapping) else None


def _checks(name: str, test: Mapping[str, Any], tuples: tuple[TupleKey, ...]) -> list[Assertion]:
    found = []
    for entry in test.get("check") or []:
        if not isinstance(entry, Mapping):
            raise ScenarioError(f"test {name!r}: a check entry is not a mapping")
        for user in _each(entry, "user", "users"):
            for obj in _each(entry, "object", "objects"):
                for relation, expected in (entry.get("assertions") or {}).items():
                    found.append(Assertion(name, "check", str(relation), bool(expected), tuples,
                                           user=user, object=obj, context=_context(entry)))
    return found


def _lists(name: str, test: Mapping[str, Any], tuples: tuple[TupleKey, ...]) -> list[Assertion]:
    found = []
    for entry in test.get("list_objects") or []:
        for relation, expected in (entry.get("assertions") or {}).items():
            found.append(Assertion(
                name, "list_objects", str(relation), tuple(sorted(map(str, expected or []))),
                tuples, user=str(entry.get("user", "")), type=str(entry.get("type", "")),
                context=_context(entry)))
    for entry in test.get("list_users") or []:
        filters = tuple(
            (str(f.get("type", "")), str(f.get("relation") or ""))
            for f in entry.get("user_filter") or [] if isinstance(f, Mapping)
        )
        for relation, expected in (entry.get("assertions") or {}).items():
            users = expected.get("users") if isinstance(expected, Mapping) else expected
            found.append(Assertion(
                name, "list_users", str(relation), tuple(sorted(map(str, users or []))),
                tuples, object=str(entry.get("object", "")), user_filters=filters,
                context=_context(entry)))
    return found


def scenario_assertions(spec: Any, base: Path) -> list[Assertion]:
    """Every assertion of a parsed ``fga model test`` file, each carrying the tuples it
    runs with (the file's plus its test's). ``base`` is the file's folder."""
    if not isinstance(spec, Mapping):
        raise ScenarioError("the test file is not a mapping")
    shared = [_tuple(t, f"tuples[{i}]") for i, t in enumerate(spec.get("tuples") or [])]
    shared += _tuple_files(spec, base, "file")
    found = []
    for index, test in enumerate(spec.get("tests") or []):
        if not isinstance(test, Mapping):
            raise ScenarioError(f"tests[{index}] is not a mapping")
        name = str(test.get("name") or f"tests[{index}]")
        own = [_tuple(t, f"test {name!r} tuples[{i}]") for i, t in enumerate(test.get("tuples")
                                                                                 or [])]
        tuples = tuple(shared + own + _tuple_files(test, base, f"test {name!r}"))
        found += _checks(name, test, tuples) + _lists(name, test, tuples)
    return found


# -- the client -------------------------------------------------------------------------

@dataclass(frozen=True)
class Store:
    id: str
    name: str


class OpenFgaService:
    """Read-only access to one OpenFGA store (the config's ``openfga`` section)."""

    name = NAME

    def __init__(self, settings: OpenFga) -> None:
        self.url = (settings.url or "").rstrip("/")
        self.store_id = settings.store or ""
        self._token = settings.api_token
        self._timeout = settings.timeout_seconds
        self._client: Any = None
        self._guard = Guard(ttl=max(5.0, 2 * self._timeout))

    def __repr__(self) -> str:
        return f"OpenFgaService(url={self.url!r}, store={self.store_id!r})"

    def _sdk(self) -> Any:
        if self._client is None:
            from openfga_sdk.client.configuration import ClientConfiguration
            from openfga_sdk.configuration import RetryParams
            from openfga_sdk.credentials import CredentialConfiguration, Credentials
            from openfga_sdk.sync import OpenFgaClient
            from urllib3.util.retry import Retry

            credentials = None
            if self._token:
                credentials = Credentials(
                    method="api_token",
                    configuration=CredentialConfiguration(api_token=self._token),
                )
            configuration = ClientConfiguration(
                api_url=self.url,
                store_id=self.store_id or None,
                credentials=credentials,
                retry_params=RetryParams(max_retry=1, min_wait_in_ms=100),
                timeout_millisec=max(101, int(self._timeout * 1000)),
            )
            # Without this urllib3 retries 3 more times under the SDK: a server that
            # stops answering cost four timeouts, not one. A refused connection is retried
            # once; a request the server got but did not answer is not sent again.
            configuration.retries = Retry(total=1, connect=1, read=0, status=0, redirect=0)
            self._client = OpenFgaClient(configuration)
        return self._client

    def _call(self, what: str, call: Callable[[Any], T]) -> T:
        """Run ``call(sdk client)``, turning every SDK/transport failure into a safe
        :class:`ServiceError`."""
        self._guard.check()
        if not self.store_id:
            raise ServiceError(NAME, Failure.REJECTED,
                               "no store id configured (--openfga-store or openfga.store)")
        try:
            return call(self._sdk())
        except Exception as exc:  # the SDK raises many unrelated types; all become one
            raise self._guard.record(self._translate(what, exc)) from None

    def _translate(self, what: str, exc: Exception) -> ServiceError:
        from openfga_sdk import exceptions as fga
        from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, TimeoutError

        text = lambda message: one_line(redact(f"{what}: {message}", [self._token]))  # noqa: E731
        if isinstance(exc, (fga.UnauthorizedException, fga.AuthenticationError)):
            return ServiceError(NAME, Failure.UNAUTHORISED,
                                text(f"HTTP {exc.status} from {self.url} (check the API token)"))
        if isinstance(exc, fga.ForbiddenException):
            return ServiceError(NAME, Failure.FORBIDDEN,
                                text(f"HTTP 403 from {self.url}: {_api_message(exc)}"))
        if isinstance(exc, fga.NotFoundException):
            return ServiceError(NAME, Failure.NOT_FOUND, text(_api_message(exc)))
        if isinstance(exc, fga.ApiException):
            status = exc.status or 0
            failure = (Failure.UNREACHABLE if status in (502, 503, 504) else
                       Failure.BAD_RESPONSE if status >= 500 else Failure.REJECTED)
            return ServiceError(NAME, failure, text(_api_message(exc)))
        if isinstance(exc, fga.FgaValidationException | fga.ApiValueError):
            return ServiceError(NAME, Failure.REJECTED, text(str(exc)))
        reason = exc.reason if isinstance(exc, MaxRetryError) else exc
        # urllib3 2 makes NewConnectionError (refused, unresolvable) a ConnectTimeoutError
        if isinstance(reason, TimeoutError) and not isinstance(reason, NewConnectionError):
            return ServiceError(NAME, Failure.TIMEOUT,
                                text(f"no answer from {self.url} within {self._timeout:g}s"))
        if isinstance(exc, HTTPError | OSError):
            return ServiceError(NAME, Failure.UNREACHABLE,
                                text(f"cannot connect to {self.url}: {transport_cause(reason)}"))
        return ServiceError(NAME, Failure.BAD_RESPONSE, text(
            f"{self.url} did not answer as an OpenFGA server ({type(exc).__name__}: {exc})"))

    def get_store(self) -> Store | None:
        """The configured store, or None when the server has no such store."""
        try:
            store = self._call("get store", lambda c: c.get_store())
        except ServiceError as exc:
            if exc.failure is Failure.NOT_FOUND:
                return None
            raise
        return Store(str(store.id), str(store.name))

    def latest_model(self) -> tuple[str, dict[str, Any]] | None:
        """(id, JSON form) of the store's latest authorization model; None if it has none."""
        response = self._call("read latest authorization model",
                              lambda c: c.read_latest_authorization_model())
        model = response.authorization_model
        if model is None:
            return None
        return str(model.id), model.to_dict()

    def check(self, user: str, relation: str, obj: str, tuples: Iterable[TupleKey],
              context: dict[str, Any] | None, model_id: str) -> bool:
        """The Check API's answer with ``tuples`` as contextual tuples (nothing written)."""
        from openfga_sdk.client.models import ClientCheckRequest

        body = ClientCheckRequest(user=user, relation=relation, object=obj,
                                  contextual_tuples=_client_tuples(tuples), context=context)
        response = self._call(f"check {user} {relation} {obj}",
                              lambda c: c.check(body, {"authorization_model_id": model_id}))
        return bool(response.allowed)

    def list_objects(self, user: str, relation: str, type_name: str, tuples: Iterable[TupleKey],
                     context: dict[str, Any] | None, model_id: str) -> list[str]:
        from openfga_sdk.client.models import ClientListObjectsRequest

        body = ClientListObjectsRequest(user=user, relation=relation, type=type_name,
                                        contextual_tuples=_client_tuples(tuples), context=context)
        response = self._call(
            f"list objects {user} {relation} {type_name}",
            lambda c: c.list_objects(body, {"authorization_model_id": model_id}),
        )
        return [str(o) for o in response.objects or []]

    def list_users(self, obj: str, relation: str, user_filters: Iterable[tuple[str, str]],
                   tuples: Iterable[TupleKey], context: dict[str, Any] | None,
                   model_id: str) -> list[str]:
        from openfga_sdk.client.models import ClientListUsersRequest
        from openfga_sdk.models import FgaObject, UserTypeFilter

        object_type, _, object_id = obj.partition(":")
        body = ClientListUsersRequest(
            object=FgaObject(type=object_type, id=object_id),
            relation=relation,
            user_filters=[UserTypeFilter(type=t, relation=r or None) for t, r in user_filters],
            contextual_tuples=_client_tuples(tuples),
            context=context,
        )
        response = self._call(
            f"list users of {obj} {relation}",
            lambda c: c.list_users(body, {"authorization_model_id": model_id}),
        )
        return [_user_text(u) for u in response.users or []]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _client_tuples(tuples: Iterable[TupleKey]) -> list[Any]:
    from openfga_sdk.client.models import ClientTuple
    from openfga_sdk.models import RelationshipCondition

    found = []
    for key in tuples:
        condition = None
        if key.condition:
            condition = RelationshipCondition(name=str(key.condition.get("name", "")),
                                              context=key.condition.get("context"))
        found.append(ClientTuple(user=key.user, relation=key.relation, object=key.object,
                                 condition=condition))
    return found


def _user_text(user: Any) -> str:
    """A ListUsers result as the test file writes it: ``type:id``, ``type:id#rel``, ``type:*``."""
    if user.object is not None:
        return f"{user.object.type}:{user.object.id}"
    if user.userset is not None:
        return f"{user.userset.type}:{user.userset.id}#{user.userset.relation}"
    if user.wildcard is not None:
        return f"{user.wildcard.type}:*"
    return str(user)


def _api_message(exc: Any) -> str:
    """``HTTP 400 <server message>`` without the SDK's request-id noise."""
    message = getattr(exc, "error_message", None) or getattr(exc, "reason", None) or ""
    return f"HTTP {exc.status} {message}".strip()
