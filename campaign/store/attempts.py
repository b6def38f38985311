"""The attempt journal: every state transition of an attempt, one transaction each.

A mixin of ``Store``; it relies on the connection and transaction helpers of StoreBase.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from campaign.errors import StateError
from campaign.store.base import StoreBase
from campaign.store.models import (
    Attempt,
    AttemptState,
    CallEnd,
    CallFact,
    RowProgress,
    StoredRow,
    attempt_from_sql,
    call_fact_from_sql,
    row_from_sql,
)


class AttemptJournal(StoreBase):
    """Attempts: begun *sending*, then sent, ended, failed or void."""

    # --- attempts -----------------------------------------------------------------------

    def begin_attempt(
        self,
        row_key: str,
        number: int,
        idempotency_key: str,
        body: bytes,
        now: float,
        *,
        phone: str | None = None,
    ) -> Attempt:
        """Commit an attempt as *sending* with its exact body, before the request leaves."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO attempts(row_key, number, idempotency_key, state, body, "
                "sending_at, phone) VALUES (?, ?, ?, 'sending', ?, ?, ?)",
                (row_key, number, idempotency_key, body, now, phone),
            )
            conn.execute(
                "UPDATE rows SET progress='in_flight', next_due=NULL, "
                "attempts_used=attempts_used+1 WHERE row_key=?",
                (row_key,),
            )
        return self.attempt(idempotency_key)

    def note_send(self, idempotency_key: str) -> None:
        """Count that the attempt's request is about to leave (committed first)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET sends = sends + 1 WHERE idempotency_key = ?",
                (idempotency_key,),
            )

    def caller_of_number(self, phone: str, row_key: str) -> StoredRow | None:
        """Another row of this campaign that has an attempt dialling ``phone``, if any."""
        found = self._query(
            "SELECT rows.* FROM attempts JOIN rows ON rows.row_key = attempts.row_key "
            "WHERE attempts.phone = ? AND attempts.row_key != ? "
            "AND attempts.state IN ('sending', 'sent', 'ended', 'withheld') "
            "ORDER BY attempts.sending_at, attempts.idempotency_key LIMIT 1",
            (phone, row_key),
        )
        return row_from_sql(found[0]) if found else None

    def attempt(self, idempotency_key: str) -> Attempt:
        """One attempt by its key."""
        found = self._rows_where("attempts", "idempotency_key = ?", (idempotency_key,))
        if not found:
            raise StateError(f"attempt {idempotency_key} is not in the checkpoint")
        return attempt_from_sql(found[0])

    def attempts(self, *states: AttemptState) -> list[Attempt]:
        """Attempts, optionally only those in the given states, oldest first."""
        where = _state_in(states) if states else None
        found = self._rows_where("attempts", where, states, order_by="sending_at, number")
        return [attempt_from_sql(r) for r in found]

    def call_facts(self, row_key: str | None = None) -> list[CallFact]:
        """Attempts (of one row, or all) with their row's timezones, country and number
        type, oldest first; request bodies are left out, so reading them all stays cheap."""
        sql = (
            "SELECT a.row_key, a.number, a.state, a.call_id, a.status, a.outcome, "
            "a.goal_achieved, a.failure_reason, a.cost, a.currency, a.duration_s, "
            "COALESCE(a.sent_at, a.sending_at) AS started_at, a.ended_at, "
            "r.timezones, r.region, r.number_type "
            "FROM attempts a JOIN rows r ON r.row_key = a.row_key"
        )
        params: tuple[str, ...] = ()
        if row_key is not None:
            sql += " WHERE a.row_key = ?"
            params = (row_key,)
        sql += " ORDER BY a.sending_at, a.number, a.row_key"
        return [call_fact_from_sql(r) for r in self._query(sql, params)]

    def count_attempts(self, *states: AttemptState) -> int:
        """How many attempts are in the given states (cheap; no bodies loaded)."""
        return self._count("attempts", _state_in(states), states)

    def oldest_open_attempt(self) -> float | None:
        """The earliest sending_at of attempts still *sending* or *sent*."""
        [found] = self._query(
            "SELECT MIN(sending_at) AS oldest FROM attempts WHERE state IN ('sending', 'sent')"
        )
        return None if found["oldest"] is None else float(found["oldest"])

    def count_needing_session(self) -> int:
        """How many ended attempts still need their session facts."""
        return self._count("attempts", _NEEDING_SESSION)

    def next_attempt_number(self, row_key: str) -> int:
        """The number of the row's next attempt (void attempts keep their number)."""
        [found] = self._query(
            "SELECT COALESCE(MAX(number), 0) AS last FROM attempts WHERE row_key = ?", (row_key,)
        )
        return int(found["last"]) + 1

    def mark_sent(self, idempotency_key: str, call_id: str, status: str, now: float) -> None:
        """The API answered with a call id: the attempt is *sent*."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state='sent', call_id=?, status=?, sent_at=? "
                "WHERE idempotency_key=? AND state IN ('sending', 'withheld')",
                (call_id, status, now, idempotency_key),
            )

    def record_status(self, idempotency_key: str, status: str, updated_at: str | None) -> None:
        """A non-terminal status seen while polling."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET status=?, call_updated_at=? WHERE idempotency_key=?",
                (status, updated_at, idempotency_key),
            )

    def end_attempt(
        self,
        idempotency_key: str,
        end: CallEnd,
        *,
        row_progress: RowProgress,
        row_reason: str | None = None,
        next_due: float | None = None,
        void: bool = False,
    ) -> None:
        """Record a call's terminal facts and the row's next state in one transaction."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state=?, status=?, outcome=?, goal_achieved=?, "
                "failure_reason=?, session_id=COALESCE(?, session_id), ended_at=?, "
                "call_updated_at=? WHERE idempotency_key=?",
                (
                    "void" if void else "ended",
                    end.status,
                    end.outcome,
                    end.goal_achieved,
                    end.failure_reason,
                    end.session_id,
                    end.ended_at,
                    end.updated_at,
                    idempotency_key,
                ),
            )
            if void:
                conn.execute(
                    "UPDATE attempts SET error=? WHERE idempotency_key=?",
                    ("insufficient_funds: the attempt does not count", idempotency_key),
                )
            self._move_row(conn, idempotency_key, row_progress, row_reason, next_due, void)

    def fail_attempt(
        self, idempotency_key: str, error: str, *, row_progress: RowProgress, row_reason: str
    ) -> None:
        """The API refused the attempt for good (400/409/422): record why, move the row."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state='failed', error=? WHERE idempotency_key=?",
                (error, idempotency_key),
            )
            self._move_row(conn, idempotency_key, row_progress, row_reason, None, False)

    def withhold_attempt(self, idempotency_key: str, *, plan_state: str, reason: str) -> None:
        """Never re-send an unconfirmed attempt: the gate refused it; the row is blocked."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state='withheld', error=? "
                "WHERE idempotency_key=? AND state='sending'",
                (f"not re-sent: {reason}", idempotency_key),
            )
            conn.execute(
                "UPDATE rows SET plan_state=?, reason=?, progress='blocked', next_due=NULL "
                "WHERE row_key=(SELECT row_key FROM attempts WHERE idempotency_key=?)",
                (plan_state, reason, idempotency_key),
            )

    def block_row(self, row_key: str, *, plan_state: str, reason: str) -> None:
        """The gate refused a row for good (suppressed, opted out, number called by another)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE rows SET plan_state=?, reason=?, progress='blocked', next_due=NULL "
                "WHERE row_key=?",
                (plan_state, reason, row_key),
            )

    def abandon_attempt(self, idempotency_key: str, error: str) -> None:
        """Give the row back untouched (the refusal was the campaign's fault, not the row's)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET state='void', error=? WHERE idempotency_key=?",
                (error, idempotency_key),
            )
            self._move_row(conn, idempotency_key, "pending", None, None, True)

    def _move_row(
        self,
        conn: sqlite3.Connection,
        idempotency_key: str,
        progress: RowProgress,
        reason: str | None,
        next_due: float | None,
        void: bool,
    ) -> None:
        conn.execute(
            "UPDATE rows SET progress=?, reason=?, next_due=?, "
            "attempts_used=attempts_used - ? "
            "WHERE row_key=(SELECT row_key FROM attempts WHERE idempotency_key=?)",
            (progress, reason, next_due, 1 if void else 0, idempotency_key),
        )

    def record_session(
        self,
        idempotency_key: str,
        *,
        slot_values: dict[str, Any] | None,
        cost: str | None,
        currency: str | None,
        duration_s: float | None,
    ) -> None:
        """Store the session facts the report needs (slot values, cost, duration)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE attempts SET slot_values=?, cost=?, currency=?, duration_s=?, "
                "session_fetched=1 WHERE idempotency_key=?",
                (
                    None if slot_values is None else json.dumps(slot_values, sort_keys=True),
                    cost,
                    currency,
                    duration_s,
                    idempotency_key,
                ),
            )

    def attempts_needing_session(self) -> list[Attempt]:
        """Ended attempts with a session whose facts were not fetched yet."""
        found = self._rows_where("attempts", _NEEDING_SESSION, order_by="ended_at")
        return [attempt_from_sql(r) for r in found]


_NEEDING_SESSION = "state = 'ended' AND session_id IS NOT NULL AND session_fetched = 0"


def _state_in(states: tuple[AttemptState, ...]) -> str:
    return f"state IN ({', '.join('?' * len(states))})"
