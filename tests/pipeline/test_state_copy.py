"""``campaign state copy``: a campaign run on SQLite moves into PostgreSQL; nobody is called
twice across the move, the old checkpoint refuses to run, and the password never shows."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import campaign
from campaign.cli import main
from campaign.sandbox import DEFAULT_KEY, SandboxConfig, start_sandbox
from campaign.store.checkpoint import Store
from campaign.store.lock import CampaignLock

PHONES = [f"+1 212 555 {300 + i:04d}" for i in range(5)]


def _write(folder: Path, phones: list[str], *, api: str = "{base_url: sandbox}") -> Path:
    lines = ["customer_id,phone,first_name"] + [f"K{i},{p},N{i}" for i, p in enumerate(phones)]
    (folder / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = folder / "move.yaml"
    path.write_text(
        f"""campaign: move
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: contacts.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}}
retry: {{max_attempts: 1}}
limits: {{calls: 60/10s, requests: [600/min, 20000/h]}}
cost_estimate: "0.01"
api: {api}
sandbox: {{time_scale: 0.005}}
calling_hours: unrestricted
state_dir: state
output_dir: out
"""
    )
    return path


def _cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def _everything_said(result: Result, folder: Path) -> str:
    logs = [p.read_text(errors="replace") for p in (folder / "state").glob("*.log")]
    return "\n".join([result.stdout, result.stderr, *logs])


@pytest.fixture
def ran(tmp_path: Path) -> Path:
    """A campaign that ran to its end on SQLite (in-process sandbox)."""
    path = _write(tmp_path, PHONES)
    first = _cli("run", str(path), env={"CAMPAIGN_STATE_URL": ""})
    assert first.exit_code == 0, first.output
    return path


def test_copy_with_the_password_in_to_warns_and_never_shows_it(
    ran: Path, pg_url: str, pg_password: str
) -> None:
    result = _cli("state", "copy", str(ran), "--to", pg_url, env={"CAMPAIGN_STATE_URL": ""})
    assert result.exit_code == 0, result.output
    assert "Warning: --to holds a password" in result.stderr
    assert "copied " in result.stdout and "5 rows, 5 attempts" in result.stdout
    assert "postgresql://campaign_test:***@" in result.stdout
    assert "verified:" in result.stdout
    assert pg_password not in _everything_said(result, ran.parent)
    again = _cli("run", str(ran), env={"CAMPAIGN_STATE_URL": ""})
    assert again.exit_code == 1
    assert "this campaign's state was moved to postgresql://campaign_test:***@" in again.stderr
    assert "set state_url/CAMPAIGN_STATE_URL to run it there" in again.stderr
    assert pg_password not in _everything_said(again, ran.parent)


def test_copy_to_the_url_of_the_environment_shows_no_password(
    ran: Path, pg_url: str, pg_password: str
) -> None:
    result = _cli("state", "copy", str(ran), env={"CAMPAIGN_STATE_URL": pg_url})
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr
    assert pg_password not in _everything_said(result, ran.parent)
    store = Store.open_postgres(pg_url, "move")
    try:
        assert len(store.attempts()) == len(PHONES)
        runs = store.runs()
    finally:
        store.close()
    dry = _cli("run", str(ran), "--dry-run", env={"CAMPAIGN_STATE_URL": pg_url})
    assert dry.exit_code == 0, dry.output  # reads a copy of the database's checkpoint
    assert pg_password not in _everything_said(dry, ran.parent)
    store = Store.open_postgres(pg_url, "move")
    try:
        assert store.runs() == runs  # and writes nothing to it
    finally:
        store.close()


def test_a_database_that_refuses_the_connection_is_named_without_the_password(
    ran: Path, pg_url: str, pg_password: str
) -> None:
    wrong = pg_url.replace(pg_password, pg_password[::-1])  # a refused password
    result = _cli("state", "copy", str(ran), env={"CAMPAIGN_STATE_URL": wrong})
    assert result.exit_code == 1
    assert "the state database cannot be reached or used" in result.stderr
    assert "password authentication failed" in result.stderr  # the server's reason, at once
    said = _everything_said(result, ran.parent)
    assert pg_password not in said and pg_password[::-1] not in said
    rerun = _cli("run", str(ran), env={"CAMPAIGN_STATE_URL": ""})  # nothing was moved
    assert rerun.exit_code == 0, rerun.output


def test_a_run_in_progress_makes_the_copy_exit_75(ran: Path, pg_url: str) -> None:
    with CampaignLock(ran.parent / "state" / "move.sqlite"):
        result = _cli("state", "copy", str(ran), env={"CAMPAIGN_STATE_URL": pg_url})
    assert result.exit_code == 75
    assert "another run of this campaign is in progress" in result.stderr


def test_a_checkpoint_path_is_copied_and_a_second_copy_is_refused(ran: Path, pg_url: str) -> None:
    checkpoint = ran.parent / "state" / "move.sqlite"
    first = _cli("state", "copy", str(checkpoint), "--to", pg_url)
    assert first.exit_code == 0, first.output
    again = _cli("state", "copy", str(checkpoint), "--to", pg_url, "--campaign", "move")
    assert again.exit_code == 1
    assert "was moved to" in again.stderr


def test_without_a_database_the_command_says_how_to_name_one(ran: Path) -> None:
    result = _cli("state", "copy", str(ran), env={"CAMPAIGN_STATE_URL": ""})
    assert result.exit_code == 2
    assert "give --to postgresql://" in result.stderr and "CAMPAIGN_STATE_URL" in result.stderr


async def test_a_campaign_moved_mid_run_calls_nobody_twice(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the list called on SQLite, the run stopped, the state copied, the rest called
    on PostgreSQL: the sandbox's ledger shows every number called exactly once."""
    phones = [f"+1 212 555 {400 + i:04d}" for i in range(24)]
    path = _write(tmp_path, phones, api="{base_url: https://api.example.invalid/v1}")
    sandbox = await start_sandbox(
        SandboxConfig(
            ledger=True, outbound_calls="60/10s", requests_per_minute="600/min",
            requests_per_hour="20000/h", wallet_balance="1000.00", time_scale=0.005,
        )
    )  # fmt: skip
    monkeypatch.setenv("AITELIER_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("AITELIER_BASE_URL", sandbox.base_url)
    monkeypatch.delenv("CAMPAIGN_STATE_URL", raising=False)
    try:
        stop = asyncio.Event()
        first = asyncio.create_task(campaign.run_async(path, stop=stop))
        deadline = time.monotonic() + 60
        while len(sandbox.ledger()["calls"]) < 6 and not first.done():
            assert time.monotonic() < deadline, "the first run placed no call"
            await asyncio.sleep(0.02)
        stop.set()
        stopped = await first
        assert stopped.exit_code == 3, stopped.error  # stopped with work left
        on_sqlite = len(sandbox.ledger()["calls"])
        assert 6 <= on_sqlite < len(phones)

        moved = CliRunner().invoke(main, ["state", "copy", str(path), "--to", pg_url], env={})
        assert moved.exit_code == 0, moved.output
        refused = await campaign.run_async(path)  # a cron job left on the old host
        assert refused.exit_code == 1 and "was moved to" in str(refused.error)

        monkeypatch.setenv("CAMPAIGN_STATE_URL", pg_url)
        finished = await campaign.run_async(path)
        assert finished.exit_code == 0, finished.error
        ledger = sandbox.ledger()
    finally:
        await sandbox.close()
    called = Counter(call["phone"] for call in ledger["calls"])
    assert len(called) == len(phones)  # everyone called
    assert set(called.values()) == {1}, called  # nobody twice
    assert len(ledger["calls"]) > on_sqlite  # the rest were called from PostgreSQL
