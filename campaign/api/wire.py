"""What goes over the wire: canonical JSON bodies, RFC 3339 times, query values."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

_FRACTION = re.compile(r"\.(\d+)")


def encode_json_body(obj: object) -> bytes:
    """Canonical JSON (sorted keys, no whitespace, UTF-8): the bytes the server compares."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def format_timestamp(value: datetime) -> str:
    """An aware datetime as RFC 3339 UTC with a ``Z`` (naive datetimes are refused)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    utc_value = value.astimezone(UTC)
    text = utc_value.strftime("%Y-%m-%dT%H:%M:%S")
    if utc_value.microsecond:
        text += f".{utc_value.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 instant into an aware UTC datetime (ValueError if it is not one)."""
    # Python keeps microseconds only; a server may send nanoseconds.
    trimmed = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text.strip(), count=1)
    parsed = datetime.fromisoformat(trimmed)
    if parsed.tzinfo is None or "T" not in trimmed.upper():
        raise ValueError(f"{text!r} is not an RFC 3339 instant")
    return parsed.astimezone(UTC)


def query_time(value: date | datetime | str) -> str:
    """A ``since``-style query value: a bare date, an instant, or text passed as given."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def call_request_body(
    *,
    phone: str,
    scenario_id: str,
    variables: Mapping[str, str | int | float | bool] | None = None,
    metadata: Mapping[str, str] | None = None,
    caller_id: str | None = None,
    not_before: datetime | None = None,
) -> bytes:
    """The canonical POST /calls body; absent optional fields are left out, not null."""
    body: dict[str, Any] = {"phone": phone, "scenario_id": scenario_id}
    if variables is not None:
        body["variables"] = dict(variables)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    if caller_id is not None:
        body["caller_id"] = caller_id
    if not_before is not None:
        body["not_before"] = format_timestamp(not_before)
    return encode_json_body(body)


def status_filter(status: str | Sequence[str]) -> str:
    """One status or several as the comma-separated ``status`` query value."""
    return status if isinstance(status, str) else ",".join(status)
