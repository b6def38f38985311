"""Do-not-call lists: every entry read, each usable one normalised, the others counted.

A list is a CSV whose phone column is found by name (or named in the campaign file), a
file of one number a line, or the US national registry's download: ten-digit numbers
(``2125550123``, or ``212,5550123``) one a line with no header, in a file or a folder of
area-code files, read as US numbers without phonenumbers (millions of lines). National
numbers of other lists are read in the list's ``region``, else the campaign's
``input.default_region``. An entry that does not give a number cannot suppress anyone,
so unusable entries are counted per list (``campaign validate`` shows them, a run logs
them) and a list with no usable number at all is refused: a wrong column or a missing
region must not silently suppress nobody.

A list may name date columns. ``expires_column``: an entry whose date is over (in every
timezone) no longer suppresses. ``starts_column``: an entry that comes into force later
suppresses now all the same (the safe reading of a number someone has asked not to be
called). A date that cannot be read fails closed: the entry suppresses, and is counted.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from campaign.config.model import CampaignConfig, SuppressionList
from campaign.errors import InputError
from campaign.inputs.ingest import CsvFormat, column_key, column_list, detect_format, read_records
from campaign.phones.normalise import PhoneCache
from campaign.planning.registry import (
    ListedNumbers,
    RegistryRead,
    looks_like_registry,
    read_registry,
    registry_files,
)

log = logging.getLogger("campaign.planning.suppression")

# Column names that hold the numbers, best first, compared without case, spaces or
# punctuation ("Phone Number", "phone_number" and "PhoneNumber" are one name).
_EXACT_NAMES = (
    "phone",
    "e164",
    "phonenumber",
    "number",
    "mobile",
    "mobilenumber",
    "mobilephone",
    "msisdn",
    "tel",
    "telephone",
    "telephonenumber",
    "cell",
    "cellphone",
    "cellnumber",
    "phoneno",
)
# Otherwise a column with one of these words ("Primary Phone", "Mobile (E.164)") and none
# of the words that make it something about a number ("Phone Type", "Phone Country Code").
_PHONE_WORDS = frozenset({"phone", "telephone", "tel", "mobile", "cell", "msisdn", "e164"})
_OTHER_WORDS = frozenset(
    {"type", "kind", "label", "ext", "extension", "country", "code", "status", "verified",
     "valid", "carrier", "region", "id", "date", "source", "note", "notes", "comment", "count",
     "consent", "opt", "flag", "owner", "name"}
)  # fmt: skip
_MAX_LINES_SHOWN = 5
# One line of the national registry's download: ten digits, or area code, comma, number.
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?")
_SLASH_DATE = re.compile(r"(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?:[ T].*)?")
# The latest timezone: a date is over everywhere once it is over at UTC-12.
_LAST_ZONE = timedelta(hours=12)


@dataclass
class LoadedList:
    """One suppression list as read: where its numbers came from and what was unusable."""

    name: str
    path: Path
    column: str | None  # None: one number a line
    region: str | None
    entries: int = 0
    usable: int = 0
    unusable: Counter[str] = field(default_factory=Counter)  # reason → entries
    unusable_lines: list[int] = field(default_factory=list)  # the first few
    registry: bool = False  # the national registry's format (US numbers, no phonenumbers)
    files: int = 1
    expired: int = 0  # usable entries whose expiry date is over: they suppress nobody
    not_yet: int = 0  # usable entries that start later: they suppress now all the same
    bad_dates: int = 0  # entries whose date cannot be read: they suppress (fail closed)
    bad_date_lines: list[int] = field(default_factory=list)  # the first few
    read: RegistryRead | None = field(default=None, repr=False)  # a registry's numbers

    @property
    def unusable_count(self) -> int:
        """Entries that gave no number (and so suppress nobody)."""
        return sum(self.unusable.values())

    @property
    def layout(self) -> str:
        """How the list was read, for validate and the log."""
        if self.registry:
            files = f", {self.files:,} files" if self.path.is_dir() else ""
            return f"national registry format{files}"
        return "one number a line" if self.column is None else f"column '{self.column}'"

    def describe_dates(self) -> str | None:
        """What the date columns did, in one phrase (None when nothing to say)."""
        parts = []
        if self.expired:
            parts.append(f"{self.expired:,} expired (suppress nobody)")
        if self.not_yet:
            parts.append(f"{self.not_yet:,} not yet in force (suppressed now all the same)")
        if self.bad_dates:
            more = ", …" if self.bad_dates > len(self.bad_date_lines) else ""
            lines = ", ".join(str(line) for line in self.bad_date_lines) + more
            parts.append(
                f"{self.bad_dates:,} with a date that cannot be read (suppressed all the same; "
                f"lines {lines})"
            )
        return "; ".join(parts) or None

    def describe_unusable(self) -> str:
        """The unusable entries in one sentence (counts, first lines, reasons; no numbers)."""
        more = ", …" if self.unusable_count > len(self.unusable_lines) else ""
        lines = ", ".join(str(line) for line in self.unusable_lines) + more
        reasons = "; ".join(f"{count} × {reason}" for reason, count in self.unusable.most_common(3))
        return (
            f"suppression list {self.name}: {self.unusable_count:,} of {self.entries:,} "
            f"entries give no usable number and suppress nobody (lines {lines}: {reasons})"
        )


@dataclass
class Suppression:
    """Every list of a campaign: E.164 number → the first list naming it, and each list."""

    numbers: Mapping[str, str]
    lists: list[LoadedList]


def suppression_reason(name: str) -> str:
    """The reason a row suppressed by list ``name`` carries (the send gate says the same)."""
    return f"on suppression list {name}"


def load_suppression(config: CampaignConfig, *, now: datetime | None = None) -> Suppression:
    """Read every suppression list of the campaign; InputError for one with no usable number.

    ``now`` decides which entries have expired (default: the current time).
    """
    cache = PhoneCache()
    numbers = ListedNumbers()
    lists: list[LoadedList] = []
    today = ((now or datetime.now(UTC)).astimezone(UTC) - _LAST_ZONE).date()
    for source, name in zip(config.suppression, _names(config.suppression), strict=True):
        region = source.region or config.input.default_region
        if _is_registry(source, region):
            loaded = _load_registry(source, name, cache)
            assert loaded.read is not None
            numbers.add(name, loaded.read.numbers)
            numbers.add(name, loaded.read.written)
        else:
            loaded, listed = _load_list(source, name, region, cache, today)
            numbers.add(name, listed)
        lists.append(loaded)
    return Suppression(numbers, lists)


def suppressed_numbers(config: CampaignConfig) -> Mapping[str, str]:
    """E.164 → list name, for a run's send gate; logs a WARNING per list with unusable entries."""
    suppression = load_suppression(config)
    for loaded in suppression.lists:
        if loaded.unusable_count:
            log.warning("%s", loaded.describe_unusable())
        if loaded.bad_dates:
            log.warning("suppression list %s: %s", loaded.name, loaded.describe_dates())
    return suppression.numbers


def log_matches(suppression: Suppression, suppressed: Mapping[str, int]) -> None:
    """Log, per list, the entries read, unusable and the input rows it matched.

    ``suppressed`` counts planned rows by their suppression reason.
    """
    for loaded in suppression.lists:
        dates = loaded.describe_dates()
        log.info(
            "suppression list %s (%s): %s entries read, %s unusable, %s row(s) matched%s",
            loaded.name,
            loaded.layout,
            f"{loaded.entries:,}",
            f"{loaded.unusable_count:,}",
            f"{suppressed.get(suppression_reason(loaded.name), 0):,}",
            f"; {dates}" if dates else "",
        )


def _names(sources: Sequence[SuppressionList]) -> list[str]:
    """Each list's name in reasons: its file name, or its path when two share a file name."""
    counts = Counter(source.path.name for source in sources)
    return [
        source.path.name if counts[source.path.name] == 1 else str(source.path)
        for source in sources
    ]


def _is_registry(source: SuppressionList, region: str | None) -> bool:
    """True for the national registry's format: named so, a folder, or a file that looks so."""
    if source.format != "auto":
        return source.format == "registry"
    named = source.column or source.expires_column or source.starts_column
    if not source.path.is_dir() and (named or region not in (None, "US")):
        return False  # ten digits in another region's list are that region's numbers
    return looks_like_registry(source.path)


def _load_registry(source: SuppressionList, name: str, cache: PhoneCache) -> LoadedList:
    """Read a registry list (a file or a folder of area-code files) into a LoadedList."""
    files = registry_files(source.path)
    read = read_registry(files, cache)
    loaded = LoadedList(name, source.path, None, "US", registry=True, files=len(files))
    loaded.usable, loaded.unusable, loaded.unusable_lines = (
        read.usable,
        read.unusable,
        read.unusable_lines,
    )
    loaded.entries = read.usable + loaded.unusable_count
    loaded.read = read
    if not loaded.usable:
        _refuse(loaded)
    return loaded


def _load_list(
    source: SuppressionList,
    name: str,
    region: str | None,
    cache: PhoneCache,
    today: date,
) -> tuple[LoadedList, set[str]]:
    path = source.path
    fmt = detect_format(path)
    column = _phone_column(source, fmt.header)
    expires = _date_column(source, fmt.header, "expires_column", column)
    starts = _date_column(source, fmt.header, "starts_column", column)
    loaded = LoadedList(name, path, column, region)
    numbers: set[str] = set()
    for line, cell, cells, error in _entries(path, fmt, column):
        loaded.entries += 1
        reason = error
        if reason is None:
            result = cache.get(cell, region)
            if result.e164:  # an entry's type does not matter: suppressed is suppressed
                loaded.usable += 1
                if _in_force(loaded, line, cells, expires, starts, today):
                    numbers.add(result.e164)
                continue
            reason = _entry_reason(result.reason or "not a phone number", region)
        loaded.unusable[reason] += 1
        if len(loaded.unusable_lines) < _MAX_LINES_SHOWN:
            loaded.unusable_lines.append(line)
    if not loaded.usable:
        _refuse(loaded)
    return loaded, numbers


def _in_force(
    loaded: LoadedList,
    line: int,
    cells: tuple[str, ...],
    expires: int | None,
    starts: int | None,
    today: date,
) -> bool:
    """False for an entry whose expiry date is over; counts the dates on the way."""
    unreadable = False
    in_force = True
    if starts is not None and cells[starts].strip():
        start = _read_date(cells[starts], latest=False)
        if start is None:
            unreadable = True
        elif start > today:
            loaded.not_yet += 1
    if expires is not None and cells[expires].strip():
        end = _read_date(cells[expires], latest=True)
        if end is None:
            unreadable = True
        elif end < today:
            loaded.expired += 1
            in_force = False
    if unreadable:
        loaded.bad_dates += 1
        if len(loaded.bad_date_lines) < _MAX_LINES_SHOWN:
            loaded.bad_date_lines.append(line)
    return in_force


def _read_date(cell: str, *, latest: bool) -> date | None:
    """A date written 2026-03-01 (a time after it is ignored), 01/03/2026 or 03/01/2026.

    With day and month both 12 or less, the two readings differ: ``latest`` takes the
    later one (an expiry then lasts longer), else the earlier one. None if not a date.
    """
    text = cell.strip()
    match = _ISO_DATE.fullmatch(text)
    candidates: list[tuple[int, int, int]] = []
    if match:
        candidates.append((int(match[1]), int(match[2]), int(match[3])))
    elif match := _SLASH_DATE.fullmatch(text):
        first, second, year = int(match[1]), int(match[2]), int(match[3])
        candidates += [(year, first, second), (year, second, first)]
    found = []
    for year, month, day in candidates:
        try:
            found.append(date(year, month, day))
        except ValueError:
            continue
    if not found:
        return None
    return max(found) if latest else min(found)


def _date_column(
    source: SuppressionList, header: Sequence[str], key: str, phone: str | None
) -> int | None:
    """The index of a date column the list names (``expires_column``, ``starts_column``)."""
    name = getattr(source, key)
    if name is None:
        return None
    wanted = column_key(name)
    if phone is None or wanted not in header:
        close = difflib.get_close_matches(wanted, list(header), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise InputError(
            f"column '{name}' (suppression {key}) is not in this list{hint} "
            f"(columns: {column_list(header)})",
            path=str(source.path),
            line=1,
        )
    return header.index(wanted)


def _entries(
    path: Path, fmt: CsvFormat, column: str | None
) -> Iterator[tuple[int, str, tuple[str, ...], str | None]]:
    """(line, number cell, all cells, why it is unreadable) of every entry, in file order."""
    width = len(fmt.header)
    if column is None:  # one number a line: the "header" is the first number
        yield fmt.header_line, fmt.header[0], (fmt.header[0],), None
        index = 0
    else:
        index = fmt.header.index(column)
    for line, cells, error in read_records(path, fmt):
        if len(cells) < width:
            cells = (*cells, *([""] * (width - len(cells))))
        yield line, cells[index], cells, error


def _entry_reason(reason: str, region: str | None) -> str:
    if region is None and reason.startswith("no country code and no region"):
        return "no country code and no region to read it in (give the list a region)"
    return reason


def _refuse(loaded: LoadedList) -> None:
    where = "one number a line" if loaded.column is None else f"column '{loaded.column}'"
    if not loaded.entries:
        message = "the suppression list has no entries"
    else:
        reasons = "; ".join(f"{n} × {why}" for why, n in loaded.unusable.most_common(3))
        message = (
            f"none of the {loaded.entries:,} entries of this suppression list ({where}) is a "
            f"usable phone number ({reasons})"
        )
    raise InputError(
        f"{message}; name its column or region in the campaign file, e.g. "
        f'suppression: [{{path: {loaded.path.name}, column: "Phone Number", region: GB}}]',
        path=str(loaded.path),
    )


def _phone_column(source: SuppressionList, header: Sequence[str]) -> str | None:
    """The column holding the numbers; None for a file of one number a line."""
    if source.column is not None:
        wanted = column_key(source.column)
        if wanted not in header:
            close = difflib.get_close_matches(wanted, list(header), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise InputError(
                f"column '{source.column}' (suppression column) is not in this list{hint} "
                f"(columns: {column_list(header)})",
                path=str(source.path),
                line=1,
            )
        return wanted
    if sum(char.isdigit() for char in header[0]) >= 6:  # no header: a number a line
        return None
    compact = {name: re.sub(r"[^0-9a-z]", "", name) for name in header}
    for exact in _EXACT_NAMES:
        for name in header:
            if compact[name] == exact:
                return name
    candidates = [name for name in header if _looks_like_phone_column(name)]
    if len(candidates) == 1:
        return candidates[0]
    if len(header) == 1 and not candidates:
        return header[0]  # a single column: whatever its title, it holds the numbers
    if candidates:
        problem = f"several columns could hold the numbers ({', '.join(candidates)})"
    else:
        problem = "no phone column in this suppression list"
    raise InputError(
        f"{problem}; name a column 'phone' or give the list's column in the campaign file "
        f'(suppression: [{{path: {source.path.name}, column: "…"}}]) '
        f"(columns: {column_list(header)})",
        path=str(source.path),
        line=1,
    )


def _looks_like_phone_column(name: str) -> bool:
    words = set(re.findall(r"[a-z]+|[0-9]+", name))
    if "e" in words and "164" in words:
        words.add("e164")
    return bool(words & _PHONE_WORDS) and not words & _OTHER_WORDS
