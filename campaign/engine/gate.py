"""The send gate: the one decision every path that can make a phone ring goes through.

A new attempt, the re-send of an attempt left *sending*, a batch upload and a batch
re-send all ask ``SendGate.check`` at the moment the request would leave, with the number
that request dials (for a re-send: the recorded number, never the row's number today):

0. today's plan does not reject the row itself (its consent was withdrawn, say);
1. the number is on none of today's suppression lists;
2. the number is not on the state dir's opt-out list (read now: another campaign's run
   may have added it a minute ago);
3. no other row of this campaign has an attempt dialling the number (a known number
   under a new key is the same person);
4. the recipient's calling window is open now and stays open until the last moment the
   call may start (``dial_by``, now for a direct call, the expected dial time for a batch
   row) plus ``calling_hours.stop_before_close``;
5. the number is under its frequency caps (``campaign.planning.frequency``), counted in
   the state dir's ledger shared by every campaign (``campaign.store.contacts``). The
   check and the recording of the call are one transaction, keyed by the attempt's
   idempotency key: a re-send of the same attempt is the same call.

A refusal for 0–3 is final for the row (``final=True``); a refusal for 4 says when to ask
again (``retry_at``), or ``None`` when the window never opens again; a refusal for 5 says
when the number is callable again (``retry_at``, with ``defer``: the row waits until then
like a retry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

from campaign.planning.frequency import Cap, cap_reason, longest_window, over_cap
from campaign.planning.schedule import WindowFor
from campaign.store.checkpoint import StoredRow
from campaign.store.contacts import Take


class OptOuts(Protocol):
    """The opt-out list as the gate reads it."""

    def contains(self, e164: str) -> bool: ...


class CallerLookup(Protocol):
    """The checkpoint as the gate reads it."""

    def caller_of_number(self, phone: str, row_key: str) -> StoredRow | None: ...


class CallsPerNumber(Protocol):
    """The state dir's ledger of calls per number (campaign.store.contacts.CallLedger)."""

    def take(
        self,
        e164: str,
        attempt_key: str,
        *,
        at: float,
        since: float,
        allow: Callable[[Sequence[float]], bool],
        campaign: str,
        row_key: str,
    ) -> Take: ...

    def times(self, e164: str, since: float) -> list[float]: ...

    def batch(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class GateVerdict:
    """May the phone ring now; if not, why, and whether asking again can help."""

    ok: bool
    reason: str | None = None
    final: bool = False  # never call this row (suppressed, opted out, called by another row)
    retry_at: float | None = None  # when the calling window lets it through (wall clock)
    plan_state: str | None = None  # with final: the row's state, suppressed or duplicate
    send_by: float | None = None  # with ok: the last moment the call may start (wall clock)
    defer: bool = False  # a frequency cap: the row waits until retry_at, as for a retry

    @property
    def waits(self) -> bool:
        """True if the refusal is only about time."""
        return not self.ok and not self.final


ALLOW = GateVerdict(True)


class SendGate:
    """``check(row, phone, now)``: the send decision, from the checkpoint and today's inputs."""

    def __init__(
        self,
        *,
        store: CallerLookup,
        suppression: Mapping[str, str],
        opt_outs: OptOuts,
        window_for: WindowFor,
        stop_before_close_s: float,
        calls: CallsPerNumber | None = None,
        caps_for: Callable[[StoredRow], Sequence[Cap]] | None = None,
        campaign: str = "",
    ) -> None:
        self.store = store
        self.suppression = suppression
        self.opt_outs = opt_outs
        self.window_for = window_for
        self.margin_s = stop_before_close_s
        self.calls = calls
        self.caps_for = caps_for
        self.campaign = campaign

    def recording(self) -> AbstractContextManager[None]:
        """Checks made inside record their calls in one ledger transaction (a batch's
        members: one sync to disk for the file, and no other run between them)."""
        return nullcontext() if self.calls is None else self.calls.batch()

    def check(
        self,
        row: StoredRow,
        phone: str | None,
        now: float,
        *,
        dial_by: float | None = None,
        attempt_key: str | None = None,
    ) -> GateVerdict:
        """The verdict for ringing ``phone`` for ``row``; ``now`` is wall-clock time.

        With ``attempt_key``, a call let through is recorded in the calls-per-number
        ledger (at ``dial_by`` for a batch row, else ``now``); without it, the caps are
        only read.
        """
        if not phone:
            return GateVerdict(False, "no number to dial", final=True, plan_state="rejected")
        if row.plan_state == "rejected":
            # Today's input refuses the row itself (consent withdrawn overnight, say): an
            # attempt an earlier run left sending is withheld, never re-sent.
            reason = row.reason or "rejected by today's plan"
            return GateVerdict(False, reason, final=True, plan_state="rejected")
        listed = self.suppression.get(phone)
        if listed is not None:
            return GateVerdict(
                False, f"on suppression list {listed}", final=True, plan_state="suppressed"
            )
        if self.opt_outs.contains(phone):
            return GateVerdict(
                False, "opted out (state dir opt-out list)", final=True, plan_state="suppressed"
            )
        caller = self.store.caller_of_number(phone, row.row_key)
        if caller is not None:
            return GateVerdict(
                False,
                f"duplicate of line {caller.line} (key {caller.label}), which already "
                "called this number",
                final=True,
                plan_state="duplicate",
            )
        verdict = self.window_verdict(row, now, dial_by=dial_by)
        if not verdict.ok:
            return verdict
        return self.frequency_verdict(row, phone, now, verdict, dial_by, attempt_key)

    def frequency_verdict(
        self,
        row: StoredRow,
        phone: str,
        now: float,
        passed: GateVerdict,
        dial_by: float | None = None,
        attempt_key: str | None = None,
    ) -> GateVerdict:
        """Rule 5 alone: ``passed`` if the number is under its caps (the call recorded)."""
        if self.calls is None or self.caps_for is None:
            return passed
        caps = list(self.caps_for(row))
        if not caps:
            return passed
        since = now - longest_window(caps)
        found: list[tuple[Cap, float]] = []

        def allow(times: Sequence[float]) -> bool:
            found[:] = [hit] if (hit := over_cap(times, caps, now)) else []
            return not found

        if attempt_key is None:
            allow(self.calls.times(phone, since))
        else:
            at = max(now, dial_by if dial_by is not None else now)
            self.calls.take(
                phone, attempt_key, at=at, since=since, allow=allow,
                campaign=self.campaign, row_key=row.row_key,
            )  # fmt: skip
        if not found:
            return passed
        cap, free_at = found[0]
        return GateVerdict(
            False, cap_reason(cap, free_at, row.timezones), retry_at=free_at, defer=True
        )

    def window_verdict(
        self, row: StoredRow, now: float, *, dial_by: float | None = None
    ) -> GateVerdict:
        """Rule 4 alone: open now, and still open ``stop_before_close`` after ``dial_by``."""
        window = self.window_for(row)
        last_start = max(now, dial_by if dial_by is not None else now)
        if window.is_open(now):
            closes = window.closes_at(now)
            if closes is None:
                return ALLOW
            if last_start + self.margin_s <= closes:
                return GateVerdict(True, send_by=closes - self.margin_s)
            reopen = window.next_open(closes)
            return GateVerdict(
                False,
                f"calling window closes in {max(0.0, closes - now) / 60:.0f} min, inside the "
                f"{self.margin_s / 60:.0f} min kept before close",
                retry_at=reopen,
            )
        opens = window.next_open(now)
        why = window.reason_closed(now)
        return GateVerdict(False, f"waiting for calling hours: {why}", retry_at=opens)
