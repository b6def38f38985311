"""What a route handler receives and returns, and the opaque cursors of paginated lists."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiMapping

from campaign.sandbox.config import SandboxConfig
from campaign.sandbox.problems import invalid
from campaign.sandbox.uploads import Part
from campaign.sandbox.world import World


@dataclass
class Ctx:
    """One authenticated, admitted request as a handler sees it."""

    project_id: str
    method: str
    path: str
    params: dict[str, str]
    query: MultiMapping[str]
    body: bytes
    content_type: str
    now: float
    world: World
    config: SandboxConfig
    idempotency_key: str | None = None
    parts: list[Part] | None = None
    parts_error: Exception | None = None


@dataclass
class Reply:
    """A handler's answer: status and JSON body (None for 204)."""

    status: int
    body: Any = None
    extra_headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Ctx], Reply]


def encode_cursor(payload: dict[str, Any]) -> str:
    """An opaque, URL-safe cursor."""
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, Any]:
    """Decode a cursor from ``encode_cursor``; 400 field=cursor when it is not one."""
    try:
        padded = text + "=" * (-len(text) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid("cursor is not valid", field="cursor") from None
    if not isinstance(payload, dict):
        raise invalid("cursor is not valid", field="cursor")
    return payload
