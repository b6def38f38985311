"""When to call: answer and goal rates by the recipient's local hour and weekday, country,
number type, attempt, part of the day and night, from a small checkpoint whose calls were
placed at known local times — counted by hand below."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from support.report import sample_run

from campaign.engine.outcomes import DAYPARTS as RETRY_DAYPARTS
from campaign.reporting import analysis
from campaign.reporting.files import write_outputs
from campaign.reporting.results import call_records, row_results
from campaign.store.checkpoint import CallEnd, RowIn, Store

T0 = datetime(2026, 6, 1, tzinfo=ZoneInfo("UTC")).timestamp()

# row key → (timezones, country, number type as phonenumbers names it)
ROWS: dict[str, tuple[list[str], str | None, str | None]] = {
    "ny": (["America/New_York"], "US", "fixed_line_or_mobile"),
    "ldn": (["Europe/London"], "GB", "mobile"),
    "ber": (["Europe/Berlin"], "DE", "fixed_line"),
    # Several zones: the first one's day counts (Perth would make 09:30 Sydney 07:30).
    "syd": (["Australia/Sydney", "Australia/Perth"], "AU", "mobile"),
    "old": ([], None, None),  # planned before timezones or types were known
    "ringing": (["Europe/London"], "GB", "mobile"),
    "wallet": (["Europe/London"], "GB", "mobile"),
}
# (row, attempt, start UTC, status, goal achieved); local time in the comment.
CALLS: list[tuple[str, int, str, str, bool | None]] = [
    ("ny", 1, "2026-06-01T13:30", "no_answer", None),  # Mon 09:30 New York
    ("ny", 2, "2026-06-01T17:10", "no_answer", None),  # Mon 13:10
    ("ny", 3, "2026-06-01T22:05", "completed", True),  # Mon 18:05
    ("ldn", 1, "2026-06-01T08:15", "completed", False),  # Mon 09:15 London (BST)
    ("ber", 1, "2026-06-01T07:40", "busy", None),  # Mon 09:40 Berlin (CEST)
    ("ber", 2, "2026-06-02T07:20", "completed", True),  # Tue 09:20
    ("syd", 1, "2026-06-01T23:30", "completed", True),  # Tue 09:30 Sydney (AEST)
    ("old", 1, "2026-06-01T12:00", "no_answer", None),  # no timezone: no local time
]


def _rates(calls: int, answered: int, goals: int) -> dict[str, Any]:
    return {
        "calls": calls,
        "answered": answered,
        "goal_achieved": goals,
        "answered_pct": round(100 * answered / calls, 1),
        "goal_pct": round(100 * goals / calls, 1),
    }


EXPECTED = {
    **_rates(8, 4, 3),
    "calls_without_timezone": 1,
    "by_hour_weekday": {
        "mon": {"09": _rates(3, 1, 0), "13": _rates(1, 0, 0), "18": _rates(1, 1, 1)},
        "tue": {"09": _rates(2, 2, 2)},
    },
    "by_hour": {"09": _rates(5, 3, 2), "13": _rates(1, 0, 0), "18": _rates(1, 1, 1)},
    "by_weekday": {"mon": _rates(5, 2, 1), "tue": _rates(2, 2, 2)},
    "by_daypart": {
        "morning": _rates(5, 3, 2),
        "afternoon": _rates(1, 0, 0),
        "evening": _rates(1, 1, 1),
    },
    "by_country": {
        "US": _rates(3, 1, 1),
        "DE": _rates(2, 1, 1),
        "AU": _rates(1, 1, 1),
        "GB": _rates(1, 1, 0),
        "unknown": _rates(1, 0, 0),
    },
    "by_number_type": {
        "mobile": _rates(2, 2, 1),
        "landline": _rates(2, 1, 1),
        "other": _rates(3, 1, 1),
        "unknown": _rates(1, 0, 0),
    },
    "by_attempt": {"1": _rates(5, 2, 1), "2": _rates(2, 1, 1), "3": _rates(1, 1, 1)},
    "by_night": {"2026-06-01": _rates(5, 2, 1), "2026-06-02": _rates(2, 2, 2)},
    "retry_dayparts": {
        "by_attempt": {
            "1": {"morning": 4, "afternoon": 0, "evening": 0, "night": 0},
            "2": {"morning": 1, "afternoon": 1, "evening": 0, "night": 0},
            "3": {"morning": 0, "afternoon": 0, "evening": 1, "night": 0},
        },
        # New York's retries moved to the afternoon, then the evening; Berlin's stayed in
        # the morning.
        "retries": 3,
        "in_new_daypart": 2,
    },
}


def _metrics(page: str) -> dict[str, str]:
    """The text of every element carrying data-metric under when_to_call."""
    found = re.findall(r'data-metric="(when_to_call\.[^"]+)">([^<]*)<', page)
    return {key: unescape(text) for key, text in found}


def _lookup(summary: dict[str, Any], dotted: str) -> Any:
    value: Any = summary
    for part in dotted.split("."):
        value = value[part]
    return value


def _utc(text: str) -> float:
    return datetime.fromisoformat(text + "+00:00").timestamp()


@pytest.fixture
def outputs(tmp_path: Path) -> tuple[dict[str, Any], str]:
    """summary.json and report.html written from a checkpoint holding CALLS."""
    store = Store.open(tmp_path / "c.sqlite")
    try:
        store.sync_rows(
            [
                RowIn(
                    line=line,
                    row_key=key,
                    raw_phone=key,
                    e164=f"+1000{line}",
                    plan_state="callable",
                    timezones=zones,
                    region=region,
                    number_type=kind,
                )
                for line, (key, (zones, region, kind)) in enumerate(ROWS.items(), start=2)
            ],
            T0,
        )
        for row_key, number, start, status, goal in CALLS:
            key = f"{row_key}-{number}"
            store.begin_attempt(row_key, number, key, b"{}", _utc(start) - 1)
            store.mark_sent(key, f"call_{key}", "queued", _utc(start))
            end = CallEnd(status, goal_achieved=goal, ended_at=_utc(start) + 60)
            store.end_attempt(key, end, row_progress="done")
        # Still ringing: no result yet, so in no rate.
        store.begin_attempt("ringing", 1, "ringing-1", b"{}", _utc("2026-06-01T09:00"))
        store.mark_sent("ringing-1", "call_ringing", "ringing", _utc("2026-06-01T09:00"))
        # Voided by an empty wallet: the phone never rang.
        store.begin_attempt("wallet", 1, "wallet-1", b"{}", _utc("2026-06-01T09:05"))
        store.mark_sent("wallet-1", "call_wallet", "queued", _utc("2026-06-01T09:05"))
        void = CallEnd("failed", failure_reason="insufficient_funds", ended_at=T0 + 9 * 3600)
        store.end_attempt("wallet-1", void, row_progress="pending", void=True)
        _, _, facts = sample_run()
        facts = dataclasses.replace(facts, calls_placed=10)
        paths = write_outputs(tmp_path / "out", row_results(store), call_records(store), facts)
    finally:
        store.close()
    summary = json.loads(paths.summary_json.read_text(encoding="utf-8"))
    return summary, paths.report_html.read_text(encoding="utf-8")


def test_summary_json_has_the_hand_counted_rates(outputs: tuple[dict[str, Any], str]) -> None:
    summary, _ = outputs
    assert summary["when_to_call"] == EXPECTED
    assert summary["calls_placed"] == 10  # the existing keys are still there


def test_report_html_shows_the_same_numbers(outputs: tuple[dict[str, Any], str]) -> None:
    summary, page = outputs
    shown = _metrics(page)
    for key, text in shown.items():
        assert text == str(_lookup(summary, key)), key
    assert shown["when_to_call.by_hour_weekday.mon.09.calls"] == "3"
    assert shown["when_to_call.by_hour_weekday.tue.09.calls"] == "2"
    assert shown["when_to_call.by_hour.09.calls"] == "5"
    assert shown["when_to_call.by_country.US.answered_pct"] == "33.3"
    assert shown["when_to_call.by_number_type.landline.goal_pct"] == "50.0"
    assert shown["when_to_call.by_night.2026-06-02.calls"] == "2"
    assert shown["when_to_call.retry_dayparts.in_new_daypart"] == "2"
    assert shown["when_to_call.retry_dayparts.by_attempt.2.afternoon"] == "1"


def _cells(page: str, label: str) -> dict[str, str]:
    """Heatmap squares of one map: their tooltip → the two lines written in them."""
    start = page.index(f'aria-label="share of calls {label} by local hour and weekday"')
    svg = page[start : page.index("</svg>", start)]
    found = re.findall(
        r"<title>([^<]*)</title><rect[^>]*/><text[^>]*>([^<]*)</text><text[^>]*>(.*?)</text>",
        svg,
    )
    cells = {}
    for title, rate, count in found:
        where = re.match(r"(.*?): [\d,]+ calls", unescape(title))
        assert where is not None, title
        cells[where.group(1)] = f"{rate} {re.sub('<[^>]+>', '', count)}"
    return cells


def test_the_heatmaps_write_each_squares_rate_and_calls(
    outputs: tuple[dict[str, Any], str],
) -> None:
    _, page = outputs
    answered = _cells(page, "answered")
    assert answered["Mon 09:00–10:00"] == "33% of 3"
    assert answered["Mon 13:00–14:00"] == "0% of 1"
    assert answered["Mon 18:00–19:00"] == "100% of 1"
    assert answered["Tue 09:00–10:00"] == "100% of 2"
    assert answered["All days 09:00–10:00"] == "60% of 5"
    assert answered["Mon, all hours"] == "40% of 5"
    assert answered["Tue, all hours"] == "100% of 2"
    assert answered["All calls"] == "50% of 8"
    assert len(answered) == 4 + 2 + 3 + 1  # the squares with calls: cells, days, hours, all
    goals = _cells(page, "goal achieved")
    assert goals["Mon 09:00–10:00"] == "0% of 3"
    assert goals["All days 09:00–10:00"] == "40% of 5"
    assert goals["All calls"] == "38% of 8"  # 37.5 %
    # Hours from the first to the last with a call: 09 … 18, the empty ones outlined.
    assert "Tue 10:00–11:00: no call" in page and "Mon 08:00–09:00: no call" not in page
    # Sydney's 09:30 is read in Sydney, the row's first timezone, not Perth (07:30).
    assert not any(where.startswith("Tue 07") for where in answered)


def test_the_report_says_how_retries_move_and_the_rule(
    outputs: tuple[dict[str, Any], str],
) -> None:
    _, page = outputs
    text = unescape(re.sub(r"<[^>]+>", "", page))
    assert "2 of 3 retries (67%) started in a part of the day" in text
    assert "retry.dayparts: any" in text
    assert "8 calls that ended: 50.0% answered, 37.5% reached the goal." in text
    assert "1 call(s) to numbers with no known timezone" in text


def test_no_call_yet_shows_empty_cards_and_empty_tables() -> None:
    summary = analysis.when_to_call([])
    assert summary["calls"] == 0 and summary["answered_pct"] is None
    assert summary["by_hour_weekday"] == {} and summary["retry_dayparts"]["retries"] == 0


def test_the_report_and_the_retry_rule_name_the_same_parts_of_the_day() -> None:
    assert analysis.DAYPARTS == RETRY_DAYPARTS


@pytest.mark.parametrize(
    ("kind", "group"),
    [
        ("mobile", "mobile"),
        ("fixed_line", "landline"),
        ("fixed_line_or_mobile", "other"),
        ("voip", "other"),
        ("toll_free", "other"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_number_types_group_as_mobile_landline_other(kind: str | None, group: str) -> None:
    assert analysis.number_type_group(kind) == group
