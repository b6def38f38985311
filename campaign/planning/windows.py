"""Glue between the plan/calling-hours modules and the engine: rows in, windows out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from campaign.clock import utc
from campaign.config.model import CallingHours, CampaignConfig
from campaign.planning.hours import CallingWindow, calling_window
from campaign.store.checkpoint import RowIn, StoredRow

if TYPE_CHECKING:
    from campaign.planning.plan import PhoneMemo, PlanCounts

Hours = CallingHours | Literal["unrestricted"] | None


class EpochWindow:
    """A CallingWindow asked in epoch seconds (the engine's clock speaks floats)."""

    def __init__(self, window: CallingWindow) -> None:
        self.window = window

    def is_open(self, at: float) -> bool:
        """True if a call may start at ``at``."""
        return self.window.is_open(utc(at))

    def closes_at(self, at: float) -> float | None:
        """When the window open at ``at`` closes."""
        return _epoch(self.window.closes_at(utc(at)))

    def next_open(self, at: float) -> float | None:
        """The first instant at or after ``at`` when the window is open."""
        return _epoch(self.window.next_open(utc(at)))

    def reason_closed(self, at: float) -> str:
        """Why a call cannot start at ``at``."""
        return self.window.reason_closed(utc(at))


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class WindowBook:
    """Calling windows per (timezones, US state), built once each."""

    def __init__(self, hours: Hours) -> None:
        self.hours = hours
        self._cache: dict[tuple[tuple[str, ...], str | None], EpochWindow] = {}

    def window_for(self, row: StoredRow) -> EpochWindow:
        """The calling window of a row's recipient."""
        key = (tuple(row.timezones), row.us_state)
        window = self._cache.get(key)
        if window is None:
            window = EpochWindow(calling_window(list(row.timezones), row.us_state, self.hours))
            self._cache[key] = window
        return window

    def pending_reason(self, row: StoredRow, now: float) -> str | None:
        """Why a pending row waits (its calling window is closed), if it does."""
        if row.progress != "pending":
            return None
        window = self.window_for(row)
        if window.is_open(now):
            return None
        return f"waiting for calling hours: {window.reason_closed(now)}"


def planned_rows(
    config: CampaignConfig,
    opted_out: Sequence[str],
    *,
    on_rows: Callable[[int], None] | None = None,
    memo: PhoneMemo | None = None,
) -> list[RowIn]:
    """Plan the input and shape it for the checkpoint (non-callable rows get a line id).

    ``on_rows`` is told how many input records have been read, every 10,000. ``memo``
    holds the numbers earlier runs normalised (the checkpoint): only new ones are.
    A run streams the plan into the checkpoint instead (``planned_stream``, then
    ``Store.stage_rows`` and ``Store.sync_staged``, which give the same ids).
    """
    from campaign.planning.plan import PlanCounts

    rows = list(planned_stream(config, opted_out, PlanCounts(), on_rows=on_rows, memo=memo))
    # A key identifies one person's row in the checkpoint. Callable rows own their key;
    # otherwise the first row carrying it does (so a row called yesterday and suppressed
    # today keeps its history); later rows sharing a key (duplicates, rejects) are
    # stored under their line so they never collide with it.
    taken = {row.row_key for row in rows if row.plan_state == "callable"}
    for index, row in enumerate(rows):
        if row.plan_state != "callable":
            if row.row_key in taken:
                rows[index] = replace(row, row_key=f"line:{row.line}:{row.row_key}")
            taken.add(row.row_key)
    return rows


def planned_stream(
    config: CampaignConfig,
    opted_out: Iterable[str],
    counts: PlanCounts,
    *,
    on_rows: Callable[[int], None] | None = None,
    memo: PhoneMemo | None = None,
) -> Iterator[RowIn]:
    """The plan's rows shaped for the checkpoint, in file order, one at a time, each under
    the key the plan gave it (``label``); counted into ``counts`` as they go."""
    from campaign.planning.plan import iter_plan

    for planned in iter_plan(config, counts, opted_out=opted_out, on_rows=on_rows, memo=memo):
        yield RowIn(
            line=planned.line,
            row_key=planned.row_key,
            label=planned.row_key,
            raw_phone=planned.raw_phone,
            e164=planned.e164,
            plan_state=planned.state,
            reason=planned.reason,
            variables=dict(planned.variables),
            timezones=list(planned.timezones),
            us_state=planned.us_state,
            region=planned.region,
            duplicate_of=None if planned.duplicate_of is None else str(planned.duplicate_of),
            extension=planned.extension,
            note=planned.note,
            number_type=planned.number_type,
        )


def calling_hours_text(hours: Hours) -> str:
    """How the calling hours read in the summary."""
    if hours == "unrestricted":
        return "unrestricted"
    if hours is None:
        return "default: 08:00-21:00 recipient-local, narrowed by US state rules and holidays"
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    days = ",".join(names[d] for d in sorted(hours.days))
    window = f"{hours.start:%H:%M}-{hours.end:%H:%M} recipient-local on {days}"
    return f"{window} (state rules and holidays apply)"
