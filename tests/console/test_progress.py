"""Progress as the operator sees it: log lines under cron, a bar on a terminal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from campaign.clock import FakeClock
from campaign.config.model import load_campaign
from campaign.console.progress import RunProgress
from campaign.planning.windows import planned_rows

START = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "campaign.console.progress"]


def test_off_a_terminal_one_line_per_interval_and_one_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="campaign")
    clock = FakeClock(START)
    with RunProgress(total=100, campaign="spring", is_tty=False, clock=clock) as progress:
        for _ in range(20):  # one call every 3 s for a minute: 20 calls/min
            clock.advance(3)
            progress.placed()
            progress.finished("no_answer", None)
        progress.finished("completed", "goal_achieved")
    lines = progress_lines(caplog)
    # 60 s at a 30 s interval: lines at 30 s and 60 s, then the final one.
    assert len(lines) == 3
    final = lines[-1]
    assert final.startswith("progress: placed 20/100 (20%)")
    assert "ended: no_answer 20, goal_achieved 1" in final
    assert "20.0 calls/min" in final
    # 80 rows left at 20/min: 4 minutes after 20:27:40Z.
    assert "ETA 20:31Z (in 4 min)" in final


def test_nothing_logged_for_a_run_that_placed_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="campaign")
    with RunProgress(total=10, campaign="spring", is_tty=False, clock=FakeClock(START)):
        pass
    assert progress_lines(caplog) == []


def test_notes_are_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="campaign")
    with RunProgress(total=10, campaign="spring", is_tty=False, clock=FakeClock(START)) as p:
        p.note("429 from the API: waiting 7 s")
    assert progress_lines(caplog) == ["429 from the API: waiting 7 s"]


def test_eta_unknown_until_something_is_placed_and_done_when_all_are() -> None:
    clock = FakeClock(START)
    progress = RunProgress(total=2, campaign="spring", is_tty=False, clock=clock)
    assert progress.eta() is None
    assert "ETA unknown" in progress.line()
    clock.advance(30)
    progress.placed(2)
    assert progress.eta() == clock.now()
    assert progress.line().endswith("all placed")


def test_on_a_terminal_the_bar_shows_placed_outcomes_rate_and_eta(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    caplog.set_level(logging.INFO, logger="campaign")
    clock = FakeClock(START)
    with RunProgress(total=300, campaign="spring-renewals", is_tty=True, clock=clock) as progress:
        clock.advance(60)
        progress.placed(30)
        progress.finished("completed", "goal_achieved")
        progress.finished("busy", None)
    err = capsys.readouterr().err
    assert "spring-renewals" in err
    assert "30/300" in err
    assert "goal_achieved 1, busy 1" in err
    assert "30.0/min" in err
    assert "ETA 20:36Z (in 9 min)" in err
    # The final summary line still reaches the log (and so the log file).
    assert progress_lines(caplog)[-1].startswith("progress: placed 30/300 (10%)")


def test_the_bar_fits_an_80_column_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    clock = FakeClock(START)
    with RunProgress(total=300, campaign="spring-renewals-2026", is_tty=True, clock=clock) as p:
        clock.advance(60)
        p.placed(120)
        for status in ("no_answer", "busy", "voicemail", "failed"):
            p.finished(status, None)
            p.finished("completed", f"outcome_{status}")
    err = capsys.readouterr().err.splitlines()
    assert err and all(len(line.rstrip()) <= 80 for line in err)
    bar = [line for line in err if "120/300" in line][-1]
    assert "120.0/min" in bar and "ETA 20:29Z (in 2 min)" in bar
    ended = [line for line in err if line.startswith("  ended: ")][-1]
    assert ended.startswith("  ended: no_answer 1, outcome_no_answer 1, busy 1")
    assert ended.rstrip().endswith("…")


def test_on_a_terminal_reading_a_big_input_shows_the_rows_read_so_far(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A 1,000,000-row file printed nothing for minutes while it was read.
    progress = RunProgress(is_tty=True, clock=FakeClock(START))
    for count in (10_000, 20_000, 1_000_000):
        progress.rows_read(count)
    progress.reading_done()
    err = capsys.readouterr().err
    assert "reading the input: 1,000,000 rows" in err
    progress.reading_done()  # twice is harmless


def test_off_a_terminal_reading_a_big_input_logs_a_line_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="campaign")
    clock = FakeClock(START)
    progress = RunProgress(is_tty=False, clock=clock)
    for step in range(1, 11):  # 10,000 rows every 10 s for 100 s
        clock.advance(10)
        progress.rows_read(step * 10_000)
    progress.reading_done()
    lines = progress_lines(caplog)
    assert lines == [
        "reading the input: 40,000 rows so far",
        "reading the input: 70,000 rows so far",
        "reading the input: 100,000 rows so far",
    ]


def test_a_big_list_reports_the_rows_read_every_10000_rows(tmp_path: Path) -> None:
    lines = ["customer_id,phone"] + [f"K{i}," for i in range(25_000)]  # cheap rows: no phone
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "c.yaml").write_text(
        "campaign: big\nscenario_id: scn_demo\n"
        "input: {path: contacts.csv, default_region: US, key_column: customer_id}\n"
        "api: {base_url: sandbox}\n"
    )
    seen: list[int] = []
    rows = planned_rows(load_campaign(tmp_path / "c.yaml"), [], on_rows=seen.append)
    assert len(rows) == 25_000
    assert seen == [10_000, 20_000, 25_000]
