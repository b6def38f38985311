"""One campaign end to end on each state backend: run, rerun, status, report, dry run.

The pipeline opens every piece of state through ``StatePlace`` (campaign/store/place.py);
with ``state_url`` nothing but the run's log is left in the state dir, and what the
outputs and ``status`` say about where the state is names the database without its
password.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.postgres import Backend

import campaign
from campaign.errors import StateError
from campaign.pipeline.outputs import rewrite_outputs
from campaign.public import load

ROWS = [f"+1 212 555 {100 + i:04d}" for i in range(6)]


def _write(tmp_path: Path, backend: Backend) -> Path:
    lines = ["customer_id,phone"] + [f"K{i},{p}" for i, p in enumerate(ROWS)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: placed
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: contacts.csv, default_region: US, key_column: customer_id}}
retry: {{max_attempts: 1}}
limits: {{calls: 100/10s, requests: [600/min, 20000/h]}}
api: {{base_url: sandbox}}
sandbox: {{time_scale: 0.005}}
state_dir: state
output_dir: out
calling_hours: unrestricted
{backend.campaign_yaml()}"""
    )
    return path


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, state_backend: Backend) -> None:
    for name in ("AITELIER_API_KEY", "AITELIER_BASE_URL", "CAMPAIGN_STATE_URL", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in state_backend.env().items():
        monkeypatch.setenv(name, value)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_campaign_runs_resumes_and_reports_from_its_state_place(
    tmp_path: Path, state_backend: Backend
) -> None:
    path = _write(tmp_path, state_backend)
    with pytest.raises(StateError) as before:  # not run yet
        campaign.status(path)
    assert before.value.exit_code == 1 and "run" in str(before.value)
    if state_backend.password:
        assert state_backend.password not in str(before.value)

    dry = campaign.run(path, dry_run=True)
    assert (dry.exit_code, dry.outcome, dry.summary["calls_placed"]) == (0, "dry_run", 0)

    report = campaign.run(path)
    assert (report.exit_code, report.outcome) == (0, "finished"), report.error
    assert report.summary["calls_placed"] == len(ROWS)
    again = campaign.run(path)  # resumes from the checkpoint: nobody is called again
    assert again.exit_code == 0
    assert "this run: 0 call(s) placed" in "\n".join(again.lines)

    status = campaign.status(path)
    assert (status.rows_total, status.calls_placed) == (len(ROWS), len(ROWS))
    assert status.last_run is not None and status.last_run.exit_code == 0
    # The shared allowance it ran on, found where the rest of its state is.
    assert [(m["campaign"], m["state"]) for m in status.allowance] == [("placed", "left")]
    compliance = json.loads((tmp_path / "out" / "summary.json").read_text())["compliance"]
    opt_outs = compliance["do_not_call"]["opt_out_list"]
    shared = compliance["frequency_caps"]["counted_across"]
    if state_backend.url_no_password is None:
        assert status.checkpoint == str(tmp_path / "state" / "placed.sqlite")
        assert opt_outs == str(tmp_path / "state" / "opt_outs.sqlite")
        assert shared.endswith(f"state dir {tmp_path / 'state'}")
    else:
        assert status.checkpoint.startswith(state_backend.url_no_password)
        assert "'campaign:placed'" in status.checkpoint
        assert opt_outs.startswith(state_backend.url_no_password) and "campaign_shared" in opt_outs
        assert shared.endswith(f"state database {state_backend.url_no_password}")
        # With a state database the state dir holds no state (the sandbox's file aside).
        assert not list((tmp_path / "state").glob("*.sqlite*"))

    rewritten = rewrite_outputs(load(path))
    with rewritten.results_csv.open() as handle:
        assert sum(1 for _ in handle) == len(ROWS) + 1
    if state_backend.password:
        for file in _files(tmp_path):
            assert state_backend.password.encode() not in file.read_bytes(), file
        assert state_backend.password not in json.dumps(status.to_dict())
