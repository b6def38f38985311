"""The nightly sync streams: it never holds more than a chunk of planned rows.

Planned rows come from a generator that, each time it is asked for a row, checks how many
rows it has handed out that the checkpoint does not hold yet: never more than a chunk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import campaign.store.checkpoint as checkpoint
from campaign.store.checkpoint import RowIn, Store, encode_variables

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


def test_the_first_sync_of_an_empty_checkpoint_writes_what_the_merge_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Keys shared by callable and refused rows, refused rows sharing a key, and rows with
    # no number: every id rule of the staged rows, written in one statement.
    rows = [
        _row(0),
        _row(1, "rejected", key="k0"),
        _row(2, "duplicate", key="k9"),
        _row(3, "suppressed", key="k9"),
        _row(4, "rejected", key="k4"),
        _row(5),
        _row(6, "duplicate", key="k5"),
        _row(7, "rejected", key="k7"),
        _row(8, "callable", key="k7"),
    ]
    results = []
    for fast in (True, False):
        store = Store.snapshot(None)
        if not fast:  # the merge, as for a checkpoint that already holds rows
            monkeypatch.setattr(store, "_first_sync", None)
            monkeypatch.setattr(
                store, "_conn", _NotEmpty(store._conn)
            )  # the emptiness check answers "not empty"
        store.stage_rows(iter(rows))
        summary = store.sync_staged(T0, meta={"m": "1"})
        got = store._conn.execute("SELECT * FROM rows ORDER BY row_key").fetchall()
        results.append((summary, [tuple(r) for r in got], store.get_meta("m")))
        store.close()
    assert results[0] == results[1]
    assert results[0][0].new == len(rows)


class _NotEmpty:
    """A connection whose emptiness check of ``rows`` says it holds rows."""

    def __init__(self, conn: object) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: object) -> object:
        if sql.startswith("SELECT NOT EXISTS (SELECT 1 FROM rows)"):
            return self._conn.execute("SELECT 0")  # type: ignore[attr-defined]
        return self._conn.execute(sql, *args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


@given(
    st.dictionaries(
        st.text(),
        st.one_of(st.text(), st.none(), st.integers(), st.floats(allow_nan=False)),
        max_size=6,
    )
)
def test_variables_are_encoded_as_json_dumps_with_sorted_keys_encodes_them(
    variables: dict[str, object],
) -> None:
    # the checkpoint's bytes must not depend on which way a row was staged
    assert encode_variables(variables) == json.dumps(variables, sort_keys=True)
