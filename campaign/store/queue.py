"""The rows to call next, a page at a time, and the row counts, from indexed queries.

Rows share a handful of calling windows: one per ``window_key`` (a generated column, the
row's timezones and US state), so what is due is worked out per window group and never
per row. Pending rows are read through a partial index in line order, due retries through
one on their due time; a few seeks find the groups that have work, and a page is merged
from the groups' cursors lazily, so a refresh reads about a page of index entries and
never the whole list.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from campaign.store.base import StoreBase
from campaign.store.models import ResultRow, StoredRow

# What the partial indexes of the scheduling migration cover (the planner uses an index
# only for a query that repeats its WHERE, literally); queries name their index, so that
# the planner never walks the whole table in line order instead.
_PENDING = "vanished = 0 AND progress = 'pending'"
_RETRY = "vanished = 0 AND progress = 'retry_scheduled'"
_INDEX = {_PENDING: "rows_pending_queue", _RETRY: "rows_retry_queue"}

# A row's last attempt: the latest (by send time) not voided by an empty wallet, else its
# first voided one (the key of the attempt, for a join on ``r``).
_LAST_ATTEMPT = (
    "SELECT x.idempotency_key FROM attempts x WHERE x.row_key = r.row_key "
    "ORDER BY x.state = 'void', "
    "CASE WHEN x.state = 'void' THEN x.sending_at ELSE -x.sending_at END, "
    "CASE WHEN x.state = 'void' THEN x.number ELSE -x.number END LIMIT 1"
)

_RESULT_ROWS = (
    "SELECT r.line, r.label, r.raw_phone, r.e164, r.progress, r.plan_state, r.reason, "
    "r.attempts_used, r.variables, r.region, r.extension, r.note, r.next_due, "
    "r.window_key, a.call_id, a.status, a.outcome, a.goal_achieved, a.slot_values, "
    "a.sending_at, a.sent_at "
    f"FROM rows r LEFT JOIN attempts a ON a.idempotency_key = ({_LAST_ATTEMPT}) "
    "WHERE r.vanished = 0"
)

# The columns of ``RowQueue.result_cells``, before the variables.
RESULT_CELLS = (
    *("line", "label", "raw_phone", "e164", "extension", "progress", "plan_state"),
    *("attempts_used", "reason", "note", "region", "next_due", "window_key"),
)


def _rows_by(where: str) -> str:
    """``rows`` read through the partial index of ``where`` (a WHERE that starts with
    ``_PENDING`` or ``_RETRY``)."""
    for covered, index in _INDEX.items():
        if where.startswith(covered):
            return f"rows INDEXED BY {index} WHERE {where}"
    raise ValueError(f"no queue index covers {where!r}")


@dataclass(frozen=True)
class WindowGroup:
    """The rows of one calling window (same timezones and US state) that wait for a call."""

    key: str
    pending: int  # pending rows (0 or 1 when counted with ``exact=False``)
    first_pending_line: int | None  # the smallest line of a pending row
    retry_due: float | None  # the soonest retry time of a retry_scheduled row
    retry_line: int | None  # the line of that retry's row
    row: StoredRow  # stands for the group's window: only timezones and us_state are set


def probe_row(key: str) -> StoredRow:
    """A row that carries only a window group's timezones and US state (``window_for``
    reads no more)."""
    zones, _, state = key.rpartition("|")
    return StoredRow(
        line=0, row_key="", label="", raw_phone="", e164=None, plan_state="callable",
        reason=None, variables={}, timezones=json.loads(zones or "[]"),
        us_state=state or None, region=None, duplicate_of=None, progress="pending",
        next_due=None, attempts_used=0, vanished=False, first_seen=0.0, last_seen=0.0,
    )  # fmt: skip


class RowQueue(StoreBase):
    """Queue reads and counts over the ``rows`` table."""

    def _group_keys(self, where: str) -> Iterator[str]:
        """The distinct window keys of the rows matching one partial index, one seek each."""
        last = ""
        sql = (
            f"SELECT window_key FROM {_rows_by(where)} AND window_key > ? "
            "ORDER BY window_key LIMIT 1"
        )
        with self._reading():
            while True:
                found = self._conn.execute(sql, (last,)).fetchone()
                if found is None:
                    return
                last = str(found[0])
                yield last

    def due_groups(self, now: float) -> list[str]:
        """The window keys of groups with a pending row or a retry due at ``now``."""
        keys = set(self._group_keys(_PENDING))
        with self._reading():
            for key in self._group_keys(_RETRY):
                if key in keys:
                    continue
                soonest = self._conn.execute(
                    f"SELECT next_due FROM {_rows_by(_RETRY)} AND window_key = ? "
                    "AND next_due IS NOT NULL ORDER BY next_due LIMIT 1",
                    (key,),
                ).fetchone()
                if soonest is not None and soonest[0] <= now:
                    keys.add(key)
        return sorted(keys)

    def waiting_groups(self) -> list[WindowGroup]:
        """Each group with a pending or retry_scheduled row: when it could go, per kind."""
        groups: dict[str, WindowGroup] = {}
        with self._reading():
            for key in self._group_keys(_PENDING):
                first = self._conn.execute(
                    f"SELECT line FROM {_rows_by(_PENDING)} AND window_key = ? "
                    "ORDER BY line LIMIT 1",
                    (key,),
                ).fetchone()
                groups[key] = WindowGroup(key, 1, int(first[0]), None, None, probe_row(key))
            for key in self._group_keys(_RETRY):
                # The soonest retry; of several due at once, the one on the smallest line.
                soonest = self._conn.execute(
                    f"SELECT next_due, line FROM {_rows_by(_RETRY)} AND window_key = ? "
                    "AND next_due = (SELECT min(next_due) FROM "
                    f"{_rows_by(_RETRY)} AND window_key = ?) ORDER BY line LIMIT 1",
                    (key, key),
                ).fetchone()
                if soonest is None:
                    continue
                known = groups.get(key)
                groups[key] = WindowGroup(
                    key,
                    0 if known is None else known.pending,
                    None if known is None else known.first_pending_line,
                    float(soonest[0]),
                    int(soonest[1]),
                    probe_row(key),
                )
        return [groups[key] for key in sorted(groups)]

    def due_rows(
        self,
        groups: Sequence[tuple[float, str]],
        now: float,
        *,
        limit: int,
        skip: frozenset[str] | set[str] = frozenset(),
    ) -> list[tuple[str, int, str]]:
        """Up to ``limit`` due rows as (row key, line, window key): by the rank given with
        each group (soonest-closing window first), then by line; rows in ``skip`` are
        passed over.

        Each group is read through two cursors (pending rows by line, due retries sorted
        by line), merged lazily: about ``limit`` index entries are read, whatever the size
        of the list.
        """
        arms: list[Iterator[tuple[float, int, str, str]]] = []
        # No arm can give more than this to the page (PostgreSQL's cursors read their whole
        # result at once: the bound keeps each read a page long there too).
        most = limit + len(skip)
        with self._reading():
            for rank, key in groups:
                arms.append(self._arm(rank, key, f"{_PENDING} AND window_key = ?", (key, most)))
                arms.append(
                    self._arm(
                        rank,
                        key,
                        f"{_RETRY} AND window_key = ? AND next_due <= ?",
                        (key, now, most),
                    )
                )
            page: list[tuple[str, int, str]] = []
            for _, line, row_key, key in heapq.merge(*arms):
                if len(page) >= limit:
                    break
                if row_key not in skip:
                    page.append((row_key, line, key))
        return page

    def _arm(
        self, rank: float, key: str, where: str, params: tuple[object, ...]
    ) -> Iterator[tuple[float, int, str, str]]:
        cursor = self._conn.execute(
            f"SELECT line, row_key FROM {_rows_by(where)} ORDER BY line LIMIT ?", params
        )
        try:
            for line, row_key in cursor:
                yield rank, int(line), str(row_key), key
        finally:
            cursor.close()

    def result_rows(self) -> Iterator[ResultRow]:
        """Every current row in input-line order with its last attempt, read a cursor's
        step at a time. The last attempt is the latest (by send time) not voided by an
        empty wallet; a row whose every attempt was voided shows its first."""
        sql = f"{_RESULT_ROWS} ORDER BY r.vanished, r.line"
        with self._reading():
            cursor = self._conn.execute(sql)
            try:
                yield from map(ResultRow._make, cursor)
            finally:
                cursor.close()

    def result_cells(self, variables: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """What results.csv shows of every current row, as plain tuples in input order,
        read a cursor's step at a time (``result_rows`` for writing fast, its last attempt
        apart: ``last_attempt_cells``): the columns of ``RESULT_CELLS`` (those results.csv
        shows as text are '' rather than None), then each of ``variables`` read from the
        row's JSON by SQLite: its text, '' when absent or null, None when it is not text
        (a number, a list: read ``result_row`` then).

        A variable name must be ASCII without a double quote or a backslash (a JSON path
        cannot name it here: the row's JSON keeps other characters escaped)."""
        paths: list[str] = []
        for name in variables:
            if '"' in name or "\\" in name or not name.isascii():
                raise ValueError(f"variable {name!r} cannot be read by a JSON path")
            paths += [f'$."{name}"'] * 2
        extract = (
            ", CASE ifnull(json_type(r.variables, ?), 'null') "
            "WHEN 'text' THEN json_extract(r.variables, ?) WHEN 'null' THEN '' END"
        )
        if self._pg is not None:  # the same in PostgreSQL's words, by key not by path
            paths = [name for name in variables for _ in (0, 1)]
            extract = (
                ", CASE coalesce(jsonb_typeof(r.variables::jsonb -> ?::text), 'null') "
                "WHEN 'string' THEN r.variables::jsonb ->> ?::text WHEN 'null' THEN '' END"
            )
        extracts = extract * len(variables)
        yield from self._cells(
            "SELECT r.line, r.label, ifnull(r.raw_phone, ''), ifnull(r.e164, ''), "
            "ifnull(r.extension, ''), r.progress, r.plan_state, r.attempts_used, r.reason, "
            f"ifnull(r.note, ''), r.region, r.next_due, r.window_key{extracts} FROM rows r "
            "WHERE r.vanished = 0 ORDER BY r.vanished, r.line",
            paths,
        )

    def last_attempt_cells(self) -> Iterator[tuple[Any, ...]]:
        """(line, call id, status, outcome, goal_achieved) of every current row that has
        an attempt, its last one (as ``result_rows``), in input order; text columns are ''
        rather than None. Reads the attempts, not the whole list (the rows' order is
        sorted by SQLite, out of memory if large)."""
        yield from self._cells(
            "SELECT r.line, ifnull(a.call_id, ''), ifnull(a.status, ''), "
            "ifnull(a.outcome, ''), a.goal_achieved "
            "FROM (SELECT DISTINCT row_key FROM attempts) k "
            "CROSS JOIN rows r ON r.row_key = k.row_key "
            f"CROSS JOIN attempts a ON a.idempotency_key = ({_LAST_ATTEMPT}) "
            "WHERE r.vanished = 0 ORDER BY r.line"
        )

    def _cells(self, sql: str, params: Sequence[object] = ()) -> Iterator[tuple[Any, ...]]:
        """The plain tuples of a query, a cursor's step at a time."""
        with self._reading():
            if self._pg is not None:
                yield from self._pg.stream(sql, params)
                return
            cursor = self._conn.cursor()
            cursor.row_factory = None
            try:
                yield from cursor.execute(sql, params)
            finally:
                cursor.close()

    def result_row(self, line: int) -> ResultRow | None:
        """``result_rows``' row of the current row on ``line``, if there is one."""
        found = self._select(f"{_RESULT_ROWS} AND r.line = ?", (line,))
        return None if not found else ResultRow._make(found[0])

    def row_counts(self) -> list[tuple[str, str, int, int]]:
        """(progress, plan_state, vanished, rows) for every combination present."""
        return [
            (str(p), str(s), int(v), int(n))
            for p, s, v, n in self._select(
                "SELECT progress, plan_state, vanished, count(*) FROM rows "
                "INDEXED BY rows_state GROUP BY vanished, progress, plan_state"
            )
        ]

    def group_counts(self, now: float) -> list[tuple[str, int, int]]:
        """Per window group: (key, rows due at ``now``, rows waiting for a later retry)."""
        counts: dict[str, list[int]] = {}
        for key, n in self._select(
            f"SELECT window_key, count(*) FROM {_rows_by(_PENDING)} GROUP BY window_key"
        ):
            counts.setdefault(str(key), [0, 0])[0] += int(n)
        for key, due, n in self._select(
            f"SELECT window_key, coalesce(next_due, 0) <= ?, count(*) FROM {_rows_by(_RETRY)} "
            "GROUP BY window_key, 2",
            (now,),
        ):
            counts.setdefault(str(key), [0, 0])[0 if due else 1] += int(n)
        return [(key, now_n, later) for key, (now_n, later) in sorted(counts.items())]

    def soonest_retry(self) -> float | None:
        """The soonest retry time of a current row, if any."""
        found = self._select(
            f"SELECT min(next_due) FROM {_rows_by(_RETRY)} AND next_due IS NOT NULL"
        )
        return None if not found or found[0][0] is None else float(found[0][0])

    def _select(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._reading():
            return [tuple(r) for r in self._conn.execute(sql, params)]

    def attempt_counts(self) -> list[tuple[str, int, int]]:
        """(state, attempts, of which with a call id) for every attempt state present."""
        return [
            (str(s), int(n), int(c))
            for s, n, c in self._select(
                "SELECT state, count(*), count(call_id) FROM attempts GROUP BY state"
            )
        ]
