"""When the next work falls due: ``campaign.planning.schedule.next_due``, the one rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from campaign.config.model import CallingHours
from campaign.planning.schedule import next_due
from campaign.planning.windows import Hours, WindowBook
from campaign.store.checkpoint import RowIn, Store


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


NOON_NY = _epoch("2026-05-28T16:00:00Z")  # a Thursday, 12:00 in New York
LATE_NY = _epoch("2026-05-28T23:58:00Z")  # 19:58 in New York
NINE_NEXT_DAY_NY = _epoch("2026-05-29T13:00:00Z")  # 09:00 in New York
DUE_NOW = "rows are due now"
HOURS = CallingHours(start="09:00", end="20:00")
FIVE_MIN = 300.0


def _row(i: int) -> RowIn:
    phone = f"+1212555{100 + i:04d}"
    return RowIn(
        line=i + 2,
        row_key=f"K{i}",
        raw_phone=phone,
        e164=phone,
        plan_state="callable",
        timezones=["America/New_York"],
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "c.sqlite")
    opened.sync_rows([_row(i) for i in range(3)], NOON_NY)
    try:
        yield opened
    finally:
        opened.close()


def _due(
    store: Store, now: float, hours: Hours = HOURS, **kw: object
) -> tuple[float | None, str | None]:
    return next_due(store, WindowBook(hours).window_for, now, margin_s=FIVE_MIN, **kw)  # type: ignore[arg-type]


def test_pending_rows_inside_their_window_are_due_now_not_at_the_next_retry(store: Store) -> None:
    # An early stop (--max-duration) leaves rows pending beside a retry 4 h away.
    store.set_row_progress("K0", "retry_scheduled", next_due=NOON_NY + 4 * 3600)
    assert _due(store, NOON_NY) == (NOON_NY, DUE_NOW)


def test_a_finished_list_with_a_retry_left_is_due_at_the_retry(store: Store) -> None:
    store.set_row_progress("K0", "retry_scheduled", next_due=NOON_NY + 4 * 3600)
    store.set_row_progress("K1", "done")
    store.set_row_progress("K2", "done")
    assert _due(store, NOON_NY) == (NOON_NY + 4 * 3600, "retry")


def test_pending_rows_inside_the_stop_before_close_margin_wait_for_the_next_window(
    store: Store,
) -> None:
    # 19:58 with a window closing at 20:00 and stop_before_close 5 min: not now.
    assert _due(store, LATE_NY) == (NINE_NEXT_DAY_NY, "calling window opens")


def test_rows_no_batch_took_are_due_when_their_next_window_opens(store: Store) -> None:
    assert _due(store, NOON_NY, tried_now=True) == (NINE_NEXT_DAY_NY, "calling window opens")


def test_rows_no_batch_took_without_calling_hours_are_due_now(store: Store) -> None:
    assert _due(store, NOON_NY, "unrestricted", tried_now=True) == (NOON_NY, DUE_NOW)


def test_nothing_waiting_means_nothing_due(store: Store) -> None:
    for key in ("K0", "K1", "K2"):
        store.set_row_progress(key, "done")
    assert _due(store, NOON_NY) == (None, None)
