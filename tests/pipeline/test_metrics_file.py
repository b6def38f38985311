"""``campaign run --metrics-file``: the run's figures for node_exporter's textfile collector.

Runs go through the CLI against the in-process sandbox (and, for 429s, a sandbox process
with a tighter call limit than the campaign's); the file is read back with
prometheus_client's own parser, as the collector would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families
from support.crash import BIN, read_ledger, run_env, sandbox_process, write_crash_campaign

import campaign
from campaign.cli import main
from campaign.pipeline.metrics import RunFigures, read_previous, write_metrics
from campaign.store.lock import CampaignLock

ROWS = ["+1 212 555 0100", "+1 212 555 0101", "+1 212 555 0102", "not a phone"]
SANDBOX_KEY = "avp_test_sandbox"


def _write(tmp_path: Path, *, limits: str = "100/10s", api: str = "base_url: sandbox") -> Path:
    lines = ["customer_id,phone,first_name"] + [f"K{i},{p},N{i}" for i, p in enumerate(ROWS)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: metricstest
scenario_id: scn_demo
input: {{path: contacts.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}}
retry: {{max_attempts: 1}}
limits: {{calls: {limits}, requests: [600/min, 20000/h]}}
api: {{{api}}}
sandbox: {{time_scale: 0.005}}
state_dir: state
output_dir: out
calling_hours: unrestricted
compliance: {{consent: attested}}
"""
    )
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the file by name and labels (sorted), parsed as the collector does."""
    found = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(path: Path, name: str, *, campaign: str = "metricstest", **labels: str) -> float | None:
    wanted = {"campaign": campaign, "mode": "calls", **labels}
    return _samples(path).get((f"campaign_{name}", tuple(sorted(wanted.items()))))


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AITELIER_API_KEY", raising=False)
    monkeypatch.delenv("AITELIER_BASE_URL", raising=False)


def test_a_run_writes_its_figures_and_a_rerun_rewrites_them(tmp_path: Path) -> None:
    path = _write(tmp_path)
    prom = tmp_path / "textfile" / "campaign.prom"
    prom.parent.mkdir()
    before = time.time()
    umask = os.umask(0o077)  # a private umask (systemd's UMask=, a hardened cron) …
    try:
        first = _run("run", str(path), "--metrics-file", str(prom))
    finally:
        os.umask(umask)
    after = time.time()
    assert first.exit_code == 0, first.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert _value(prom, "last_run_exit_code") == 0
    started = _value(prom, "last_run_start_timestamp_seconds")
    ended = _value(prom, "last_run_end_timestamp_seconds")
    assert started is not None and ended is not None
    assert before <= started <= ended <= after
    assert _value(prom, "last_run_duration_seconds") == pytest.approx(ended - started)
    assert _value(prom, "last_success_timestamp_seconds") == ended
    rows = {
        dict(labels)["state"]: value
        for (name, labels), value in _samples(prom).items()
        if name == "campaign_rows"
    }
    assert rows == {state: float(n) for state, n in summary["by_state"].items()}
    assert rows["rejected"] == 1 and sum(rows.values()) == len(ROWS)
    assert _value(prom, "last_run_calls_placed") == 3
    assert _value(prom, "last_run_requests") == summary["requests_spent"]
    assert _value(prom, "last_run_rate_limited_responses") == 0
    amount = summary["cost"]["by_currency"].get("USD")
    if amount is not None:
        assert _value(prom, "cost", currency="USD") == pytest.approx(float(amount))
    assert stat.S_IMODE(os.stat(prom).st_mode) == 0o644  # … still lets node_exporter read it
    assert SANDBOX_KEY not in prom.read_text()
    assert [p.name for p in prom.parent.iterdir()] == ["campaign.prom"]  # no temp file left

    again = _run("run", str(path), "--metrics-file", str(prom))
    assert again.exit_code == 0, again.output
    assert _value(prom, "last_run_calls_placed") == 0
    second_end = _value(prom, "last_run_end_timestamp_seconds")
    assert second_end is not None and second_end >= ended
    assert _value(prom, "last_success_timestamp_seconds") == second_end


def test_a_failing_run_writes_its_exit_code_and_keeps_the_last_success(tmp_path: Path) -> None:
    path = _write(tmp_path)
    prom = tmp_path / "campaign.prom"
    assert _run("run", str(path), "--metrics-file", str(prom)).exit_code == 0
    success = _value(prom, "last_success_timestamp_seconds")
    assert success is not None

    wrong = "avp_test_wrong_key_4242"
    refused = _run("run", str(path), "--metrics-file", str(prom), env={"AITELIER_API_KEY": wrong})
    assert refused.exit_code == 4, refused.output
    assert _value(prom, "last_run_exit_code") == 4
    assert _value(prom, "last_success_timestamp_seconds") == success
    assert (_value(prom, "last_run_end_timestamp_seconds") or 0) >= success
    assert _value(prom, "rows", state="rejected") == 1  # the checkpoint was open: rows known
    assert wrong not in prom.read_text() and SANDBOX_KEY not in prom.read_text()

    # Refused before the checkpoint: a campaign file that no longer reads (exit 2).
    path.write_text(path.read_text().replace("scenario_id:", "scenario_idd:"))
    broken = _run("run", str(path), "--metrics-file", str(prom))
    assert broken.exit_code == 2, broken.output
    # The name comes from the previous file, so the scheduler's series stays the same.
    assert _value(prom, "last_run_exit_code") == 2
    assert _value(prom, "last_success_timestamp_seconds") == success
    assert _value(prom, "rows", state="rejected") is None  # nothing is known of the rows


def test_a_run_that_finds_the_lock_held_says_75_and_keeps_the_last_success(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path)
    prom = tmp_path / "campaign.prom"
    assert _run("run", str(path), "--metrics-file", str(prom)).exit_code == 0
    success = _value(prom, "last_success_timestamp_seconds")
    with CampaignLock(tmp_path / "state" / "metricstest.sqlite"):  # another run, still going
        locked = _run("run", str(path), "--metrics-file", str(prom))
    assert locked.exit_code == 75, locked.output
    assert _value(prom, "last_run_exit_code") == 75
    assert _value(prom, "last_success_timestamp_seconds") == success
    assert _value(prom, "last_run_calls_placed") is None  # it placed nothing: not a figure


def test_a_missing_folder_exits_2_before_anything_runs(tmp_path: Path) -> None:
    path = _write(tmp_path)
    result = _run("run", str(path), "--metrics-file", str(tmp_path / "nowhere" / "c.prom"))
    assert result.exit_code == 2
    assert "--metrics-file" in result.output and "nowhere" in result.output
    assert not (tmp_path / "state").exists() and not (tmp_path / "out").exists()
    assert not (tmp_path / "nowhere").exists()


def test_several_campaign_files_are_refused_with_one_metrics_file(tmp_path: Path) -> None:
    path = _write(tmp_path)
    prom = tmp_path / "campaign.prom"
    result = _run("run", str(path), str(path), "--metrics-file", str(prom))
    assert result.exit_code == 2 and "--metrics-file" in result.output
    assert not prom.exists() and not (tmp_path / "state").exists()


def test_429s_are_counted_as_the_server_answered_them(tmp_path: Path) -> None:
    # The campaign believes it may place 100 calls per 10 s; the server allows 1 per 2 s
    # (scaled): every call after the first meets a 429 before its slot frees.
    path = _write(tmp_path, api="key_env: AITELIER_API_KEY")
    path.write_text(path.read_text().replace("sandbox: {time_scale: 0.005}\n", ""))
    prom = tmp_path / "campaign.prom"
    with sandbox_process(tmp_path, faults="", call_limit="1/2s", seed=1) as root:
        env = {"AITELIER_API_KEY": SANDBOX_KEY, "AITELIER_BASE_URL": f"{root}/v1"}
        result = _run("run", str(path), "--metrics-file", str(prom), env=env)
        ledger = read_ledger(root)
    assert result.exit_code == 0, result.output
    assert ledger["rate_limited"] > 0
    assert _value(prom, "last_run_rate_limited_responses") == ledger["rate_limited"]
    assert _value(prom, "last_run_calls_placed") == 3


@pytest.mark.slow
def test_a_killed_run_leaves_the_last_file_and_the_rerun_counts_its_own_calls(
    tmp_path: Path,
) -> None:
    consent = "compliance: {consent: attested}\n"
    campaign_file = write_crash_campaign(tmp_path, 3, "30/10s", extra=consent)
    prom = tmp_path / "textfile" / "crash.prom"
    prom.parent.mkdir()
    command = [str(BIN), "run", str(campaign_file), "--metrics-file", str(prom)]
    with sandbox_process(tmp_path, faults="", call_limit="30/10s", seed=3) as root:
        env = run_env(root)
        first = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=120)
        assert first.returncode == 0, first.stderr
        before = prom.read_bytes()
        write_crash_campaign(tmp_path, 24, "30/10s", extra=consent)  # the list grew overnight
        killed = subprocess.Popen(
            command, env=env, cwd=tmp_path, stderr=(tmp_path / "killed.err").open("w")
        )
        waited = 0
        while len(read_ledger(root)["calls"]) < 6 and killed.poll() is None and waited < 1200:
            time.sleep(0.05)  # waiting for calls to be placed, not timing anything
            waited += 1
        assert killed.poll() is None, (tmp_path / "killed.err").read_text()
        killed.kill()
        killed.wait()
        at_kill = len(read_ledger(root)["calls"])
        assert prom.read_bytes() == before  # a killed run writes nothing, not half a file
        rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=180)
        assert rerun.returncode == 0, rerun.stderr
        ledger = read_ledger(root)
    assert [p.name for p in prom.parent.iterdir()] == ["crash.prom"]
    assert _value(prom, "last_run_exit_code", campaign="crash") == 0
    success = _value(prom, "last_success_timestamp_seconds", campaign="crash")
    assert (success or 0) > _first_success(before)
    rows = [v for (name, _), v in _samples(prom).items() if name == "campaign_rows"]
    assert sum(rows) == 24
    # Acknowledged by the rerun: its new calls, and replays of those the killed run had sent.
    new_calls = len(ledger["calls"]) - at_kill
    placed = _value(prom, "last_run_calls_placed", campaign="crash")
    assert placed is not None and new_calls <= placed <= 2 * 24  # two attempts a row at most


def _first_success(text: bytes) -> float:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == "campaign_last_success_timestamp_seconds":
                return float(sample.value)
    raise AssertionError("the first run wrote no last success time")


def test_the_python_api_writes_the_file_or_refuses_a_missing_folder(tmp_path: Path) -> None:
    path = _write(tmp_path)
    missing = campaign.run(path, metrics_file=tmp_path / "nowhere" / "c.prom")
    assert missing.exit_code == 2 and "metrics_file" in str(missing.error)
    assert not (tmp_path / "state").exists()
    prom = tmp_path / "campaign.prom"
    report = campaign.run(path, metrics_file=prom, dry_run=True)
    assert report.exit_code == 0
    assert _value(prom, "last_run_exit_code") == 0
    assert _value(prom, "last_run_calls_placed") == 0
    # A dry run is not a success of the job: it does not move the last success time.
    assert _value(prom, "last_success_timestamp_seconds") is None


FIGURES = RunFigures(
    campaign="metricstest", mode="calls", started=1000.0, ended=1060.0, exit_code=0, succeeded=True
)


def _figures(**changes: object) -> RunFigures:
    return dataclasses.replace(FIGURES, **changes)  # type: ignore[arg-type]


def test_the_last_success_carries_only_for_the_same_campaign(tmp_path: Path) -> None:
    prom = tmp_path / "c.prom"
    write_metrics(prom, _figures())
    write_metrics(prom, _figures(started=2000.0, ended=2010.0, exit_code=1, succeeded=False))
    assert read_previous(prom)["last_success"] == 1060.0
    # Another campaign pointed at the same file does not inherit this one's success.
    write_metrics(prom, _figures(campaign="other", ended=3000.0, exit_code=3, succeeded=False))
    assert "last_success" not in read_previous(prom)


def test_an_unreadable_previous_file_is_said_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    prom = tmp_path / "c.prom"
    prom.write_text('campaign_last_success_timestamp_seconds{campaign="metricstest" 12\n')
    with caplog.at_level(logging.WARNING, logger="campaign"):
        write_metrics(prom, _figures(exit_code=2, succeeded=False))
    assert "not in the Prometheus text format" in caplog.text
    assert str(prom) in caplog.text
    assert _value(prom, "last_run_exit_code") == 2
    assert _value(prom, "last_success_timestamp_seconds") is None
