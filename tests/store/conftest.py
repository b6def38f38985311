"""Fixtures of the store's tests: a checkpoint, on each backend, and the store opened on it.

``store`` runs a test twice: on an SQLite file and in a fresh PostgreSQL database
(``state_backend``, tests/conftest.py). ``reopen`` opens the same checkpoint again, as a
resumed run would. Tests of what only a file can suffer (its header, its mode, a full
disk) use ``sqlite_store``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.postgres import Backend

from campaign.store.checkpoint import Store


@pytest.fixture
def checkpoint_path(tmp_path: Path) -> Path:
    """Where an SQLite ``store`` keeps its checkpoint."""
    return tmp_path / "state" / "c.sqlite"


@pytest.fixture
def reopen(checkpoint_path: Path, state_backend: Backend) -> Callable[[], Store]:
    """Open the test's checkpoint again (the caller closes it)."""

    def opened() -> Store:
        if state_backend.url is not None:
            return Store.open_postgres(state_backend.url, "c")
        return Store.open(checkpoint_path)

    return opened


@pytest.fixture
def store(reopen: Callable[[], Store]) -> Iterator[Store]:
    """A fresh checkpoint claimed by campaign 'c', on each backend; closed at teardown."""
    checkpoint = reopen()
    checkpoint.claim_identity("c")
    yield checkpoint
    checkpoint.close()


@pytest.fixture
def sqlite_store(checkpoint_path: Path) -> Iterator[Store]:
    """A fresh SQLite checkpoint claimed by campaign 'c'; closed at teardown."""
    checkpoint = Store.open(checkpoint_path)
    checkpoint.claim_identity("c")
    yield checkpoint
    checkpoint.close()
