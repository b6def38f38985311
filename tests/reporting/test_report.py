"""results.csv, summary.json and report.html as a user reads them."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import os
import random
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from support.report import row, sample_run

from campaign.errors import OutputError
from campaign.reporting import files as report
from campaign.reporting.files import build_summary, render_results_csv, write_outputs


class MetricParser(HTMLParser):
    """Collects the text of every element carrying data-metric, and what the page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[str, str]] = []
        self.loads: list[str] = []
        self._open: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for attr in ("src", "href"):
            if names.get(attr):
                self.loads.append(f"{tag} {attr}={names[attr]}")
        if tag in ("script", "link", "iframe", "img", "object"):
            self.loads.append(tag)
        if "data-metric" in names:
            self._open, self._text = names["data-metric"], ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None:
            self.metrics.append((self._open, self._text))
            self._open = None


def lookup(summary: dict[str, Any], dotted: str) -> Any:
    value: Any = summary
    for part in dotted.split("."):
        value = value[part]
    return value


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_results_csv_has_one_line_per_row_in_input_order(tmp_path: Path) -> None:
    rows, calls, facts = sample_run()
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    paths = write_outputs(tmp_path, shuffled, calls, facts)
    lines = read_results(paths.results_csv)
    assert [int(r["line"]) for r in lines] == [r.line for r in rows]
    assert list(lines[0]) == [
        "line",
        "customer_id",
        "phone",
        "e164",
        "extension",
        "state",
        "attempts",
        "last_call_id",
        "last_status",
        "outcome",
        "goal_achieved",
        "reason",
        "note",
        "first_name",
        "plan",
    ]
    first = lines[0]
    assert first["customer_id"] == "cust-002"
    assert first["e164"] == "+14155550100"
    assert first["state"] == "done"
    assert first["goal_achieved"] == "true"
    assert first["last_call_id"] == "call_002"
    rejected = lines[5]
    assert (rejected["phone"], rejected["e164"], rejected["reason"]) == ("12345", "", "too short")
    assert rejected["goal_achieved"] == ""


def test_results_csv_escapes_formulas_but_keeps_e164_usable() -> None:
    _, _, facts = sample_run()
    nasty = dataclasses.replace(
        row(2, "pending", phone="+1 415 555 0100", reason='=HYPERLINK("http://x")'),
        row_key="@key",
        variables={"first_name": "=cmd|' /C calc'!A0", "plan": "-5"},
    )
    tabbed = dataclasses.replace(row(3, "pending", e164="=1+2"), variables={"first_name": "\tx"})
    text = render_results_csv([nasty, tabbed], facts)
    first, second = list(csv.DictReader(text.splitlines()))
    assert first["customer_id"] == "'@key"
    assert first["phone"] == "'+1 415 555 0100"
    assert first["reason"] == '\'=HYPERLINK("http://x")'
    assert first["first_name"] == "'=cmd|' /C calc'!A0"
    assert first["plan"] == "'-5"
    assert first["e164"] == "+14155550100"  # our own E.164 output stays a plain number
    assert second["e164"] == "'=1+2"  # anything else in that column is escaped too
    assert second["first_name"] == "'\tx"


def test_without_a_key_column_the_key_is_called_row_key() -> None:
    _, _, facts = sample_run()
    facts = dataclasses.replace(facts, key_column="e164", variables=[])
    r = dataclasses.replace(row(2, "pending"), row_key="+14155550100")
    header, line = list(csv.reader(render_results_csv([r], facts).splitlines()))
    assert header[:4] == ["line", "row_key", "phone", "e164"]
    assert line[1] == line[3] == "+14155550100"


def test_variable_named_like_a_fixed_column_gets_its_own_header() -> None:
    _, _, facts = sample_run()
    facts = dataclasses.replace(facts, variables=["state"])
    r = dataclasses.replace(row(2, "pending"), variables={"state": "CA"})
    header, line = list(csv.reader(render_results_csv([r], facts).splitlines()))
    assert header[-1] == "var_state"
    assert line[header.index("state")] == "pending"
    assert line[-1] == "CA"


def test_summary_counts_states_statuses_outcomes_and_cost() -> None:
    rows, calls, facts = sample_run()
    summary = build_summary(rows, calls, facts)
    assert summary["rows_total"] == 10
    assert summary["by_state"] == {
        "done": 3,
        "rejected": 2,
        "suppressed": 1,
        "duplicate": 1,
        "pending": 1,
        "retry_scheduled": 1,
        "failed": 1,
    }
    assert summary["by_last_status"] == {"completed": 3, "failed": 1, "no_answer": 1}
    assert summary["by_outcome"] == {"goal_achieved": 2, "declined": 1}
    assert summary["funnel"] == {
        "rows": 10,
        "valid": 8,
        "callable": 6,
        "called": 5,
        "answered": 3,
        "goal_achieved": 2,
    }
    # 3 completed calls at 0.11 and 3 unanswered ones (one first attempt) at 0.02.
    assert summary["cost"] == {
        "amount": "0.39",
        "currency": "USD",
        "calls_costed": 6,
        "by_currency": {"USD": "0.39"},
    }
    assert summary["calls_placed"] == 6
    assert summary["requests_spent"] == 42
    assert summary["attempts_total"] == 6
    assert summary["calls_by_status"] == {"completed": 3, "no_answer": 2, "failed": 1}
    assert summary["started_at"] == "2026-11-29T14:00:00Z"
    assert summary["ended_at"] == "2026-11-29T15:00:05Z"
    assert summary["next_due"] == "2026-11-29T19:00:00Z"
    assert summary["rejects_by_reason"] == {
        "not a phone number": 1,
        "on the do-not-call list": 1,
        "duplicate of an earlier row": 1,
        "too short": 1,
    }


def test_summary_keys_are_the_documented_ones() -> None:
    summary = build_summary(*sample_run())
    assert list(summary) == [
        "schema_version",
        "campaign",
        "mode",
        "dry_run",
        "finished",
        "started_at",
        "ended_at",
        "next_due",
        "next_due_reason",
        "calling_hours",
        "input_path",
        "rows_total",
        "by_state",
        "by_last_status",
        "by_outcome",
        "rejects_by_reason",
        "attempts_total",
        "calls_placed",
        "requests_spent",
        "calls_by_status",
        "talk_time_s",
        "cost",
        "funnel",
        "span",
        "runs",
        "by_country",
        "callbacks",
        "failure_reasons",
        "retries_due",
        "cost_estimate",
        "attempts_per_row",
        "rows_with_extension",
        "when_to_call",
    ]
    readme = Path(__file__).parents[2] / "README.md"
    text = readme.read_text(encoding="utf-8")
    if "summary.json" in text and "`rows_total`" in text:
        missing = [key for key in summary if f"`{key}`" not in text]
        assert not missing, f"README does not document summary.json keys {missing}"


def test_duplicate_rows_do_not_count_twice_in_the_funnel() -> None:
    rows, calls, facts = sample_run()
    # A duplicate shares its number with a called row and may echo that row's call.
    echo = dataclasses.replace(rows[8], attempts=1, last_status="completed", goal_achieved=True)
    summary = build_summary([*rows[:8], echo, rows[9]], calls, facts)
    assert summary["funnel"]["called"] == 5
    assert summary["funnel"]["goal_achieved"] == 2


def test_report_html_shows_the_summary_numbers(tmp_path: Path) -> None:
    paths = write_outputs(tmp_path, *sample_run())
    summary = json.loads(paths.summary_json.read_text(encoding="utf-8"))
    parser = MetricParser()
    parser.feed(paths.report_html.read_text(encoding="utf-8"))
    shown = dict(parser.metrics)
    for key in ("rows_total", "funnel.called", "funnel.goal_achieved", "calls_placed"):
        assert key in shown
    assert "cost.amount" in shown and "by_state.rejected" in shown
    for key, text in parser.metrics:
        expected = lookup(summary, key)
        assert text == ("" if expected is None else str(expected)), key


def test_report_html_is_self_contained_and_escapes_input(tmp_path: Path) -> None:
    rows, calls, facts = sample_run()
    facts = dataclasses.replace(facts, campaign="<img src=x onerror=alert(1)>")
    rows[6] = dataclasses.replace(rows[6], reason="<script>alert('r')</script>")
    paths = write_outputs(tmp_path, rows, calls, facts)
    page = paths.report_html.read_text(encoding="utf-8")
    parser = MetricParser()
    parser.feed(page)
    assert parser.loads == []  # no script, stylesheet, image or link to fetch
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;r&#x27;)&lt;/script&gt;" in page
    assert "https://" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


def test_outputs_for_a_dry_run_with_nothing_called(tmp_path: Path) -> None:
    rows, _, facts = sample_run()
    pending = [dataclasses.replace(r, state="pending", attempts=0) for r in rows[:3]]
    facts = dataclasses.replace(facts, dry_run=True, calls_placed=0, requests_spent=0)
    paths = write_outputs(tmp_path, pending, [], facts)
    summary = json.loads(paths.summary_json.read_text(encoding="utf-8"))
    assert summary["dry_run"] is True
    assert summary["by_state"]["pending"] == 3
    assert summary["cost"]["amount"] == "0.00"
    page = paths.report_html.read_text(encoding="utf-8")
    assert "Dry run" in page and "No call has been placed yet" in page


def test_outputs_replace_old_files_and_leave_no_temp_files(tmp_path: Path) -> None:
    rows, calls, facts = sample_run()
    write_outputs(tmp_path, rows, calls, facts)
    write_outputs(tmp_path, rows[:2], calls, facts)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html",
        "results.csv",
        "summary.json",
    ]
    assert len(read_results(tmp_path / "results.csv")) == 2


def test_a_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old", encoding="utf-8")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        report.atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_calls_over_time_spans_a_long_campaign(tmp_path: Path) -> None:
    rows, calls, facts = sample_run()
    late = dataclasses.replace(calls[0], placed_at=calls[0].placed_at.replace(day=30))
    paths = write_outputs(tmp_path, rows, [*calls, late], facts)
    page = paths.report_html.read_text(encoding="utf-8")
    assert "one column = 1 h" in page
    assert "30 Nov" in page


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_outputs_holding_phone_numbers_are_private_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    old = os.umask(umask)
    try:
        paths = write_outputs(tmp_path, *sample_run())
        write_outputs(tmp_path, *sample_run())  # a rewrite keeps them private too
    finally:
        os.umask(old)
    for path in (paths.results_csv, paths.summary_json, paths.report_html):
        assert path.stat().st_mode & 0o777 == 0o600, path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html",
        "results.csv",
        "summary.json",
    ]


def test_an_output_that_cannot_be_written_says_which_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match=r"results\.csv: the output cannot be written \(No sp"):
        write_outputs(tmp_path, *sample_run())
    assert list(tmp_path.iterdir()) == []
