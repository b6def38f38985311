"""The nightly sync streams: it never holds more than a chunk of planned rows.

Planned rows come from a generator that, each time it is asked for a row, checks how many
rows it has handed out that the checkpoint does not hold yet: never more than a chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import campaign.store.checkpoint as checkpoint
from campaign.store.checkpoint import RowIn, Store

T0 = 1_780_000_000.0
CHUNK = 50


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setattr(checkpoint, "_SYNC_CHUNK", CHUNK)
    opened = Store.snapshot(None)
    yield opened
    opened.close()


def _row(i: int, state: str = "callable", key: str | None = None) -> RowIn:
    number = f"+1212555{i:04d}"
    return RowIn(
        line=i + 2, row_key=key or f"k{i}", raw_phone=number, e164=number, plan_state=state
    )


def _watched(rows: list[RowIn], held: list[int], count_held: object) -> Iterator[RowIn]:
    for handed, row in enumerate(rows):
        assert callable(count_held)
        held.append(handed - count_held())
        yield row


def test_the_sync_holds_at_most_a_chunk_of_planned_rows(store: Store) -> None:
    rows = [_row(i) for i in range(500)]
    held: list[int] = []

    def in_checkpoint() -> int:
        return int(store.db.execute("SELECT count(*) FROM rows").fetchone()[0])

    summary = store.sync_rows(_watched(rows, held, in_checkpoint), T0)
    assert summary.new == 500 and len(store.rows()) == 500
    assert max(held) == CHUNK - 1  # a whole chunk is read before it is written, no more
    # The next night: every row known, still a chunk at a time.
    held.clear()
    summary = store.sync_rows(_watched(rows[:400], held, lambda: 0), T0 + 86_400)
    assert (summary.new, summary.known, summary.vanished) == (0, 400, 100)


def test_staging_holds_at_most_a_chunk_of_planned_rows(store: Store) -> None:
    rows = [_row(i) for i in range(300)]
    held: list[int] = []

    def staged() -> int:
        found = store.db.execute(
            "SELECT count(*) FROM sqlite_temp_master WHERE name = 'staged'"
        ).fetchone()[0]
        if not found:
            return 0
        return int(store.db.execute("SELECT count(*) FROM temp.staged").fetchone()[0])

    assert store.stage_rows(_watched(rows, held, staged)) == 300
    assert max(held) == CHUNK - 1
    summary = store.sync_staged(T0)
    assert summary.new == 300


def test_staged_rows_get_the_ids_the_in_memory_plan_gives(store: Store) -> None:
    # A rejected row whose key a later callable row owns, a duplicate under a key already
    # taken by an earlier rejected row, and a lone rejected row keeping its key.
    rows = [
        _row(0, "rejected", key="A"),
        _row(1, "callable", key="A"),
        _row(2, "rejected", key="B"),
        _row(3, "duplicate", key="B"),
        _row(4, "rejected", key="C"),
    ]
    store.stage_rows(iter(rows))
    store.sync_staged(T0)
    got = {(row.row_key, row.label) for row in store.rows()}
    assert got == {("line:2:A", "A"), ("A", "A"), ("B", "B"), ("line:5:B", "B"), ("C", "C")}
