"""The client against the sandbox over real sockets: every endpoint, typed results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal

import pytest

from campaign.api import AitelierClient, RetryPolicy, call_request_body
from campaign.clock import FakeClock
from campaign.config.limit import Limit
from campaign.errors import ConfigError, NotFoundError
from campaign.limits import SlidingWindowLimiter
from campaign.sandbox import (
    DEFAULT_KEY,
    DEFAULT_PROJECT,
    SandboxConfig,
    parse_faults,
    start_sandbox,
)

T0 = 1_780_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    # One fake clock for the client and the sandbox: the client's waits move platform time.
    return FakeClock(T0)


SESSION_PHONE = "+14155550111"  # scripted to complete, so its call always has a session


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[AitelierClient]:
    config = SandboxConfig(
        ledger=True,
        time_scale=1.0,
        requests_per_minute="1000/min",
        requests_per_hour="10000/h",
        outbound_calls="100/min",
        scripted_outcomes={SESSION_PHONE: ["completed:goal_achieved"]},
    )
    sandbox = await start_sandbox(config, clock=clock)
    retry = RetryPolicy(rng=lambda: 0.0)
    async with AitelierClient(sandbox.base_url, DEFAULT_KEY, clock=clock, retry=retry) as api:
        yield api
    await sandbox.close()


def body_for(phone: str, row_key: str) -> bytes:
    return call_request_body(
        phone=phone,
        scenario_id="scn_demo",
        variables={"first_name": "Ana"},
        metadata={"row_key": row_key},
    )


async def test_calls_create_get_list_and_iterate(client: AitelierClient, clock: FakeClock) -> None:
    created = [
        await client.create_call(body_for(f"+1415555010{i}", f"r{i}"), f"spring:r{i}:1")
        for i in range(3)
    ]
    assert created[0].status == "queued" and created[0].metadata == {"row_key": "r0"}
    assert created[0].variables == {"first_name": "Ana"}
    fetched = await client.get_call(created[0].id)
    assert fetched.id == created[0].id and fetched.phone == "+14155550100"
    page = await client.list_calls(limit=2, since=date(2000, 1, 1))
    assert len(page.data) == 2 and page.next_cursor
    every = [call.id async for call in client.iter_calls(limit=1)]
    assert sorted(every) == sorted(call.id for call in created)  # same created_at: by id
    queued = await client.list_calls(status=["queued", "dialing"])
    assert {call.id for call in queued.data} <= {call.id for call in created}


async def test_a_finished_call_has_a_session_transcript_and_recording(
    client: AitelierClient, clock: FakeClock
) -> None:
    call = await client.create_call(body_for(SESSION_PHONE, "s1"), "spring:s1:1")
    for _ in range(60):
        clock.advance(30)
        call = await client.get_call(call.id)
        if call.is_terminal and call.session_id:
            break
    assert call.status == "completed" and call.session_id is not None
    assert call.session is not None and call.session.id == call.session_id
    session = await client.get_session(call.session_id)
    assert session.call_id == call.id and isinstance(session.costs.amount, Decimal)
    sessions = [s.id async for s in client.iter_sessions(since=date(2000, 1, 1), limit=1)]
    assert call.session_id in sessions
    transcript = await client.get_transcript(call.session_id)
    assert transcript.session_id == call.session_id
    recording = await client.get_recording(call.session_id)
    assert recording.url.startswith("https://") and recording.expires_at.tzinfo is not None


async def test_batches_create_get_and_rows(client: AitelierClient) -> None:
    csv = (
        b"phone,row_ref,plan\n+14155550120,c-1,gold\nnot-a-phone,c-2,silver\n\n+14155550121,c-3,\n"
    )
    batch = await client.create_batch(
        csv, scenario_id="scn_demo", idempotency_key="spring:batch:1", name="spring"
    )
    assert batch.id.startswith("bat_") and batch.name == "spring"
    again = await client.get_batch(batch.id)
    assert again.progress.total == 3
    rows = [row async for row in client.iter_batch_rows(batch.id, limit=1)]
    assert [row.row_ref for row in rows] == ["c-1", "c-2", "c-3"]
    assert rows[1].status == "invalid" and rows[1].error is not None
    page = await client.list_batch_rows(batch.id, limit=2)
    assert len(page.data) == 2 and page.next_cursor


async def test_webhooks_crud_and_fanout(client: AitelierClient, clock: FakeClock) -> None:
    created = await client.create_webhook(
        "https://hooks.example.org/aitelier", ["call.completed"], description="ops"
    )
    assert created.secret and created.secret.startswith("whsec_")
    listed = await client.list_webhooks()
    assert [w.id for w in listed] == [created.id] and listed[0].secret is None
    updated = await client.update_webhook(created.id, active=False, events=["call.failed"])
    assert updated.active is False and updated.events == ("call.failed",)
    # Relayed to the project's sessions in progress: none yet, then the one call talking.
    assert await client.fanout_webhook(DEFAULT_PROJECT, "crm", {"event": "ping"}) == 0
    call = await client.create_call(body_for(SESSION_PHONE, "w1"), "spring:w1:1")
    while call.status != "in_progress":
        assert not call.is_terminal, call.status
        clock.advance(0.5)
        call = await client.get_call(call.id)
    assert await client.fanout_webhook(DEFAULT_PROJECT, "crm", {"event": "ping"}) == 1
    await client.delete_webhook(created.id)
    assert await client.list_webhooks() == []
    with pytest.raises(NotFoundError):
        await client.delete_webhook(created.id)


async def test_knowledge_base(client: AitelierClient) -> None:
    job = await client.knowledge_crawl("https://www.example.org/faq")
    assert job.id.startswith("crawl_") and job.status == "queued"
    uploaded = await client.upload_knowledge_file("faq.txt", b"Opening hours: 9-17\n")
    assert uploaded.filename == "faq.txt" and uploaded.bytes == 20
    assert [f.id for f in await client.list_knowledge_files()] == [uploaded.id]
    await client.delete_knowledge_file(uploaded.id)
    assert await client.list_knowledge_files() == []


async def test_usage_wallet_invoices(client: AitelierClient) -> None:
    wallet = await client.get_wallet()
    assert wallet.balance == Decimal("250.00") and wallet.currency == "USD"
    usage = await client.get_usage("2026-05")
    assert usage.period == "2026-05" and isinstance(usage.minutes, Decimal)
    invoices = await client.list_invoices()
    assert all(isinstance(invoice.amount, Decimal) for invoice in invoices)


async def test_on_send_reports_every_send_with_its_kind(clock: FakeClock) -> None:
    sent: list[tuple[str, float]] = []
    async with await start_sandbox(SandboxConfig(), clock=clock) as sandbox:
        limits = SlidingWindowLimiter([Limit(60, 60)], [Limit(5, 60)], clock=clock)
        async with AitelierClient(
            sandbox.base_url, DEFAULT_KEY, clock=clock, limits=limits,
            on_send=lambda kind, t: sent.append((kind, t)),
        ) as api:  # fmt: skip
            await api.create_call(body_for("+14155550130", "o1"), "spring:o1:1")
            await api.get_wallet()
    assert sent == [("call", T0), ("request", T0)]


class RecordingLimiter:
    """A ``campaign.api.Limiter`` that grants every slot at once and notes what it is told."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.events: list[tuple[str, float]] = []
        self.header_limits: list[int | None] = []

    async def acquire_request(self) -> float:
        self.events.append(("request", self.clock.now()))
        return self.clock.now()

    async def acquire_call(self) -> float:
        self.events.append(("call", self.clock.now()))
        return self.clock.now()

    def release_call(self, sent_at: float) -> None:
        self.events.append(("release", sent_at))

    def observe_headers(
        self,
        remaining: int | None,
        reset: datetime | None,
        *,
        sent_at: float | None = None,
        limit: int | None = None,
    ) -> None:
        assert remaining is not None and reset is not None and sent_at is not None
        self.events.append(("headers", sent_at))
        self.header_limits.append(limit)


async def test_every_send_goes_through_the_limiter_it_is_given(clock: FakeClock) -> None:
    limiter = RecordingLimiter(clock)
    config = SandboxConfig(requests_per_minute="7/min")
    async with (
        await start_sandbox(config, clock=clock) as sandbox,
        AitelierClient(sandbox.base_url, DEFAULT_KEY, clock=clock, limits=limiter) as api,
    ):
        await api.create_call(body_for("+14155550140", "l1"), "spring:l1:1")
        clock.advance(1)
        await api.create_call(body_for("+14155550140", "l1"), "spring:l1:1")  # a replay
        clock.advance(1)
        await api.get_wallet()
    assert limiter.events == [
        ("call", T0), ("headers", T0),
        # the server created no call for the replay: its call slot is given back
        ("call", T0 + 1), ("headers", T0 + 1), ("release", T0 + 1),
        ("request", T0 + 2), ("headers", T0 + 2),
    ]  # fmt: skip
    assert limiter.header_limits == [7, 7, 7]  # the key's requests per minute


@pytest.mark.parametrize(
    "base_url",
    ["http://api.aitelier.org/v1", "ftp://127.0.0.1/v1", "http://10.0.0.1/v1", "api.aitelier.org"],
)
def test_plain_http_only_to_loopback(base_url: str) -> None:
    with pytest.raises(ConfigError, match="https"):
        AitelierClient(base_url, DEFAULT_KEY)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://api.aitelier.org/v1",
        "http://127.0.0.1:8787/v1",
        "http://127.5.6.7/v1",
        "http://localhost:1/v1",
        "http://[::1]:8787/v1",
    ],
)
def test_https_and_loopback_are_accepted(base_url: str) -> None:
    assert base_url.split("://")[1].split("/")[0] in repr(AitelierClient(base_url, DEFAULT_KEY))


@pytest.mark.parametrize("key", ["", " padded", "x" * 256, "line\nbreak", "ключ"])
async def test_a_malformed_idempotency_key_is_refused_before_sending(
    client: AitelierClient, key: str
) -> None:
    with pytest.raises(ValueError, match="Idempotency-Key"):
        await client.create_call(body_for("+14155550140", "bad"), key)
    assert (await client.list_calls()).data == ()


async def test_create_call_tells_a_replay_from_a_new_call(client: AitelierClient) -> None:
    first = await client.create_call(body_for("+14155550150", "p1"), "spring:p1:1")
    assert (first.replayed, first.tries) == (False, 1)
    # The same key again (a re-send after a crash, or another checkpoint's key): a replay.
    again = await client.create_call(body_for("+14155550150", "p1"), "spring:p1:1")
    assert again.id == first.id and (again.replayed, again.tries) == (True, 1)
    fetched = await client.get_call(first.id)  # only create_call fills them in
    assert (fetched.replayed, fetched.tries) == (False, 1)


@pytest.mark.parametrize("fault", ["error_after", "reset_after"])
async def test_a_call_whose_answer_was_lost_comes_back_as_a_replay_on_the_second_try(
    clock: FakeClock, fault: str
) -> None:
    config = SandboxConfig(ledger=True, faults=parse_faults(f"POST /v1/calls={fault};max=1"))
    async with await start_sandbox(config, clock=clock) as sandbox:
        retry = RetryPolicy(rng=lambda: 0.0)
        async with AitelierClient(sandbox.base_url, DEFAULT_KEY, clock=clock, retry=retry) as api:
            call = await api.create_call(body_for("+14155550151", "p2"), "spring:p2:1")
        assert [c["id"] for c in sandbox.ledger()["calls"]] == [call.id]
    # Our own first try created it: replayed, but in this invocation (tries > 1).
    assert (call.replayed, call.tries) == (True, 2)
