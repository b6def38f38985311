"""Reading CRM exports as they really arrive: odd encodings, delimiters and headers.

A CSV is streamed through the ``csv`` module (memory stays flat whatever its size);
each record keeps the physical line it starts on, so every later message can point at
it. A record that cannot be parsed becomes a row with an ``error``, never a crash; a
file that cannot be read at all is an ``InputError``. An Excel workbook (.xlsx) or a
parquet file is recognised by its name and first bytes and read with pandas instead
(``spreadsheets``, ``parquet``, ``tables``); its records have the same shape.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import charset_normalizer

from campaign.config.model import InputConfig
from campaign.errors import InputError
from campaign.inputs.binary import check_text, table_kind
from campaign.inputs.records import CsvFormat as CsvFormat
from campaign.inputs.records import Record as Record
from campaign.inputs.records import TableFormat, normalise_header, spelled_names
from campaign.inputs.records import column_key as column_key
from campaign.inputs.records import column_list as column_list

_SAMPLE_BYTES = 64 * 1024
# A physical line longer than this is rejected ("field too long") without being held in
# memory; a single field is bounded by the csv module's field_size_limit (128 Ki).
MAX_LINE_CHARS = 1024 * 1024
_DELIMITERS = ",;\t|"
# cp1252 covers what Western CRMs export; latin-1 decodes any byte, so it is the fallback
# that guarantees a file of legacy bytes is always readable.
_LEGACY_ENCODINGS = ["cp1252", "latin_1", "iso8859_15", "cp1250", "mac_roman"]


@dataclass(slots=True)
class SourceRow:
    """One record of the input: its first physical line, its cells, or why it is unusable."""

    line: int
    fields: dict[str, str]
    error: str | None = None


def read_header(path: Path) -> list[str]:
    """The normalised column names of the file (see ``column_key``), deduplicated."""
    return detect_format(path).header


def detect_input_format(settings: InputConfig) -> CsvFormat:
    """The campaign input's format: its sheet, and of a table only the columns it names.

    The phone and key columns are the exact ones: a spreadsheet number there that lost
    digits rejects the row; in a variable it is passed on as the spreadsheet stores it.
    """
    exact = [settings.phone_column, *filter(None, [settings.key_column])]
    named = [
        settings.region_column,
        settings.consent_column,
        settings.state_column,
        settings.postal_code_column,
    ]
    wanted = [*exact, *filter(None, named), *settings.variables]
    return detect_format(settings.path, sheet=settings.sheet, columns=wanted, exact=exact)


def detect_format(
    path: Path,
    *,
    sheet: str | None = None,
    columns: Sequence[str] | None = None,
    exact: Sequence[str] | None = None,
) -> CsvFormat:
    """Detect the kind and header of an input file; InputError if it has none.

    A CSV: its encoding, delimiter and header. An .xlsx: ``sheet`` (else the first one).
    For a table, only ``columns`` are read (all when None), and ``exact`` are the
    columns where a number that lost digits rejects the row (all when None).
    """
    sample = _read_sample(path)
    kind = table_kind(path, sample)
    # pandas takes about a second to import: only a spreadsheet or parquet input pays it
    if kind == "xlsx":
        from campaign.inputs import spreadsheets

        return spreadsheets.detect_sheet(path, sheet=sheet, columns=columns, exact=exact)
    if kind == "parquet":
        from campaign.inputs import parquet

        return parquet.detect_parquet(path, sheet=sheet, columns=columns, exact=exact)
    if sheet is not None:
        raise InputError(
            f"input.sheet is {sheet!r}, but this file is not an Excel workbook (.xlsx); "
            "leave input.sheet out for a CSV",
            path=str(path),
        )
    encoding = detect_encoding(sample)
    check_text(path, sample, encoding)
    with _open_text(path, encoding) as stream:
        delimiter, cells, header_line = _read_header_lines(path, stream, sample, encoding)
    return CsvFormat(
        encoding, delimiter, normalise_header(cells), header_line, spelled_names(cells)
    )


def read_rows(path: Path) -> Generator[SourceRow, None, None]:
    """Stream the data rows of an input file in file order; header is line 1 (or after sep=)."""
    fmt = detect_format(path)
    header = fmt.header
    for line, cells, error in read_records(path, fmt):
        yield SourceRow(line, dict(zip(header, cells, strict=False)), error)


def read_records(path: Path, fmt: CsvFormat) -> Iterator[Record]:
    """Records as (line, cells, error), cells as wide as the header, in file order.

    A CSV is streamed and keeps its physical lines; a spreadsheet's line is its row as
    Excel numbers it (see ``spreadsheets``, ``parquet``).
    """
    if isinstance(fmt, TableFormat):
        if fmt.kind == "xlsx":
            from campaign.inputs import spreadsheets

            return spreadsheets.read_sheet_records(path, fmt)
        from campaign.inputs import parquet

        return parquet.read_parquet_records(path, fmt)
    return _read_csv_records(path, fmt)


def _read_csv_records(path: Path, fmt: CsvFormat) -> Iterator[Record]:
    """Stream records as (line, cells, error); cells are padded/trimmed to the header width.

    Every physical line is accounted for: a record that cannot be read (a quote never
    closed, a line or field over the limit) becomes an error on its first line, and the
    other lines it took are read again as records of their own. A record with an error
    keeps all its cells (more than the header has), or none.
    """
    width = len(fmt.header)
    padding = [""] * width
    delimiter = fmt.delimiter
    with _open_text(path, fmt.encoding) as stream:
        for _ in range(fmt.header_line):
            stream.readline()
        feed = _Feed(stream)
        taken = feed.taken
        reader = csv.reader(feed.lines(), delimiter=delimiter, strict=False)
        start = fmt.header_line + 1  # the line the next record starts on
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, _LineTooLong) as exc:
                yield start, (), feed.reject(exc)
                start += 1
                reader = csv.reader(feed.lines(), delimiter=delimiter, strict=False)
                continue
            if len(taken) > 1 or feed.at_end:
                # Lenient parsing lets a quote that is never closed swallow every line
                # after it, so a record spanning lines must also parse strictly.
                problem = _strict_problem(taken, delimiter)
                if problem is not None:
                    yield start, (), feed.reject(problem)
                    start += 1
                    reader = csv.reader(feed.lines(), delimiter=delimiter, strict=False)
                    continue
            line = start
            start += len(taken)
            taken.clear()
            count = len(cells)
            first = cells[0] if cells else ""
            # a first cell with a visible character proves the line is not blank (cheap)
            if (not first or first.isspace()) and (not any(cells) or "".join(cells).isspace()):
                continue  # blank lines (or lines of empty cells) are not rows
            if count == width:
                yield line, tuple(cells), None
                continue
            if count > width:
                if any(cell.strip() for cell in cells[width:]):
                    error = f"{count} fields but the header has {width} (a stray delimiter?)"
                    yield line, tuple(cells), error
                    continue
                yield line, tuple(cells[:width]), None
            else:
                # ragged rows: trailing columns an exporter left off are empty, not an error
                yield line, (*cells, *padding[count:]), None


class _LineTooLong(Exception):
    """A physical line longer than MAX_LINE_CHARS (skipped, never held in memory)."""


class _Feed:
    """The physical lines given to the csv reader: bounded, with push-back.

    ``taken`` holds the lines of the record being read (consecutive lines of the file),
    so that a broken record can be rejected by its first line and its other lines read
    again. A line longer than MAX_LINE_CHARS is read in bounded pieces and dropped (kept
    as ``None``), so memory stays flat whatever the file holds.
    """

    def __init__(self, stream: io.TextIOWrapper) -> None:
        self.stream = stream
        self.taken: list[str | None] = []
        self.pushed: deque[str | None] = deque()
        self.at_end = False  # the reader asked for a line past the end of the file

    def lines(self) -> Iterator[str]:
        """Lines for one csv reader (a new one after each rejected record).

        Raises _LineTooLong (and ends) at an over-long line.
        """
        readline, taken, pushed = self.stream.readline, self.taken, self.pushed
        limit = MAX_LINE_CHARS
        while True:
            text: str | None
            if pushed:
                text = pushed.popleft()
            else:
                text = readline(limit)
                if not text:
                    self.at_end = True
                    return
                if len(text) == limit and text[-1] not in "\r\n":
                    self._skip_rest_of_line()
                    text = None
            taken.append(text)
            if text is None:
                raise _LineTooLong
            yield text

    def _skip_rest_of_line(self) -> None:
        text = "x"
        while text and text[-1] not in "\r\n":
            text = self.stream.readline(MAX_LINE_CHARS)

    def reject(self, problem: Exception | str) -> str:
        """Why the record being read is rejected; its lines after the first are read again."""
        first, rest = self.taken[0], self.taken[1:]
        unclosed = bool(rest) or self.at_end
        self.taken.clear()
        self.pushed.extendleft(reversed(rest))
        self.at_end = False
        if first is None:
            return f"field too long: the line has over {MAX_LINE_CHARS:,} characters"
        limit = csv.field_size_limit()
        if isinstance(problem, _LineTooLong) or "field limit" in str(problem):
            if unclosed:
                return (
                    f"field too long: a quoted field starting on this line runs past {limit:,} "
                    "characters (a quote never closed?); the lines after it are read as rows"
                )
            return f"field too long: a field has over {limit:,} characters"
        if rest:
            return (
                f"a quote opened on this line is not closed properly ({problem}); "
                f"the {len(rest)} line(s) after it are read as rows of their own"
            )
        if unclosed:
            return f"a quote opened on this line is never closed ({problem})"
        return f"cannot parse this line ({problem})"


def _strict_problem(taken: list[str | None], delimiter: str) -> str | None:
    """Why the lines of one record do not parse as strict CSV, if they do not."""
    try:
        for _ in csv.reader((text or "" for text in taken), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return str(exc)
    return None


def _read_sample(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_SAMPLE_BYTES)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path=str(path)) from exc


def detect_encoding(sample: bytes) -> str:
    """BOMs first, then strict UTF-8, then UTF-16 by its NUL pattern, then legacy code pages."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=False)  # a multi-byte character may be cut at the end
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > len(odd) * 0.4 and even.count(0) < len(even) * 0.1:
            return "utf-16-le"
        if even.count(0) > len(even) * 0.4 and odd.count(0) < len(odd) * 0.1:
            return "utf-16-be"
    matches = list(charset_normalizer.from_bytes(sample, cp_isolation=_LEGACY_ENCODINGS))
    if not matches:
        return "cp1252"
    best = matches[0]
    # Short samples often fit several code pages equally well; among the ties, take the
    # most common one in CRM exports (the order of _LEGACY_ENCODINGS).
    ties = [
        encoding
        for match in matches
        if match.chaos <= best.chaos + 0.01 and match.coherence >= best.coherence - 0.01
        for encoding in match.could_be_from_charset  # code pages giving the very same text
    ]
    return min(
        ties, key=lambda name: _LEGACY_ENCODINGS.index(name) if name in _LEGACY_ENCODINGS else 99
    )


def _open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror or exc})", path=str(path)) from exc
    # newline="" keeps \r\n inside quoted cells intact for the csv module; undecodable
    # bytes become U+FFFD so one bad byte costs one cell, not the file.
    return io.TextIOWrapper(handle, encoding=encoding, errors="replace", newline="")


def _read_header_lines(
    path: Path, stream: io.TextIOWrapper, sample: bytes, encoding: str
) -> tuple[str, list[str], int]:
    """Delimiter, header cells as written and the number of lines the header part took."""
    consumed = 0

    def next_line() -> str | None:
        nonlocal consumed
        consumed += 1
        text = stream.readline(MAX_LINE_CHARS)
        if len(text) == MAX_LINE_CHARS and text[-1] not in "\r\n":
            raise InputError(
                f"line too long for a header (over {MAX_LINE_CHARS:,} characters)",
                path=str(path),
                line=consumed,
            )
        return text or None

    first = next_line()
    while first is not None and not first.strip():  # blank lines above the header
        first = next_line()
    if first is None:
        raise InputError("the file is empty; expected a header line", path=str(path))
    delimiter = None
    stripped = first.strip().strip('"')
    if stripped.lower().startswith("sep=") and len(stripped) == 5:
        delimiter = stripped[4]  # Excel's "sep=;" hint line
        first = next_line()
        if first is None:
            raise InputError("no header line after 'sep='", path=str(path), line=consumed)
    if delimiter is None:
        delimiter = _sniff_delimiter(sample.decode(encoding, errors="replace"))
    try:
        cells = next(csv.reader([first], delimiter=delimiter, strict=False))
    except (csv.Error, StopIteration) as exc:
        raise InputError(f"cannot read the header ({exc})", path=str(path), line=consumed) from None
    return delimiter, cells, consumed


def _sniff_delimiter(sample_text: str) -> str:
    """The candidate that splits the most sample lines into as many fields as the header."""
    lines = [line for line in sample_text.splitlines(keepends=True) if line.strip()][:50]
    if len(lines) > 1:
        lines = lines[:-1]  # the sample may end mid-line
    best, best_score = ",", (0, 0)
    for delimiter in _DELIMITERS:
        try:
            records = list(csv.reader(lines, delimiter=delimiter, strict=False))
        except csv.Error:
            continue
        width = len(records[0]) if records else 0
        if width < 2:
            continue
        consistent = sum(1 for record in records if len(record) == width)
        score = (consistent, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best
