"""The promise across a run boundary: no second call, no call to a suppressed number.

Each test runs the real ``campaign run`` (click's CliRunner, the in-process sandbox whose
world persists in the state dir), edits something between runs as an ops team would, and
reads the sandbox's own record of every call it created.
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

PHONES = [f"+1212555{100 + i:04d}" for i in range(6)]


def _campaign(tmp_path: Path, keys: list[str], phones: list[str], *, extra: str = "") -> Path:
    lines = ["customer_id,phone,first_name"]
    lines += [
        f"{key},{phone},N{i}" for i, (key, phone) in enumerate(zip(keys, phones, strict=True))
    ]
    (tmp_path / "contacts.csv").write_text("\n".join(lines) + "\n")
    path = tmp_path / "c.yaml"
    path.write_text(
        f"""campaign: edges
scenario_id: scn_demo
compliance:
  consent: attested
input: {{path: contacts.csv, default_region: US, key_column: customer_id,
        variables: [first_name]}}
retry: {{max_attempts: 1}}
limits: {{calls: 100/10s, requests: [600/min, 20000/h]}}
api: {{base_url: sandbox}}
sandbox: {{time_scale: 0.005}}
calling_hours: unrestricted
state_dir: state
output_dir: out
{extra}"""
    )
    return path


def _run(path: Path) -> Result:
    return CliRunner().invoke(main, ["run", str(path)], env={}, catch_exceptions=False)


def _calls_per_phone(tmp_path: Path) -> Counter[str]:
    """Every call the sandbox created, counted by the number it rang."""
    state = json.loads((tmp_path / "state" / "sandbox-edges.json").read_text())
    return Counter(call["phone"] for call in state["world"]["calls"])


def _results(tmp_path: Path) -> dict[str, dict[str, str]]:
    with (tmp_path / "out" / "results.csv").open(newline="") as handle:
        return {row["e164"] + "|" + row["customer_id"]: row for row in csv.DictReader(handle)}


def _leave_sending(path: Path) -> None:
    """The checkpoint a ``kill -9`` leaves when every row's attempt was committed *sending*
    and its request never executed (a 500 before execution, then the process died)."""
    config = load_campaign(path, env={})
    store = Store.open(config.state_path)
    try:
        store.claim_identity(config.campaign)
        rows = planned_rows(config, [])
        store.sync_rows(rows, 1.0)
        leave_sending(store, config, rows)
    finally:
        store.close()


def test_a_number_put_on_the_do_not_call_list_overnight_is_not_called_on_resume(
    tmp_path: Path,
) -> None:
    keys = [f"K{i}" for i in range(4)]
    path = _campaign(tmp_path, keys, PHONES[:4])
    _leave_sending(path)
    # Overnight the four numbers join the do-not-call file, written as people write them.
    (tmp_path / "dnc.csv").write_text(
        "phone\n" + "\n".join(f"(212) 555-{100 + i:04d}" for i in range(4)) + "\n"
    )
    path = _campaign(tmp_path, keys, PHONES[:4], extra="suppression: [dnc.csv]")
    result = _run(path)
    assert result.exit_code == 0, result.output
    assert sum(_calls_per_phone(tmp_path)[p] for p in PHONES[:4]) == 0
    rows = _results(tmp_path)
    assert {row["state"] for row in rows.values()} == {"suppressed"}
    assert all("dnc.csv" in row["reason"] for row in rows.values())


def test_the_same_people_under_new_keys_are_not_called_again(tmp_path: Path) -> None:
    first = _run(_campaign(tmp_path, [f"{101 + i:06d}" for i in range(6)], PHONES))
    assert first.exit_code == 0, first.output
    assert _calls_per_phone(tmp_path) == Counter(dict.fromkeys(PHONES, 1))
    # Night 2: Excel dropped the leading zeros, the numbers are the same people.
    second = _run(_campaign(tmp_path, [str(101 + i) for i in range(6)], PHONES))
    assert second.exit_code == 0, second.output
    assert "this run: 0 call(s) placed" in second.output
    assert _calls_per_phone(tmp_path) == Counter(dict.fromkeys(PHONES, 1))
    rows = _results(tmp_path)
    assert rows[f"{PHONES[0]}|101"]["state"] == "duplicate"
    assert "key 000101" in rows[f"{PHONES[0]}|101"]["reason"]


def test_a_recycled_key_with_a_new_number_is_a_new_person(tmp_path: Path) -> None:
    keys = [f"K{i}" for i in range(3)]
    assert _run(_campaign(tmp_path, keys, PHONES[:3])).exit_code == 0
    # Night 2: the CRM gave K0's id to someone else, with another number.
    second = _run(_campaign(tmp_path, keys, [PHONES[5], *PHONES[1:3]]))
    assert second.exit_code == 0, second.output
    assert "this run: 1 call(s) placed" in second.output
    calls = _calls_per_phone(tmp_path)
    assert calls[PHONES[5]] == 1 and calls[PHONES[0]] == 1
    row = _results(tmp_path)[f"{PHONES[5]}|K0"]
    assert row["state"] in ("done", "failed") and row["attempts"] == "1"
    assert row["last_call_id"]  # its own call, not the previous person's
    third = _run(_campaign(tmp_path, keys, [PHONES[5], *PHONES[1:3]]))
    assert "this run: 0 call(s) placed" in third.output


def test_a_second_state_dir_with_the_same_campaign_name_does_not_adopt_its_calls(
    tmp_path: Path,
) -> None:
    from support.crash import KEY, read_ledger, sandbox_process

    with sandbox_process(tmp_path, faults="", call_limit="100/10s", seed=1) as root:
        env = {"AITELIER_API_KEY": KEY, "AITELIER_BASE_URL": f"{root}/v1"}
        results = {}
        for host in ("a", "b"):  # two state dirs, one campaign name, one API project
            folder = tmp_path / host
            folder.mkdir()
            path = _campaign(folder, ["K0", "K1", "K2"], PHONES[:3])
            path.write_text(path.read_text().replace("api: {base_url: sandbox}\n", ""))
            result = CliRunner().invoke(main, ["run", str(path)], env=env)
            results[host] = (result, _results(folder))
        first, second = results["a"], results["b"]
        assert first[0].exit_code == 0, first[0].output
        ledger = read_ledger(root)
    assert Counter(call["phone"] for call in ledger["calls"]) == Counter(
        dict.fromkeys(PHONES[:3], 1)
    )
    assert {row["state"] for row in second[1].values()} == {"failed"}
    assert all("another checkpoint" in row["reason"] for row in second[1].values())
    assert {row["state"] for row in first[1].values()} <= {"done", "failed", "retry_scheduled"}
    assert not any("another checkpoint" in row["reason"] for row in first[1].values())
