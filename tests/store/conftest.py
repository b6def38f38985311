"""Fixtures of the store's tests: a checkpoint file, and the store opened on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.store.checkpoint import Store


@pytest.fixture
def checkpoint_path(tmp_path: Path) -> Path:
    """Where ``store`` keeps its checkpoint: reopen it there to see what a resumed run sees."""
    return tmp_path / "state" / "c.sqlite"


@pytest.fixture
def store(checkpoint_path: Path) -> Iterator[Store]:
    """A fresh checkpoint claimed by campaign 'c'; closed at teardown."""
    checkpoint = Store.open(checkpoint_path)
    checkpoint.claim_identity("c")
    yield checkpoint
    checkpoint.close()
