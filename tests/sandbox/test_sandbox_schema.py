"""The sandbox against docs/api/openapi.yaml, the API contract, property-based (schemathesis).

Every operation gets generated requests (valid and invalid); each response must match the
documented status codes, headers, content types and schemas, and never be a 500. Examples
per operation come from SCHEMATHESIS_MAX_EXAMPLES (small by default; ``make fuzz-sandbox``
uses 500).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from campaign.sandbox import DEFAULT_KEY, SandboxConfig, SandboxSystemClock, start_sandbox
from campaign.sandbox.validate import API_VERSION

SPEC = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.yaml"
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))

# The contract is part of the repository: without it this module fails to load (an error,
# never a skip), so a checkout that lost it cannot pass.
if not SPEC.is_file():
    pytest.fail(f"the API contract is missing: {SPEC} is not in the repository", pytrace=False)

schema = schemathesis.openapi.from_path(SPEC)


@schema.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    """Skip a malformed X-AVP-API-Version on operations that document no 400.

    The spec gives that header a pattern but lists no 4xx such an operation could answer
    (its note C14: 400 only where there is a query, body or Idempotency-Key), so no answer
    conforms; the sandbox ignores the header there and answers 400 everywhere else.
    """
    headers: dict[str, Any] = dict(case.headers or {})
    version = headers.get("X-AVP-API-Version")
    if version is None or API_VERSION.fullmatch(str(version)):
        return True
    return "400" in case.operation.definition.raw.get("responses", {})


@pytest.fixture(scope="module")
def sandbox_base_url() -> Iterator[str]:
    """A sandbox on the real clock in its own thread (schemathesis calls it synchronously)."""
    config = SandboxConfig(
        requests_per_minute="1000000/min",
        requests_per_hour="1000000/h",
        outbound_calls="1000000/min",
        time_scale=0.01,
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    urls: list[str] = []
    stop = asyncio.Event()

    async def serve() -> None:
        async with await start_sandbox(config, SandboxSystemClock()) as running:
            urls.append(running.base_url)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(timeout=30), "the sandbox did not start"
    yield urls[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=30)
    loop.close()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_sandbox_conforms_to_the_openapi_contract(
    case: schemathesis.Case[Any], sandbox_base_url: str
) -> None:
    case.call_and_validate(
        base_url=sandbox_base_url,
        headers={"Authorization": f"Bearer {DEFAULT_KEY}"},
        # The API answers an unknown route, a known path with an undeclared method included,
        # with 404 not_found, not 405 (its contract binds over generic HTTP practice).
        # A schema cannot tell a live cursor from a made-up one, nor a CSV with a phone
        # column from one without (the spec's note C21): schema-valid requests rightly get
        # 400 there.
        excluded_checks=[
            schemathesis.checks.unsupported_method,
            schemathesis.checks.positive_data_acceptance,
        ],
    )
