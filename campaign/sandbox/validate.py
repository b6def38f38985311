"""Request validation: JSON bodies, their fields, query parameters, the API version header."""

from __future__ import annotations

import json
import re
from typing import Any

from multidict import MultiMapping

from campaign.sandbox.clock import parse_date_or_instant, parse_instant
from campaign.sandbox.problems import ApiProblem, invalid

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
HTTPS_URL = re.compile(r"https://[^\s/?#]+([/?#]\S*)?")
HTTP_URL = re.compile(r"https?://[^\s/?#]+([/?#]\S*)?")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?")
API_VERSION = re.compile(r"v1\.preview-[0-9]{4}-[0-9]{2}-[0-9]{2}")
EVENT_TYPES = ("call.completed", "call.failed", "batch.completed")
CALL_STATUSES = (
    "queued",
    "dialing",
    "in_progress",
    "completed",
    "no_answer",
    "busy",
    "voicemail",
    "failed",
    "canceled",
)
MAX_JSON_BODY = 1024 * 1024
MAX_VARIABLES_BYTES = 8 * 1024


def is_e164(value: object) -> bool:
    """E.164 syntax (the API checks syntax only)."""
    return isinstance(value, str) and E164.fullmatch(value) is not None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_body(body: bytes, content_type: str) -> Any:
    """Decode a JSON request body (UTF-8, Content-Type application/json) or raise 400."""
    if len(body) > MAX_JSON_BODY:
        raise ApiProblem("payload_too_large", "JSON bodies are limited to 1 MiB")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise invalid("Content-Type must be application/json")
    if not body.strip():
        raise invalid("a JSON body is required")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid("body is not valid UTF-8 JSON") from None


def _object(data: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The body as an object without unknown fields; null values dropped (null = absent)."""
    if not isinstance(data, dict):
        raise invalid("body must be a JSON object")
    for name in data:
        if name not in allowed:
            raise invalid(f"unknown field {name!r}", field=name or None)
    return {name: value for name, value in data.items() if value is not None}


def _timestamp(value: Any, name: str) -> float:
    parsed = parse_instant(value) if isinstance(value, str) else None
    if parsed is None:
        raise invalid(f"{name} must be an RFC 3339 UTC instant like 2026-05-13T16:00:00Z", name)
    return parsed


def validate_call_request(data: Any) -> dict[str, Any]:
    """Check a POST /calls body; return its fields with not_before as epoch seconds."""
    fields = _object(
        data, ("phone", "scenario_id", "variables", "caller_id", "metadata", "not_before")
    )
    if not is_e164(fields.get("phone")):
        raise invalid("phone must be a valid E.164 number", field="phone")
    scenario = fields.get("scenario_id")
    if not isinstance(scenario, str) or not scenario:
        raise invalid("scenario_id must be a non-empty string", field="scenario_id")
    if "variables" in fields:
        check_variables(fields["variables"])
    if "caller_id" in fields and not is_e164(fields["caller_id"]):
        raise invalid("caller_id must be a valid E.164 number", field="caller_id")
    if "metadata" in fields:
        check_metadata(fields["metadata"])
    if "not_before" in fields:
        fields["not_before"] = _timestamp(fields["not_before"], "not_before")
    return fields


def check_variables(variables: Any) -> None:
    """≤ 50 keys, string/number/bool values, ≤ 8 KiB of JSON (else 400 field=variables)."""
    ok = isinstance(variables, dict) and len(variables) <= 50
    ok = ok and all(isinstance(v, str | int | float | bool) for v in variables.values())
    if not ok:
        raise invalid(
            "variables must be an object of at most 50 string/number/boolean values",
            field="variables",
        )
    size = len(json.dumps(variables, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_VARIABLES_BYTES:
        raise invalid("variables must be at most 8 KiB of JSON", field="variables")


def check_metadata(metadata: Any) -> None:
    """≤ 20 keys, string values of ≤ 500 characters (else 400 field=metadata)."""
    ok = isinstance(metadata, dict) and len(metadata) <= 20
    ok = ok and all(isinstance(v, str) and len(v) <= 500 for v in metadata.values())
    if not ok:
        raise invalid(
            "metadata must be an object of at most 20 string values of at most 500 characters",
            field="metadata",
        )


def _url(value: Any, allow_http: bool) -> str:
    pattern = HTTP_URL if allow_http else HTTPS_URL
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise invalid("url must be an https:// URL", field="url")
    return value


def _events(value: Any) -> list[str]:
    ok = isinstance(value, list) and len(value) >= 1 and len(set(map(str, value))) == len(value)
    if not ok or not all(isinstance(e, str) and e in EVENT_TYPES for e in value):
        raise invalid(f"events must be a non-empty list of distinct {EVENT_TYPES}", "events")
    return list(value)


def _description(fields: dict[str, Any]) -> None:
    if "description" in fields and not isinstance(fields["description"], str):
        raise invalid("description must be a string", field="description")


def validate_webhook_create(data: Any, allow_http: bool) -> dict[str, Any]:
    """Check a POST /webhooks body."""
    fields = _object(data, ("url", "events", "description"))
    if "url" not in fields:
        raise invalid("url is required", field="url")
    fields["url"] = _url(fields["url"], allow_http)
    if "events" not in fields:
        raise invalid("events is required", field="events")
    fields["events"] = _events(fields["events"])
    _description(fields)
    return fields


def validate_webhook_update(data: Any, allow_http: bool) -> dict[str, Any]:
    """Check a PUT /webhooks/{id} body: every field optional."""
    fields = _object(data, ("url", "events", "description", "active"))
    if "url" in fields:
        fields["url"] = _url(fields["url"], allow_http)
    if "events" in fields:
        fields["events"] = _events(fields["events"])
    _description(fields)
    if "active" in fields and not isinstance(fields["active"], bool):
        raise invalid("active must be a boolean", field="active")
    return fields


def validate_crawl(data: Any) -> str:
    """Check a POST /knowledge/crawl body."""
    fields = _object(data, ("url",))
    if "url" not in fields:
        raise invalid("url is required", field="url")
    return _url(fields["url"], allow_http=False)


# ----- query parameters ---------------------------------------------------------------


def query_value(query: MultiMapping[str], name: str) -> str | None:
    """A query parameter given at most once; 400 when repeated."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise invalid(f"{name} may be given only once", field=name)
    return values[0] if values else None


def query_limit(query: MultiMapping[str], maximum: int, default: int) -> int:
    """``limit`` in 1..maximum."""
    text = query_value(query, "limit")
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= maximum:
        raise invalid(f"limit must be an integer from 1 to {maximum}", field="limit")
    return int(text)


def query_since(query: MultiMapping[str], name: str, date_allowed: bool = True) -> float | None:
    """A date-or-instant (or instant-only) filter."""
    text = query_value(query, name)
    if text is None:
        return None
    parsed = parse_date_or_instant(text) if date_allowed else parse_instant(text)
    if parsed is None:
        raise invalid(f"{name} must be a date or an RFC 3339 UTC instant", field=name)
    return parsed


def query_statuses(query: MultiMapping[str]) -> list[str] | None:
    """The comma-separated ``status`` filter of GET /calls."""
    text = query_value(query, "status")
    if text is None:
        return None
    statuses = text.split(",")
    if any(s not in CALL_STATUSES for s in statuses) or len(set(statuses)) != len(statuses):
        raise invalid(f"status must be distinct values of {CALL_STATUSES}", field="status")
    return statuses
