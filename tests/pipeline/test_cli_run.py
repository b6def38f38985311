"""``campaign run|status|report`` through click's CliRunner against the in-process sandbox."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from campaign.cli import main
from campaign.console.progress import RunProgress

ROWS = [f"+1 212 555 {100 + i:04d}" for i in range(6)]


def _write(tmp_path: Path, phones: list[str], *, extra: str = "", sandbox: str = "") -> Path:
    lines = ["customer_id,phone,first_name"] + [f"K{i},{p},N{i}" for i, p in enumerate(phones)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: clitest
scenario_id: scn_demo
compliance:
  consent: attested
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


def test_after_an_early_stop_pending_rows_are_due_now_not_at_the_next_retry(
    tmp_path: Path,
) -> None:
    # The user's run: --max-duration stopped it (exit 3) with rows still pending and a
    # no_answer retry 4 h away; stdout and summary.json named the retry as the next work.
    phones = [f"+1 212 555 {100 + i:04d}" for i in range(20)]
    (tmp_path / "sandbox.yaml").write_text(
        'scripted_outcomes: {"+12125550100": [no_answer], "+12125550101": [no_answer]}\n'
    )
    path = _write(tmp_path, phones, sandbox=", config: sandbox.yaml")
    text = path.read_text().replace("calls: 100/10s", "calls: 1/s")
    path.write_text(
        text.replace("retry: {max_attempts: 1}", "retry: {max_attempts: 3, min_interval: 4h}")
    )
    started = datetime.now(UTC).timestamp()
    result = _run("run", str(path), "--max-duration", "4s")
    assert result.exit_code == 3, result.output
    states = [r["state"] for r in _results(tmp_path)]
    assert states.count("pending") >= 10 and "retry_scheduled" in states, states
    assert "next work falls due now (rows are due now)" in result.output
    assert "(retry)" not in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["next_due_reason"] == "rows are due now"
    due = datetime.fromisoformat(summary["next_due"]).timestamp()
    assert started <= due <= datetime.now(UTC).timestamp()


def test_a_run_says_each_stage_as_it_starts_and_how_long_it_took(tmp_path: Path) -> None:
    # A run on a large list was silent for minutes while it read and synced.
    path = _write(tmp_path, ROWS)
    result = _run("run", str(path))
    assert result.exit_code == 0, result.output
    stages = [
        f"reading and planning {tmp_path / 'contacts.csv'}",
        "syncing the checkpoint",
        "pre-flight",
        "placing and following calls (calls mode)",
        "writing the outputs",
    ]
    lines = result.stderr.splitlines()
    for stage in stages:
        starts = [i for i, line in enumerate(lines) if line.endswith(f" INFO {stage} …")]
        ends = [
            i
            for i, line in enumerate(lines)
            if re.search(rf" INFO {re.escape(stage)} took [\d.]+ s$", line)
        ]
        assert len(starts) == 1 and len(ends) == 1 and starts < ends, (stage, result.stderr)


def test_reading_the_list_is_shown_to_the_terminal_display(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The planner tells the display every 10,000 rows (tests/console/test_progress.py)
    # and at the end: a list of six is one report of six.
    seen: list[int] = []

    class Terminal(RunProgress):
        def rows_read(self, count: int) -> None:
            seen.append(count)
            super().rows_read(count)

    monkeypatch.setattr("campaign.console.progress.RunProgress", Terminal)
    result = _run("run", str(_write(tmp_path, ROWS)), "--dry-run")
    assert result.exit_code == 0, result.output
    assert seen == [len(ROWS)]


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_logs_give_the_row_key_call_id_status_and_outcome_their_own_fields(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, ROWS[:2])
    result = _run("run", str(path), "--log-format", "json")
    assert result.exit_code == 0, result.output
    entries = _json_lines(result.stderr)
    assert len(entries) == len(result.stderr.splitlines())  # every line is JSON
    placed = [e for e in entries if "placed as" in str(e["message"])]
    ended = [e for e in entries if " ended " in str(e["message"])]
    assert {e["row_key"] for e in placed} == {e["row_key"] for e in ended} == {"K0", "K1"}
    for entry in placed:
        assert str(entry["call_id"]).startswith("call_") and entry["attempt"] == 1
        assert entry["call_id"] in str(entry["message"])
    for entry in ended:
        assert str(entry["call_id"]).startswith("call_") and entry["status"]
        assert "outcome" in entry and entry["attempt"] == 1


def test_with_json_logs_a_fatal_error_is_a_json_line_too(tmp_path: Path) -> None:
    path = _write(tmp_path, ROWS)
    refused = _run(
        "run", str(path), "--log-format", "json", env={"AITELIER_API_KEY": "avp_test_wrong"}
    )
    assert refused.exit_code == 4
    last = json.loads(refused.stderr.splitlines()[-1])
    assert last["level"] == "ERROR" and last["exit_code"] == 4 and last["message"]
    assert "Error:" not in refused.stderr and "avp_test_wrong" not in refused.stderr
    missing = _run("run", str(tmp_path / "nope.yaml"), "--log-format", "json")
    assert missing.exit_code == 2
    assert json.loads(missing.stderr.splitlines()[-1])["exit_code"] == 2
    bad_until = _run("run", str(path), "--until", "25:00", "--log-format", "json")
    assert bad_until.exit_code == 2
    assert "--until" in json.loads(bad_until.stderr.splitlines()[-1])["message"]
    plain = _run("run", str(tmp_path / "nope.yaml"))
    assert plain.exit_code == 2 and plain.stderr.startswith("Error: ")


ROOT = Path(__file__).resolve().parents[2]
HELP_PAGES = [[], ["run"], ["validate"], ["status"], ["report"], ["sandbox"], ["sandbox", "serve"]]


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_names_only_files_that_are_in_the_repo(tmp_path: Path) -> None:
    # The sandbox help named contract.md and the run example pipelines/winback.yaml.
    named = set()
    for page in HELP_PAGES:
        text = _help(*page)
        named |= set(re.findall(r"[\w.-]+/[\w./-]+\.(?:ya?ml|md|csv|json)\b", text))
        named |= set(re.findall(r"\b[\w./-]+\.md\b", text))
    assert "pipelines/winback.yaml" in named and "docs/api/openapi.yaml" in named
    for name in sorted(named):
        assert (ROOT / name).is_file(), f"{name} is named in --help but not in the repo"
    for campaign_file in sorted(n for n in named if n.startswith("pipelines/")):
        checked = _run("validate", str(ROOT / campaign_file))
        assert checked.exit_code == 0, checked.output


def test_help_shows_no_literal_backticks() -> None:
    for page in HELP_PAGES:
        assert "`" not in _help(*page), page


def test_the_command_list_cuts_no_description() -> None:
    for page in ([], ["sandbox"]):
        commands = _help(*page).split("Commands:\n", 1)[1]
        assert commands.strip() and "..." not in commands, commands


def test_log_format_is_described_and_until_says_whose_local_time() -> None:
    text = " ".join(_help("run").split())
    assert re.search(r"--log-format \[plain\|json\] \w", text)
    assert "one JSON object per line" in text
    assert "local time of the machine running the command" in text
