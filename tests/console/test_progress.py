"""Progress as the operator sees it: log lines under cron, a bar on a terminal."""

from __future__ import annotations

import logging

import pytest

from campaign.clock import FakeClock
from campaign.console.progress import RunProgress

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
