"""Outcome collection: the retry decision table, polling by page, the watermark, opt-outs."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engine import FakeApi

from campaign.clock import FakeClock
from campaign.config.model import RetryConfig
from campaign.engine.attempts import call_body, idempotency_key
from campaign.engine.calls.collect import WATERMARK_KEY, poll_once
from campaign.engine.outcomes import decide, fetch_sessions
from campaign.store.checkpoint import CallEnd, RowIn, Store
from campaign.store.optout import OptOutList

T0 = 1_780_000_000.0
RETRY = RetryConfig(min_interval="4h", max_attempts=3)


@pytest.mark.parametrize(
    ("end", "used", "progress", "due", "void"),
    [
        (CallEnd("completed", outcome="goal_achieved"), 1, "done", None, False),
        (CallEnd("completed", outcome="opted_out"), 1, "done", None, False),
        (CallEnd("no_answer", ended_at=T0), 1, "retry_scheduled", T0 + 4 * 3600, False),
        (CallEnd("busy", ended_at=T0), 2, "retry_scheduled", T0 + 4 * 3600, False),
        (CallEnd("busy", ended_at=T0), 3, "failed", None, False),
        (CallEnd("voicemail"), 1, "done", None, False),
        (CallEnd("failed", failure_reason="invalid_number"), 1, "failed", None, False),
        (CallEnd("failed", failure_reason="insufficient_funds"), 1, "pending", None, True),
        (CallEnd("canceled"), 1, "failed", None, False),
    ],
)
def test_decision_table(
    end: CallEnd, used: int, progress: str, due: float | None, void: bool
) -> None:
    decision = decide(end, used, RETRY, now=T0)
    assert (decision.progress, decision.next_due, decision.void) == (progress, due, void)


def _store_with_sent(tmp_path: Path, api: FakeApi, phones: list[str]) -> Store:
    store = Store.open(tmp_path / "c.sqlite")
    store.sync_rows(
        [
            RowIn(line=i, row_key=p, raw_phone=p, e164=p, plan_state="callable")
            for i, p in enumerate(phones)
        ],
        T0,
    )
    return store


async def _place(store: Store, api: FakeApi, phone: str, clock: FakeClock) -> str:
    body = call_body(
        campaign="c", scenario_id="s", row_key=phone, number=1, phone=phone, variables={}
    )
    key = idempotency_key("c", phone, 1)
    store.begin_attempt(phone, 1, key, body, clock.now())
    call = await api.create_call(body, key)
    store.mark_sent(key, call.id, call.status, clock.now())
    return key


async def test_one_page_request_covers_many_calls_and_the_watermark_advances(
    tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    phones = [f"+1212555{n:04d}" for n in range(150)]
    api = FakeApi(clock, scripts={p: [("completed", "opted_out", None)] for p in phones[:1]})
    store = _store_with_sent(tmp_path, api, phones)
    for phone in phones:
        await _place(store, api, phone, clock)
    clock.advance(60)
    opt_outs = OptOutList(tmp_path)
    result = await poll_once(
        store,
        api,
        campaign="c",
        retry=RETRY,
        opt_outs=opt_outs,
        now=clock.now(),
        default_since=T0 - 300,
    )
    assert result.pages == 2 and result.ended == 150
    assert store.count_attempts("ended") == 150
    assert opt_outs.numbers() == [phones[0]]
    watermark = store.get_meta(WATERMARK_KEY)
    again = await poll_once(
        store, api, campaign="c", retry=RETRY, opt_outs=opt_outs, now=clock.now(), default_since=T0
    )
    assert store.get_meta(WATERMARK_KEY) == watermark
    assert again.ended == 0, "calls already folded in are not counted twice"


async def test_a_sending_attempt_found_in_the_list_is_recorded_as_sent(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    api = FakeApi(clock, duration_s=1000)
    phone = "+12125550100"
    store = _store_with_sent(tmp_path, api, [phone])
    body = call_body(
        campaign="c", scenario_id="s", row_key=phone, number=1, phone=phone, variables={}
    )
    key = idempotency_key("c", phone, 1)
    store.begin_attempt(phone, 1, key, body, clock.now())
    await api.create_call(body, key)  # the response was "lost": the store never heard of it
    await poll_once(
        store,
        api,
        campaign="c",
        retry=RETRY,
        opt_outs=OptOutList(tmp_path),
        now=T0,
        default_since=T0 - 300,
    )
    attempt = store.attempt(key)
    assert attempt.state == "sent" and attempt.call_id == "call_1"


async def test_sessions_are_fetched_once_for_completed_calls(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    api = FakeApi(clock)
    phones = ["+12125550100", "+12125550101"]
    store = _store_with_sent(tmp_path, api, phones)
    for phone in phones:
        await _place(store, api, phone, clock)
    clock.advance(60)
    await poll_once(
        store,
        api,
        campaign="c",
        retry=RETRY,
        opt_outs=OptOutList(tmp_path),
        now=clock.now(),
        default_since=T0,
    )
    gets = api.gets
    assert await fetch_sessions(store, api) == 2
    assert await fetch_sessions(store, api) == 0
    assert api.gets == gets + 2
    assert {a.cost for a in store.attempts()} == {"0.11"}
