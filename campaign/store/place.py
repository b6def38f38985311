"""Where a campaign's state lives: SQLite files in its state dir, or a PostgreSQL database.

``StatePlace.of(config)`` is the one decision; everything that opens a piece of state (the
checkpoint, the campaign lock, the opt-out list, the calls-per-number ledger) asks the
place, so the pipeline never branches on the backend. With ``state_url`` the checkpoint
is the schema ``checkpoint_schema(campaign)``, and the shared pieces live in the schema
``campaign_shared``; the state dir keeps only local files (the run log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from campaign.store.allowance import (
    ALLOWANCE_PREFIX,
    AllowanceLocation,
    allowance_digest,
    pg_allowance_namespaces,
)
from campaign.store.checkpoint import Store
from campaign.store.contacts import CallLedger
from campaign.store.lock import CampaignLock, PgCampaignLock
from campaign.store.optout import OptOutList
from campaign.store.postgres import checkpoint_schema
from campaign.store.transfer import snapshot_postgres

if TYPE_CHECKING:
    from campaign.config.model import CampaignConfig


@dataclass(frozen=True)
class StatePlace:
    """One campaign's state: ``dsn`` None for SQLite files in ``state_dir``."""

    state_dir: Path
    campaign: str
    dsn: str | None = field(default=None, repr=False)  # the secret URL: never shown
    shown_url: str | None = None  # the URL without its password

    @classmethod
    def of(cls, config: CampaignConfig) -> StatePlace:
        """The place a campaign file names (``state_url``, else ``state_dir``)."""
        if config.uses_postgres:
            return cls(config.state_dir, config.campaign, config.state_dsn(), config.state_url)
        return cls(config.state_dir, config.campaign)

    @property
    def uses_postgres(self) -> bool:
        """True when the state is in PostgreSQL."""
        return self.dsn is not None

    @property
    def checkpoint_path(self) -> Path:
        """The SQLite checkpoint file (also named by an SQLite place's messages)."""
        return self.state_dir / f"{self.campaign}.sqlite"

    def describe(self) -> str:
        """The checkpoint as logs and messages name it (never with a password)."""
        if self.dsn is not None:
            return f"{self.shown_url} (schema {checkpoint_schema(self.campaign)!r})"
        return str(self.checkpoint_path)

    def open_store(self) -> Store:
        """The checkpoint for a run: created and migrated if needed."""
        if self.dsn is not None:
            return Store.open_postgres(self.dsn, self.campaign)
        return Store.open(self.checkpoint_path)

    def reader(self) -> Store:
        """The checkpoint for ``status`` and ``report``: read, never migrated."""
        if self.dsn is not None:
            return Store.reader_postgres(self.dsn, self.campaign)
        return Store.reader(self.checkpoint_path)

    # --- dry runs (campaign/store/transfer.py) ------------------------------------------

    def snapshot(self) -> Store:
        """An in-memory copy of the checkpoint for a dry run (empty if there is none yet):
        nothing a dry run does reaches the real one."""
        if self.dsn is not None:
            return snapshot_postgres(self.dsn, self.campaign)
        return Store.snapshot(self.checkpoint_path)

    # --- the shared pieces: run lock, opt-outs, calls per number, allowance -------------
    # With ``dsn`` each lives in PostgreSQL (the lock a session advisory lock, the others in
    # the schemas ``campaign_shared`` and ``allowance:<digest>``), so campaigns on different
    # hosts that share only the database coordinate as processes sharing a state dir do.

    def lock(self) -> CampaignLock | PgCampaignLock:
        """The lock that allows one run of the campaign at a time (not yet taken)."""
        if self.dsn is not None:
            return PgCampaignLock(self.dsn, self.campaign, self.shown_url)
        return CampaignLock(self.checkpoint_path)

    def opt_outs(self) -> OptOutList:
        """The opt-out list every campaign of this place honours."""
        return OptOutList(self.state_dir, dsn=self.dsn, shown_url=self.shown_url)

    def call_ledger(self) -> CallLedger:
        """The ledger of calls per number, for frequency caps across campaigns."""
        return CallLedger(self.state_dir, dsn=self.dsn, shown_url=self.shown_url)

    def allowance(self, base_url: str, api_key: str) -> AllowanceLocation:
        """Where the shared allowance of one API base URL and key lives (for
        ``shared_limiter`` and ``campaign status``); nothing is opened yet."""
        digest = allowance_digest(base_url, api_key)
        path = self.state_dir / f"allowance-{digest}.sqlite"
        return AllowanceLocation(digest, path, self.dsn, self.shown_url)

    def allowances(self) -> list[AllowanceLocation]:
        """Every allowance some run of this place has used (read only; for ``status``
        without the key)."""
        if self.dsn is None:
            files = sorted(self.state_dir.glob("allowance-*.sqlite"))
            return [
                AllowanceLocation(p.name[len("allowance-") : -len(".sqlite")], p) for p in files
            ]
        where = f"the shared allowances in the state database {self.shown_url}"
        return [
            AllowanceLocation(
                name[len(ALLOWANCE_PREFIX) :],
                self.state_dir / f"allowance-{name[len(ALLOWANCE_PREFIX) :]}.sqlite",
                self.dsn,
                self.shown_url,
            )
            for name in pg_allowance_namespaces(self.dsn, where)
        ]
