"""Batches mode: does a batch whose upload may have executed exist at the platform?

A batch left *uploading* by a crash may or may not have been created. Re-sending its
recorded request under the same key is safe while the server remembers the key (it
replays), but there are times we must know *before* anything is sent: a member became
suppressed or its calling window is shut (a re-send would dial it), the recorded request
is incomplete (recorded before every part was kept), or the key may be forgotten (over
24 h: a re-send would create a second batch). ``look_up`` answers from the platform:

- while the key is remembered, a *probe*: the same key with a deliberately invalid file
  (no ``phone`` column). The server looks the key up before it validates (contract §0,
  §3): a key it knows answers ``409 idempotency_conflict`` (the upload executed), a key it
  does not know answers ``400`` (the upload never executed — proof of absence). The
  probe's own 400 is remembered, so asking again replays the same answer, and the key is
  never used again: a proven-absent batch's rows go into a fresh batch with a new key.
  For a known key, re-sending the recorded request replays the original answer: the
  Batch (it exists) or a refusal (it was never created).
- once the key may be forgotten, the calls the platform dialled: each carries its
  ``batch_id``, and a batch whose rows (``row_ref`` and number, in file order) are those
  of the recorded file is ours. A batch created a day ago would have been dialled by now
  (batches are held at most minutes), so finding none is taken as absence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from campaign.api.models import Batch
from campaign.api.wire import format_timestamp
from campaign.clock import utc
from campaign.engine.api import BatchesApi, BatchFinder
from campaign.engine.batches.plan import RecordedRow, recorded_rows
from campaign.engine.frame import EngineDeps, EngineResult
from campaign.engine.gate import GateVerdict
from campaign.errors import (
    ApiError,
    CampaignError,
    FailedPreconditionError,
    IdempotencyConflictError,
    InvalidArgumentError,
    PayloadTooLargeError,
)
from campaign.store.batches import StoredBatch

log = logging.getLogger("campaign.batches")

IDEMPOTENCY_MEMORY_S = 24 * 3600.0
# Look up instead of re-sending once the key might be forgotten: an hour early, for clock
# skew and for the time the lookup itself takes.
LOOKUP_AFTER_S = IDEMPOTENCY_MEMORY_S - 3600.0
CLOCK_SKEW_S = 300.0
# The probe: a header without the required ``phone`` column, no data rows. Valid UTF-8
# CSV, so the only thing wrong with it is the missing column (400 field=file).
PROBE_FILE = b"row_ref\r\n"
# The answers to the exact upload request that prove the platform created nothing.
REFUSALS = (InvalidArgumentError, PayloadTooLargeError, FailedPreconditionError)

Presence = Literal["exists", "absent", "unknown"]


@dataclass(frozen=True)
class Lookup:
    """What the platform says about a recorded batch, and how we know."""

    presence: Presence
    how: str
    batch: Batch | None = None  # the platform's Batch when it exists


def needs_lookup(stored: StoredBatch, now: float) -> bool:
    """True if the server may have forgotten this *uploading* batch's key."""
    return stored.state == "uploading" and now - stored.created_at >= LOOKUP_AFTER_S


async def look_up(
    client: BatchFinder, stored: StoredBatch, now: float, *, scenario_today: str, name_today: str
) -> Lookup:
    """Whether the platform holds this recorded batch, proven either way or ``unknown``.

    ``scenario_today``/``name_today`` are used only for a batch recorded without them, and
    only once the probe showed the server knows the key: such a re-send can replay the
    original or conflict, never create anything.
    """
    if needs_lookup(stored, now):
        found = await find_uploaded(client, stored)
        if found is not None:
            return Lookup("exists", "found among the calls the platform dialled", found)
        return Lookup("absent", "none of its rows was dialled in the day since it was recorded")
    scenario = stored.scenario_id or scenario_today
    name = stored.name if stored.request_recorded else name_today
    try:
        await client.create_batch(
            PROBE_FILE, scenario_id=scenario, idempotency_key=stored.idempotency_key
        )
    except InvalidArgumentError:
        return Lookup("absent", "the server does not know its idempotency key")
    except IdempotencyConflictError:
        pass  # the key is known: the upload executed; its answer says what it created
    else:
        return Lookup("unknown", "the server accepted a file without a phone column")
    try:
        batch = await client.create_batch(
            stored.csv,
            scenario_id=scenario,
            idempotency_key=stored.idempotency_key,
            name=name,
            not_before=None if stored.not_before is None else utc(stored.not_before),
        )
    except REFUSALS as exc:
        return Lookup("absent", f"the server refused its upload ({exc})")
    except IdempotencyConflictError:
        # Only for a batch recorded before every part of its request was kept: the
        # upload executed with parts we no longer know. Dialled rows can still show it.
        found = await find_uploaded(client, stored)
        if found is not None:
            return Lookup("exists", "found among the calls the platform dialled", found)
        return Lookup(
            "unknown",
            "the server remembers its key with a request we cannot rebuild (recorded "
            "before the scenario was kept) and none of its rows was dialled yet",
        )
    return Lookup("exists", "the server replayed its upload", batch)


async def find_uploaded(client: BatchFinder, stored: StoredBatch) -> Batch | None:
    """The platform's Batch for this recorded file, if any of its rows was dialled."""
    recorded = recorded_rows(stored.csv)
    wanted = {r.phone for r in recorded}
    seen: set[str] = set()
    since = format_timestamp(utc(stored.created_at - CLOCK_SKEW_S))
    cursor: str | None = None
    while True:
        page = await client.list_calls(since=since, limit=100, cursor=cursor)
        for call in page.data:
            batch_id = call.batch_id
            if batch_id is None or batch_id in seen or call.phone not in wanted:
                continue
            seen.add(batch_id)
            if await _same_rows(client, batch_id, recorded):
                log.warning(
                    "batch %d was created before a crash; adopting %s", stored.seq, batch_id
                )
                return await client.get_batch(batch_id)
        cursor = page.next_cursor
        if not cursor:
            return None


async def _same_rows(client: BatchFinder, batch_id: str, recorded: list[RecordedRow]) -> bool:
    """True if the batch's rows are those of the recorded file, in order."""
    index = 0
    cursor: str | None = None
    while True:
        page = await client.list_batch_rows(batch_id, limit=500, cursor=cursor)
        for row in page.data:
            if index >= len(recorded):
                return False
            if row.row_ref != recorded[index].row_ref or row.phone != recorded[index].phone:
                return False
            index += 1
        cursor = page.next_cursor
        if not cursor:
            return index == len(recorded)


# ---- sending a batch's upload, or finding out first ------------------------------------------


class BatchUploads:
    """``upload(stored)``: the recorded request, or a lookup first — never a guess.

    A ``fresh`` batch was gated and committed a moment ago and is sent at once. Any other
    *uploading* batch may have been created by an upload whose answer was lost. It is
    re-sent as recorded only if every member passes the send gate for the whole time the
    platform will take to dial it (a passed ``not_before`` no longer holds it back); if a
    member fails, the request was recorded before every part was kept, or its key may be
    forgotten, it is looked up first. Then: it exists → followed (there is no cancel
    endpoint in v1: what it may still dial against the gate is logged and kept with the
    batch); it provably does not → its attempts are voided, members the gate refuses for
    good are blocked with the gate's reason, the others planned afresh; neither → its rows
    stay held, the run stops (exit 1) and the next run looks again. No error on an upload
    releases its rows unless it is the server's refusal of that very request.
    """

    def __init__(
        self,
        deps: EngineDeps[BatchesApi],
        result: EngineResult,
        *,
        spacing: float,
        slack_s: float,
    ) -> None:
        self.deps = deps
        self.store = deps.store
        self.client = deps.client
        self.clock = deps.clock
        self.gate = deps.gate
        self.result = result
        self.spacing = spacing  # seconds between two dials of a batch at the outbound limit
        self.slack_s = slack_s  # how much later than estimated the platform may dial a row

    async def upload(
        self, stored: StoredBatch, *, fresh: bool, queue_drains_at: Callable[[float], float]
    ) -> None:
        """Upload (or resolve) one *uploading* batch; see the class docstring."""
        refused: dict[str, GateVerdict] = {}
        if not fresh:
            refused = self._gate_resend(stored, queue_drains_at)
            now = self.clock.now()
            if refused or not stored.request_recorded or needs_lookup(stored, now):
                found = await self._look_up(stored)
                if found.presence == "exists":
                    self._adopt(stored, found, refused)
                    return
                if found.presence == "unknown":
                    self._hold(stored, found.how)
                    return
                if refused or not stored.request_recorded:
                    self._release(stored, refused, found.how)
                    return
        assert stored.scenario_id is not None
        # Every part is sent as recorded, not_before included even once it has passed: the
        # server compares the parts, and a replay must be the same request.
        try:
            batch = await self.client.create_batch(
                stored.csv,
                scenario_id=stored.scenario_id,
                idempotency_key=stored.idempotency_key,
                name=stored.name,
                not_before=None if stored.not_before is None else utc(stored.not_before),
            )
        except REFUSALS as exc:
            self._refused(stored, exc)  # the answer to this very request: nothing created
            return
        except IdempotencyConflictError as exc:
            found = await self._look_up(stored)
            if found.presence == "exists":
                self._adopt(stored, found, refused)
            elif found.presence == "absent":
                self._release(stored, refused, found.how)
            else:
                self._hold(stored, f"{exc}; {found.how}")
            return
        except ApiError as exc:
            if exc.transient:
                raise  # the batch stays *uploading*: the next run re-sends it
            self._hold(stored, str(exc), error=exc)
            return
        self._uploaded(stored, batch)

    def _gate_resend(
        self, stored: StoredBatch, queue_drains_at: Callable[[float], float]
    ) -> dict[str, GateVerdict]:
        """The members the send gate refuses a re-send of this batch now, with why."""
        if self.gate is None:
            return {}
        members = self.store.batch_members(stored.seq)
        recorded = recorded_rows(stored.csv)
        now = self.clock.now()
        wall = self.clock.wall()
        # A passed hold no longer holds: the platform dials at once, in file order, after
        # the rows queued ahead of it. The numbers are the recorded file's, not today's.
        ring_from = max(wall, stored.not_before or wall)
        start = max(ring_from, queue_drains_at(now) + (wall - now))
        refused = {}
        for index, member in enumerate(members):
            phone = recorded[index].phone if len(recorded) == len(members) else None
            phone = phone or self.store.attempt(member.attempt_key).phone
            row = self.store.row(member.row_key)
            dial_by = start + index * self.spacing + self.slack_s
            verdict = self.gate.check(
                row, phone, ring_from, dial_by=dial_by, attempt_key=member.attempt_key
            )
            if not verdict.ok:
                refused[member.row_key] = verdict
        return refused

    async def _look_up(self, stored: StoredBatch) -> Lookup:
        # Today's scenario is used only to look up a batch recorded without its own.
        settings = self.deps.settings
        found = await look_up(
            self.client,
            stored,
            self.clock.now(),
            scenario_today=settings.scenario_id,
            name_today=f"{settings.campaign} #{stored.seq}",
        )
        log.info("batch %d lookup: %s (%s)", stored.seq, found.presence, found.how)
        return found

    def _uploaded(self, stored: StoredBatch, batch: Batch) -> None:
        queued = batch.progress.pending + batch.progress.queued
        self.store.mark_batch_uploaded(stored.seq, batch.id, batch.status, queued, self.clock.now())
        self.result.sends += 1
        self.result.calls_placed += stored.rows_total
        for _ in range(stored.rows_total):
            self.deps.progress.placed()

    def _adopt(self, stored: StoredBatch, found: Lookup, refused: dict[str, GateVerdict]) -> None:
        """The batch exists: follow it, and say what it may dial that the gate refuses."""
        assert found.batch is not None  # an "exists" lookup carries the platform's Batch
        self._uploaded(stored, found.batch)
        if not refused:
            return
        lines = {key: self.store.row(key).line for key in refused}
        listed = ", ".join(
            f"line {lines[key]} ({refused[key].reason})"
            for key in sorted(refused, key=lambda k: lines[k])
        )
        note = (
            f"batch {stored.seq} ({found.batch.id}) had been created before the run stopped "
            f"({found.how}); the API has no cancel endpoint, so it could not be stopped and "
            f"may dial {len(refused)} row(s) the send gate now refuses: {listed}"
        )
        log.warning(note)
        self.store.note_batch(stored.seq, note, self.clock.now())

    def _release(self, stored: StoredBatch, refused: dict[str, GateVerdict], how: str) -> None:
        """The batch provably does not exist: void its attempts and plan its rows afresh."""
        blocked = {
            key: (verdict.plan_state or "suppressed", verdict.reason or "refused by the gate")
            for key, verdict in refused.items()
            if verdict.final
        }
        note = (
            f"batch {stored.seq} was never created ({how}); its {stored.rows_total} row(s) "
            f"were released: {len(blocked)} blocked by the send gate, the others planned "
            "again into a new batch"
        )
        self.store.release_batch(stored.seq, error=note, blocked=blocked, now=self.clock.now())
        log.warning(note)

    def _hold(self, stored: StoredBatch, why: str, *, error: CampaignError | None = None) -> None:
        """Not provably absent: keep every row held (neither released nor re-sent), stop."""
        note = (
            f"batch {stored.seq}: cannot tell whether the platform holds it ({why}); its "
            f"{stored.rows_total} row(s) stay held — not released, not re-sent — so nobody "
            "is dialled twice; the next run looks it up again"
        )
        log.error(note)
        self.store.note_batch(stored.seq, note, self.clock.now())
        self.result.error = self.result.error or error or CampaignError(note)

    def _refused(self, stored: StoredBatch, exc: ApiError) -> None:
        """A 400/413/422 for the whole file: its rows go back untouched, the run stops."""
        reason = f"batch {stored.seq} refused: {exc}"
        with self.store.transaction():
            for member in self.store.batch_members(stored.seq):
                self.store.abandon_attempt(member.attempt_key, reason)
            self.store.finish_batch(stored.seq, "failed", self.clock.now(), error=str(exc))
        self.result.error = self.result.error or exc
