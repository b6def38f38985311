"""Idempotency memory: per project and key, 24 h from first receipt."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from campaign.sandbox.problems import ApiProblem

REMEMBERED_STATUSES = frozenset({400, 404, 413, 422})


def should_remember(status: int) -> bool:
    """Only answers of requests that executed: 2xx and 400/404/413/422."""
    return 200 <= status < 300 or status in REMEMBERED_STATUSES


def canonical_json(value: Any) -> str:
    """Keys sorted, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_fingerprint(method: str, path: str, body_identity: str) -> str:
    """What makes two requests "the same request" for one key."""
    return hashlib.sha256(f"{method}\n{path}\n{body_identity}".encode()).hexdigest()


@dataclass
class Remembered:
    """One key's entry: the request it belongs to and, once executed, its answer."""

    fingerprint: str
    first_seen: float
    status: int | None = None  # None while the first request is still executing
    body: str = ""


class IdempotencyMemory:
    """Remembered answers by (project, Idempotency-Key)."""

    def __init__(self, ttl_s: float, entries: dict[str, Remembered] | None = None) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, Remembered] = entries or {}

    @staticmethod
    def _slot(project_id: str, key: str) -> str:
        return f"{project_id}\n{key}"

    def lookup(self, project_id: str, key: str, fingerprint: str, now: float) -> Remembered | None:
        """The finished entry to replay, None to execute afresh; 409 on conflict/in progress."""
        slot = self._slot(project_id, key)
        entry = self._entries.get(slot)
        if entry is not None and entry.status is not None and now - entry.first_seen >= self.ttl_s:
            del self._entries[slot]
            entry = None
        if entry is None:
            return None
        if entry.fingerprint != fingerprint:
            raise ApiProblem(
                "idempotency_conflict",
                "this Idempotency-Key was used with a different request",
                field="Idempotency-Key",
            )
        if entry.status is None:
            raise ApiProblem(
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
        return entry

    def begin(self, project_id: str, key: str, fingerprint: str, now: float) -> None:
        """Mark the key as executing."""
        self._entries[self._slot(project_id, key)] = Remembered(fingerprint, now)

    def finish(self, project_id: str, key: str, status: int, body: str) -> None:
        """Remember the answer (or forget the key when the answer is not remembered)."""
        slot = self._slot(project_id, key)
        if not should_remember(status):
            self._entries.pop(slot, None)
        elif slot in self._entries:
            self._entries[slot].status = status
            self._entries[slot].body = body

    def to_plain(self) -> dict[str, Any]:
        """Finished entries as JSON-ready data."""
        return {s: asdict(e) for s, e in self._entries.items() if e.status is not None}

    @classmethod
    def from_plain(cls, ttl_s: float, raw: dict[str, Any]) -> IdempotencyMemory:
        """Rebuild from ``to_plain`` output."""
        return cls(ttl_s, {slot: Remembered(**entry) for slot, entry in raw.items()})
