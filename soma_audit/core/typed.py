"""Strict conversion of plain YAML data into typed dataclasses.

Used for the config and the catalog so that an unknown key or a wrong type gives one
clear message naming the key (``services[2].port: expected an integer, got 'abc'``)
instead of a traceback deep inside a probe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import types
import typing
from typing import Any, TypeVar

from soma_audit.core.errors import ConfigError

T = TypeVar("T")

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dt.date: "a date (YYYY-MM-DD)",
}


def yaml_key(field: dataclasses.Field[Any]) -> str:
    """The key a field has in YAML (``from`` cannot be a Python name)."""
    return field.metadata.get("key", field.name)


def build(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` names the place for errors."""
    return _convert(cls, data, where)


def _describe(value: Any) -> str:
    """The value's type, and the value itself only when it is a number or a boolean: a
    string may be a line of a file read by mistake (credentials), so it is never quoted."""
    if value is None or isinstance(value, bool | int | float):
        text = repr(value)
        return text if len(text) <= 40 else f"a number of {len(text)} digits"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return {dict: "a mapping", list: "a list"}.get(type(value), type(value).__name__)


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one: for reading optional object
    fields whose wrong type another check reports."""
    return value if isinstance(value, dict) else {}


def wrong_type(path: str, expected: str, value: Any) -> str:
    """The finding about an object field of the wrong type, as the API server's
    validation would name it: ``spec.selector.namespaces: expected a list, got 5``."""
    return f"{path}: expected {expected}, got {_describe(value)}"


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(inner, value, where)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where)
    if origin is list or origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
        (inner, *_) = typing.get_args(tp)
        items = [_convert(inner, item, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_describe(value)}")
        key_tp, val_tp = typing.get_args(tp)
        return {
            _convert(key_tp, str(k) if key_tp is str else k, f"{where}"): _convert(
                val_tp, v, f"{where}.{k}"
            )
            for k, v in value.items()
        }
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            choices = ", ".join(str(a) for a in allowed)
            raise ConfigError(f"{where}: must be one of {choices}, got {_describe(value)}")
        return value
    return _convert_scalar(tp, value, where)


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is dt.date:
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
    elif isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: expected {_TYPE_NAMES.get(tp, tp)}, got {_describe(value)}")


@functools.cache
def _fields(cls: Any) -> tuple[dict[str, dataclasses.Field[Any]], dict[str, Any]]:
    """The fields of dataclass ``cls`` by YAML key, and its resolved type hints: once per
    class (resolving the hints evaluates every annotation's string, and a catalog builds
    the same few classes hundreds of times)."""
    return {yaml_key(f): f for f in dataclasses.fields(cls)}, typing.get_type_hints(cls)


def _convert_dataclass(cls: Any, value: Any, where: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_describe(value)}")
    fields, hints = _fields(cls)
    for key in value:
        if key not in fields:
            import difflib  # only for the message: a valid file never needs it

            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"{where}: unknown key '{key}'{suggestion}; known keys: {known}"
            )
    kwargs = {}
    for key, field in fields.items():
        place = f"{where}.{key}" if where else key
        if key in value:
            kwargs[field.name] = _convert(hints[field.name], value[key], place)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{place}: required key is missing")
    return cls(**kwargs)
