"""Batches-mode test platform: the sandbox, a client and a checkpoint on one fake clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from campaign.api import AitelierClient, RetryPolicy
from campaign.clock import FakeClock
from campaign.config.limit import Limit
from campaign.config.model import RetryConfig
from campaign.engine.api import BatchesApi
from campaign.engine.batches.loop import BatchesEngine, BatchSettings, CallReservations
from campaign.engine.frame import EngineDeps, EngineSettings
from campaign.engine.gate import SendGate
from campaign.planning.windows import Hours, WindowBook
from campaign.sandbox import DEFAULT_KEY, RunningSandbox, SandboxConfig, start_sandbox
from campaign.sandbox.faults import parse_faults
from campaign.store.checkpoint import RowIn, Store
from campaign.store.optout import OptOutList

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z = 16:26:40 in New York
NEW_YORK = ["America/New_York"]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def open_store(path: Path) -> Store:
    return Store.open(path)


def rows(
    count: int, *, prefix: str = "+1415555", timezones: list[str] | None = None
) -> list[RowIn]:
    return [
        RowIn(
            line=i + 2,
            row_key=f"cust-{i:04d}",
            raw_phone=f"{prefix}{i:04d}",
            e164=f"{prefix}{i:04d}",
            plan_state="callable",
            variables={"first_name": f"N{i}", "phone": "+44 20 7946 0958"},
            timezones=timezones or NEW_YORK,
        )
        for i in range(count)
    ]


class Platform:
    """A sandbox, a client and a checkpoint sharing one fake clock."""

    def __init__(
        self, sandbox: RunningSandbox, client: AitelierClient, clock: FakeClock, tmp: Path
    ):
        self.sandbox, self.client, self.clock, self.tmp = sandbox, client, clock, tmp

    def engine(
        self,
        store: Store,
        *,
        hours: Hours = "unrestricted",
        max_rows: int = 10,
        deadline: float | None = None,
        client: BatchesApi | None = None,
        calls_per_min: int = 60,
        stop: asyncio.Event | None = None,
        gate: SendGate | None = None,
        scenario_id: str = "scn_demo",
        allowance: CallReservations | None = None,
    ) -> BatchesEngine:
        settings = EngineSettings(
            campaign="spring",
            scenario_id=scenario_id,
            retry=RetryConfig.model_validate({"max_attempts": 2, "min_interval": "10min"}),
            call_limits=[Limit(calls_per_min, 60)],
            request_limits=[Limit(600, 60), Limit(10_000, 3600)],
            deadline=deadline,
            fetch_sessions=False,
        )
        deps: EngineDeps[BatchesApi] = EngineDeps(
            store=store,
            client=client or self.client,
            clock=self.clock,
            settings=settings,
            window_for=WindowBook(hours).window_for,
            opt_outs=OptOutList(self.tmp),
            stop=stop or asyncio.Event(),
            gate=gate,
        )
        batch = BatchSettings(variables=["first_name", "phone"], max_rows=max_rows)
        return BatchesEngine(deps, batch=batch, allowance=allowance)

    def ledger(self) -> dict[str, Any]:
        return self.sandbox.ledger()


async def _platform(
    tmp: Path, start: float, outbound: str, **extra: Any
) -> AsyncIterator[Platform]:
    clock = FakeClock(start)
    config = SandboxConfig(
        ledger=True, time_scale=0.05, outbound_calls=outbound,
        requests_per_minute="600/min", requests_per_hour="10000/h", **extra,
    )  # fmt: skip
    sandbox = await start_sandbox(config, clock=clock)
    async with AitelierClient(
        sandbox.base_url, DEFAULT_KEY, clock=clock, retry=RetryPolicy(rng=lambda: 0.0)
    ) as client:
        yield Platform(sandbox, client, clock, tmp)
    await sandbox.close()


def assert_exactly_once(store: Store, ledger: dict[str, Any]) -> None:
    """Every attempt that reached a batch was dialed at most once; no row twice per attempt."""
    seen: Counter[str] = Counter()
    for batch in store.stored_batches():
        for member in store.batch_members(batch.seq):
            seen[member.attempt_key] += 1
    assert all(n == 1 for n in seen.values())
    dials = Counter((c["batch_id"], c["phone"]) for c in ledger["calls"])
    assert all(n == 1 for n in dials.values()), dials.most_common(3)
    attempts = {a.idempotency_key: a for a in store.attempts()}
    per_attempt = Counter(
        attempts[m.attempt_key].row_key + f"#{attempts[m.attempt_key].number}"
        for b in store.stored_batches()
        for m in store.batch_members(b.seq)
    )
    assert all(n == 1 for n in per_attempt.values())


FAULTS = "ambiguous@0.4,GET /v1/batches/*=proxy_503@0.1"


async def _faulty_platform(tmp: Path, seed: int, faults: str = FAULTS) -> AsyncIterator[Platform]:
    clock = FakeClock(T0)
    config = SandboxConfig(
        ledger=True, time_scale=0.05, outbound_calls="60/min",
        requests_per_minute="600/min", requests_per_hour="10000/h",
        faults=parse_faults(faults), fault_seed=seed,
    )  # fmt: skip
    sandbox = await start_sandbox(config, clock=clock)
    async with AitelierClient(
        sandbox.base_url, DEFAULT_KEY, clock=clock, retry=RetryPolicy(rng=lambda: 0.0)
    ) as client:
        yield Platform(sandbox, client, clock, tmp)
    await sandbox.close()
