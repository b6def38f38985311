"""What one attempt sends: its idempotency key and its exact request body.

Both are pure functions of the campaign, the row and the attempt number, so a replay
after a crash sends the same key and the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

KEY_PREFIX = "cmp-"


def idempotency_key(campaign: str, row_key: str, number: int) -> str:
    """The attempt's Idempotency-Key: ``cmp-`` + 40 hex digits of a SHA-256."""
    material = json.dumps([campaign, row_key, number], ensure_ascii=True)
    return KEY_PREFIX + hashlib.sha256(material.encode("ascii")).hexdigest()[:40]


def call_metadata(campaign: str, row_key: str, number: int) -> dict[str, str]:
    """The metadata that lets a call be found again without its key."""
    return {"campaign": campaign[:500], "row_key": row_key[:500], "attempt": str(number)}


def canonical_json(obj: object) -> bytes:
    """Canonical JSON (keys sorted, no whitespace, UTF-8), as the server compares bodies."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def call_body(
    *,
    campaign: str,
    scenario_id: str,
    row_key: str,
    number: int,
    phone: str,
    variables: Mapping[str, object],
) -> bytes:
    """The exact bytes of the POST /calls body for this attempt."""
    body: dict[str, object] = {
        "phone": phone,
        "scenario_id": scenario_id,
        "metadata": call_metadata(campaign, row_key, number),
    }
    cleaned = {k: v for k, v in variables.items() if v is not None and v != ""}
    if cleaned:
        body["variables"] = cleaned
    return canonical_json(body)


def metadata_matches(
    metadata: Mapping[str, object] | None, campaign: str
) -> tuple[str, int] | None:
    """(row_key, attempt number) if a call's metadata says it is one of ours."""
    if not metadata or metadata.get("campaign") != campaign[:500]:
        return None
    row_key = metadata.get("row_key")
    number = metadata.get("attempt")
    if not isinstance(row_key, str) or not isinstance(number, str) or not number.isdigit():
        return None
    return row_key, int(number)
