"""The Python API: ``campaign.run``/``run_async``/``validate``/``status`` against the sandbox.

What a scheduler (cron script, Airflow task, notebook) relies on: a typed report for every
run that ends in an expected way, failures included; the host's event loop, signal handlers
and logging left alone; the key never in the report.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import pytest

import campaign
from campaign.errors import AuthError, CampaignError, StateError
from campaign.pipeline.bounds import duration_seconds, until_timestamp

ROWS = [f"+1 212 555 {100 + i:04d}" for i in range(6)]
WRONG_KEY = "avp_test_not_the_sandbox_key"


def _write(tmp_path: Path, phones: list[str] = ROWS, *, limits: str = "100/10s") -> Path:
    lines = ["customer_id,phone,first_name"] + [f"K{i},{p},N{i}" for i, p in enumerate(phones)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: apitest
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: contacts.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}}
retry: {{max_attempts: 1}}
limits: {{calls: {limits}, requests: [600/min, 20000/h]}}
api: {{base_url: sandbox}}
sandbox: {{time_scale: 0.005}}
state_dir: state
output_dir: out
calling_hours: unrestricted
"""
    )
    return path


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AITELIER_API_KEY", raising=False)
    monkeypatch.delenv("AITELIER_BASE_URL", raising=False)


@pytest.fixture
def host_signal_handlers() -> Iterator[tuple[object, object]]:
    """SIGINT/SIGTERM handlers of the host process, restored after the test."""

    def on_int(signum: int, frame: FrameType | None) -> None:
        pass

    def on_term(signum: int, frame: FrameType | None) -> None:
        pass

    before = signal.signal(signal.SIGINT, on_int), signal.signal(signal.SIGTERM, on_term)
    try:
        yield on_int, on_term
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


def _results(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "out" / "results.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_places_the_calls_and_returns_the_report(tmp_path: Path) -> None:
    path = _write(tmp_path)
    handlers = [list(logging.getLogger(name).handlers) for name in ("", "campaign")]

    report = campaign.run(path)

    assert (report.exit_code, report.outcome, report.error) == (0, "finished", None)
    assert report.ok and report.campaign == "apitest"
    assert report.summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert report.summary["rows_total"] == 6 and report.summary["finished"] is True
    assert report.summary["calls_placed"] == 6
    assert "this run: 6 call(s) placed" in "\n".join(report.lines)
    assert report.outputs is not None and report.outputs.report_html.exists()
    assert {r["state"] for r in _results(tmp_path)} <= {"done", "failed"}
    assert repr(report) == (
        "RunReport(campaign='apitest', exit_code=0, outcome='finished', error=None)"
    )
    # The library configures no logging: no handler added, no log file of the CLI's.
    assert [list(logging.getLogger(n).handlers) for n in ("", "campaign")] == handlers
    assert not (tmp_path / "state" / "apitest.log").exists()

    again = campaign.run(str(path))  # a str path too; resumes from the checkpoint
    assert (again.exit_code, again.outcome) == (0, "finished")
    assert "this run: 0 call(s) placed" in "\n".join(again.lines)


async def test_run_async_shares_the_running_loop_and_leaves_the_hosts_signals(
    tmp_path: Path, host_signal_handlers: tuple[object, object]
) -> None:
    path = _write(tmp_path)
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def host_task() -> None:  # another job of the host, on the same loop
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    other = asyncio.create_task(host_task())
    await asyncio.sleep(0)
    started = loop.time()
    report = await campaign.run_async(path, max_duration=timedelta(minutes=5))
    ended = loop.time()
    other.cancel()

    assert (report.exit_code, report.outcome, report.error) == (0, "finished", None)
    assert report.summary["calls_placed"] == 6
    assert (tmp_path / "out" / "results.csv").exists()
    # The host's task kept running while the campaign ran: the loop was never held long.
    during = [t for t in ticks if started <= t <= ended]
    assert len(during) >= 10, (len(during), ended - started)
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert max(gaps) < 2.0, max(gaps)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (
        host_signal_handlers
    )


async def test_the_stop_event_ends_a_run_early_with_exit_3_and_a_rerun_resumes(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, ROWS[:4], limits="1/2s")
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.0, stop.set)

    report = await campaign.run_async(path, stop=stop)

    assert (report.exit_code, report.outcome, report.error) == (3, "stopped", None)
    assert "pending" in {r["state"] for r in _results(tmp_path)}
    assert report.summary["finished"] is False
    assert any(line.startswith("stopped early") for line in report.lines)


def test_api_key_wins_over_the_environment_and_never_shows_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path)
    refused = campaign.run(path, api_key=WRONG_KEY)  # the sandbox knows only its own key
    assert (refused.exit_code, refused.outcome) == (4, "unauthorized")
    assert isinstance(refused.error, AuthError)
    shown = repr(refused) + str(refused.error) + "\n".join(refused.lines)
    assert WRONG_KEY not in shown + json.dumps(refused.summary)

    monkeypatch.setenv("AITELIER_API_KEY", WRONG_KEY)
    accepted = campaign.run(path, api_key="avp_test_sandbox")
    assert (accepted.exit_code, accepted.outcome) == (0, "finished")


def test_a_key_inside_an_error_message_is_redacted_in_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from campaign.pipeline import report as reporting

    secret = "sk-weird-secret-123"  # not shaped like avp_…: only its value can redact it

    async def leaky(*args: object, **kwargs: object) -> None:
        raise StateError(f"request with Authorization: Bearer {secret} failed")

    monkeypatch.setattr(reporting, "run_campaign_async", leaky)
    report = campaign.run(_write(tmp_path), api_key=secret)
    assert isinstance(report.error, StateError) and report.exit_code == 1
    assert str(report.error) == "request with Authorization: Bearer [REDACTED] failed"
    assert secret not in repr(report)


def test_a_failed_run_returns_exit_2_and_the_error_instead_of_raising(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "contacts.csv").unlink()
    report = campaign.run(path)
    assert (report.exit_code, report.outcome) == (2, "invalid")
    assert isinstance(report.error, CampaignError) and "contacts.csv" in str(report.error)
    assert (report.campaign, report.summary, report.lines, report.outputs) == (None, {}, (), None)
    assert not (tmp_path / "out").exists() and not (tmp_path / "state").exists()


def test_a_run_of_a_campaign_another_run_holds_is_locked_exit_75(tmp_path: Path) -> None:
    from campaign.store.lock import CampaignLock

    path = _write(tmp_path)
    (tmp_path / "state").mkdir()
    with CampaignLock(tmp_path / "state" / "apitest.sqlite"):
        report = campaign.run(path)
    assert (report.exit_code, report.outcome, report.campaign) == (75, "locked", "apitest")
    assert "another run of this campaign is in progress" in str(report.error)
    assert not (tmp_path / "out").exists()


def test_dry_run_reports_dry_run_and_sends_nothing(tmp_path: Path) -> None:
    report = campaign.run(_write(tmp_path), dry_run=True)
    assert (report.exit_code, report.outcome) == (0, "dry_run")
    assert report.summary["dry_run"] is True and report.summary["calls_placed"] == 0
    assert {r["state"] for r in _results(tmp_path)} == {"pending"}


async def test_run_inside_a_running_loop_points_to_run_async(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="run_async"):
        campaign.run(_write(tmp_path))
    assert not (tmp_path / "state").exists()


def test_bad_bounds_are_refused_before_anything_is_done(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(ValueError, match="no timezone"):
        campaign.run(path, until=datetime(2030, 1, 1, 20, 0))
    with pytest.raises(ValueError, match="positive"):
        campaign.run(path, max_duration=0)
    with pytest.raises(ValueError, match="is not HH:MM"):
        campaign.run(path, until="25:00")
    assert not (tmp_path / "state").exists()


def test_until_and_max_duration_take_the_forms_the_cli_takes() -> None:
    now = datetime(2026, 6, 3, 12, 0, tzinfo=UTC).timestamp()
    later = datetime(2026, 6, 3, 14, 30, tzinfo=UTC)
    assert until_timestamp(later, now=now) == later.timestamp()
    with pytest.raises(ValueError, match="already passed"):
        until_timestamp(later - timedelta(hours=3), now=now)
    local_now = datetime.fromtimestamp(now).astimezone()
    in_an_hour = (local_now + timedelta(hours=1)).strftime("%H:%M")
    if in_an_hour > local_now.strftime("%H:%M"):  # "HH:MM" is today: not across midnight
        assert until_timestamp(in_an_hour, now=now) == now + 3600
    with pytest.raises(ValueError, match="has already passed today"):
        until_timestamp(local_now.strftime("%H:%M"), now=now)
    assert duration_seconds("2h") == duration_seconds(timedelta(hours=2)) == 7200.0
    assert duration_seconds(90) == 90.0 and duration_seconds(None) is None
    with pytest.raises(TypeError):
        duration_seconds(True)


def test_validate_and_status_return_typed_results(tmp_path: Path) -> None:
    path = _write(tmp_path, [*ROWS[:3], "not a phone", ROWS[0]])
    checked = campaign.validate(path)
    assert isinstance(checked, campaign.ValidationSummary)
    assert (checked.counts.rows_read, checked.counts.callable, checked.counts.duplicates) == (
        5,
        3,
        1,
    )
    assert checked.to_dict()["rejected"] == 1

    with pytest.raises(StateError, match="has not run yet") as no_checkpoint:
        campaign.status(path)
    assert no_checkpoint.value.exit_code == 1

    campaign.run(path)
    status = campaign.status(path)
    assert isinstance(status, campaign.CampaignStatus)
    assert (status.rows_total, status.calls_placed, status.calls_in_flight) == (5, 3, 0)
    assert status.last_run is not None and status.last_run.exit_code == 0
    assert json.loads(json.dumps(status.to_dict()))["calls_placed"] == 3


def test_import_campaign_is_light_and_lists_its_public_names() -> None:
    code = (
        "import sys, campaign\n"
        "heavy = ['aiohttp', 'pydantic', 'rich', 'sqlite3', 'campaign.pipeline.runner']\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "import campaign.pipeline.runner\n"
        "print(callable(campaign.run), campaign.run.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == ["[]", "True campaign.public"]
    for name in campaign.__all__:
        assert getattr(campaign, name) is not None, name


class _Recorder:
    """A progress display that records what the run told it."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, *, campaign: str, total: int) -> None:
        self.events.append(f"start {campaign} {total}")

    def placed(self) -> None:
        self.events.append("placed")

    def finished(self, status: str, outcome: str | None) -> None:
        self.events.append("finished")

    def note(self, msg: str) -> None:
        self.events.append("note")

    def stop(self) -> None:
        self.events.append("stop")


def test_a_progress_display_is_shown_the_run(tmp_path: Path) -> None:
    display = _Recorder()
    report = campaign.run(_write(tmp_path), progress=display)
    assert report.exit_code == 0
    assert display.events[0] == "start apitest 6" and display.events[-1] == "stop"
    assert display.events.count("placed") == 6
