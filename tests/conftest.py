"""Shared pytest configuration. Area-specific fixtures live in tests/fixtures_*.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = ["support.sandbox"]


@pytest.fixture(autouse=True)
def _campaign_logging_is_reset() -> Iterator[None]:
    """A command run in-process installs log handlers; later tests must not inherit them."""
    logger = logging.getLogger("campaign")
    before = list(logger.handlers)
    level, propagate = logger.level, logger.propagate
    yield
    for handler in [h for h in logger.handlers if h not in before]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(level)
    logger.propagate = propagate
