"""What the checkpoint remembers of ingest, so a nightly re-read costs what changed.

``phone_memo`` holds each normalised (raw cell, region) pair as JSON, noted by the planner
as it goes and kept once the plan is read (``keep_phones``): a row seen on an earlier night
is not normalised again. It is keyed by a version (the phonenumbers metadata and the
normaliser's code): when that changes, the memo is emptied and every number is normalised
afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from campaign.store.base import StoreBase
from campaign.store.memo_text import decode_fields, encode_fields

_RAWS_PER_QUERY = 900  # raw cells per SELECT, under SQLite's 999 parameters (the key's prefix)
_VERSION_KEY = "phone_memo_version"


class IngestMemo(StoreBase):
    """The normalised numbers of earlier runs, by (raw cell, region)."""

    _memo_batches = 0  # noted batches kept by this connection (keep_phones)

    def use_phone_memo(self, version: str) -> None:
        """Keep the memo if it was written by ``version``, else empty it for this one."""
        with self._tx() as conn:
            found = conn.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,))
            stored = found.fetchone()
            if stored is not None and stored[0] == version:
                return
            conn.execute("DELETE FROM phone_memo")
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (_VERSION_KEY, version),
            )

    def memo_phones(
        self, pairs: Sequence[tuple[str, str | None]]
    ) -> dict[tuple[str, str | None], Any]:
        """The remembered fields (decoded JSON) of those pairs the memo holds."""
        wanted = set(pairs)
        raws = list({raw for raw, _ in pairs})
        found: dict[tuple[str, str | None], Any] = {}
        with self._reading():
            for start in range(0, len(raws), _RAWS_PER_QUERY):
                batch = raws[start : start + _RAWS_PER_QUERY]
                marks = ", ".join("?" * len(batch))
                for raw, region, fields in self._conn.execute(
                    f"SELECT raw, region, fields FROM phone_memo WHERE raw IN ({marks})", batch
                ):
                    key = (raw, region or None)
                    if key in wanted:
                        found[key] = decode_fields(fields)
        return found

    def remember_phones(self, items: Iterable[tuple[str, str | None, Any]]) -> None:
        """Note normalised pairs (their fields as JSON-ready values) for ``keep_phones``."""
        self.remember_encoded(((raw, region), encode_fields(f)) for raw, region, f in items)

    def remember_encoded(self, items: Iterable[tuple[tuple[str, str | None], str]]) -> None:
        """Note normalised pairs, each with its fields already as the memo keeps them
        (``memo_text.encode_fields``), for ``keep_phones``.

        They go to a temporary table in arrival order: inserting a million pairs into the
        memo's index in random order costs minutes, in key order seconds.
        """
        rows = [(raw, region or "", text) for (raw, region), text in items]
        if not rows:
            return
        with self._tx() as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS memo_new "
                "(raw TEXT NOT NULL, region TEXT NOT NULL, fields TEXT NOT NULL)"
            )
            conn.executemany(
                "INSERT INTO temp.memo_new(raw, region, fields) VALUES (?, ?, ?)", rows
            )

    def keep_phones(self) -> None:
        """Add the pairs noted since the last call to the memo, in key order."""
        with self._tx() as conn:
            if self._has_temp_table(conn, "memo_new"):
                conn.execute(
                    "INSERT INTO phone_memo(raw, region, fields) "
                    "SELECT raw, region, fields FROM temp.memo_new WHERE true "
                    "ORDER BY raw, region "
                    "ON CONFLICT(raw, region) DO UPDATE SET fields = excluded.fields"
                )
                if self._pg is not None:
                    conn.execute("DROP TABLE temp.memo_new")
                    return
                # SQLite frees a dropped table page by page (a million pairs: a second);
                # renamed, it is out of the way, and goes with the connection's
                # temporary file. The name is new each time, and rolled back with the
                # transaction like the rest.
                self._memo_batches += 1
                conn.execute(f"ALTER TABLE temp.memo_new RENAME TO memo_kept_{self._memo_batches}")

    def phone_memo_size(self) -> int:
        """How many pairs the memo holds."""
        return self._count("phone_memo", "true")
