"""Configuration every test folder shares.

A folder's own fixtures live in its conftest.py (tests/sandbox/conftest.py, …); plain
helpers that several folders use (fakes, builders, processes) are modules of tests/support.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


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
