"""``campaign run|status|report`` through click's CliRunner against the in-process sandbox."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner, Result

from campaign.cli import main

ROWS = [f"+1 212 555 {100 + i:04d}" for i in range(6)]


def _write(tmp_path: Path, phones: list[str], *, extra: str = "", sandbox: str = "") -> Path:
    lines = ["customer_id,phone,first_name"] + [f"K{i},{p},N{i}" for i, p in enumerate(phones)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: clitest
scenario_id: scn_demo
input: {{path: contacts.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}}
retry: {{max_attempts: 1}}
limits: {{calls: 100/10s, requests: [600/min, 20000/h]}}
api: {{base_url: sandbox}}
sandbox: {{time_scale: 0.005{sandbox}}}
state_dir: state
output_dir: out
{extra or "calling_hours: unrestricted"}
"""
    )
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def _results(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "out" / "results.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_calls_every_row_and_a_rerun_places_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS)
    first = _run("run", str(path))
    assert first.exit_code == 0, first.output
    assert "this run: 6 call(s) placed" in first.output
    assert "calling hours: UNRESTRICTED" in first.output
    assert {r["state"] for r in _results(tmp_path)} <= {"done", "failed"}
    again = _run("run", str(path))
    assert again.exit_code == 0, again.output
    assert "this run: 0 call(s) placed" in again.output
    status = _run("status", str(path), "--json")
    assert status.exit_code == 0
    facts = json.loads(status.output)
    assert facts["calls_placed"] == 6 and facts["calls_in_flight"] == 0
    (tmp_path / "out" / "results.csv").unlink()
    rewritten = _run("report", str(path))
    assert rewritten.exit_code == 0 and len(_results(tmp_path)) == 6


def test_grown_input_calls_only_the_new_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS[:3])
    assert _run("run", str(path)).exit_code == 0
    _write(tmp_path, ROWS)
    second = _run("run", str(path))
    assert second.exit_code == 0, second.output
    assert "this run: 3 call(s) placed" in second.output
    assert len(_results(tmp_path)) == 6


def test_dry_run_sends_nothing_and_shows_pending(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS)
    result = _run("run", str(path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing was sent" in result.output
    assert {r["state"] for r in _results(tmp_path)} == {"pending"}
    assert not (tmp_path / "state" / "clitest.sqlite").exists()


def test_estimate_above_balance_exits_2_saying_by_how_much(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS, extra='calling_hours: unrestricted\ncost_estimate: "10.00"',
                  sandbox=', wallet_balance: "25.00"')  # fmt: skip
    result = _run("run", str(path))
    assert result.exit_code == 2
    assert "exceeds the wallet balance of 25.00 USD by 35.00 USD" in result.output


def test_empty_wallet_stops_with_exit_1_and_burns_no_row(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS, sandbox=', wallet_balance: "0.00"')
    result = _run("run", str(path), "--allow-low-balance")
    assert result.exit_code == 1
    assert "top up the wallet" in result.output
    rows = _results(tmp_path)
    assert rows and {r["state"] for r in rows} == {"pending"}


def test_a_refused_key_exits_4(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS)
    result = _run("run", str(path), env={"AITELIER_API_KEY": "avp_test_wrong"})
    assert result.exit_code == 4, result.output
    assert "avp_test_wrong" not in result.output


def test_outside_every_window_nothing_is_placed_and_the_opening_is_named(tmp_path: Path) -> None:
    # Every day but today (New York time, where the rows are): closed now, whatever the hour.
    today = datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).weekday()
    days = [
        d for i, d in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]) if i != today
    ]
    hours = f'calling_hours: {{start: "09:00", end: "20:00", days: [{", ".join(days)}]}}'
    path = _write(tmp_path, ROWS[:2], extra=hours)
    result = _run("run", str(path))
    assert result.exit_code == 0, result.output
    assert "this run: 0 call(s) placed" in result.output
    assert "next work falls due" in result.output and "calling window opens" in result.output
    assert {r["state"] for r in _results(tmp_path)} == {"pending"}
    assert all("waiting for calling hours" in r["reason"] for r in _results(tmp_path))


def test_until_in_the_past_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS)
    result = _run("run", str(path), "--until", "00:00")
    assert result.exit_code == 2
    assert "has already passed today" in result.output


def test_status_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS)
    result = _run("status", str(path))
    assert result.exit_code == 1
    assert "has not run yet" in result.output


def test_max_duration_stops_with_exit_3_and_a_rerun_resumes(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS[:3])
    text = path.read_text().replace("calls: 100/10s", "calls: 2/4s")
    path.write_text(text)
    first = _run("run", str(path), "--max-duration", "2s")
    assert first.exit_code == 3, first.output
    assert "stopped early (reached the time limit); rerun to resume" in first.output
    states = [r["state"] for r in _results(tmp_path)]
    assert "pending" in states and "this run: 3 call(s)" not in first.output
    second = _run("run", str(path))
    assert second.exit_code == 0, second.output
    assert "pending" not in {r["state"] for r in _results(tmp_path)}
