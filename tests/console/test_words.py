"""Durations in words: what status, the progress line and the stage lines print."""

from __future__ import annotations

import pytest

from campaign.console.words import duration_in_words, elapsed_in_words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "< 1 min"),
        (49, "< 1 min"),  # 254 rows at 300 calls/min: it said "~0 min"
        (60, "1 min"),
        (89, "1 min"),
        (91, "2 min"),
        (59 * 60 + 29, "59 min"),
        (59 * 60 + 31, "1 h"),
        (100 * 60, "1 h 40 min"),
        (26 * 3600 + 5 * 60, "26 h 5 min"),
    ],
)
def test_an_eta_is_rounded_to_the_minute_and_never_reads_0_min(seconds: float, words: str) -> None:
    assert duration_in_words(seconds) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.04, "0.0 s"),
        (0.4, "0.4 s"),
        (12.4, "12 s"),
        (130, "2 min 10 s"),
        (120, "2 min"),
        (3900, "1 h 5 min"),
    ],
)
def test_a_stage_says_how_long_it_took(seconds: float, words: str) -> None:
    assert elapsed_in_words(seconds) == words
