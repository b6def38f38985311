"""Do-not-call lists: every entry read, each usable one normalised, the others counted.

A list is a CSV whose phone column is found by name (or named in the campaign file), or a
file of one number a line. National numbers are read in the list's ``region``, else the
campaign's ``input.default_region``. An entry that does not give a number cannot
suppress anyone, so unusable entries are counted per list (``campaign validate`` shows
them, a run logs them) and a list with no usable number at all is refused: a wrong
column or a missing region must not silently suppress nobody.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from campaign.config.model import CampaignConfig, SuppressionList
from campaign.errors import InputError
from campaign.inputs.ingest import CsvFormat, column_key, column_list, detect_format, read_records
from campaign.phones.normalise import PhoneCache

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

    @property
    def unusable_count(self) -> int:
        """Entries that gave no number (and so suppress nobody)."""
        return sum(self.unusable.values())

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

    numbers: dict[str, str]
    lists: list[LoadedList]


def suppression_reason(name: str) -> str:
    """The reason a row suppressed by list ``name`` carries (the send gate says the same)."""
    return f"on suppression list {name}"


def load_suppression(config: CampaignConfig) -> Suppression:
    """Read every suppression list of the campaign; InputError for one with no usable number."""
    cache = PhoneCache()
    numbers: dict[str, str] = {}
    lists: list[LoadedList] = []
    for source, name in zip(config.suppression, _names(config.suppression), strict=True):
        region = source.region or config.input.default_region
        loaded = _load_list(source, name, region, cache, numbers)
        lists.append(loaded)
    return Suppression(numbers, lists)


def suppressed_numbers(config: CampaignConfig) -> dict[str, str]:
    """E.164 → list name, for a run's send gate; logs a WARNING per list with unusable entries."""
    suppression = load_suppression(config)
    for loaded in suppression.lists:
        if loaded.unusable_count:
            log.warning("%s", loaded.describe_unusable())
    return suppression.numbers


def _names(sources: Sequence[SuppressionList]) -> list[str]:
    """Each list's name in reasons: its file name, or its path when two share a file name."""
    counts = Counter(source.path.name for source in sources)
    return [
        source.path.name if counts[source.path.name] == 1 else str(source.path)
        for source in sources
    ]


def _load_list(
    source: SuppressionList,
    name: str,
    region: str | None,
    cache: PhoneCache,
    numbers: dict[str, str],
) -> LoadedList:
    path = source.path
    fmt = detect_format(path)
    column = _phone_column(source, fmt.header)
    loaded = LoadedList(name, path, column, region)
    for line, cell, error in _entries(path, fmt, column):
        loaded.entries += 1
        reason = error
        if reason is None:
            result = cache.get(cell, region)
            if result.e164:  # an entry's type does not matter: suppressed is suppressed
                numbers.setdefault(result.e164, name)
                loaded.usable += 1
                continue
            reason = _entry_reason(result.reason or "not a phone number", region)
        loaded.unusable[reason] += 1
        if len(loaded.unusable_lines) < _MAX_LINES_SHOWN:
            loaded.unusable_lines.append(line)
    if not loaded.usable:
        _refuse(loaded)
    return loaded


def _entries(
    path: Path, fmt: CsvFormat, column: str | None
) -> Iterator[tuple[int, str, str | None]]:
    """(line, cell, why it is unreadable) of every entry of a list, in file order."""
    if column is None:  # one number a line: the "header" is the first number
        yield fmt.header_line, fmt.header[0], None
        index = 0
    else:
        index = fmt.header.index(column)
    for line, cells, error in read_records(path, fmt):
        cell = cells[index] if index < len(cells) else ""
        yield line, cell, error


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
