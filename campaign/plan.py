"""Planning: every input row becomes callable, or rejected/duplicate/suppressed with a reason.

Rows stream from ``ingest``; phones are normalised through a cache (each distinct raw
value once) and, for big files, by a small process pool so both cores work. The first
row of a number or key wins; later ones point at it.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from campaign.config import CampaignConfig
from campaign.errors import ConfigError, InputError
from campaign.hours import calling_window
from campaign.ingest import SourceRow, column_key, read_header, read_rows
from campaign.phones import PhoneCache, PhoneFields, PhoneResult, clean_region, normalise_batch

PlanState = Literal["callable", "rejected", "duplicate", "suppressed"]

_CHUNK_ROWS = 20_000
_CHUNKS_AHEAD = 2
_WORKER_BATCH = 2_000
_POOL_THRESHOLD = 4_000  # distinct new numbers in a chunk before a pool is worth its start-up
_PhoneKey = tuple[str, str | None, str | None]  # raw phone, region, why the region is unusable
# A batch of (raw, region) pairs sent to a worker, and the future of its results.
_Work = tuple[list[tuple[str, str | None]], Future[list[PhoneFields]]]
_SUPPRESSION_WORDS = ("phone", "e164", "e.164", "mobile", "msisdn", "tel", "number", "cell")


@dataclass(slots=True)
class PlannedRow:
    """One input row and what the plan decided about it."""

    line: int
    row_key: str
    raw_phone: str
    e164: str | None
    state: PlanState
    reason: str | None = None
    duplicate_of: int | None = None
    region: str | None = None
    timezones: tuple[str, ...] = ()
    us_state: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    note: str | None = None


@dataclass
class PlanCounts:
    """What validate prints: rows by state, rejects by reason, callable rows by place."""

    rows_read: int = 0
    callable: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    by_country: Counter[str] = field(default_factory=Counter)
    by_timezone: Counter[str] = field(default_factory=Counter)

    def add(self, row: PlannedRow) -> None:
        """Count one planned row."""
        self.rows_read += 1
        if row.state == "callable":
            self.callable += 1
            self.by_country[row.region or "??"] += 1
            self.by_timezone[_zone_label(row.timezones)] += 1
        elif row.state == "rejected":
            self.rejected[row.reason or "rejected"] += 1
        elif row.state == "duplicate":
            self.duplicates += 1
        else:
            self.suppressed[row.reason or "suppressed"] += 1


@dataclass
class PlanResult:
    """All rows in input order, and their counts."""

    rows: list[PlannedRow]
    counts: PlanCounts

    @property
    def callable_rows(self) -> list[PlannedRow]:
        """Rows the engine may call."""
        return [row for row in self.rows if row.state == "callable"]


def plan_rows(
    config: CampaignConfig, *, opted_out: Iterable[str] = (), workers: int | None = None
) -> PlanResult:
    """Plan every row of the campaign's input (held in memory, in input order)."""
    counts = PlanCounts()
    rows = list(iter_plan(config, counts, opted_out=opted_out, workers=workers))
    return PlanResult(rows, counts)


def iter_plan(
    config: CampaignConfig,
    counts: PlanCounts,
    *,
    opted_out: Iterable[str] = (),
    workers: int | None = None,
) -> Iterator[PlannedRow]:
    """Stream planned rows in input order, counting them into ``counts`` as they go."""
    check_columns(config, read_header(config.input.path))
    planner = _Planner(config, set(opted_out), load_suppression(config.suppression, config))
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    pool: Executor | None = None
    pending: deque[tuple[list[SourceRow], list[_PhoneKey], list[_Work]]] = deque()
    try:
        for chunk in _chunks(read_rows(config.input.path), _CHUNK_ROWS):
            phone_keys = [planner.phone_key(row) for row in chunk]
            misses = planner.misses(phone_keys)
            futures = []
            if workers > 1 and len(misses) >= _POOL_THRESHOLD:
                pool = pool or ProcessPoolExecutor(max_workers=workers)
                for start in range(0, len(misses), _WORKER_BATCH):
                    batch = misses[start : start + _WORKER_BATCH]
                    futures.append((batch, pool.submit(normalise_batch, batch)))
                planner.in_flight.update(misses)
            pending.append((chunk, phone_keys, futures))
            # Keep the workers a few chunks ahead of the rows being planned here.
            while len(pending) > _CHUNKS_AHEAD:
                yield from planner.finish(*pending.popleft(), counts)
        while pending:
            yield from planner.finish(*pending.popleft(), counts)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


class _Planner:
    """The per-run memory of a plan: phone cache, first line of each number and key."""

    def __init__(
        self, config: CampaignConfig, opted_out: set[str], suppression: dict[str, str]
    ) -> None:
        self.config = config
        self.opted_out = opted_out
        self.suppression = suppression
        self.cache = PhoneCache(
            allow_toll_free=config.input.allow_toll_free, allow_voip=config.input.allow_voip
        )
        self.phone_column = column_key(config.input.phone_column)
        self.region_column = (
            column_key(config.input.region_column) if config.input.region_column else None
        )
        self.key_column = column_key(config.input.key_column) if config.input.key_column else None
        self.variables = [(name, column_key(name)) for name in config.input.variables]
        self.first_line_of_key: dict[str, int] = {}
        self.first_line_of_number: dict[str, int] = {}
        self.region_cells: dict[str, str | None] = {}
        self.in_flight: set[tuple[str, str | None]] = set()  # sent to a worker, not back yet
        self.window_problems: dict[tuple[tuple[str, ...], str | None], str | None] = {}
        self.now = datetime.now(UTC)

    def phone_key(self, row: SourceRow) -> _PhoneKey:
        """(raw phone, region to read it in, region problem) of one row."""
        raw = row.fields.get(self.phone_column, "")
        region = self.config.input.default_region
        if self.region_column:
            cell = row.fields.get(self.region_column, "")
            if cell:
                if cell not in self.region_cells:
                    self.region_cells[cell] = clean_region(cell)
                region = self.region_cells[cell]
                if region is None and cell.strip():
                    cell = cell.strip()
                    return raw, None, f"unknown region '{cell}' in column {self.region_column}"
                region = region or self.config.input.default_region
        return raw, region, None

    def misses(self, phone_keys: list[_PhoneKey]) -> list[tuple[str, str | None]]:
        """Distinct (raw, region) pairs not yet in the cache nor sent to a worker."""
        seen: set[tuple[str, str | None]] = set()
        for raw, region, problem in phone_keys:
            key = (raw, region)
            if problem is None and key not in self.cache and key not in self.in_flight:
                seen.add(key)
        return list(seen)

    def finish(
        self,
        chunk: list[SourceRow],
        phone_keys: list[_PhoneKey],
        futures: list[_Work],
        counts: PlanCounts,
    ) -> Iterator[PlannedRow]:
        for batch, future in futures:
            for key, fields in zip(batch, future.result(), strict=True):
                self.cache.put(key, PhoneResult(*fields))
                self.in_flight.discard(key)
        for row, phone_key in zip(chunk, phone_keys, strict=True):
            planned = self.plan(row, phone_key)
            counts.add(planned)
            yield planned

    def plan(self, row: SourceRow, phone_key: _PhoneKey) -> PlannedRow:
        """Decide one row."""
        raw, region, problem = phone_key
        fields = row.fields
        variables = {name: fields.get(key, "") for name, key in self.variables}
        # rows without a number (or key) still need a stable identity in results and state
        row_key = ""
        if self.key_column:
            row_key = fields.get(self.key_column, "").strip()
        row_key = row_key or f"line:{row.line}"
        if row.error or problem:
            reason = row.error or problem
            return PlannedRow(row.line, row_key, raw, None, "rejected", reason, variables=variables)
        phone = self.cache.get(raw, region)
        planned = PlannedRow(
            row.line,
            row_key,
            raw,
            phone.e164,
            "rejected",
            phone.reason,
            region=phone.region,
            timezones=phone.timezones,
            us_state=phone.us_state,
            variables=variables,
            note=phone.note,
        )
        if phone.e164 is None or phone.reason:
            return planned
        if not self.key_column:
            planned.row_key = phone.e164
        elif not row.fields.get(self.key_column, "").strip():
            planned.reason = f"empty key column '{self.config.input.key_column}'"
            return planned
        window_problem = self._window_problem(phone)
        if window_problem:
            planned.reason = window_problem
            return planned
        if phone.e164 in self.opted_out:
            planned.state, planned.reason = "suppressed", "opted out (state dir opt-out list)"
            return planned
        if phone.e164 in self.suppression:
            planned.state = "suppressed"
            planned.reason = f"on suppression list {self.suppression[phone.e164]}"
            return planned
        first = self.first_line_of_key.get(planned.row_key) or self.first_line_of_number.get(
            phone.e164
        )
        if first is not None:
            planned.state, planned.duplicate_of = "duplicate", first
            planned.reason = f"duplicate of line {first}"
            return planned
        if self.key_column:  # without one the key is the number: one map is enough
            self.first_line_of_key[planned.row_key] = row.line
        self.first_line_of_number[phone.e164] = row.line
        planned.state = "callable"
        return planned

    def _window_problem(self, phone: PhoneResult) -> str | None:
        """Why this number can never be called under the calling hours, if so."""
        key = (phone.timezones, phone.us_state)
        if key not in self.window_problems:
            window = calling_window(phone.timezones, phone.us_state, self.config.calling_hours)
            problem = window.problem
            if problem is None and window.next_open(self.now) is None:
                problem = f"calling hours never overlap across its {len(phone.timezones)} timezones"
            self.window_problems[key] = problem
        return self.window_problems[key]


def _chunks(rows: Iterator[SourceRow], size: int) -> Iterator[list[SourceRow]]:
    chunk: list[SourceRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@functools.lru_cache(maxsize=4096)
def _zone_label(timezones: tuple[str, ...]) -> str:
    if len(timezones) <= 2:
        return " + ".join(timezones) or "unknown"
    return f"{timezones[0]} + {len(timezones) - 1} more"


def check_columns(config: CampaignConfig, header: Sequence[str]) -> None:
    """ConfigError if a configured column is not in the input's header (case-insensitive)."""
    wanted: list[tuple[str, str | None]] = [
        ("input.phone_column", config.input.phone_column),
        ("input.region_column", config.input.region_column),
        ("input.key_column", config.input.key_column),
    ]
    wanted += [(f"input.variables[{i}]", name) for i, name in enumerate(config.input.variables)]
    for key, name in wanted:
        if name is not None and column_key(name) not in header:
            close = difflib.get_close_matches(column_key(name), list(header), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"column '{name}' is not in {config.input.path.name}{hint} "
                f"(columns: {_column_list(header)})",
                path=str(config.source_path),
                key=key,
            )


def load_suppression(paths: Iterable[Path], config: CampaignConfig | None = None) -> dict[str, str]:
    """E.164 → list name, from CSVs with a phone column or files of one number a line."""
    region = config.input.default_region if config else None
    cache = PhoneCache()
    numbers: dict[str, str] = {}
    for path in paths:
        header = read_header(path)
        cells: Iterator[str]
        if sum(char.isdigit() for char in header[0]) >= 6:  # no header: a number a line
            cells = _plain_lines(path)
        else:
            column = _suppression_column(header)
            if column is None:
                raise InputError(
                    "no phone column in this suppression list; name one 'phone' "
                    f"(columns: {_column_list(header)})",
                    path=str(path),
                    line=1,
                )
            cells = (row.fields.get(column, "") for row in read_rows(path))
        for cell in cells:
            result = cache.get(cell, region)
            if result.e164:  # a list entry's type does not matter: suppressed is suppressed
                numbers.setdefault(result.e164, path.name)
    return numbers


def _suppression_column(header: Sequence[str]) -> str | None:
    """The column of a suppression CSV that holds the numbers (by its name)."""
    for word in _SUPPRESSION_WORDS:
        for name in header:
            if word in name:
                return name
    return None


def _column_list(header: Sequence[str], limit: int = 20) -> str:
    """Header names for an error message, kept short when the header is junk."""
    names = [name if len(name) <= 40 else name[:37] + "..." for name in header[:limit]]
    more = f", … ({len(header) - limit} more)" if len(header) > limit else ""
    return ", ".join(names) + more


def _plain_lines(path: Path) -> Iterator[str]:
    """Cells of a one-number-a-line list (the first line is a number too)."""
    header = read_header(path)
    if header:
        yield header[0]
    for row in read_rows(path):
        yield next(iter(row.fields.values()), "")
