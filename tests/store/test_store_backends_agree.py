"""The PostgreSQL checkpoint does what the SQLite one does: the same nights of planned rows
and days of calls, applied to both, leave the same rows, attempts, queue and results.

The store writes one SQL for both (store/postgres.py translates it), so what this catches
is where the two databases read that SQL differently: NULL ordering, text collation,
types (a Unix time in a 4-byte REAL), integer division, a bool where an integer goes.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_store_sync import NIGHT, T0, _a_day_of_calls, calls, planned_row

from campaign.errors import StateError
from campaign.store.checkpoint import RowIn, Store
from campaign.store.schema import pg_migrations

_names = itertools.count()


def _both(url: str) -> tuple[Store, Store]:
    name = f"agree-{next(_names)}"
    sqlite, pg = Store.snapshot(None), Store.open_postgres(url, name)
    for store in (sqlite, pg):
        store.claim_identity(name)
    return sqlite, pg


def _seen(store: Store, now: float) -> tuple[object, ...]:
    return (
        store.rows(),
        sorted(store.attempts(), key=lambda a: a.idempotency_key),
        list(store.result_cells(["line"])),
        list(store.last_attempt_cells()),
        sorted(store.row_counts()),
        sorted(store.group_counts(now)),
        store.due_groups(now),
        store.due_rows([(0.0, g) for g in store.due_groups(now)], now, limit=50),
        store.soonest_retry(),
        sorted(store.attempt_counts()),
        store.call_facts(),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.lists(planned_row, max_size=6), calls), min_size=1, max_size=4))
def test_both_backends_keep_the_same_checkpoint_night_after_night(
    pg_url: str, nights: list[tuple[list[RowIn], list[tuple[str, str]]]]
) -> None:
    sqlite, pg = _both(pg_url)
    try:
        for night, (drawn, day) in enumerate(nights):
            now = T0 + night * NIGHT
            # a file's lines are its own: one row a line (rows that share one have no order)
            planned = [replace(row, line=line) for line, row in enumerate(drawn, start=2)]
            if night == 0:  # the first sync of an empty checkpoint: one INSERT … SELECT
                for store in (sqlite, pg):
                    store.stage_rows(iter(planned))
                assert sqlite.sync_staged(now) == pg.sync_staged(now)
            else:
                assert sqlite.sync_rows(planned, now) == pg.sync_rows(planned, now)
            assert _seen(sqlite, now) == _seen(pg, now)
            for store in (sqlite, pg):
                _a_day_of_calls(store, day, now + 3600)
            assert _seen(sqlite, now + 7200) == _seen(pg, now + 7200)
            # the staged path (the runner's) merges as sync_rows does
            for store in (sqlite, pg):
                store.stage_rows(iter(planned))
            assert sqlite.sync_staged(now + 60) == pg.sync_staged(now + 60)
            assert _seen(sqlite, now + 60) == _seen(pg, now + 60)
    finally:
        sqlite.close()
        pg.close()


def test_times_keep_their_fractions_of_a_second_in_postgresql(pg_url: str) -> None:
    # PostgreSQL's REAL is 4 bytes: a Unix time stored in one would lose its minutes.
    store = Store.open_postgres(pg_url, "c")
    try:
        at = 1_780_000_123.456789
        store.log_sends([("call", at)])
        assert store.send_times(at - 1)[1] == [at]
    finally:
        store.close()


def test_hosts_opening_one_new_checkpoint_at_once_migrate_it_once(pg_url: str) -> None:
    # Four runs (say, on four hosts) open the same campaign's checkpoint at the same moment:
    # one applies the migrations under the lock, the others find nothing left to do.
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            Store.open_postgres(pg_url, "together").close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = Store.open_postgres(pg_url, "together")
    try:
        versions = store._conn.execute("SELECT version FROM schema_version").fetchall()
        assert [v[0] for v in versions] == list(range(1, len(pg_migrations()) + 1))
    finally:
        store.close()


def test_a_reader_never_creates_or_migrates_a_checkpoint(pg_url: str) -> None:
    with pytest.raises(StateError, match="has not run yet"):
        Store.reader_postgres(pg_url, "nobody")
    store = Store.open_postgres(pg_url, "c")
    store.sync_rows([RowIn(2, "k", "+1", "+1", "callable")], T0)
    store.close()
    reader = Store.reader_postgres(pg_url, "c")
    try:
        assert [r.row_key for r in reader.rows()] == ["k"]
        with pytest.raises(StateError, match="read-only"):
            reader.set_meta("x", "y")
    finally:
        reader.close()
