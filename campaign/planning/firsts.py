"""The first input line of each number and key, in 16 bytes an entry.

A plan of a million rows remembers where each number and key first appeared (a later row
with either is a duplicate of it). As dicts of strings that costs about 100 bytes an entry;
here each is an exact 64-bit integer — an E.164 number's digits, a short key's bytes — kept
in sorted numpy arrays, the newest in a small dict until there are enough of them to join
the arrays. Keys that fit no integer (long or non-ASCII ones) stay in a dict of strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

ASKS_NOTHING = -1  # the query of a row with nothing to look up (no stored integer is -1)
_RECENT_MAX = 1 << 16  # entries held in the dict before they join the arrays


def number_int(e164: str) -> int:
    """An E.164 number as the integer of its digits (a country code never starts with 0)."""
    return int(e164[1:])


def key_int(key: str) -> int | None:
    """A key as an exact 64-bit integer, else None (held as a string instead).

    Up to 8 ASCII characters: their bytes, big-endian (no key holds a NUL, so lengths
    cannot be confused). 9 to 18 ASCII digits without a leading zero: minus their value.
    The two never meet: one is positive, the other negative.
    """
    if len(key) <= 8:
        if key.isascii() and key[:1] != "\0":
            return int.from_bytes(key.encode("ascii"), "big")
        return None
    if len(key) <= 18 and key.isascii() and key.isdigit() and key[0] != "0":
        return -int(key)
    return None


def key_ints(keys: Sequence[str]) -> tuple[list[int | None], npt.NDArray[np.int64]]:
    """``[key_int(key) for key in keys]``, and the same as ``FirstLines`` queries (None
    asks nothing): a chunk of keys at a time.

    Keys of up to 8 ASCII characters (most CRM ids) are turned into integers by numpy,
    the others by ``key_int``. A chunk with a NUL anywhere goes to ``key_int`` whole:
    numpy's strings cannot tell a trailing NUL from padding.
    """
    count = len(keys)
    if count == 0 or "\0" in "".join(keys):
        slow = [key_int(key) for key in keys]
        asked = [ASKS_NOTHING if value is None else value for value in slow]
        return slow, np.fromiter(asked, dtype=np.int64, count=count)
    text = np.array(keys, dtype=str)
    width = text.dtype.itemsize // 4
    codes = text.view(np.uint32).reshape(count, width)
    if width < 8:
        codes = np.pad(codes, ((0, 0), (0, 8 - width)))
    head = codes[:, :8].astype(np.uint64)
    lengths = np.count_nonzero(codes, axis=1)  # no NUL: the characters before the padding
    short = (lengths <= 8) & (head < 128).all(axis=1)
    # big-endian bytes, as int.from_bytes: the 8 first characters, then shifted right by
    # the padding (an empty key is 0)
    packed = np.zeros(count, dtype=np.uint64)
    for at in range(8):
        packed |= head[:, at] << np.uint64(8 * (7 - at))
    padding = np.where(lengths == 0, 0, 8 - np.minimum(lengths, 8)).astype(np.uint64)
    packed >>= padding * np.uint64(8)
    queries = packed.astype(np.int64)  # below 2**63: ASCII bytes are under 128
    ints: list[int | None] = [*queries.tolist()]
    for at in np.flatnonzero(~short).tolist():
        value = ints[at] = key_int(keys[at])
        queries[at] = ASKS_NOTHING if value is None else value
    return ints, queries


class FirstLines:
    """Integer → the line it was first seen on; exact, compact, looked up a chunk at a time.

    ``found`` answers for many integers at once from the arrays (call it for a chunk's
    rows before planning them); ``get`` then adds the entries made since. ``settle``
    moves the recent entries into the arrays (between chunks).
    """

    def __init__(self) -> None:
        self.recent: dict[int, int] = {}
        self.keys: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.lines: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.words: dict[str, int] = {}  # keys with no integer form

    def __len__(self) -> int:
        return len(self.recent) + len(self.keys) + len(self.words)

    def found(self, queries: Sequence[int] | npt.NDArray[np.int64]) -> list[int]:
        """The line of each integer in the arrays, else 0 (``ASKS_NOTHING`` finds nothing)."""
        if not len(self.keys) or not len(queries):
            return [0] * len(queries)
        wanted = np.asarray(queries, dtype=np.int64)
        at = np.searchsorted(self.keys, wanted)
        np.minimum(at, len(self.keys) - 1, out=at)
        hit = self.keys[at] == wanted
        result: list[int] = np.where(hit, self.lines[at], 0).tolist()
        return result

    def settle(self) -> None:
        """Move the recent entries into the sorted arrays once there are enough of them."""
        if len(self.recent) < _RECENT_MAX:
            return
        count = len(self.recent)
        keys = np.fromiter(self.recent.keys(), dtype=np.int64, count=count)
        lines = np.fromiter(self.recent.values(), dtype=np.int64, count=count)
        order = np.argsort(keys)
        keys, lines = keys[order], lines[order]
        at = np.searchsorted(self.keys, keys)
        self.keys = np.insert(self.keys, at, keys)
        self.lines = np.insert(self.lines, at, lines)
        self.recent = {}
