"""The live service targets: an OpenFGA store and a Kafka cluster without Strimzi.

OpenFGA: the preview is the store's latest model against the rendered one, both in DSL
form as ``fga model transform`` writes them (so formatting never shows as a change, and
"unchanged" is decided by meaning); the apply is one WriteAuthorizationModel. OpenFGA
keeps every model and cannot delete one, so a rollback writes the saved model again (it
becomes the latest); a store that had no model cannot be taken back to none.

Kafka: the rendered Strimzi KafkaTopic/KafkaUser objects become AdminClient calls —
create missing topics, set the configs that differ, create missing ACLs (nothing is ever
deleted by an apply). The preview is per topic (partitions, replicas, configs) and per
principal (its ACLs before and after). Reads go through :mod:`soma_audit.services`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soma_audit.remediation.plan import Change, RemediationError, StaleError, to_yaml, unified
from soma_audit.remediation.targets import BackupItem
from soma_audit.services import ServiceError

if TYPE_CHECKING:
    from soma_audit.config import Kafka, OpenFga, Tools
    from soma_audit.remediation.output import RenderedFile

MODEL = "authorization model"


#: Maps whose keys are names the user chose (relations, conditions, parameters).
_NAMED = {"relations", "conditions", "parameters"}


#: The two fields ``fga model transform`` spells in camelCase (its JSON otherwise uses the
#: API's snake_case).
_CLI_CAMEL = {"computed_userset": "computedUserset", "tuple_to_userset": "tupleToUserset"}


def _api_json(value: Any, for_cli: bool = True, named: bool = False) -> Any:
    """A model as ``fga model transform`` reads it (``for_cli``) or as the write API takes
    it, whichever spelling came in, without unset fields (the SDK's None and "") or the
    model id."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if item is None or item == "" or (key == "id" and not named):
                continue
            name = key if named else _snake(key)
            if for_cli and not named:
                name = _CLI_CAMEL.get(name, name)
            out[name] = _api_json(item, for_cli, named=not named and _snake(key) in _NAMED)
        return out
    if isinstance(value, list):
        return [_api_json(v, for_cli) for v in value]
    return value


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


class OpenFgaTarget:
    kind = "openfga"

    def __init__(self, settings: OpenFga, tools: Tools) -> None:
        from soma_audit.services.openfga import OpenFgaService
        from soma_audit.services.tools import ToolRunner

        self.settings = settings
        self.service = OpenFgaService(settings)
        self.tools = ToolRunner(tools)
        self.ref = f"{settings.url} store {settings.store}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.settings.url, "store": self.settings.store}

    def _transform(self, text: str, source: str, output: str) -> str:
        """``fga model transform`` between DSL (``fga``) and ``json``."""
        from soma_audit.services.tools import ToolError

        with tempfile.TemporaryDirectory(prefix="soma-audit-fga-") as folder:
            path = Path(folder, "model." + ("fga" if source == "fga" else "json"))
            path.write_text(text, encoding="utf-8")
            try:
                run = self.tools.run("fga", "model", "transform", "--file", str(path),
                                     "--input-format", source, "--output-format", output)
            except ToolError as exc:
                raise RemediationError(str(exc)) from None
        if run.returncode != 0:
            raise RemediationError(f"fga model transform failed: {' '.join(run.output.split())}")
        return run.stdout if run.stdout.endswith("\n") else run.stdout + "\n"

    def _latest(self) -> tuple[str, dict[str, Any]] | None:
        try:
            found = self.service.latest_model()
        except ServiceError as exc:
            raise RemediationError(str(exc)) from None
        return None if found is None else (found[0], _api_json(found[1]))

    def _dsl(self, model: dict[str, Any] | None) -> str | None:
        return None if model is None else self._transform(json.dumps(model), "json", "fga")

    def plan(self, files: Sequence[RenderedFile]) -> tuple[list[Change], list[str]]:
        from soma_audit.services.openfga import canonical_model

        models = [f for f in files if f.path.endswith(".fga")]
        if len(models) != 1:
            raise RemediationError(f"expected one .fga model among the rendered files, found "
                                   f"{len(models)}")
        notes = [f"{f.path} is not written to the store (it belongs in the repository)"
                 for f in files if f is not models[0]]
        wanted = json.loads(self._transform(models[0].text, "fga", "json"))
        after = self._dsl(wanted)
        latest = self._latest()
        token = latest[0] if latest else None
        live = latest[1] if latest else None
        before = self._dsl(live)
        where = f"{MODEL} of store {self.settings.store}"
        if live is not None and canonical_model(live) == canonical_model(wanted):
            return [Change("unchanged", where, before, after, "", token=token)], notes
        return [Change("update" if live else "create", where, before, after,
                       unified(before, after, "model.fga"), payload=wanted,
                       token=token)], notes

    def capture(self, change: Change) -> BackupItem:
        latest = self._latest()
        if (latest[0] if latest else None) != change.token:
            raise StaleError("the store's latest model changed since the diff was made")
        if latest is None:
            return BackupItem(change.where, False, {})
        return BackupItem(change.where, True, {"model_id": latest[0], "model": latest[1]})

    def _write(self, model: dict[str, Any]) -> None:
        api = _api_json(model, for_cli=False)
        body = {k: v for k, v in api.items() if k in ("schema_version", "type_definitions",
                                                     "conditions")}
        try:
            # The service's guarded call: its errors are one line, credentials redacted.
            self.service._call("write authorization model",
                               lambda c: c.write_authorization_model(body))
        except ServiceError as exc:
            raise RemediationError(str(exc)) from None

    def write(self, change: Change) -> None:
        self._write(change.payload)

    def restore(self, item: BackupItem) -> None:
        if not item.existed:
            raise RemediationError("the store had no model before the apply and OpenFGA "
                                   "cannot delete models; the applied model stays the latest")
        self._write(item.state["model"])

    def preview_restore(self, item: BackupItem) -> Change:
        latest = self._latest()
        before = self._dsl(latest[1] if latest else None)
        after = self._dsl(item.state.get("model")) if item.existed else None
        if item.existed and before == after:
            return Change("unchanged", item.where, before, after, "")
        note = "" if item.existed else "cannot be restored: OpenFGA cannot delete models"
        return Change("update", item.where, before, after,
                      unified(before, after, "model.fga"), note=note)


# -- Kafka ------------------------------------------------------------------------------

#: Strimzi's ACL resource and pattern types → Kafka's.
_RESOURCE = {"topic": "TOPIC", "group": "GROUP", "cluster": "BROKER",
             "transactionalid": "TRANSACTIONAL_ID"}
_PATTERN = {"literal": "LITERAL", "prefix": "PREFIXED"}


def _acl_key(binding: dict[str, str]) -> str:
    return (f"{binding['permission']} {binding['operation']} on {binding['resource_type']} "
            f"{binding['name']} ({binding['pattern'].lower()}) from {binding['host']}")


def kafka_bindings(user: dict[str, Any]) -> list[dict[str, str]]:
    """A KafkaUser's ``spec.authorization.acls`` as Kafka ACL bindings."""
    principal = f"User:{(user.get('metadata') or {}).get('name')}"
    found = []
    authorization = (user.get("spec") or {}).get("authorization") or {}
    for acl in authorization.get("acls") or []:
        resource = acl.get("resource") or {}
        resource_type = _RESOURCE.get(str(resource.get("type", "")).lower())
        if resource_type is None:
            raise RemediationError(f"{principal}: unknown ACL resource type "
                                   f"{resource.get('type')!r}")
        name = "kafka-cluster" if resource_type == "BROKER" else str(resource.get("name", ""))
        operations = acl.get("operations") or ([acl["operation"]] if acl.get("operation")
                                                 else [])
        for operation in operations:
            found.append({
                "principal": principal, "resource_type": resource_type, "name": name,
                "pattern": _PATTERN.get(str(resource.get("patternType", "literal")).lower(),
                                        "LITERAL"),
                "operation": _snake_upper(str(operation)),
                "permission": "DENY" if str(acl.get("type", "allow")).lower() == "deny"
                else "ALLOW",
                "host": str(acl.get("host", "*")),
            })
    return found


def _snake_upper(operation: str) -> str:
    """Strimzi's ``IdempotentWrite`` → Kafka's ``IDEMPOTENT_WRITE``."""
    out = ""
    for i, char in enumerate(operation):
        if char.isupper() and i:
            out += "_"
        out += char.upper()
    return out


def _topic_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    return {
        "name": str(spec.get("topicName") or (obj.get("metadata") or {}).get("name")),
        "partitions": int(spec.get("partitions", 1)),
        "replicas": int(spec.get("replicas", 1)),
        "config": {str(k): str(v).lower() if isinstance(v, bool) else str(v)
                   for k, v in (spec.get("config") or {}).items()},
    }


class KafkaTarget:
    kind = "kafka"

    def __init__(self, settings: Kafka) -> None:
        from soma_audit.services.kafka import KafkaService

        self.settings = settings
        self.service = KafkaService(settings)
        self.ref = str(settings.bootstrap)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "bootstrap": self.settings.bootstrap}

    def _call(self, what: str, fn: Any) -> Any:
        try:
            # The service's guarded call: one-line errors, SASL password redacted.
            return self.service._call(what, fn)
        except ServiceError as exc:
            raise RemediationError(str(exc)) from None

    def _configs(self, name: str) -> dict[str, tuple[str | None, bool]]:
        """Topic config → (value, is it the default) as the broker describes it."""
        from confluent_kafka.admin import ConfigResource, ResourceType

        timeout = self.settings.timeout_seconds

        def read(admin: Any) -> dict[str, tuple[str | None, bool]]:
            futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)],
                                             request_timeout=timeout)
            (future,) = futures.values()
            return {k: (v.value, bool(v.is_default))
                    for k, v in future.result(timeout=timeout + 1).items()}

        return self._call(f"describe configs of {name}", read)

    def _acls(self, principal: str) -> list[str]:
        try:
            acls = self.service.acls()
        except ServiceError as exc:
            raise RemediationError(str(exc)) from None
        return sorted(_acl_key({"permission": a.permission, "operation": a.operation,
                                "resource_type": a.resource_type, "name": a.name,
                                "pattern": a.pattern, "host": a.host})
                      for a in acls if a.principal == principal)

    def plan(self, files: Sequence[RenderedFile]) -> tuple[list[Change], list[str]]:
        objects = [o for f in files for o in f.objects]
        notes = [f"{o.get('kind')}/{(o.get('metadata') or {}).get('name')}: not a Kafka "
                 "topic or user, skipped" for o in objects
                 if o.get("kind") not in ("KafkaTopic", "KafkaUser")]
        try:
            live_topics = self.service.topics()
        except ServiceError as exc:
            raise RemediationError(str(exc)) from None
        changes = []
        for obj in (o for o in objects if o.get("kind") == "KafkaTopic"):
            topic = _topic_spec(obj)
            name = topic["name"]
            where = f"topic {name}"
            state = live_topics.get(name)
            if state is None:
                after = to_yaml(topic)
                changes.append(Change("create", where, None, after, unified(None, after, where),
                                      payload={"op": "create_topic", **topic}))
                continue
            configs = self._configs(name)
            current = {k: configs.get(k, (None, True))[0] for k in topic["config"]}
            before = to_yaml({**topic, "partitions": state.partitions,
                              "replicas": max(state.replicas, default=0), "config": current})
            after = to_yaml({**topic, "partitions": state.partitions,
                             "replicas": max(state.replicas, default=0)})
            differ = {k: v for k, v in topic["config"].items() if current.get(k) != v}
            if state.partitions != topic["partitions"] or set(state.replicas) != {
                    topic["replicas"]}:
                notes.append(f"{where}: {state.partitions} partitions x "
                             f"{max(state.replicas, default=0)} replicas, planned "
                             f"{topic['partitions']} x {topic['replicas']}; soma-audit does "
                             "not repartition or reassign (kafka-reassign-partitions)")
            if not differ:
                changes.append(Change("unchanged", where, before, after, ""))
                continue
            changes.append(Change("update", where, before, after, unified(before, after, where),
                                  payload={"op": "alter_configs", "name": name, "set": differ},
                                  token={k: configs.get(k, (None, True)) for k in differ}))
        for obj in (o for o in objects if o.get("kind") == "KafkaUser"):
            bindings = kafka_bindings(obj)
            principal = f"User:{(obj.get('metadata') or {}).get('name')}"
            where = f"ACLs of {principal}"
            live = self._acls(principal)
            missing = [b for b in bindings if _acl_key(b) not in live]
            notes.append(f"{principal}: credentials are not created here (no Strimzi user "
                         "operator); only its ACLs")
            before = "".join(f"{line}\n" for line in live) if live else None
            after = "".join(f"{line}\n" for line in sorted({*live, *map(_acl_key, missing)}))
            if not missing:
                changes.append(Change("unchanged", where, before, after, ""))
                continue
            changes.append(Change("update" if live else "create", where, before, after,
                                  unified(before, after, where),
                                  payload={"op": "create_acls", "principal": principal,
                                           "bindings": missing}, token=live))
        return changes, notes

    def capture(self, change: Change) -> BackupItem:
        payload = change.payload
        if payload["op"] == "create_topic":
            try:
                exists = payload["name"] in self.service.topics()
            except ServiceError as exc:
                raise RemediationError(str(exc)) from None
            if exists:
                raise StaleError(f"{change.where} was created since the diff was made")
            return BackupItem(change.where, False, {"op": "create_topic",
                                                    "name": payload["name"]})
        if payload["op"] == "alter_configs":
            configs = self._configs(payload["name"])
            now = {k: configs.get(k, (None, True)) for k in payload["set"]}
            if {k: list(v) for k, v in now.items()} != {k: list(v) for k, v in
                                                         change.token.items()}:
                raise StaleError(f"{change.where} changed since the diff was made")
            return BackupItem(change.where, True, {"op": "alter_configs",
                                                   "name": payload["name"],
                                                   "configs": {k: list(v)
                                                               for k, v in now.items()}})
        if self._acls(payload["principal"]) != change.token:
            raise StaleError(f"{change.where} changed since the diff was made")
        return BackupItem(change.where, False, {"op": "create_acls",
                                                "bindings": payload["bindings"]})

    def _wait(self, futures: dict[Any, Any], what: str, ignore: tuple[str, ...] = ()) -> None:
        from confluent_kafka import KafkaException

        timeout = self.settings.timeout_seconds

        def wait(_: Any) -> None:
            for future in futures.values():
                try:
                    future.result(timeout=timeout + 1)
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    if error is not None and hasattr(error, "name") and error.name() in ignore:
                        continue
                    raise

        self._call(what, wait)

    def write(self, change: Change) -> None:
        from confluent_kafka.admin import (
            AlterConfigOpType,
            ConfigEntry,
            ConfigResource,
            NewTopic,
            ResourceType,
        )

        payload = change.payload
        timeout = self.settings.timeout_seconds
        if payload["op"] == "create_topic":
            topic = NewTopic(payload["name"], num_partitions=payload["partitions"],
                             replication_factor=payload["replicas"], config=payload["config"])
            self._wait(self._call("create topic", lambda a: a.create_topics(
                [topic], request_timeout=timeout)), f"create topic {payload['name']}")
        elif payload["op"] == "alter_configs":
            entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                       for k, v in payload["set"].items()]
            resource = ConfigResource(ResourceType.TOPIC, payload["name"],
                                      incremental_configs=entries)
            self._wait(self._call("alter configs", lambda a: a.incremental_alter_configs(
                [resource], request_timeout=timeout)), f"alter configs of {payload['name']}")
        else:
            acls = [_binding(b) for b in payload["bindings"]]
            self._wait(self._call("create ACLs", lambda a: a.create_acls(
                acls, request_timeout=timeout)), f"create ACLs of {payload['principal']}")

    def restore(self, item: BackupItem) -> None:
        from confluent_kafka.admin import (
            AclBindingFilter,
            AlterConfigOpType,
            ConfigEntry,
            ConfigResource,
            ResourceType,
        )

        state = item.state
        timeout = self.settings.timeout_seconds
        if state["op"] == "create_topic":
            self._wait(self._call("delete topic", lambda a: a.delete_topics(
                [state["name"]], operation_timeout=timeout)), f"delete topic {state['name']}",
                ignore=("UNKNOWN_TOPIC_OR_PART",))
        elif state["op"] == "alter_configs":
            entries = []
            for key, (value, default) in state["configs"].items():
                if default or value is None:
                    entries.append(ConfigEntry(key, None,
                                               incremental_operation=AlterConfigOpType.DELETE))
                else:
                    entries.append(ConfigEntry(key, value,
                                               incremental_operation=AlterConfigOpType.SET))
            resource = ConfigResource(ResourceType.TOPIC, state["name"],
                                      incremental_configs=entries)
            self._wait(self._call("restore configs", lambda a: a.incremental_alter_configs(
                [resource], request_timeout=timeout)), f"restore configs of {state['name']}")
        else:
            filters = []
            for b in state["bindings"]:
                binding = _binding(b)
                filters.append(AclBindingFilter(
                    binding.restype, binding.name, binding.resource_pattern_type,
                    binding.principal, binding.host, binding.operation,
                    binding.permission_type))
            self._wait(self._call("delete ACLs", lambda a: a.delete_acls(
                filters, request_timeout=timeout)), "delete ACLs")

    def preview_restore(self, item: BackupItem) -> Change:
        state = item.state
        if state["op"] == "create_topic":
            return Change("update", item.where, None, None, f"- topic {state['name']}\n",
                          note="delete: the apply created it")
        if state["op"] == "alter_configs":
            lines = "".join(f"  {k}: {'(default)' if d else v}\n"
                            for k, (v, d) in state["configs"].items())
            return Change("update", item.where, None, None, "restore configs:\n" + lines)
        lines = "".join(f"- {_acl_key(b)}\n" for b in state["bindings"])
        return Change("update", item.where, None, None, lines,
                      note="delete the ACLs the apply created")


def _binding(b: dict[str, str]) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(ResourceType[b["resource_type"]], b["name"],
                      ResourcePatternType[b["pattern"]], b["principal"], b["host"],
                      AclOperation[b["operation"]], AclPermissionType[b["permission"]])
