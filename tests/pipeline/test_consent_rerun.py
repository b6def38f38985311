"""Consent is read again every run: a person who withdrew it overnight is not called tonight.

The real ``campaign run`` (click's CliRunner, the in-process sandbox whose world persists in
the state dir) runs on a checkpoint an earlier night left: attempts committed *sending*
and never executed (a ``kill -9``), a pending row and a row waiting for its retry. Then the
export changes its consent column, as a CRM's nightly export does.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from click.testing import CliRunner, Result
from support.engine import leave_sending

from campaign.cli import main
from campaign.config.model import load_campaign
from campaign.planning.windows import planned_rows
from campaign.store.checkpoint import Store

PHONES = [f"+1212555{100 + i:04d}" for i in range(4)]
KEYS = [f"K{i}" for i in range(4)]


def _campaign(tmp_path: Path, consent: list[str]) -> Path:
    lines = ["customer_id,phone,consent"]
    lines += [f"{k},{p},{c}" for k, p, c in zip(KEYS, PHONES, consent, strict=True)]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        """campaign: consent
scenario_id: scn_demo
input: {path: contacts.csv, default_region: US, key_column: customer_id,
        consent_column: consent}
retry: {max_attempts: 2}
limits: {calls: 100/10s, requests: [600/min, 20000/h]}
api: {base_url: sandbox}
sandbox: {time_scale: 0.005}
calling_hours: unrestricted
state_dir: state
output_dir: out
"""
    )
    return path


def _last_night(path: Path) -> None:
    """K0, K1: an attempt committed *sending* whose request never left (then kill -9);
    K2: pending; K3: its first call ended, the retry is due now."""
    config = load_campaign(path, env={})
    store = Store.open(config.state_path)
    try:
        store.claim_identity(config.campaign)
        rows = planned_rows(config, [])
        assert [row.plan_state for row in rows] == ["callable"] * 4
        store.sync_rows(rows, 1.0)
        leave_sending(store, config, rows[:2])
        store.set_row_progress("K3", "retry_scheduled", next_due=1.0)
    finally:
        store.close()


def _run(path: Path) -> Result:
    return CliRunner().invoke(main, ["run", str(path)], env={}, catch_exceptions=False)


def _calls_per_phone(tmp_path: Path) -> Counter[str]:
    """Every call the sandbox created, counted by the number it rang."""
    state = json.loads((tmp_path / "state" / "sandbox-consent.json").read_text())
    return Counter(call["phone"] for call in state["world"]["calls"])


def _results(tmp_path: Path) -> dict[str, dict[str, str]]:
    with (tmp_path / "out" / "results.csv").open(newline="") as handle:
        return {row["customer_id"]: row for row in csv.DictReader(handle)}


def test_consent_withdrawn_overnight_stops_pending_retry_and_unsent_attempts(
    tmp_path: Path,
) -> None:
    _last_night(_campaign(tmp_path, ["yes"] * 4))
    # Tonight's export: K0 (sending), K2 (pending) and K3 (retry due) withdrew consent.
    path = _campaign(tmp_path, ["withdrawn", "yes", "", "no"])
    result = _run(path)
    assert result.exit_code == 0, result.output
    calls = _calls_per_phone(tmp_path)
    assert calls[PHONES[1]] == 1  # K1's unconfirmed attempt is re-sent, once
    assert [calls[PHONES[i]] for i in (0, 2, 3)] == [0, 0, 0]
    rows = _results(tmp_path)
    assert {key: rows[key]["state"] for key in ("K0", "K2", "K3")} == dict.fromkeys(
        ("K0", "K2", "K3"), "rejected"
    )
    assert all(rows[key]["reason"] == "no recorded consent" for key in ("K0", "K2", "K3"))
    config = load_campaign(path, env={})
    store = Store.open(config.state_path)
    try:
        states = {attempt.row_key: attempt.state for attempt in store.attempts()}
    finally:
        store.close()
    assert states["K0"] == "withheld"  # never re-sent, kept should its call turn up
    assert states["K1"] != "sending"

    # The next night K2 consents again: it is called then, and K0 still is not.
    again = _run(_campaign(tmp_path, ["withdrawn", "yes", "yes", "no"]))
    assert again.exit_code == 0, again.output
    calls = _calls_per_phone(tmp_path)
    assert [calls[phone] for phone in PHONES] == [0, 1, 1, 0]
    assert _results(tmp_path)["K2"]["state"] != "rejected"


def test_a_number_in_tonights_registry_download_is_not_re_sent(tmp_path: Path) -> None:
    _last_night(_campaign(tmp_path, ["yes"] * 4))
    # Overnight the registry download (a folder of area-code files) lists K0's number.
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "212.txt").write_text("2125550100\n2125559999\n")
    path = _campaign(tmp_path, ["yes"] * 4)
    path.write_text(path.read_text() + "suppression: [registry]\n")
    result = _run(path)
    assert result.exit_code == 0, result.output
    calls = _calls_per_phone(tmp_path)
    assert [calls[phone] for phone in PHONES] == [0, 1, 1, 1]
    row = _results(tmp_path)["K0"]
    assert (row["state"], row["reason"]) == ("suppressed", "on suppression list registry")
