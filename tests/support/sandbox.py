"""Helpers for tests that talk to the sandbox over plain HTTP.

The sandbox fixtures themselves (``sandbox``, ``sandbox_clock``, ``start_sandbox_with``,
``sandbox_http``) live in tests/sandbox/conftest.py, the only folder that uses them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from campaign.sandbox import DEFAULT_KEY, RunningSandbox

SANDBOX_AUTH = {"Authorization": f"Bearer {DEFAULT_KEY}"}
# The type of the ``start_sandbox_with`` fixture: ``(config=None, clock=None)``.
StartSandbox = Callable[..., Awaitable[RunningSandbox]]


def call_body(phone: str = "+14155550100", **extra: object) -> dict[str, object]:
    """A valid POST /calls body."""
    return {"phone": phone, "scenario_id": "scn_demo", **extra}


def outbound_headers(idempotency_key: str, api_key: str = DEFAULT_KEY) -> dict[str, str]:
    """Authorization plus an Idempotency-Key."""
    return {"Authorization": f"Bearer {api_key}", "Idempotency-Key": idempotency_key}


def arrivals(ledger: dict[str, Any]) -> list[tuple[str, float]]:
    """(campaign, server arrival time) of every call the sandbox's ledger holds."""
    return [
        (
            call["metadata"]["campaign"],
            datetime.fromisoformat(call["created_at"].replace("Z", "+00:00")).timestamp(),
        )
        for call in ledger["calls"]
    ]
