"""Planning: every input row becomes callable, or rejected/duplicate/suppressed with a reason.

Rows stream from ``ingest``; phones are normalised through a cache (each distinct raw
value once) and, for big files, by a small process pool so both cores work. The first
row of a number or key wins; later ones point at it.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from campaign.config.model import CampaignConfig
from campaign.config.values import shown
from campaign.inputs.ingest import CsvFormat, Record, column_key, detect_input_format, read_records
from campaign.phones.countries import ACCEPTED, country_code
from campaign.phones.normalise import (
    PhoneFields,
    apply_policy_fields,
    has_country_code,
    normalise_batch,
    normalise_batch_encoded,
    normalise_number,
    phone_fields,
)
from campaign.planning.address import (
    address_effect,
    address_zone,
    recipient_zone,
)
from campaign.planning.columns import check_columns
from campaign.planning.consent import (
    consent_problem,
    consent_regions,
    log_consent_basis,
    missing_basis_error,
)
from campaign.planning.firsts import ASKS_NOTHING, FirstLines, key_ints, number_int
from campaign.planning.hours import calling_window
from campaign.planning.suppression import (
    Suppression,
    load_suppression,
    log_matches,
    suppression_reason,
)
from campaign.store.memo_text import encode_fields

PlanState = Literal["callable", "rejected", "duplicate", "suppressed"]

_CHUNK_ROWS = 10_000
_CHUNKS_AHEAD = 8
_WORKER_BATCH = 2_500
_POOL_THRESHOLD = 4_000  # distinct new numbers in a chunk before a pool is worth its start-up
_POOL_MIN_BATCH = 500  # once the pool runs, smaller sets of misses go to it too
_MAX_PHONES = 100_000  # normalised numbers a plan remembers (bounded memory)
_MAX_REGION_CELLS = 10_000  # distinct region cells a plan remembers
_MAX_PLACES = 10_000  # distinct (region, type, timezones, state) and reasons it shares
_POLICY_TYPES = frozenset({"toll_free", "voip"})  # types the campaign's policy may refuse
_Place = tuple[str | None, str, tuple[str, ...], str | None]
_ZoneKey = tuple[tuple[str, ...], str | None, str, str]
# A batch of (raw, region) pairs sent to a worker, and the future of its results: their
# fields, and with a memo each one's text for it too (normalise_batch_encoded).
_Work = tuple[
    list[tuple[str, str | None]],
    Future[list[PhoneFields]] | Future[tuple[list[PhoneFields], list[str]]],
]


class PhoneMemo(Protocol):
    """Numbers normalised on earlier runs (the checkpoint's ``phone_memo``), by (raw, region)."""

    def memo_phones(
        self, pairs: Sequence[tuple[str, str | None]]
    ) -> dict[tuple[str, str | None], Any]: ...

    def remember_encoded(self, items: Iterable[tuple[tuple[str, str | None], str]]) -> None:
        """Note normalised pairs, each with its fields as ``memo_text.encode_fields``
        writes them."""


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
    extension: str | None = None  # written after the number; the call cannot dial it
    number_type: str | None = None  # phonenumbers' type name: mobile, fixed_line, …
    address_zone: str | None = None  # how the address column(s) changed the zone, if given


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
    # callable rows whose number carries an extension: called on the main number only
    extensions: int = 0
    # callable rows by what their address did to the number's zone (address columns only)
    by_address_zone: Counter[str] = field(default_factory=Counter)
    # callable rows by calling window: (timezones, US state), what a projection needs
    by_window: Counter[tuple[tuple[str, ...], str | None]] = field(default_factory=Counter)

    def add(self, row: PlannedRow) -> None:
        """Count one planned row."""
        self.add_tally({_mark(row): 1})

    def add_tally(self, tally: Mapping[_Mark, int]) -> None:
        """Count rows tallied by their ``_mark`` (what ``add`` does row by row)."""
        for mark, count in tally.items():
            self.rows_read += count
            if len(mark) == 2:
                state, reason = mark
                if state == "rejected":
                    self.rejected[reason or "rejected"] += count
                elif state == "duplicate":
                    self.duplicates += count
                else:
                    self.suppressed[reason or "suppressed"] += count
                continue
            _, region, zones, us_state, address_zone, extension = mark
            self.callable += count
            self.by_country[region or "??"] += count
            self.by_timezone[_zone_label(zones)] += count
            self.by_window[(zones, us_state)] += count
            if address_zone:
                self.by_address_zone[address_zone] += count
            if extension:
                self.extensions += count


# What PlanCounts needs of a row: callable rows by place, the others by state and reason.
_Mark = tuple[Any, ...]


def _mark(row: PlannedRow) -> _Mark:
    """What PlanCounts counts of a row (``PlanCounts.add_tally``)."""
    if row.state == "callable":
        return ("callable", row.region, row.timezones, row.us_state, row.address_zone,
                bool(row.extension))  # fmt: skip
    return (row.state, None if row.state == "duplicate" else row.reason)


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
    config: CampaignConfig,
    *,
    opted_out: Iterable[str] = (),
    workers: int | None = None,
    on_rows: Callable[[int], None] | None = None,
    memo: PhoneMemo | None = None,
) -> PlanResult:
    """Plan every row of the campaign's input (held in memory, in input order)."""
    counts = PlanCounts()
    planned = iter_plan(
        config, counts, opted_out=opted_out, workers=workers, on_rows=on_rows, memo=memo
    )
    rows = list(planned)
    return PlanResult(rows, counts)


def iter_plan(
    config: CampaignConfig,
    counts: PlanCounts,
    *,
    opted_out: Iterable[str] = (),
    workers: int | None = None,
    suppression: Suppression | None = None,
    on_rows: Callable[[int], None] | None = None,
    memo: PhoneMemo | None = None,
) -> Iterator[PlannedRow]:
    """Stream planned rows in input order, counting them into ``counts`` as they go.

    ``suppression`` is the campaign's lists when the caller has read them already; when
    it reads them itself (a run), it logs each list's entries and matched rows at the end.
    ``on_rows`` is told how many input records have been read so far, every
    ``_CHUNK_ROWS`` (10,000) and once at the end: a big file shows it is being read.
    ``memo`` holds the numbers earlier runs normalised: only pairs it lacks are
    normalised, and they are added to it.
    A campaign with rows that need consent and no way to know it is refused (ConfigError)
    once every row is read, with their count.
    """
    fmt = detect_input_format(config.input)
    check_columns(config, fmt.header)
    log_consent_basis(config)
    read_lists = suppression is None
    if suppression is None:
        suppression = load_suppression(config)
    # no list: no lookup per row (a registry's number test costs a few microseconds)
    listed = suppression.numbers if suppression.lists else {}
    planner = _Planner(config, fmt, set(opted_out), listed)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    pool: Executor | None = None
    pending: deque[_Chunk] = deque()
    read = 0
    try:
        for records in _chunks(read_records(config.input.path, fmt), _CHUNK_ROWS):
            read += len(records)
            if on_rows is not None:
                on_rows(read)
            chunk = planner.look_up(records)
            if memo is not None and chunk.misses:
                planner.recall(chunk, memo)
            misses = chunk.misses
            threshold = _POOL_THRESHOLD if pool is None else _POOL_MIN_BATCH
            if workers > 1 and len(misses) >= threshold:
                pool = pool or _start_pool(workers)
                for start in range(0, len(misses), _WORKER_BATCH):
                    batch = misses[start : start + _WORKER_BATCH]
                    if memo is None:
                        chunk.futures.append((batch, pool.submit(normalise_batch, batch)))
                    else:
                        chunk.futures.append((batch, pool.submit(normalise_batch_encoded, batch)))
            else:
                planner.normalise_here(chunk)
            pending.append(chunk)
            # Keep the workers several chunks ahead of the rows being planned here, so
            # they never wait for this process (which is the faster of the two).
            while len(pending) > _CHUNKS_AHEAD:
                yield from planner.finish(pending.popleft(), counts, memo)
        while pending:
            yield from planner.finish(pending.popleft(), counts, memo)
        if planner.without_basis:
            raise missing_basis_error(
                config, sum(planner.without_basis.values()), dict(planner.without_basis)
            )
        if read_lists:
            log_matches(suppression, counts.suppressed)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


@dataclass(slots=True)
class _Chunk:
    """Records read but not yet planned, with what is known of their phones so far."""

    records: list[Record]
    # per record: the (raw, region) pair its phone is read as, None when it has a problem
    pairs: list[tuple[str, str | None] | None]
    problems: list[str | None]  # per record: why its phone cannot be read, if so
    misses: list[tuple[str, str | None]]  # distinct pairs this chunk sends to be normalised
    futures: list[_Work] = field(default_factory=list)
    # pairs known without a worker: recalled from the memo, or normalised here
    found: dict[tuple[str, str | None], PhoneFields] = field(default_factory=dict)
    normalised: list[tuple[tuple[str, str | None], PhoneFields]] = field(default_factory=list)
    # pairs the workers normalised, each with its text for the memo (when there is one)
    encoded: list[tuple[tuple[str, str | None], str]] = field(default_factory=list)


class _Planner:
    """The per-run memory of a plan: phone cache, first line of each number and key."""

    def __init__(
        self,
        config: CampaignConfig,
        fmt: CsvFormat,
        opted_out: set[str],
        suppression: Mapping[str, str],
    ) -> None:
        header = fmt.header
        self.config = config
        self.opted_out = opted_out
        self.suppression = suppression
        self.listed = suppression.get
        # (raw, region) → policy-applied fields: each distinct cell is normalised once
        self.phones: dict[tuple[str, str | None], PhoneFields] = {}
        self.words: dict[str, str] = {}  # reasons: shared strings
        # (region, type, timezones, state) of the numbers seen: shared tuples
        self.places: dict[_Place, _Place] = {}
        self.policy = {
            "allow_toll_free": config.input.allow_toll_free,
            "allow_voip": config.input.allow_voip,
        }
        self.width = len(header)
        self.blank = ("",) * self.width  # the cells of a record the csv module could not parse
        columns = {name: index for index, name in enumerate(header)}
        self.phone_index = columns[column_key(config.input.phone_column)]
        # reasons name columns as the file spells them ("Country", not "country")
        self.phone_label = fmt.spelling(config.input.phone_column)
        self.key_label = fmt.spelling(config.input.key_column or "")
        region_column = config.input.region_column
        self.region_label = fmt.spelling(region_column) if region_column else ""
        self.region_index = columns[column_key(region_column)] if region_column else None
        self.key_index = (
            columns[column_key(config.input.key_column)] if config.input.key_column else None
        )
        self.variables = [(name, columns[column_key(name)]) for name in config.input.variables]
        consent_column = config.input.consent_column
        self.consent_index = columns[column_key(consent_column)] if consent_column else None
        self.consent_label = fmt.spelling(consent_column) if consent_column else ""
        self.consent_regions = consent_regions(config)
        self.attested = config.compliance.consent == "attested"
        # attested with no column: nothing to look at or count (see _consent)
        self.asks_consent = self.consent_index is not None or not self.attested
        self.without_basis: Counter[str] = Counter()  # rows needing consent, by region
        self._address_columns(config, fmt, columns)
        # the first line of each number and key: later rows with either are duplicates
        self.first_of_number = FirstLines()
        self.first_of_key = FirstLines()
        # region cell → (region to read the phone in, why the cell is unusable)
        self.region_cells: dict[str, tuple[str | None, str | None]] = {}
        self.in_flight: set[tuple[str, str | None]] = set()  # sent to a worker, not back yet
        self.window_problems: dict[tuple[tuple[str, ...], str | None], str | None] = {}
        self.now = datetime.now(UTC)
        self.today = self.now.date()

    def _region(self, cell: str) -> tuple[str | None, str | None]:
        """(region, problem) of one region cell; memoised (a file has few distinct ones)."""
        found = self.region_cells.get(cell)
        if found is None:
            default = self.config.input.default_region
            region = country_code(cell) if cell else None
            if region is None and cell.strip():
                problem = (
                    f"unknown country {shown(cell.strip())} in column '{self.region_label}' "
                    f"(write {ACCEPTED})"
                )
                found = (None, problem)
            else:
                found = (region or default, None)
            if len(self.region_cells) >= _MAX_REGION_CELLS:
                self.region_cells.clear()  # bounded memory whatever the column holds
            self.region_cells[cell] = found
        return found

    def look_up(self, records: list[Record]) -> _Chunk:
        """The phone pair of each record (or its problem); the distinct pairs still to
        normalise: neither cached nor sent already."""
        pairs: list[tuple[str, str | None] | None] = []
        problems: list[str | None] = [None] * len(records)
        misses: list[tuple[str, str | None]] = []
        cached = self.phones
        in_flight = self.in_flight
        phone_index, region_index = self.phone_index, self.region_index
        default = self.config.input.default_region
        width, blank = self.width, self.blank
        region_cells = self.region_cells
        for index, (_, cells, error) in enumerate(records):
            if error and len(cells) < width:
                cells = blank
                records[index] = (records[index][0], cells, error)
            raw = cells[phone_index]
            if region_index is None:
                region, problem = default, None
            else:
                cell = cells[region_index]
                region, problem = region_cells.get(cell) or self._region(cell)
                if problem is not None and has_country_code(raw):
                    region, problem = None, None  # +44 …: the number says its country
            if "\0" in raw:
                problem = f"NUL character in column '{self.phone_label}'"
            problem = error or problem  # an unparsable record is rejected for that first
            if problem is not None:
                problems[index] = problem
                pairs.append(None)
                continue
            key = (raw, region)
            pairs.append(key)
            if key not in cached and key not in in_flight:
                in_flight.add(key)
                misses.append(key)
        return _Chunk(records, pairs, problems, misses)

    def recall(self, chunk: _Chunk, memo: PhoneMemo) -> None:
        """Take the chunk's misses that an earlier run normalised from the memo."""
        recalled = memo.memo_phones(chunk.misses)
        if not recalled:
            return
        for key, value in recalled.items():
            chunk.found[key] = self.remember(key, self._shared(value))
        self.in_flight.difference_update(recalled)
        chunk.misses = [key for key in chunk.misses if key not in recalled]

    def _shared(self, value: Sequence[Any]) -> PhoneFields:
        """A remembered number's fields, its place and reason one object each, not one per
        number (the memo gives fresh strings for every row; a worker's answers share them
        within a batch already, as unpickling keeps what the worker shared)."""
        e164, reason, region, kind, extension, zones, us_state, note = value
        place = (region, kind, tuple(zones), us_state)
        shared = self.places.get(place)
        if shared is None:
            if len(self.places) >= _MAX_PLACES:
                self.places.clear()  # bounded memory whatever the numbers are
            shared = self.places[place] = place
        region, kind, zones, us_state = shared
        if reason is not None:
            reason = self.words.setdefault(reason, reason)
            if len(self.words) >= _MAX_PLACES:
                self.words.clear()
        return (e164, reason, region, kind, extension, zones, us_state, note)

    def normalise_here(self, chunk: _Chunk) -> None:
        """Normalise a chunk's misses in this process (small inputs: no pool start-up)."""
        for key in chunk.misses:
            fields = phone_fields(normalise_number(*key))
            chunk.normalised.append((key, fields))
            chunk.found[key] = self.remember(key, fields)
            self.in_flight.discard(key)
        chunk.misses = []

    def remember(self, key: tuple[str, str | None], fields: PhoneFields) -> PhoneFields:
        """Cache the campaign-policy version of a normalised number."""
        if fields[3] in _POLICY_TYPES:
            fields = apply_policy_fields(fields, **self.policy)
        phones = self.phones
        if len(phones) >= _MAX_PHONES:
            # Dropping everything is crude but keeps memory bounded with no bookkeeping
            # per hit; CRM duplicates cluster, so the cache refills with what matters.
            phones.clear()
        phones[key] = fields
        return fields

    def phone(self, key: tuple[str, str | None]) -> PhoneFields:
        """The cached fields of (raw, region), normalising here when they are not cached."""
        fields = self.phones.get(key)
        if fields is None:
            fields = self.remember(key, phone_fields(normalise_number(*key)))
        return fields

    def finish(
        self, chunk: _Chunk, counts: PlanCounts, memo: PhoneMemo | None = None
    ) -> Iterator[PlannedRow]:
        """Plan the rows of a chunk whose phones are (being) normalised; count them."""
        fresh = chunk.found
        remember, in_flight = self.remember, self.in_flight
        encoded = chunk.encoded
        for batch, future in chunk.futures:
            if memo is None:
                sent_back = cast(list[PhoneFields], future.result())
            else:  # what the memo is told below, encoded by the worker
                sent_back, texts = cast(tuple[list[PhoneFields], list[str]], future.result())
                encoded.extend(zip(batch, texts, strict=True))
            for key, fields in zip(batch, sent_back, strict=True):
                fresh[key] = remember(key, fields)
            in_flight.difference_update(batch)
        if memo is not None:
            encoded.extend((key, encode_fields(fields)) for key, fields in chunk.normalised)
            if encoded:
                memo.remember_encoded(encoded)
        chunk.normalised, chunk.encoded = [], []
        # each row's phone: sent by this chunk, else cached (by an earlier chunk, or before
        # look-up; if evicted since, normalised here)
        found, phone = fresh.get, self.phone
        results = [None if pair is None else (found(pair) or phone(pair)) for pair in chunk.pairs]
        # Where each row's number and key were first seen before this chunk, asked for the
        # whole chunk at once; plan() adds what the chunk's own rows record.
        numbers = [ASKS_NOTHING if f is None or f[0] is None else number_int(f[0]) for f in results]
        number_seen = self.first_of_number.found(numbers)
        key_index = self.key_index
        if key_index is None:
            key_cells: list[str] = [""] * len(results)
            key_seen = number_seen  # unused: without a key column the key is the number
            keys: list[int | None] = [None] * len(results)
        else:
            key_cells = [cells[key_index].strip() for _, cells, _ in chunk.records]
            keys, queries = key_ints(key_cells)
            key_seen = self.first_of_key.found(queries)
        plan = self.plan
        # rows by what PlanCounts needs of them: one count per row here, a handful of
        # counters per distinct mark once the chunk is done (or given up)
        tally: dict[_Mark, int] = {}
        tallied = tally.get
        try:
            for record, problem, fields, key_cell, number, seen, key, key_first in zip(
                chunk.records, chunk.problems, results, key_cells, numbers, number_seen, keys,
                key_seen, strict=True,
            ):  # fmt: skip
                row = plan(record, problem, fields, key_cell, number, seen, key, key_first)
                mark = _mark(row)
                tally[mark] = tallied(mark, 0) + 1
                # Each row is handed on as it is made: held for the whole chunk, ten
                # thousand of them would outlive the garbage collector's young generation
                # and make its full collections, which walk every object, come often.
                yield row
        finally:
            counts.add_tally(tally)
        self.first_of_number.settle()
        self.first_of_key.settle()

    def plan(
        self,
        record: Record,
        problem: str | None,
        phone: PhoneFields | None,
        key_cell: str = "",
        number: int = 0,
        number_seen: int = 0,
        key: int | None = None,
        key_seen: int = 0,
    ) -> PlannedRow:
        """Decide one row. ``problem`` is why its phone cell cannot be read (look_up), if so;
        ``key_cell`` is its key, stripped; ``number`` and ``key`` the
        integer forms of its number and key (``firsts``), and ``number_seen`` and ``key_seen``
        the lines they were first seen on before its chunk (0: not before it)."""
        line, cells, error = record
        raw = cells[self.phone_index]
        variables = {name: cells[index] for name, index in self.variables}
        # rows without a number (or key) still need a stable identity in results and state
        if "\0" in key_cell:
            # A NUL cannot survive the trip through the API and back (batch rows are
            # matched by key), so the row is rejected here, by its line.
            problem = problem or f"NUL character in key column '{self.key_label}'"
            key_cell = ""
        if problem or phone is None:  # problem includes the record's error (see look_up)
            reason = error or problem
            row_key = key_cell or f"line:{line}"
            return PlannedRow(line, row_key, raw, None, "rejected", reason, variables=variables)
        e164, reason, region, number_type, extension, timezones, us_state, note = phone
        zone_words = None
        if self.has_address:
            timezones, us_state, note, zone_words = self._zone(cells, timezones, us_state, note)
        state: PlanState = "rejected"
        duplicate_of = None
        if e164 is None or reason:
            row_key = key_cell or f"line:{line}"
        else:
            has_key = self.key_index is not None
            row_key = key_cell or (f"line:{line}" if has_key else e164)
            if has_key and not key_cell:
                reason = f"empty key column '{self.key_label}'"
            else:
                try:
                    reason = self.window_problems[(timezones, us_state)]
                except KeyError:
                    reason = self._window_problem(timezones, us_state)
            if reason:
                pass
            elif e164 in self.opted_out:
                state, reason = "suppressed", "opted out (state dir opt-out list)"
            elif (listed := self.listed(e164)) is not None:
                state, reason = "suppressed", suppression_reason(listed)
            elif (
                self.asks_consent
                and region in self.consent_regions
                and (reason := self._consent(cells, region))
            ):
                pass  # rejected before dedupe: another row of the number may record consent
            else:
                numbers = self.first_of_number
                first = numbers.recent.get(number) or number_seen or None
                if has_key:  # the key's first line wins over the number's
                    keys = self.first_of_key
                    if key is None:
                        first = keys.words.get(row_key) or first
                    else:
                        first = keys.recent.get(key) or key_seen or first
                if first is not None:
                    state, duplicate_of = "duplicate", first
                    reason = f"duplicate of line {first}"
                else:
                    if not has_key:
                        pass  # without one the key is the number
                    elif key is None:
                        self.first_of_key.words[row_key] = line
                    else:
                        self.first_of_key.recent[key] = line
                    numbers.recent[number] = line
                    state = "callable"
        return PlannedRow(
            line,
            row_key,
            raw,
            e164,
            state,
            reason,
            duplicate_of,
            region,
            timezones,
            us_state,
            variables,
            note,
            extension,
            number_type,
            zone_words,
        )

    def _consent(self, cells: tuple[str, ...], region: str) -> str | None:
        """Why a row whose number needs consent may not be called, if so."""
        if self.consent_index is not None:
            return consent_problem(cells[self.consent_index], self.consent_label, self.today)
        if not self.attested:
            self.without_basis[region] += 1  # the plan is refused once every row is read
        return None

    def _address_columns(
        self, config: CampaignConfig, fmt: CsvFormat, columns: dict[str, int]
    ) -> None:
        """Where the recipient's address columns are, if the campaign names any."""
        state, postal = config.input.state_column, config.input.postal_code_column
        self.has_address = bool(state or postal)
        self.address_indexes = tuple(
            None if name is None else columns[column_key(name)] for name in (state, postal)
        )
        self.address_labels = (fmt.spelling(state or ""), fmt.spelling(postal or ""))
        # (number's timezones, number's state, state cell, postal cell) → the row's zone
        self.address_zones: dict[_ZoneKey, tuple[tuple[str, ...], str | None, str | None, str]] = {}

    def _zone(
        self,
        cells: tuple[str, ...],
        timezones: tuple[str, ...],
        us_state: str | None,
        note: str | None,
    ) -> tuple[tuple[str, ...], str | None, str | None, str]:
        """The row's zone, note and what its address did (see planning/address.py)."""
        state_index, postal_index = self.address_indexes
        cell_key = (
            "" if state_index is None else cells[state_index],
            "" if postal_index is None else cells[postal_index],
        )
        found = self.address_zones.get((timezones, us_state, *cell_key))
        if found is None:
            if len(self.address_zones) >= _MAX_REGION_CELLS:
                self.address_zones.clear()  # bounded memory whatever the columns hold
            address = address_zone(*cell_key, self.address_labels)
            zones, states, zone_note = recipient_zone(timezones, us_state, address)
            effect = address_effect(address, (timezones, us_state), (zones, states))
            found = (zones, states, zone_note, effect)
            self.address_zones[(timezones, us_state, *cell_key)] = found
        zones, states, zone_note, effect = found
        return zones, states, "; ".join(filter(None, (note, zone_note))) or None, effect

    def _window_problem(self, timezones: tuple[str, ...], us_state: str | None) -> str | None:
        """Why a number can never be called under the calling hours, if so (memoised)."""
        window = calling_window(timezones, us_state, self.config.calling_hours)
        problem = window.problem
        if problem is None and window.next_open(self.now) is None:
            problem = f"calling hours never overlap across its {len(timezones)} timezones"
        self.window_problems[(timezones, us_state)] = problem
        return problem


def _start_pool(workers: int) -> Executor:
    """A pool of ``workers`` processes forked from a fresh server process that has loaded
    the host's main module and the normaliser only: each worker shows about 40 MB, where a
    fork of this process (its imports, the plan so far) would show 100 MB or more, and a
    fork would copy the locks of a host's threads (``campaign.run_async`` in a web app) in
    whatever state they are. The server imports the host's main module again, as every
    spawned process does: a host script must keep its work under
    ``if __name__ == "__main__":``."""
    methods = multiprocessing.get_all_start_methods()
    method = "forkserver" if "forkserver" in methods else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # imported once in the server, not once in each worker
        context.set_forkserver_preload(["__main__", "campaign.phones.normalise"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


@functools.lru_cache(maxsize=4096)
def _zone_label(timezones: tuple[str, ...]) -> str:
    if len(timezones) <= 2:
        return " + ".join(timezones) or "unknown"
    return f"{timezones[0]} + {len(timezones) - 1} more"
