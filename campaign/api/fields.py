"""Parsing helpers for API responses: read a documented field or raise ValueError."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from campaign.api.wire import parse_timestamp

JsonObject = Mapping[str, Any]


def read_obj(value: object, what: str) -> JsonObject:
    """The value as a JSON object."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is not a JSON object")
    return value


def read_field(obj: JsonObject, key: str) -> Any:
    """A required field."""
    if key not in obj:
        raise ValueError(f"field {key!r} is missing")
    return obj[key]


def read_str(obj: JsonObject, key: str) -> str:
    """A required string field."""
    value = read_field(obj, key)
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} is not a string")
    return value


def read_opt_str(obj: JsonObject, key: str) -> str | None:
    """An optional string field (absent or null is None)."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"field {key!r} is not a string")
    return value


def read_int(obj: JsonObject, key: str) -> int:
    """A required integer field."""
    value = read_field(obj, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {key!r} is not an integer")
    return value


def read_opt_int(obj: JsonObject, key: str) -> int | None:
    """An optional integer field."""
    return None if obj.get(key) is None else read_int(obj, key)


def read_opt_bool(obj: JsonObject, key: str) -> bool | None:
    """An optional boolean field."""
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"field {key!r} is not a boolean")
    return value


def read_bool(obj: JsonObject, key: str) -> bool:
    """A required boolean field."""
    value = read_opt_bool(obj, key)
    if value is None:
        raise ValueError(f"field {key!r} is missing")
    return value


def read_money(obj: JsonObject, key: str) -> Decimal:
    """A decimal-string money field as Decimal."""
    value = read_str(obj, key)
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"field {key!r} is not a decimal string") from exc


def read_time(obj: JsonObject, key: str) -> datetime:
    """A required RFC 3339 field as an aware datetime."""
    return parse_timestamp(read_str(obj, key))


def read_opt_time(obj: JsonObject, key: str) -> datetime | None:
    """An optional RFC 3339 field."""
    value = read_opt_str(obj, key)
    return None if value is None else parse_timestamp(value)


def read_map(obj: JsonObject, key: str) -> dict[str, Any]:
    """An object field as a dict ({} when absent or null)."""
    value = obj.get(key)
    return {} if value is None else dict(read_obj(value, key))


def read_list(obj: JsonObject, key: str) -> list[Any]:
    """A required list field."""
    value = read_field(obj, key)
    if not isinstance(value, list):
        raise ValueError(f"field {key!r} is not a list")
    return value


def data_list(value: object) -> list[Any]:
    """The ``data`` array of an unpaginated ``{"data": [...]}`` response."""
    return read_list(read_obj(value, "response"), "data")


def int_field(value: object, key: str) -> int:
    """An integer field of a small response object such as ``{"delivered_to": 3}``."""
    return read_int(read_obj(value, "response"), key)
