"""Pre-flight counts rows callable now and later by SQL per window group, as a count over
every row would."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from campaign.config.model import CallingHours
from campaign.engine.preflight import rows_now_and_later, rows_to_do
from campaign.planning.windows import WindowBook
from campaign.store.checkpoint import RowIn, Store

# 17:00 UTC: 13:00 in New York (open), 02:00 in Tokyo (closed).
NOW = datetime(2026, 6, 2, 17, 0, tzinfo=UTC).timestamp()
ZONES = [["America/New_York"], ["Asia/Tokyo"], ["America/New_York", "Asia/Tokyo"]]


def test_preflight_counts_agree_with_a_count_over_every_row(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "c.sqlite")
    store.claim_identity("c")
    store.sync_rows(
        [
            RowIn(i + 2, f"k{i}", "+1", f"+1212555{i:04d}", "callable", timezones=ZONES[i % 3])
            for i in range(60)
        ],
        NOW - 86_400,
    )
    for i in range(0, 60, 4):
        store.set_row_progress(f"k{i}", "retry_scheduled", next_due=NOW + (i % 8 - 4) * 600)
    for i in range(1, 60, 10):
        store.set_row_progress(f"k{i}", "done")
    store.block_row("k2", plan_state="suppressed", reason="opted out")
    book = WindowBook(CallingHours())
    now = later = 0
    for row in store.rows(include_vanished=False):
        if row.progress not in ("pending", "retry_scheduled"):
            continue
        due = row.progress == "pending" or (row.next_due or 0) <= NOW
        if due and book.window_for(row).is_open(NOW):
            now += 1
        else:
            later += 1
    assert now > 0 and later > 0
    assert rows_now_and_later(store, book.window_for, NOW) == (now, later)
    assert rows_to_do(store) == now + later
    store.close()
