"""The send ledgers: in memory, the shared file and PostgreSQL behave as one interface."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign.config.limit import Limit
from campaign.limits import MemoryLedger, SendLedger, SqliteLedger
from campaign.limits.allowance import AllowanceLedger
from campaign.store.allowance import Participant
from campaign.store.place import StatePlace

T0 = 1_780_000_000.0

LedgerFactory = Callable[[], SendLedger]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def open_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerFactory]:
    """Open ledgers on one allowance: the same object in memory, a connection each on file
    or in the state database."""
    opened: list[SendLedger] = []
    memory = MemoryLedger()
    if request.param == "postgresql":
        place = StatePlace(tmp_path, "any", request.getfixturevalue("pg_url"))
        where = place.allowance("https://api.example/v1", "avp_test_key")

    def factory() -> SendLedger:
        ledger: SendLedger
        if request.param == "memory":
            ledger = memory
        elif request.param == "sqlite":
            ledger = SqliteLedger(tmp_path / "a.sqlite")
        else:
            ledger = AllowanceLedger(where.open())
        opened.append(ledger)
        return ledger

    yield factory
    for ledger in opened:
        ledger.close()


def row(name: str, **fields: Any) -> Participant:
    base = Participant(
        name=name, host=socket.gethostname(), pid=os.getpid(), priority=1.0, requests=(),
        calls=(Limit(5, 60.0),), joined=T0, heartbeat=T0, vtime=0.0, waiting=0, ready_at=None,
        call_due=None, last_call=None, calls_sent=0, requests_sent=0, state="active",
    )  # fmt: skip
    return dataclasses.replace(base, **fields)


def test_sends_calls_releases_and_reservations_are_counted_alike(
    open_ledger: LedgerFactory,
) -> None:
    ledger = open_ledger()
    with ledger.transaction():
        ledger.record_send("spring", T0, "request")
        ledger.record_send("spring", T0 + 1, "call")
        ledger.record_send("spring", T0 + 2, "call")
        ledger.release_call("spring", T0 + 2)  # a replay: its request stays
        ledger.reserve_calls("bulk", [T0 + 30, T0 + 90])  # platform dials, one in the future
        sends = ledger.sends(T0 - 60)
        assert list(sends.requests) == [T0, T0 + 1, T0 + 2]
        assert list(sends.calls) == [T0 + 1, T0 + 30, T0 + 90]
        assert ledger.count_sends("spring", T0 + 1, "call") == 1
        assert ledger.count_sends("spring", T0 + 1, "request") == 0
        assert ledger.count_sends("winback", T0 + 1, "call") == 0


def test_a_second_connection_sees_the_first_ones_sends(open_ledger: LedgerFactory) -> None:
    first, second = open_ledger(), open_ledger()
    with second.transaction():
        assert list(second.sends(T0 - 60).calls) == []
    with first.transaction():
        first.record_send("spring", T0, "call")
        first.record_send("spring", T0, "call")  # two sends at one instant are two
    with second.transaction():
        assert list(second.sends(T0 - 60).calls) == [T0, T0]
        second.release_call("winback", T0)
    with first.transaction():
        assert list(first.sends(T0 - 60).calls) == [T0]
    # A longer horizon than the one read so far (a campaign with an hourly limit joined).
    with first.transaction():
        first.record_send("spring", T0 - 1800, "request")
    with second.transaction():
        recent = second.sends(T0 - 60).requests  # older ones may come too (memory has all)
        assert [t for t in recent if t > T0 - 60] == [T0, T0]
        assert list(second.sends(T0 - 3600).requests) == [T0 - 1800, T0, T0]


def test_pruning_forgets_old_sends_and_long_gone_participants(open_ledger: LedgerFactory) -> None:
    ledger = open_ledger()
    with ledger.transaction():
        ledger.record_send("spring", T0 - 7200, "call")
        ledger.record_send("spring", T0, "call")
        ledger.put_participant(row("spring"))
        ledger.put_participant(row("gone", heartbeat=T0 - 8 * 86400))
        ledger.prune(T0 - 3600, T0 - 7 * 86400)
    with ledger.transaction():
        assert list(ledger.sends(T0 - 9000).calls) == [T0]
        assert [p.name for p in ledger.participants()] == ["spring"]


def test_a_participant_row_is_replaced_whole(open_ledger: LedgerFactory) -> None:
    first, second = open_ledger(), open_ledger()
    with first.transaction():
        first.put_participant(row("spring", calls=(Limit(5, 60.0), Limit(100, 3600.0))))
        first.put_participant(row("spring", vtime=2.5, waiting=2, ready_at=T0, state="idle"))
    with second.transaction():
        (spring,) = second.participants()
    assert (spring.vtime, spring.waiting, spring.ready_at, spring.state) == (2.5, 2, T0, "idle")
    assert spring.calls == (Limit(5, 60.0),)
