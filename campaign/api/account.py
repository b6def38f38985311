"""Typed account objects (contract §8–§10): webhooks, knowledge base, usage and billing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from campaign.api.fields import (
    read_bool,
    read_int,
    read_list,
    read_map,
    read_money,
    read_obj,
    read_opt_str,
    read_str,
    read_time,
)


@dataclass(frozen=True)
class Webhook:
    """A webhook subscription; ``secret`` only in the response that created it."""

    id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    active: bool
    created_at: datetime
    secret: str | None = None

    def __repr__(self) -> str:
        # The signing secret is a credential: keep it out of logs and tracebacks.
        shown = "***" if self.secret else None
        return (
            f"Webhook(id={self.id!r}, url={self.url!r}, events={self.events!r}, "
            f"active={self.active!r}, secret={shown})"
        )

    @classmethod
    def from_json(cls, value: object) -> Webhook:
        """Read a Webhook object."""
        obj = read_obj(value, "webhook")
        events = tuple(str(event) for event in read_list(obj, "events"))
        return cls(
            id=read_str(obj, "id"),
            url=read_str(obj, "url"),
            events=events,
            description=read_opt_str(obj, "description"),
            active=read_bool(obj, "active"),
            created_at=read_time(obj, "created_at"),
            secret=read_opt_str(obj, "secret"),
        )


@dataclass(frozen=True)
class CrawlJob:
    """A queued knowledge-base crawl."""

    id: str
    status: str

    @classmethod
    def from_json(cls, value: object) -> CrawlJob:
        """Read a CrawlJob object."""
        obj = read_obj(value, "crawl")
        return cls(read_str(obj, "id"), read_str(obj, "status"))


@dataclass(frozen=True)
class KnowledgeFile:
    """A file of the knowledge base."""

    id: str
    filename: str
    bytes: int
    status: str
    created_at: datetime

    @classmethod
    def from_json(cls, value: object) -> KnowledgeFile:
        """Read a KnowledgeFile object."""
        obj = read_obj(value, "file")
        return cls(
            read_str(obj, "id"),
            read_str(obj, "filename"),
            read_int(obj, "bytes"),
            read_str(obj, "status"),
            read_time(obj, "created_at"),
        )


@dataclass(frozen=True)
class Usage:
    """Aggregated usage of one month."""

    period: str
    calls: int
    minutes: Decimal
    tool_calls: int
    outcomes: dict[str, int]
    amount: Decimal
    currency: str

    @classmethod
    def from_json(cls, value: object) -> Usage:
        """Read a Usage object."""
        obj = read_obj(value, "usage")
        outcomes = {str(k): int(v) for k, v in read_map(obj, "outcomes").items()}
        return cls(
            period=read_str(obj, "period"),
            calls=read_int(obj, "calls"),
            minutes=read_money(obj, "minutes"),
            tool_calls=read_int(obj, "tool_calls"),
            outcomes=outcomes,
            amount=read_money(obj, "amount"),
            currency=read_str(obj, "currency"),
        )


@dataclass(frozen=True)
class WalletTransaction:
    """One movement of the wallet (negative for charges)."""

    id: str
    amount: Decimal
    kind: str
    created_at: datetime


@dataclass(frozen=True)
class Wallet:
    """The project's balance and recent transactions."""

    balance: Decimal
    currency: str
    recent_transactions: tuple[WalletTransaction, ...]

    @classmethod
    def from_json(cls, value: object) -> Wallet:
        """Read a Wallet object."""
        obj = read_obj(value, "wallet")
        transactions = []
        for item in read_list(obj, "recent_transactions"):
            txn = read_obj(item, "transaction")
            transactions.append(
                WalletTransaction(
                    read_str(txn, "id"),
                    read_money(txn, "amount"),
                    read_str(txn, "kind"),
                    read_time(txn, "created_at"),
                )
            )
        return cls(read_money(obj, "balance"), read_str(obj, "currency"), tuple(transactions))


@dataclass(frozen=True)
class Invoice:
    """A monthly invoice."""

    id: str
    period: str
    amount: Decimal
    currency: str
    status: str
    pdf_url: str

    @classmethod
    def from_json(cls, value: object) -> Invoice:
        """Read an Invoice object."""
        obj = read_obj(value, "invoice")
        return cls(
            read_str(obj, "id"),
            read_str(obj, "period"),
            read_money(obj, "amount"),
            read_str(obj, "currency"),
            read_str(obj, "status"),
            read_str(obj, "pdf_url"),
        )
