"""report.html and summary.json answer what a manager asks (issue 14): when the campaign ran,
who to call back, what failed and why, per country, what it cost against the estimate."""

from __future__ import annotations

import csv
import dataclasses
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from manager_sample import LONG_REASON, manager_run

from campaign.reporting.files import build_summary, render_results_csv, write_outputs

BLOCKS = frozenset({"div", "p", "td", "th", "tr", "h1", "h2", "section", "header", "footer"})


class PageText(HTMLParser):
    """The text a reader sees (no <title> tooltips, no <style>), bars, and table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.bars: dict[str, str] = {}  # bar label → colour class of its bar
        self.rows: list[list[str]] = []
        self._skip = 0
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag in BLOCKS:
            self.text.append(" ")
        if tag in ("title", "style"):
            self._skip += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "span" and "fill" in (names.get("class") or "").split():
            classes = (names.get("class") or "").split()
            if self._row is not None and self._row:
                self.bars[self._row[0]] = next(c for c in classes if c != "fill")

    def handle_endtag(self, tag: str) -> None:
        if tag in BLOCKS:
            self.text.append(" ")
        if tag in ("title", "style"):
            self._skip -= 1
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def visible(self) -> str:
        return " ".join("".join(self.text).split())

    def row_starting(self, first: str) -> list[str]:
        return next(row for row in self.rows if row and row[0] == first)


def page(tmp_path: Path) -> tuple[PageText, dict[str, Any], str]:
    paths = write_outputs(tmp_path, *manager_run())
    html = paths.report_html.read_text(encoding="utf-8")
    parser = PageText()
    parser.feed(html)
    return parser, json.loads(paths.summary_json.read_text(encoding="utf-8")), html


def test_the_header_shows_the_campaign_span_and_its_runs_not_only_the_last_run(
    tmp_path: Path,
) -> None:
    shown, summary, _ = page(tmp_path)
    assert summary["span"] == {
        "first_call_at": "2026-11-29T14:06:00Z",
        "last_call_at": "2026-11-29T14:52:00Z",
        "calls": 6,
    }
    assert [run["started_at"] for run in summary["runs"]] == [
        "2026-11-28T14:00:00Z",
        "2026-11-29T14:00:00Z",
    ]
    assert summary["runs"][1]["this_run"] and summary["runs"][1]["calls_placed"] == 6
    assert summary["runs"][0]["calls_placed"] == 0
    assert "Calls from 29 Nov 2026 14:06 UTC to 29 Nov 2026 14:52 UTC (46 min)" in shown.visible
    assert "2 runs; the last 29 Nov 2026 14:00 UTC → 29 Nov 2026 15:00 UTC" in shown.visible
    assert shown.row_starting("28 Nov 2026 14:00 UTC")[-1] == "finished for now (exit 0)"


def test_long_reasons_are_shown_whole_not_cut_off_or_only_in_tooltips(tmp_path: Path) -> None:
    shown, _, html = page(tmp_path)
    assert "U" + LONG_REASON[1:] in shown.visible
    assert "…" not in shown.visible
    assert "<svg" not in html.split("Rows not called, by reason")[1].split("</section>")[0]


def test_labels_are_words_not_raw_codes(tmp_path: Path) -> None:
    shown, _, _ = page(tmp_path)
    for words in ("Callback requested", "Goal achieved", "No answer", "Carrier rejected"):
        assert words in shown.bars, words
    for code in ("callback_requested", "goal_achieved", "no_answer", "carrier_rejected"):
        assert code not in shown.bars


def test_bar_colours_mean_goal_green_follow_up_amber_failure_red(tmp_path: Path) -> None:
    shown, _, html = page(tmp_path)
    assert shown.bars["Goal achieved"] == "good"
    assert shown.bars["Callback requested"] == "follow_up"
    assert shown.bars["Failed"] == shown.bars["Carrier rejected"] == "bad"
    assert shown.bars["No answer"] == shown.bars["Answered (completed)"] == "neutral"
    assert ".good{background:#16a34a}" in html and ".bad{background:#dc2626}" in html
    assert "Bar colours: goal achieved · follow-up due (callback, retry) · failed or unusable" in (
        shown.visible
    )


def test_people_called_and_calls_placed_are_different_numbers(tmp_path: Path) -> None:
    shown, summary, _ = page(tmp_path)
    assert (summary["funnel"]["called"], summary["calls_placed"]) == (5, 6)
    assert "People called 5 rows called at least once" in shown.visible
    assert "Calls placed 6 1.2 calls per person" in shown.visible


def test_the_cost_card_names_the_currency_in_its_label_beside_the_estimate(
    tmp_path: Path,
) -> None:
    shown, _, _ = page(tmp_path)
    assert "Cost (USD) 0.39 estimate 0.72 (cost_estimate × calls)" in shown.visible


def test_a_table_per_country(tmp_path: Path) -> None:
    shown, summary, _ = page(tmp_path)
    assert summary["by_country"] == {
        "US": {"rows": 4, "callable": 2, "called": 2, "answered": 2, "goal_achieved": 2},
        "GB": {"rows": 3, "callable": 3, "called": 2, "answered": 1, "goal_achieved": 0},
        "unknown": {"rows": 2, "callable": 0, "called": 0, "answered": 0, "goal_achieved": 0},
        "DE": {"rows": 1, "callable": 1, "called": 1, "answered": 0, "goal_achieved": 0},
    }
    us = shown.row_starting("United States US")
    assert us == ["United States US", "4", "2", "2", "2", "2", "100%"]
    assert shown.row_starting("Germany DE")[1:] == ["1", "1", "1", "0", "0", "0%"]


def test_callbacks_requested_say_who_and_when_they_asked(tmp_path: Path) -> None:
    shown, summary, html = page(tmp_path)
    assert summary["callbacks"] == {
        "count": 1,
        "rows": [
            {
                "line": 3,
                "key": "cust-003",
                "e164": "+14155550100",
                "variables": {"first_name": "Bea <b>", "plan": "gold"},
                "asked_at": "2026-11-29T14:09:00Z",
                "slot_values": {"outcome_confirmed": "no", "preferred_time": "afternoons"},
            }
        ],
    }
    assert shown.row_starting("3") == [
        "3",
        "cust-003",
        "First name: Bea <b>; Plan: gold",
        "+14155550100",
        "29 Nov 2026 14:09 UTC",
        "Preferred time: afternoons; Outcome confirmed: no",
    ]
    assert "Bea &lt;b&gt;" in html and "<b>" not in html


def test_why_calls_failed_is_in_the_report_not_only_in_results_csv(tmp_path: Path) -> None:
    shown, summary, _ = page(tmp_path)
    assert summary["failure_reasons"] == {"carrier_rejected": 1}
    assert shown.row_starting("Carrier rejected")[-2:] == ["1", "100%"]


def test_when_retries_are_due(tmp_path: Path) -> None:
    shown, summary, _ = page(tmp_path)
    assert summary["retries_due"] == {
        "rows": 1,
        "next": "2026-11-29T18:15:00Z",
        "by_hour": {"2026-11-29T18:00:00Z": 1},
    }
    assert "the first falls due 29 Nov 2026 18:15 UTC" in shown.visible
    assert shown.row_starting("29 Nov 2026 18:00 UTC") == ["29 Nov 2026 18:00 UTC", "1"]


def test_the_cost_estimate_stands_beside_the_actual_cost(tmp_path: Path) -> None:
    shown, summary, _ = page(tmp_path)
    assert summary["cost_estimate"] == {
        "per_call": "0.12",
        "calls": 6,
        "amount": "0.72",
        "actual": "0.39",
        "difference": "-0.33",
    }
    assert shown.row_starting("Actual cost (from the calls' sessions)")[1] == "0.39 USD"
    assert shown.row_starting("Estimate: 0.12 per call × 6 calls")[1] == "0.72 USD"
    assert shown.row_starting("Actual minus estimate")[1] == "-0.33 USD"
    rows, calls, facts = manager_run()
    without = build_summary(rows, calls, dataclasses.replace(facts, cost_estimate=None))
    assert without["cost_estimate"] is None


def test_attempts_per_row(tmp_path: Path) -> None:
    shown, summary, _ = page(tmp_path)
    assert summary["attempts_per_row"] == {"0": 1, "1": 4, "2": 1}
    assert shown.row_starting("1 attempt")[-2:] == ["4", "67%"]
    assert shown.row_starting("0 attempts")[-2:] == ["1", "17%"]


def test_an_extension_is_kept_in_results_csv_with_its_note(tmp_path: Path) -> None:
    rows, _, facts = manager_run()
    lines = list(csv.DictReader(render_results_csv(rows, facts).splitlines()))
    assert (lines[2]["extension"], lines[2]["note"]) == (
        "12",
        "extension 12 not dialled: the call reaches the main number only",
    )
    assert lines[0]["extension"] == lines[0]["note"] == ""
    shown, summary, _ = page(tmp_path)
    assert summary["rows_with_extension"] == 1
    assert "1 row(s) have an extension after the number" in shown.visible
