"""The US national do-not-call registry's download, read fast; numbers kept compactly.

The download is one file per area code (or one for the whole registry) of ten-digit
numbers, one a line, no header: ``2125550123`` (older flat files: ``212,5550123``). Lists
of millions of lines are read in blocks checked at once by one regular expression, and
kept as ints. A line written otherwise (``+1 212-555-0123``, ``+44 …``, a hand-added
number) is read by phonenumbers, as a US number unless it says its country.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from campaign.errors import InputError
from campaign.phones.normalise import PhoneCache

REGISTRY_BAD = "not a ten-digit US number"
_LINE = re.compile(rb"(\d{3}),?(\d{7})")
_NANP = re.compile(r"[2-9]\d\d[2-9]\d{6}")  # area code and exchange start with 2-9
# A block of lines as the download has them, checked at once, not line by line.
_BLOCK = re.compile(rb"(?:[2-9]\d\d[2-9]\d{6}\r?\n)*")
_CHUNK_BYTES = 1 << 22  # read from a file at a time
_MAX_LINES_SHOWN = 5


@dataclass
class RegistryRead:
    """What a registry list gave: numbers as ints, others as E.164, the unusable lines."""

    numbers: set[int] = field(default_factory=set)
    written: set[str] = field(default_factory=set)
    usable: int = 0
    unusable: Counter[str] = field(default_factory=Counter)
    unusable_lines: list[int] = field(default_factory=list)  # the first few


def looks_like_registry(path: Path) -> bool:
    """True for a folder, or a file whose first non-blank line is a registry line."""
    if path.is_dir():
        return True
    with path.open("rb") as handle:
        first = next((line for line in handle if line.strip()), b"")
    return _LINE.fullmatch(first.strip()) is not None


def registry_files(path: Path) -> list[Path]:
    """The files of a registry list: the file, or a folder's files (hidden ones skipped)."""
    if not path.is_dir():
        return [path]
    files = sorted(
        found for found in path.iterdir() if found.is_file() and not found.name.startswith(".")
    )
    if not files:
        raise InputError("the registry folder holds no files", path=str(path))
    return files


def read_registry(files: list[Path], cache: PhoneCache) -> RegistryRead:
    """Read registry files in blocks of whole lines; blank lines are no entries."""
    read = RegistryRead()
    for path in files:
        with path.open("rb") as handle:
            line, rest = 0, b""
            while block := handle.read(_CHUNK_BYTES):
                block = rest + block
                cut = block.rfind(b"\n") + 1
                block, rest = block[:cut], block[cut:]
                _read_block(block, line, read, cache)
                line += block.count(b"\n")
            if rest:
                _read_block(rest + b"\n", line, read, cache)
    return read


def _read_block(block: bytes, before: int, read: RegistryRead, cache: PhoneCache) -> None:
    """Add the numbers of whole lines ``block`` (after line ``before``) to ``read``."""
    if _BLOCK.fullmatch(block):  # the common case, at C speed
        found = block.split()
        read.numbers.update(map(int, found))
        read.usable += len(found)
        return
    for offset, raw in enumerate(block.split(b"\n")[:-1], 1):
        digits = raw.strip()
        if not digits:
            continue
        match = _LINE.fullmatch(digits)
        text = (match[1] + match[2]).decode() if match else ""
        if _NANP.fullmatch(text):
            read.numbers.add(int(text))
            read.usable += 1
            continue
        if not match:  # not the registry's layout: read as people write numbers
            e164 = cache.get(digits.decode("utf-8", "replace"), "US").e164
            if e164:
                read.written.add(e164)
                read.usable += 1
                continue
        read.unusable[REGISTRY_BAD] += 1
        if len(read.unusable_lines) < _MAX_LINES_SHOWN:
            read.unusable_lines.append(before + offset)


class ListedNumbers(Mapping[str, str]):
    """E.164 number → the first list naming it; a registry's numbers are kept as ints.

    Ten digits as an int take about a third of the memory of an E.164 string, and a
    registry download holds millions of them.
    """

    def __init__(self) -> None:
        self._lists: list[tuple[str, set[str] | set[int]]] = []

    def add(self, name: str, numbers: set[str] | set[int]) -> None:
        """One more list, after the others (a number's reason names its first list)."""
        self._lists.append((name, numbers))

    def __getitem__(self, e164: str) -> str:
        name = self.get(e164)
        if name is None:
            raise KeyError(e164)
        return name

    def __contains__(self, e164: object) -> bool:
        return isinstance(e164, str) and self.get(e164) is not None

    def get(self, e164: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """The first list naming ``e164``, else ``default``."""
        national: int | None = None
        if len(e164) == 12 and e164.startswith("+1") and e164[2:].isdigit():
            national = int(e164[2:])
        for name, numbers in self._lists:
            if e164 in numbers or (national is not None and national in numbers):
                return name
        return default

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for _, numbers in self._lists:
            for number in numbers:
                e164 = f"+1{number:010d}" if isinstance(number, int) else number
                if e164 not in seen:
                    seen.add(e164)
                    yield e164

    def __len__(self) -> int:
        return sum(1 for _ in self)
